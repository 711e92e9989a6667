"""The pipeline on an image folder through the CLI: the narrowed ImageNet VGG16 on a
tiny ImageNet-shaped folder (8 training and 3 validation images, one epoch)."""
import json
import os
import shutil

import numpy as np
import pytest

from diet_np.architectures import vgg
from diet_np.cli import main
from diet_np.data import Dataset
from diet_np.model_file import read_model
from diet_np.training import evaluate

from imagenet_folder import make_folder, truncate

pytest.importorskip("PIL.Image")
ARCH = "vgg16_imagenet_w8"


def _cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out + err


def _tree(root):
    return sorted((here, n, os.stat(os.path.join(here, n)).st_mtime_ns)
                  for here, _, names in os.walk(root) for n in names)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A folder, and the ANN trained on it for one epoch (batch 4) in ``run/ann``."""
    base = tmp_path_factory.mktemp("imagenet_cli")
    folder = make_folder(base / "data")
    before = _tree(folder)
    code = main(["train-ann", "--dataset", "imagenet", "--data-dir", folder, "--arch", ARCH,
                 "--epochs", "1", "--batch-size", "4", "--out", str(base / "run" / "ann"),
                 "--recipe", "authors", "--quiet"])   # Adam leaves chance in this one epoch
    assert code == 0
    assert _tree(folder) == before                     # nothing written under the folder
    return base, folder


def test_train_ann_records_the_folder_its_classes_and_fingerprint(run):
    base, folder = run
    model = read_model(base / "run" / "ann" / "checkpoint.npz")
    assert model.arch == ARCH and model.data["name"] == "imagenet"
    assert model.data["folder"] == folder and model.data["input_shape"] == [3, 224, 224]
    assert model.data["classes"] == ["n01_red", "n02_blue", "n03_green"]
    assert model.data["n_train"] == 8 and model.data["n_test"] == 3
    assert len(model.data["fingerprint"]) == 16 and len(model.history) == 1
    assert model.config["eval_batch_size"] == 5        # 256 CIFAR images' worth of pixels
    assert model.data["mean"] == pytest.approx([0.485, 0.456, 0.406])


def test_convert_finetune_evaluate_energy_take_the_folder_from_the_checkpoint(run, capsys):
    base, folder = run
    r = base / "run"
    code, text = _cli(["convert", "--checkpoint", r / "ann" / "checkpoint.npz", "--out",
                       r / "converted.npz", "--find-steps", 4, "--images", 4, "--timesteps",
                       2, "--quiet"], capsys)
    assert code == 0, text
    assert f"data: imagenet, 8 train / 3 test images ({folder}, 3 classes)" in text
    code, text = _cli(["finetune", "--checkpoint", r / "converted.npz", "--out", r / "diet",
                       "--timesteps", 2, "--epochs", 1, "--batch-size", 8, "--quiet"], capsys)
    assert code == 0, text
    diet = read_model(r / "diet" / "checkpoint.npz")
    assert diet.data["folder"] == folder and diet.config["eval_batch_size"] == 5
    code, text = _cli(["evaluate", "--checkpoint", r / "diet" / "checkpoint.npz",
                       "--timesteps", 2, "--quiet"], capsys)
    assert code == 0, text
    summary = json.loads(text[text.index("{"):text.rindex("}") + 1])
    assert summary["images"] == 3 and summary["T"] == 2
    assert "top5_accuracy" not in summary                  # 3 classes: top-5 says nothing
    code, text = _cli(["energy", "--checkpoint", r / "diet" / "checkpoint.npz",
                       "--timesteps", 2, "--quiet"], capsys)
    # Energy evaluates the network on the folder's validation images; after one
    # epoch on 8 images this network is at chance, which energy refuses to price.
    assert code == 2 and "is at chance level" in text and "data: imagenet" in text


def test_resume_refuses_another_folder_and_evaluate_other_classes(run, tmp_path, capsys):
    base, folder = run
    other = shutil.copytree(folder, tmp_path / "other")
    os.rename(other / "train" / "n01_red" / "a.JPEG", other / "train" / "n01_red" / "e.jpg")
    code, text = _cli(["train-ann", "--out", base / "run" / "ann", "--resume", "--epochs", 2,
                       "--data-dir", other, "--quiet"], capsys)
    assert code == 2 and "its training images differ from these" in text
    # The same file names elsewhere (a copy, or a damaged image replaced) resume.
    same = shutil.copytree(folder, tmp_path / "same")
    run_dir = shutil.copytree(base / "run" / "ann", tmp_path / "ann")
    code, text = _cli(["train-ann", "--out", run_dir, "--resume", "--epochs", 2,
                       "--data-dir", same, "--quiet"], capsys)
    assert code == 0, text
    assert read_model(run_dir / "checkpoint.npz").epoch == 2
    renamed = shutil.copytree(folder, tmp_path / "renamed")
    for split in ("train", "val"):
        os.rename(renamed / split / "n03_green", renamed / split / "n03_lime")
    code, text = _cli(["evaluate", "--checkpoint", base / "run" / "ann" / "checkpoint.npz",
                       "--data-dir", renamed, "--quiet"], capsys)
    assert code == 2 and f"was trained on the classes of {folder}" in text
    assert len(text.strip().splitlines()) == 1


def test_export_and_import_through_the_folder(run, tmp_path, capsys):
    base, folder = run
    code, text = _cli(["export", "--checkpoint", base / "run" / "ann" / "checkpoint.npz",
                       "--out", tmp_path / "w.safetensors"], capsys)
    assert code == 0, text
    code, text = _cli(["import", "--from", tmp_path / "w.safetensors", "--format", "diet-np",
                       "--arch", ARCH, "--dataset", "imagenet", "--data-dir", folder,
                       "--out", tmp_path / "ann.npz"], capsys)
    assert code == 0, text
    model = read_model(tmp_path / "ann.npz")
    assert model.data["classes"] == ["n01_red", "n02_blue", "n03_green"]
    assert model.data["input_shape"] == [3, 224, 224]


def test_a_truncated_image_stops_training_with_its_name(run, tmp_path, capsys):
    _, folder = run
    broken = shutil.copytree(folder, tmp_path / "broken")
    truncate(broken / "train" / "n02_blue" / "a.jpg")
    code, text = _cli(["train-ann", "--dataset", "imagenet", "--data-dir", broken, "--arch",
                       ARCH, "--epochs", 1, "--batch-size", 4, "--out", tmp_path / "ann",
                       "--quiet"], capsys)
    assert code == 2
    assert f"error: {broken / 'train' / 'n02_blue' / 'a.jpg'}: not a readable image" in text


@pytest.mark.parametrize("args,message", [
    (["--arch", "vgg5"], "vgg5 takes 3x32x32 images; imagenet's are 3x224x224"),
    (["--arch", ARCH, "--data-dir", "/nonexistent/imagenet"], "/nonexistent/imagenet: no such"),
    (["--arch", ARCH], "the imagenet data set needs --data-dir DIR"),
])
def test_train_ann_refuses_what_cannot_work_before_training(args, message, tmp_path, capsys):
    code, text = _cli(["train-ann", "--dataset", "imagenet", *args, "--out", tmp_path / "o",
                       "--quiet"], capsys)
    assert code == 2 and message in text
    code, text = _cli(["train-ann", "--dataset", "shapes", "--arch", ARCH, "--out",
                       tmp_path / "p", "--quiet"], capsys)
    assert code == 2 and "3x224x224 images; shapes's are 3x32x32" in text


def test_top5_counts_the_label_among_the_five_highest_outputs():
    net = vgg([4, "A"], [6], num_classes=7, input_shape=(3, 8, 8))
    params = net.init_params(seed=0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 3, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 7, 40)
    data = Dataset("t", x, y, x, y, tuple("abcdefg"), 7, np.full(3, 0.5, np.float32),
                   np.full(3, 0.25, np.float32))
    ev = evaluate(net, params, x, y, data, T=1, mode="ann", xp=np, show_progress=False)
    logits, _ = net.forward(params, ((x / 255 - 0.5) / 0.25).astype(np.float32), T=1,
                            train=False, mode="ann")
    rank = (logits > logits[np.arange(40), y][:, None]).sum(axis=1)
    assert ev.top5 == pytest.approx(np.mean(rank < 5))
    assert ev.accuracy == pytest.approx(np.mean(logits.argmax(axis=1) == y))
    assert ev.top5 >= ev.accuracy and ev.summary()["top5_accuracy"] == ev.top5
