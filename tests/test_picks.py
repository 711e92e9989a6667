"""benchmarks/pick_scale.py and benchmarks/pick_lr.py: each keeps the candidate that
measured best on training images, and refuses input it cannot use."""
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import colour_cifar
from diet_np.architectures import build_network
from diet_np.conversion import convert
from diet_np.model_file import data_record, read_model
from diet_np.pipeline import conversion_batch, load_data, save_model
from diet_np.training import ann_config, fit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import pick_lr  # noqa: E402
import pick_scale  # noqa: E402

TINY = {"features": [8, "A", 8, "A"], "classifier": [32], "name": "tiny"}


@pytest.fixture(scope="module")
def unscaled(tmp_path_factory):
    """A small ANN trained on colour-coded CIFAR-10 images, converted with thresholds
    x1.0; DIET_NP_DATA points at those images while the module's tests run."""
    folder = tmp_path_factory.mktemp("picks")
    colour_cifar(folder / "data", 200, seed=4)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DIET_NP_DATA", str(folder / "data"))
        data = load_data("cifar10", download=False, show_progress=False)
        net = build_network(TINY, data.num_classes)
        params = net.init_params(0)
        fit(net, params, data, ann_config(epochs=2, batch_size=32, lr=0.05), folder / "ann",
            arch=TINY, xp=np, show_progress=False)
        snn, found = convert(net, params, conversion_batch(data, 32, np), T_find=8,
                             show_progress=False)
        path = folder / "unscaled.npz"
        save_model(path, snn, arch=TINY, kind="snn", T=8, data=data_record(data),
                   origin={"scale": 1.0, "T_find": 8, "unscaled_thresholds": found})
        yield path


def measured(text, pattern):
    return {float(k): float(v) for k, v in re.findall(pattern, text)}


def test_pick_scale_writes_the_best_factor(unscaled, tmp_path, capsys):
    out = tmp_path / "scaled.npz"
    pick_scale.main([str(unscaled), str(out), "--scales", "1.5", "0.6", "0.2",
                     "--timesteps", "3", "--images", "160"])
    accuracy = measured(capsys.readouterr().out, r"scale ([\d.]+): accuracy ([\d.]+)")
    best = max(accuracy, key=accuracy.get)
    written, source = read_model(out), read_model(unscaled)
    assert written.origin["scale"] == best and set(written.origin["scale_chosen_from"]) == {
        "1.5", "0.6", "0.2"}
    for key, value in source.params.items():
        expected = value * best if key.endswith(".threshold") else value
        np.testing.assert_allclose(written.params[key], expected, rtol=1e-6, err_msg=key)
    assert pick_scale.main([str(out), str(tmp_path / "again.npz")]) == 2
    assert f"scaled by {best}; pass one converted with --scale 1.0" in capsys.readouterr().err


def test_pick_scale_writes_no_best_when_every_factor_is_silent(unscaled, tmp_path, capsys):
    out = tmp_path / "scaled.npz"
    assert pick_scale.main([str(unscaled), str(out), "--scales", "50", "100", "--timesteps",
                            "2", "--images", "64"]) == 2
    captured = capsys.readouterr()
    assert "silent layers" in captured.out and "best scale" not in captured.out
    assert "every candidate scale left" in captured.err and "nothing written" in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and not out.exists()


def test_pick_lr_names_the_rate_that_tested_best_and_reuses_its_runs(unscaled, tmp_path,
                                                                     capsys):
    args = [str(unscaled), str(tmp_path / "probe"), "--lrs", "3e-2", "1e-8", "--images", "256",
            "--check", "128", "--timesteps", "3"]
    pick_lr.main(args)
    text = capsys.readouterr().out
    accuracy = measured(text, r"lr ([\de.-]+): training loss [\d.]+ over the epoch, "
                              r"accuracy ([\d.]+) on 128 held-out")
    assert set(accuracy) == {3e-2, 1e-8}
    assert f"best lr {max(accuracy, key=accuracy.get):g}" in text
    assert (tmp_path / "probe" / "lr0.03" / "checkpoint.npz").exists()
    pick_lr.main(args)                           # the finished runs are loaded, not trained again
    again = capsys.readouterr().out
    assert "snn epoch" not in again and measured(again, r"lr ([\de.-]+): training loss [\d.]+ "
                                                        r"over the epoch, accuracy ([\d.]+)") == accuracy
    assert pick_lr.main(args[:2] + ["--images", "300", "--check", "128"]) == 2
    assert "--images 300 + --check 128 exceed the 400 training" in capsys.readouterr().err


@pytest.mark.parametrize("script, extra", [(pick_scale, ["--images", "0"]),
                                           (pick_lr, ["--check", "0"])])
def test_a_count_under_one_is_refused_by_name(unscaled, tmp_path, capsys, script, extra):
    """``--check 0`` once meant x_train[-0:], every training image, as the 'held-out' set."""
    with pytest.raises(SystemExit) as stop:
        script.main([str(unscaled), str(tmp_path / "out")] + extra)
    assert stop.value.code == 2
    assert f"argument {extra[0]}: must be an integer >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("script", [pick_scale, pick_lr])
def test_a_missing_checkpoint_is_one_line(tmp_path, capsys, script):
    assert script.main([str(tmp_path / "none.npz"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "none.npz" in err and "does not exist" in err
