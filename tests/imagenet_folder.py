"""A tiny ImageNet-shaped folder, drawn with Pillow, for the image folder tests."""
import os

import numpy as np

# (class, split, file name, Pillow mode, (width, height)); odd sizes, every mode the
# loader converts, one PNG.
FILES = [
    ("n01_red", "train", "a.JPEG", "RGB", (53, 37)),
    ("n01_red", "train", "b.jpg", "L", (300, 200)),
    ("n01_red", "train", "c.png", "P", (64, 65)),
    ("n01_red", "val", "d.jpeg", "CMYK", (257, 255)),
    ("n02_blue", "train", "a.jpg", "RGB", (31, 400)),
    ("n02_blue", "train", "sub/b.JPG", "CMYK", (224, 224)),
    ("n02_blue", "train", "c.png", "RGBA", (100, 77)),
    ("n02_blue", "val", "d.jpg", "L", (500, 333)),
    ("n03_green", "train", "a.jpg", "RGB", (225, 301)),
    ("n03_green", "train", "b.png", "RGB", (17, 19)),
    ("n03_green", "val", "c.jpg", "RGB", (640, 480)),
]
COLOURS = {"n01_red": (220, 30, 40), "n02_blue": (30, 40, 220), "n03_green": (40, 200, 30)}


def draw(size, colour, seed):
    """An RGB uint8 image (height, width, 3): the class colour, a gradient and noise."""
    w, h = size
    rng = np.random.default_rng(seed)
    ramp = np.linspace(-40, 40, w)[None, :, None] + np.linspace(-30, 30, h)[:, None, None]
    img = np.asarray(colour, float)[None, None, :] + ramp + rng.normal(0, 20, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_folder(root, files=FILES):
    """Write ``files`` under ``root`` (``root/split/class/name``); returns ``root``."""
    from PIL import Image
    for i, (cls, split, name, mode, size) in enumerate(files):
        path = os.path.join(root, split, cls, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        image = Image.fromarray(draw(size, COLOURS.get(cls, (128, 128, 128)), i))
        image = image.convert(mode) if mode != "P" else image.quantize(16)
        fmt = "PNG" if name.lower().endswith(".png") else "JPEG"
        image.save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return str(root)


def truncate(path, keep=0.5):
    """Cut the file at ``path`` to ``keep`` of its bytes (a broken download)."""
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:int(len(data) * keep)])
