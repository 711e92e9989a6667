"""Does an ANN recipe leave chance?  Loss vs step on real CIFAR-10, and time per step.

    DIET_NP_DATA=/work/shared/data PYTHONPATH=. python benchmarks/recipe_probe.py \\
        --arch vgg16 --steps 300 --optimizer adam --lr 1e-4

Prints the mean training loss of every ``--every`` steps (ln 10 = 2.3026 is chance),
the seconds per step, and, with ``--snn-steps``, the seconds per DIET step at T=5 of
the same network (thresholds set to 1; the timing does not depend on their values
much).  It trains through the library's own pieces (build_network, init_params,
train_step), with ``--recipe`` taking the overrides of :func:`diet_np.recipes.ann_recipe`.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from diet_np.architectures import ARCHITECTURES, build_network
from diet_np.backend import default_rng
from diet_np.data import load_dataset
from diet_np.network import INITS
from diet_np.recipes import ann_init, ann_recipe, loss_curve, training_batches
from diet_np.training import ann_config, diet_config, evaluate, run_optimizer, train_step


def snn_step_seconds(arch, dataset, steps, batch_size, T=5):
    """Seconds per DIET step (T steps forward + BPTT) of ``arch`` at batch ``batch_size``."""
    net = build_network(arch, dataset.num_classes)
    params = net.init_params(seed=0)
    cfg = diet_config(batch_size=batch_size, T=T)
    opt, rng = run_optimizer(cfg), default_rng(np, 0)
    times = []
    for _, (xb, yb) in zip(range(steps + 1), training_batches(dataset, cfg)):
        tic = time.perf_counter()
        train_step(net, params, opt, xb.astype(np.float32), yb, cfg=cfg, rng=rng, lr=cfg.lr)
        times.append(time.perf_counter() - tic)
    return float(np.median(times[1:]))                  # the first step warms the caches


def eval_image_step_seconds(arch, dataset, images, T=5):
    """Seconds per image per timestep of SNN evaluation (forward only, batch 256)."""
    net = build_network(arch, dataset.num_classes)
    params = net.init_params(seed=0)
    for key in params:                       # a modest threshold so that layers spike
        if key.endswith(".threshold"):
            params[key][...] = 0.5
    x, y = dataset.x_test[:images], dataset.y_test[:images]
    tic = time.perf_counter()
    evaluate(net, params, x, y, dataset, T=T, mode="snn", xp=np, show_progress=False)
    return (time.perf_counter() - tic) / (images * T)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="vgg16", choices=ARCHITECTURES)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--every", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--recipe", action="store_true", help="diet_np.recipes.ann_recipe(arch)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="adam")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dropout", type=float, nargs=2, default=(0.2, 0.5), metavar=("CONV", "FC"))
    p.add_argument("--init", choices=INITS, default=None, help="default: ann_init(arch)")
    p.add_argument("--snn-steps", type=int, default=0, help="also time this many DIET steps")
    p.add_argument("--snn-batch-size", type=int, default=32)
    p.add_argument("--eval-images", type=int, default=0, help="also time SNN evaluation (T=5)")
    p.add_argument("--test-acc", type=int, default=0,
                   help="after training, the ANN's accuracy on this many test images")
    args = p.parse_args(argv)
    dataset = load_dataset("cifar10", download=False)
    if args.recipe:
        cfg = ann_config(**dict(ann_recipe(args.arch), batch_size=args.batch_size, seed=args.seed))
    else:
        cfg = ann_config(optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
                         amsgrad=args.optimizer == "adam", batch_size=args.batch_size,
                         seed=args.seed, dropout=dict(zip(("conv", "fc"), args.dropout)))
    print(f"{args.arch}: {cfg.optimizer} lr {cfg.lr} wd {cfg.weight_decay} "
          f"batch {cfg.batch_size} seed {cfg.seed} dropout {cfg.dropout}", flush=True)
    result = {"arch": args.arch, "optimizer": cfg.optimizer, "lr": cfg.lr,
              "weight_decay": cfg.weight_decay, "batch_size": cfg.batch_size, "seed": cfg.seed, "dropout": cfg.dropout}
    if args.steps:
        net = build_network(args.arch, dataset.num_classes)
        params = net.init_params(seed=0, init=args.init or ann_init(args.arch))
        curve, seconds = loss_curve(args.arch, dataset, cfg, args.steps, args.every,
                                    params=params)
        for step, loss in curve:
            print(f"  step {step}: loss {loss:.4f}")
        if args.test_acc:
            ev = evaluate(net, params, dataset.x_test[:args.test_acc], dataset.y_test[:args.test_acc],
                          dataset, T=1, mode="ann", xp=np, show_progress=False)
            result.update(test_acc=ev.accuracy, test_loss=round(ev.loss, 4))
        result.update(init=args.init or ann_init(args.arch), curve=[(s, round(v, 4)) for s, v in curve],
                      ann_step_s=round(seconds, 4))
    if args.snn_steps:
        result["snn_step_s"] = round(snn_step_seconds(args.arch, dataset, args.snn_steps,
                                                      args.snn_batch_size), 4)
        result["snn_batch_size"] = args.snn_batch_size
    if args.eval_images:
        result["eval_image_step_s"] = eval_image_step_seconds(args.arch, dataset, args.eval_images)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
