"""DIET's learning rate chosen by measurement: fine-tune a copy of a converted SNN for
one epoch at each candidate rate, on the first ``--images`` training images, and
test each at T on the last ``--check`` training images (held out: never trained on).

    python benchmarks/pick_lr.py RUN/converted.npz RUN/pick_lr --lrs 1e-3 3e-4 1e-4

The paper fine-tunes at 1e-4 for 100-150 epochs; a CPU run affords a few, and the
rate that learns fastest in one epoch is the one to spend them at.  Each run is the
library's training loop (:func:`diet_np.training.fit`) in OUT/lr<value>, so a rerun
reuses the runs that finished.  Prints a line per rate and the best (never one that
leaves the network at chance level or silent); writes nothing else.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from diet_np.backend import get_xp
from diet_np.cli import positive_float, positive_int
from diet_np.engine import apply_process_settings
from diet_np.errors import ChanceLevelError, ConfigError, DietError, chance_level
from diet_np.pipeline import load_model, model_dataset
from diet_np.training import diet_config, fit


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="a converted SNN")
    p.add_argument("out", help="folder of the probe runs")
    p.add_argument("--lrs", type=positive_float, nargs="+", default=[1e-3, 3e-4, 1e-4])
    p.add_argument("--images", type=positive_int, default=5000, help="training images of each run")
    p.add_argument("--check", type=positive_int, default=2000,
                   help="held-out training images it is tested on")
    p.add_argument("--timesteps", type=positive_int, default=5)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    args = p.parse_args(argv)
    try:
        choose_lr(args)
    except DietError as exc:                  # bad input: one line, not a traceback
        print(f"pick_lr.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


def choose_lr(args):
    apply_process_settings()
    xp = get_xp(args.device)
    net, start, model = load_model(args.source, xp, expect_kind=("snn",))
    full = model_dataset(model)
    if args.images + args.check > len(full.x_train):
        raise ConfigError(f"--images {args.images} + --check {args.check} exceed the "
                         f"{len(full.x_train)} training images of {args.source}")
    probe = dataclasses.replace(
        full, x_train=full.x_train[:args.images], y_train=full.y_train[:args.images],
        x_test=full.x_train[-args.check:], y_test=full.y_train[-args.check:], test_of=None,
        note=f"{full.note}; probe: first {args.images} training images, tested on the last "
             f"{args.check}")
    results, usable = {}, []
    for lr in args.lrs:
        params = {k: v.copy() for k, v in start.items()}
        cfg = diet_config(T=args.timesteps, epochs=1, lr=lr, encoding=net.encoding)
        epoch = fit(net, params, probe, cfg, os.path.join(args.out, f"lr{lr:g}"), arch=model.arch,
                    xp=xp, resume=True, finished="load", show_progress=False)[-1]
        results[lr] = epoch["test_acc"]          # the run's test set: the held-out images
        if epoch["test_acc"] >= chance_level(net.num_classes) and epoch["spike_rate"] > 0:
            usable.append(lr)
        print(f"lr {lr:g}: training loss {epoch['train_loss']:.4f} over the epoch, accuracy "
              f"{epoch['test_acc']:.4f} on {len(probe.x_test)} held-out training images at "
              f"T={args.timesteps}", flush=True)
    if not usable:
        raise ChanceLevelError(f"every rate left {args.source} at chance level (under "
                               f"{chance_level(net.num_classes):.3f}) or silent on the held-out "
                               "images: no best rate")
    best = max(usable, key=results.get)
    print(f"best lr {best:g}")


if __name__ == "__main__":
    raise SystemExit(main())
