"""The full-size GPU run without a GPU: benchmarks/pack_cifar.py (CIFAR-10 carried to the
GPU machine compressed, rebuilt byte for byte and checked by SHA-256) and
benchmarks/gpu_vgg16_cifar10.sh in its TINY mode on the CPU."""
import hashlib
import lzma
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diet_np.data import DataError, load_cifar

from conftest import colour_batch, colour_cifar, write_cifar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import pack_cifar  # noqa: E402
import pick_scale  # noqa: E402


def small_copy(root, n=40):
    """Three batches and the meta file.  Protocol 4 keeps the pixels one run of bytes, as
    in the shared copy; Python 3's protocol 2 splits them (the whole-file path)."""
    rng = np.random.default_rng(1)
    meta = {b"label_names": [b"c%d" % i for i in range(10)], b"num_vis": 3072}
    return write_cifar(root, {
        "data_batch_1": (colour_batch(rng, n, b"training batch 1 of 5"), 4),
        "data_batch_2": (colour_batch(rng, n + 3, b"training batch 2 of 5"), 2),
        "test_batch": (colour_batch(rng, n, b"testing batch 1 of 1"), 4),
        "batches.meta": (meta, 2)})


def test_pack_and_unpack_rebuild_the_files_byte_for_byte(tmp_path):
    written = small_copy(tmp_path / "data")
    pack_cifar.pack(tmp_path / "data", tmp_path / "pack")
    packed = sorted(f.name for f in (tmp_path / "pack").iterdir())
    assert "data_batch_1.pixels.xz" in packed and "test_batch.pixels.xz" in packed
    assert "data_batch_2.pixels.xz" not in packed              # kept whole
    assert pack_cifar.main(["unpack", "--pack", str(tmp_path / "pack"),
                            "--data", str(tmp_path / "out")]) == 0
    for name, raw in written.items():
        assert (tmp_path / "out" / "cifar-10-batches-py" / name).read_bytes() == raw, name
    a, b = load_cifar(root=tmp_path / "data"), load_cifar(root=tmp_path / "out")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    pack_cifar.unpack(tmp_path / "pack", tmp_path / "out")     # again: verified and kept


def test_the_pixel_filter_is_undone_exactly():
    x = np.random.default_rng(0).integers(0, 256, size=(5, 3, 32, 32), dtype=np.uint8)
    residuals = pack_cifar.predict(x)
    assert residuals.dtype == np.uint8 and not np.array_equal(residuals, x)
    np.testing.assert_array_equal(pack_cifar.unpredict(residuals), x)


def test_a_checksum_mismatch_stops_naming_the_file_and_both_sums(tmp_path, capsys):
    written = small_copy(tmp_path / "data")
    pack = tmp_path / "pack"
    pack_cifar.pack(tmp_path / "data", pack)
    right = hashlib.sha256(written["data_batch_1"]).hexdigest()
    # a damaged pixel stream (a valid xz stream of other residuals)
    residuals = bytearray(lzma.decompress((pack / "data_batch_1.pixels.xz").read_bytes()))
    residuals[100] ^= 1
    (pack / "data_batch_1.pixels.xz").write_bytes(lzma.compress(bytes(residuals)))
    assert pack_cifar.main(["unpack", "--pack", str(pack), "--data", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "checksum mismatch for cifar-10-batches-py/data_batch_1" in err and right in err
    wrong = err.split("unpacked file has ")[1].split(";")[0]
    assert len(wrong) == 64 and wrong != right
    assert not (tmp_path / "out" / "cifar-10-batches-py" / "data_batch_1").exists()


def test_unpack_never_replaces_a_different_file(tmp_path):
    small_copy(tmp_path / "data")
    pack_cifar.pack(tmp_path / "data", tmp_path / "pack")
    mine = tmp_path / "out" / "cifar-10-batches-py" / "test_batch"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"the user's")
    with pytest.raises(DataError, match="test_batch exists with SHA-256 .* left as it is"):
        pack_cifar.unpack(tmp_path / "pack", tmp_path / "out")
    assert mine.read_bytes() == b"the user's"


def test_pack_refuses_a_copy_that_disagrees_with_its_sums_and_an_existing_pack(tmp_path):
    small_copy(tmp_path / "data")
    pack_cifar.pack(tmp_path / "data", tmp_path / "pack")
    with pytest.raises(DataError, match="is not empty; pass --overwrite"):
        pack_cifar.pack(tmp_path / "data", tmp_path / "pack")
    (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").write_bytes(b"changed")
    with pytest.raises(DataError, match="test_batch does not match .*SHA256SUMS"):
        pack_cifar.pack(tmp_path / "data", tmp_path / "pack", overwrite=True)


@pytest.mark.slow
def test_the_gpu_script_runs_end_to_end_in_tiny_mode(tmp_path):
    """TINY=1: vgg16_w8 on the CPU through every stage (about 2.5 min), on a packed copy
    of colour-coded images (1,000 training, 500 test)."""
    colour_cifar(tmp_path / "data", 500, seed=2)
    pack_cifar.pack(tmp_path / "data", tmp_path / "pack")
    out = tmp_path / "out"
    env = dict(os.environ, TINY="1", OUT=str(out), RUN_DIR=str(tmp_path / "run"),
               GPU_DATA=str(tmp_path / "pack"))
    done = subprocess.run(["sh", "benchmarks/gpu_vgg16_cifar10.sh"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "plan: chosen" in done.stdout and "verified" in done.stdout
    returned = sorted(f.name for f in out.iterdir())
    assert returned == ["ann_curves.png", "ann_log.jsonl", "diet_curves.png", "diet_log.jsonl",
                        "output.txt", "summary.json", "summary.md"]   # the run tool returns 8
    summary = (out / "summary.md").read_text()
    for row in ("| ANN (", "| converted SNN, unscaled thresholds | 100 |", "| DIET-SNN (",
                "chosen on 500 training images", "- scale 0.7: accuracy", "- scale 0.3: accuracy"):
        assert row in summary
    picked = float(summary.split("| converted SNN, thresholds x")[1].split(" |")[0])
    assert picked in pick_scale.SCALES and f"best scale {picked}" in done.stdout
    assert "not reached" not in summary and "E_ANN / E_SNN" in summary
