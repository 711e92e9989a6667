"""Images per second of the image folder pipeline on this machine.

    python3 benchmarks/imagenet_throughput.py [--arch vgg16_imagenet_w8] [--images 48]
                                              [--batch 8] [--steps 3] [--timesteps 5]

First times one resize of a 500x375 image to 224x224, the NumPy one diet_np uses against
Pillow's (best of 5).  Then draws ``--images`` JPEGs at ImageNet's common sizes (500x375,
375x500, 500x333) into a temporary folder (removed at the end) and times: decoding with the
training transform (random resized crop + flip) and with the validation transform
(resize 256 + centre 224), each through the streamed batches the training loop reads;
ANN training steps of ``--arch`` and DIET steps at ``--timesteps`` on already decoded
batches (the first step of each is left out).  Prints one line per measurement:
images per second of wall time, and per second of this process's CPU time (all its
threads), which a busy machine changes less.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from diet_np.architectures import build_network  # noqa: E402
from diet_np.backend import default_rng  # noqa: E402
from diet_np.cli import positive_int  # noqa: E402
from diet_np.data import iterate_batches, load_dataset  # noqa: E402
from diet_np.data.image_transforms import resize  # noqa: E402
from diet_np.data.imagenet import WORKERS, pillow_image  # noqa: E402
from diet_np.training import ann_config, diet_config, run_optimizer, train_step  # noqa: E402

SIZES = [(500, 375), (375, 500), (500, 333)]


def write_folder(root, n, classes=4, seed=0):
    """``n`` smooth random JPEGs (quality 90) split over ``classes`` in train/ and val/."""
    Image = pillow_image()
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = SIZES[i % len(SIZES)]
        coarse = rng.integers(0, 256, (h // 25 + 1, w // 25 + 1, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((w, h), Image.BILINEAR)
        for split in ("train", "val"):
            folder = os.path.join(root, split, f"c{i % classes}")
            os.makedirs(folder, exist_ok=True)
            image.save(os.path.join(folder, f"{i}.jpg"), quality=90)


def _clocks():
    return np.array([time.perf_counter(), time.process_time()])


def time_resize():
    """Best-of-5 milliseconds of one 500x375 -> 224x224 resize: (NumPy, Pillow)."""
    Image = pillow_image()
    image = np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)
    pil = Image.fromarray(image)
    best = []
    for run in (lambda: resize(image, 224, 224), lambda: pil.resize((224, 224), Image.BILINEAR)):
        times = []
        for _ in range(5):
            tic = time.perf_counter()
            run()
            times.append(time.perf_counter() - tic)
        best.append(1e3 * min(times))
    return best


def time_batches(data, batch, augment):
    """(images per wall second, per CPU second) of one streamed epoch."""
    tic = _clocks()
    n = sum(len(y) for _, y in iterate_batches(data.x_train, data.y_train, batch, np,
                                               shuffle=True, rng=0, augment=augment,
                                               mean=data.mean, std=data.std))
    return n / (_clocks() - tic)


def time_steps(net, batches, cfg, steps):
    params = net.init_params(seed=0, init="kaiming-in")
    opt, rng = run_optimizer(cfg), default_rng(np, 0)
    seconds = []
    for x, y in batches[:steps + 1]:
        tic = _clocks()
        loss, _ = train_step(net, params, opt, x, y, cfg=cfg, rng=rng, lr=cfg.lr)
        float(loss)
        seconds.append(_clocks() - tic)
    return len(batches[0][1]) / np.mean(seconds[1:], axis=0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="vgg16_imagenet_w8")
    p.add_argument("--images", type=positive_int, default=48)
    p.add_argument("--batch", type=positive_int, default=8)
    p.add_argument("--steps", type=positive_int, default=3)
    p.add_argument("--timesteps", type=positive_int, default=5)
    args = p.parse_args()
    numpy_ms, pillow_ms = time_resize()
    print(f"resize 500x375 -> 224x224: NumPy {numpy_ms:.1f} ms, Pillow {pillow_ms:.1f} ms")
    with tempfile.TemporaryDirectory() as root:
        write_folder(root, args.images)
        data = load_dataset("imagenet", root=root)
        print(f"{os.cpu_count()} CPUs, {WORKERS} decoding threads, {args.images} JPEGs")
        for augment, name in ((True, "training"), (False, "validation")):
            wall, cpu = time_batches(data, args.batch, augment)
            print(f"decode + {name} transform: {wall:.1f} images/s ({cpu:.1f} per CPU second)")
        batches = list(iterate_batches(data.x_train, data.y_train, args.batch, np, rng=0,
                                       augment=True, mean=data.mean, std=data.std))
    if len(batches) < args.steps + 1:
        p.error(f"--images {args.images} gives {len(batches)} batches of {args.batch}; "
                f"--steps {args.steps} needs {args.steps + 1}")
    net = build_network(args.arch, data.num_classes)
    for cfg, name in ((ann_config(optimizer="adam", amsgrad=True, lr=1e-4), "ANN"),
                      (diet_config(T=args.timesteps), f"DIET T={args.timesteps}")):
        wall, cpu = time_steps(net, batches, cfg, args.steps)
        print(f"{args.arch} {name} training step, batch {args.batch}: {wall:.2f} images/s "
              f"({cpu:.2f} per CPU second)")


if __name__ == "__main__":
    main()
