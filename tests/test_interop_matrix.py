"""Every export format x every named architecture x ANN and SNN, through the command
line: ``export --format F`` then ``import --format F`` gives back the checkpoint's
parameters bit for bit (an ANN's weights; NIR holds SNNs only).  Reduced widths
(``_w8``) for the VGGs; ResNet20 at full width (it has no narrow form) runs with
``-m slow`` except in the diet-np format.  The other side's code reading these
files: tests/test_weights_torch.py (the authors' module tree) and
tests/test_nir_snntorch.py (snnTorch).
"""
import numpy as np
import pytest

from conftest import lively_params
from diet_np.architectures import build_network
from diet_np.cli import main
from diet_np.model_file import data_record
from diet_np.pipeline import load_data, load_model, save_model

ARCHS = ["vgg5", "vgg6_w8", "vgg9_w8", "vgg11_w8", "vgg16_w8", "resnet20"]
SUFFIX = {"diet-np": "safetensors", "authors": "npz", "nir": "nir"}
FLAGS = ["--dataset", "shapes", "--n-train", "10", "--n-test", "10"]


def cases():
    for arch in ARCHS:
        for fmt in SUFFIX:
            for kind in ("ann", "snn"):
                if fmt == "nir" and kind == "ann":
                    continue
                slow = arch == "resnet20" and fmt != "diet-np"
                marks = [pytest.mark.slow] if slow else []
                if fmt == "nir":
                    marks.append(pytest.mark.skipif(not _has_nir(), reason="nir not installed"))
                yield pytest.param(arch, fmt, kind, marks=marks, id=f"{arch}-{fmt}-{kind}")


def _has_nir():
    try:
        import nir  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("arch,fmt,kind", list(cases()))
def test_export_import_round_trip(arch, fmt, kind, tmp_path, capsys):
    data = load_data("shapes", n_train=10, n_test=10, seed=0)
    net = build_network(arch, data.num_classes)
    params = {k: v.astype(np.float32) for k, v in lively_params(net, 3).items()}
    if kind == "ann":
        params.update({k: np.ones((), np.float32) for k in params if not k.endswith(".weight")})
    ckpt, out, back = tmp_path / "c.npz", tmp_path / f"w.{SUFFIX[fmt]}", tmp_path / "b.npz"
    save_model(ckpt, params, arch=arch, kind=kind, T=5 if kind == "snn" else 1,
               data=data_record(data))
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--format", fmt]) == 0
    assert main(["import", "--from", str(out), "--format", fmt, "--arch", arch,
                 "--out", str(back)] + FLAGS) == 0
    capsys.readouterr()
    _, got, model = load_model(back, np)
    assert model.kind == kind and model.T == (5 if kind == "snn" else 1)
    for k in params:
        np.testing.assert_array_equal(got[k], params[k], err_msg=k)
