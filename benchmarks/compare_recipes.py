"""Two ANN recipes side by side on the same network, initial weights and batches, scored
on held-out *training* images (never the test set):

    python benchmarks/compare_recipes.py --arch vgg16_w4 --epochs 40 --stop-after 4 \
        --out /tmp/compare

Each recipe (:data:`diet_np.recipes.RECIPES`) trains ``--arch`` from the same
``init_params(seed)`` draw (the short recipe then applies its LSUV) on the first
``--n-train`` CIFAR-10 training images, with the same shuffles, crops and flips
(all drawn from ``(seed, epoch)``), on the schedule of an ``--epochs``-epoch run,
stopped after ``--stop-after`` epochs; after every epoch both are scored on the last
``--held-out`` training images, which neither trains on.  Prints one row per epoch:
each recipe's rate, training loss and held-out accuracy, and its seconds per epoch.
Data: ``$DIET_NP_DATA``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from diet_np.architectures import ARCHITECTURES, build_network
from diet_np.cli import positive_int
from diet_np.data import Dataset
from diet_np.engine import apply_process_settings
from diet_np.errors import DietError
from diet_np.pipeline import load_data
from diet_np.recipes import RECIPES, ann_init, ann_recipe
from diet_np.model_file import read_model
from diet_np.training import CHECKPOINT, ann_config, fit


def held_out_split(dataset, n_train, held_out):
    """Train on the first ``n_train`` training images, test on the last ``held_out``."""
    x, y = dataset.x_train, dataset.y_train
    if n_train + held_out > len(x):
        raise DietError(f"{n_train} + {held_out} images asked for; the training set has {len(x)}")
    return Dataset.from_arrays(dataset.name, x[:n_train], y[:n_train], x[-held_out:],
                               y[-held_out:], dataset.class_names,
                               note=f"first {n_train} training images; held out: the last "
                                    f"{held_out}")


def run_recipe(name, args, data):
    """Train (or resume) one recipe's run until it has ``args.stop_after`` epochs."""
    cfg = ann_config(**ann_recipe(args.arch, name), epochs=args.epochs, seed=args.seed)
    net = build_network(args.arch, data.num_classes)
    params = net.init_params(args.seed, np, init=ann_init(args.arch, name))
    out = os.path.join(args.out, name)
    checkpoint = os.path.join(out, CHECKPOINT)
    done = read_model(checkpoint).epoch if os.path.exists(checkpoint) else 0
    history = fit(net, params, data, cfg, out, arch=args.arch, xp=np, resume=True,
                  show_progress=False, stop_after_epochs=max(0, args.stop_after - done))
    return history[:args.stop_after]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="vgg16_w4", choices=ARCHITECTURES)
    p.add_argument("--recipes", nargs=2, choices=tuple(RECIPES), default=["authors", "short"])
    p.add_argument("--epochs", type=positive_int, default=40, help="the schedules' length")
    p.add_argument("--stop-after", type=positive_int, default=4,
                   help="epochs each run has when the script ends (a resumed run trains the rest)")
    p.add_argument("--n-train", type=positive_int, default=18000)
    p.add_argument("--held-out", type=positive_int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="a folder for the two runs (resumable)")
    args = p.parse_args(argv)
    try:
        apply_process_settings()
        data = held_out_split(load_data("cifar10", show_progress=False), args.n_train,
                              args.held_out)
        curves = {name: run_recipe(name, args, data) for name in args.recipes}
    except DietError as exc:
        print(f"compare_recipes.py: error: {exc}", file=sys.stderr)
        return 2
    a, b = args.recipes
    print(f"\n{args.arch}, {args.n_train} training images, held-out accuracy on the last "
          f"{args.held_out} (schedules of {args.epochs} epochs)")
    print(f"{'epoch':>5} | {a + ' lr':>12} {'loss':>7} {'held-out':>8} {'s':>5} | "
          f"{b + ' lr':>12} {'loss':>7} {'held-out':>8} {'s':>5}")
    for ra, rb in zip(curves[a], curves[b]):
        cells = [f"{r['lr']:12.3g} {r['train_loss']:7.4f} {r['test_acc']:8.4f} "
                 f"{r['train_seconds']:5.0f}" for r in (ra, rb)]
        print(f"{ra['epoch']:>5} | {cells[0]} | {cells[1]}")
    with open(os.path.join(args.out, "curves.json"), "w") as f:
        json.dump({"args": vars(args), "curves": curves}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
