"""Image folders: the authors' ImageNet transforms against Pillow, the folder scan,
the streamed batches and every error a damaged folder can hold."""
import os
import re
import shutil
import sys
import threading

import numpy as np
import pytest

from diet_np.data import DataError, iterate_batches, load_dataset
from diet_np.data import imagenet as folder_mod
from diet_np.data.image_transforms import (CROP, centre_box, random_box, resize,
                                           shorter_side_size, train_transform, val_transform)
from diet_np.model_file import data_record

from imagenet_folder import make_folder, truncate

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("imagenet"))


def _pillow_resize(image, height, width):
    """Pillow's bilinear resize as two one-axis resizes, horizontal first; Pillow's
    one-call resize (which picks the order itself from version 13) within a level."""
    pil = Image.fromarray(image)
    two = pil.resize((width, pil.height), Image.BILINEAR).resize((width, height),
                                                                  Image.BILINEAR)
    one = np.asarray(pil.resize((width, height), Image.BILINEAR)).astype(int)
    assert np.abs(one - np.asarray(two)).max() <= 1
    return np.asarray(two)


def _image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    # Sharp edges and a full range of values: every rounding case of the filter shows.
    return (np.cumsum(rng.integers(0, 256, (h, w, 3)), axis=1) % 256).astype(np.uint8)


@pytest.mark.parametrize("h,w,out_h,out_w", [
    (375, 500, 224, 224), (64, 80, 224, 224), (100, 37, 224, 224), (17, 1000, 224, 224),
    (300, 301, 256, 256), (500, 333, 384, 256), (224, 224, 224, 224), (3, 2, 7, 5)])
def test_resize_equals_pillows_bilinear_resize(h, w, out_h, out_w):
    image = _image(h, w)
    np.testing.assert_array_equal(resize(image, out_h, out_w),
                                  _pillow_resize(image, out_h, out_w))


def test_train_transform_is_pillows_resize_of_the_drawn_box_then_a_flip():
    image = _image(333, 500, seed=1)
    flips = 0
    for seed in range(8):
        rng = np.random.default_rng(seed)
        top, left, h, w = random_box(333, 500, rng)
        flip = rng.random() < 0.5
        crop = np.asarray(Image.fromarray(image).crop((left, top, left + w, top + h)))
        want = _pillow_resize(crop, CROP, CROP)
        want = want[:, ::-1] if flip else want
        got = train_transform(image, np.random.default_rng(seed))
        np.testing.assert_array_equal(got, want.transpose(2, 0, 1))
        flips += flip
    assert 0 < flips < 8


@pytest.mark.parametrize("h,w", [(375, 500), (500, 375), (256, 256), (300, 1001), (224, 225)])
def test_val_transform_is_resize_256_then_centre_224(h, w):
    image = _image(h, w, seed=2)
    new_w, new_h = (256, 256 * h // w) if w <= h else (256 * w // h, 256)
    assert shorter_side_size(h, w) == (new_h, new_w)
    resized = Image.fromarray(_pillow_resize(image, new_h, new_w))
    left, top = round((new_w - CROP) / 2), round((new_h - CROP) / 2)
    want = np.asarray(resized.crop((left, top, left + CROP, top + CROP)))
    np.testing.assert_array_equal(val_transform(image), want.transpose(2, 0, 1))


def test_random_box_keeps_area_and_ratio_in_range_and_falls_back_to_the_centre():
    rng = np.random.default_rng(0)
    for _ in range(300):
        top, left, h, w = random_box(375, 500, rng)
        assert 0 <= top <= 375 - h and 0 <= left <= 500 - w
        assert 0.07 <= h * w / (375 * 500) <= 1.0
        assert 0.7 <= w / h <= 1.4
    # No box of 8% of a 17x1000 image fits 17 rows at ratio <= 4/3: the centred
    # full-height box of ratio 4/3.
    assert random_box(17, 1000, rng) == (0, (1000 - 23) // 2, 17, 23)
    assert random_box(1000, 17, rng) == ((1000 - 23) // 2, 0, 23, 17)
    assert centre_box(256, 341) == (16, 58) and centre_box(225, 224) == (0, 0)


def test_folder_is_scanned_class_by_class_and_streamed_as_normalised_batches(folder):
    data = load_dataset("imagenet", root=folder)
    assert data.class_names == ("n01_red", "n02_blue", "n03_green")
    assert len(data.x_train) == 8 and len(data.x_test) == 3
    assert data.x_train.shape == (8, 3, 224, 224)
    assert data.y_train.tolist() == [0, 1, 2, 0, 1, 2, 0, 1]      # classes in turn
    assert "n02_blue/sub/b.JPG" in data.x_train.paths              # sub-folders, any case
    batches = list(iterate_batches(data.x_test, data.y_test, 2, np, shuffle=False,
                                   mean=data.mean, std=data.std))
    assert [b[0].shape for b in batches] == [(2, 3, 224, 224), (1, 3, 224, 224)]
    assert batches[0][0].dtype == np.float32 and batches[1][1].tolist() == [2]
    # The validation transform of the CMYK JPEG, normalised with ImageNet's statistics.
    rgb = np.asarray(Image.open(os.path.join(folder, "val", data.x_test.paths[0]))
                     .convert("RGB"))
    want = (val_transform(rgb) / 255.0 - data.mean[:, None, None]) / data.std[:, None, None]
    np.testing.assert_allclose(batches[0][0][0], want, atol=1e-5)
    assert np.array_equal(data.x_test[np.array([1])][0], data.x_test[1])
    grey = data.x_test[1]                                    # the greyscale JPEG: R = G = B
    assert grey.shape == (3, 224, 224) and (grey[0] == grey[1]).all() and (grey[1] == grey[2]).all()


def test_augmented_epochs_repeat_from_the_same_generator_and_differ_across_seeds(folder):
    data = load_dataset("imagenet", root=folder)

    def epoch(seed):
        return [(x, y) for x, y in iterate_batches(
            data.x_train, data.y_train, 3, np, shuffle=True, rng=np.random.default_rng(seed),
            augment=True, mean=data.mean, std=data.std)]

    a, b, c = epoch(5), epoch(5), epoch(6)
    assert all(np.array_equal(x1, x2) and np.array_equal(y1, y2)
               for (x1, y1), (x2, y2) in zip(a, b))
    assert not np.array_equal(a[0][0], c[0][0])
    assert sorted(np.concatenate([y for _, y in a]).tolist()) == sorted(data.y_train.tolist())


def test_subsets_take_classes_in_turn_and_the_record_names_folder_and_classes(folder):
    data = load_dataset("imagenet", root=folder, n_train=4, n_test=2)
    assert data.y_train.tolist() == [0, 1, 2, 0] and data.y_test.tolist() == [0, 1]
    record = data_record(data)
    assert record["folder"] == folder and record["classes"] == list(data.class_names)
    assert record["input_shape"] == [3, 224, 224] and record["n_train"] == 4
    assert record["fingerprint"] != data_record(load_dataset("imagenet", root=folder))[
        "fingerprint"]
    with pytest.raises(DataError, match="holds 8 images; 9 were asked for"):
        load_dataset("imagenet", root=folder, n_train=9)


def test_reading_a_folder_writes_nothing_under_it(folder):
    def snapshot():
        return sorted((p, os.stat(os.path.join(p, n)).st_mtime_ns, n)
                      for p, _, names in os.walk(folder) for n in names)
    before = snapshot()
    data = load_dataset("imagenet", root=folder)
    for _ in iterate_batches(data.x_train, data.y_train, 4, np, rng=0, augment=True,
                             mean=data.mean, std=data.std):
        pass
    assert snapshot() == before


def _copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "copy")


def test_a_truncated_image_is_an_error_naming_it_when_read(folder, tmp_path):
    root = _copy(folder, tmp_path)
    broken = root / "train" / "n03_green" / "a.jpg"
    truncate(broken)
    data = load_dataset("imagenet", root=root)
    with pytest.raises(DataError, match=re.escape(f"{broken}: not a readable image") + ".*truncated") as err:
        for _ in iterate_batches(data.x_train, data.y_train, 2, np, rng=1,
                                 mean=data.mean, std=data.std):
            pass
    assert "\n" not in str(err.value)
    (root / "val" / "n01_red" / "junk.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="junk.png: not a readable image"):
        load_dataset("imagenet", root=root).x_test[np.arange(4)]


@pytest.mark.parametrize("damage,message", [
    (lambda r: shutil.rmtree(r / "val"), r"copy/val: no such folder"),
    (lambda r: shutil.rmtree(r / "train"), r"copy/train: no such folder"),
    (lambda r: [p.unlink() for p in (r / "train" / "n03_green").iterdir()],
     r"train/n03_green: empty class folder"),
    (lambda r: shutil.rmtree(r / "val" / "n02_blue"),
     r"different classes \(only in train/: n02_blue; only in val/: none\)"),
    (lambda r: (r / "val" / "n09_extra").mkdir() or shutil.copy(
        r / "val" / "n01_red" / "d.jpeg", r / "val" / "n09_extra"),
     r"only in train/: none; only in val/: n09_extra"),
    (lambda r: [shutil.rmtree(r / s / c) for s in ("train", "val") for c in ("n02_blue",
                                                                           "n03_green")],
     r"one class \(n01_red\); a classifier needs at least two"),
])
def test_damaged_folders_are_one_line_errors_naming_what_is_wrong(folder, tmp_path, damage,
                                                                  message):
    root = _copy(folder, tmp_path)
    damage(root)
    with pytest.raises(DataError, match=message) as err:
        load_dataset("imagenet", root=root)
    assert "\n" not in str(err.value)


def test_missing_root_and_missing_pillow_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="needs --data-dir DIR"):
        load_dataset("imagenet", root=None)
    with pytest.raises(DataError, match="nowhere: no such folder"):
        load_dataset("imagenet", root=tmp_path / "nowhere")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DataError, match=r"Pillow, which is not installed: pip install "
                                        r"'diet-np\[imagenet\]'"):
        load_dataset("imagenet", root=tmp_path)


def test_other_files_are_left_out_and_said_so(folder, tmp_path):
    root = _copy(folder, tmp_path)
    (root / "train" / "n01_red" / "notes.txt").write_text("x")
    (root / "train" / "n01_red" / ".hidden.jpg.swp").write_text("x")
    data = load_dataset("imagenet", root=root)
    assert len(data.x_train) == 8 and "1 files that are not .jpg/.jpeg/.png left out" in data.note


def test_the_decoding_thread_stops_when_the_consumer_stops(folder):
    data = load_dataset("imagenet", root=folder)
    before = threading.active_count()
    batches = iterate_batches(data.x_train, data.y_train, 1, np, shuffle=False,
                              mean=data.mean, std=data.std)
    next(batches)
    batches.close()
    assert threading.active_count() == before


def test_prefetch_stays_bounded():
    produced = []

    def produce():
        for i in range(100):
            produced.append(i)
            yield i

    stream = folder_mod._prefetched(produce, 3)
    assert next(stream) == 0
    threading.Event().wait(0.3)
    assert len(produced) <= 5            # the one taken, 3 queued, 1 waiting to be put
    assert list(stream) == list(range(1, 100))
