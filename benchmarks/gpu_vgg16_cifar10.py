"""The two Python steps of ``benchmarks/gpu_vgg16_cifar10.sh``.

``plan``: time a few ANN and DIET training steps and an SNN evaluation of the
network at the batch sizes the run will use, estimate every stage from them, and
choose the epoch counts (and, if even one epoch of each does not fit, the number of
training images) that fit the time budget.  It prints how it chose and writes the
choice as shell assignments (``--write``) and as JSON (``--json``).

``report``: gather the stages' outputs into ``summary.md`` (the table) and
``summary.json``.

The estimates, with ``e`` the measured seconds per image and timestep of an SNN
evaluation (forward only, batch 256) and ``s`` the startup of one command (this
process's, up to its data being loaded):

* ANN epoch: steps x the measured ANN step + the per-epoch test images x ``e``;
* DIET epoch: steps x the measured DIET step (T = 5) + test images x 5 ``e``;
* threshold search: ``find_steps x images x e`` times the sum over the spiking
  layers of the share of the network's FLOPs up to that layer (the search runs
  the network up to each layer in turn);
* the factor's choice (``benchmarks/pick_scale.py``): scales x pick images x 5 ``e``;
* evaluations (the ANN; T = 5 three times; T = 100 on at most 5% of the budget):
  images x T x ``e`` each; every one of the 8 commands adds ``s``.

The training stages get what is left of ``margin x budget``: the ANN ``ann_share``
of it (it limits what DIET can reach), DIET the rest.
"""
from __future__ import annotations

import time

STARTED = time.perf_counter()            # before the imports: they are part of a command's startup

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from diet_np.architectures import build_network  # noqa: E402
from diet_np.backend import default_rng, get_xp, to_host  # noqa: E402
from diet_np.engine import apply_process_settings  # noqa: E402
from diet_np.errors import ConfigError, DietError  # noqa: E402
from diet_np.metrics import energy_table, energy_totals  # noqa: E402
from diet_np.pipeline import load_data, report as snn_report  # noqa: E402
from diet_np.recipes import ann_init, ann_recipe, training_batches  # noqa: E402
from diet_np.training import (Evaluation, ann_config, diet_config, evaluate,  # noqa: E402
                              run_optimizer, train_step)
from pick_scale import SCALES  # noqa: E402  (this folder)

COMMANDS = 8    # train-ann, evaluate, convert (long T), pick_scale, evaluate, finetune, evaluate, energy
T = 5


# --------------------------------------------------------------------------
# plan
# --------------------------------------------------------------------------
def step_seconds(net, params, dataset, cfg, xp, steps) -> float:
    """Seconds per training step of ``cfg`` (after one warm-up step), device work included."""
    opt, rng = run_optimizer(cfg), default_rng(xp, cfg.seed)
    batches = training_batches(dataset, cfg, xp)

    def train(n):
        for _, (xb, yb) in zip(range(n), batches):
            loss, _ = train_step(net, params, opt, xb.astype(np.float32, copy=False), yb,
                                 cfg=cfg, rng=rng, lr=cfg.lr)
        return float(to_host(loss))      # waits for the device

    train(1)
    tic = time.perf_counter()
    train(steps)
    return (time.perf_counter() - tic) / steps


def eval_seconds(net, params, dataset, xp, images=512) -> float:
    """Seconds per image and timestep of an SNN evaluation at T = 5 (after a warm-up)."""
    x, y = dataset.x_test[:images], dataset.y_test[:images]
    run = dict(T=T, mode="snn", xp=xp, show_progress=False)
    evaluate(net, params, x[:16], y[:16], dataset, **run)
    tic = time.perf_counter()
    evaluate(net, params, x, y, dataset, **run)
    return (time.perf_counter() - tic) / (len(x) * T)


def search_layers(net) -> float:
    """The threshold search's work per step and image, in full forward passes: the
    share of the FLOPs up to each spiking layer, summed over the layers."""
    flops = np.cumsum([f for _, f, _ in net.compute_layers()])
    return float(flops[:len(net.neurons)].sum() / flops[-1])


def plan(args) -> dict:
    apply_process_settings()
    xp = get_xp(args.device)
    dataset = load_data("cifar10", root=args.data_dir, download=False, show_progress=False)
    startup = time.perf_counter() - STARTED
    n_test = min(args.n_test or len(dataset.x_test), len(dataset.x_test))
    n_max = min(args.n_train or len(dataset.x_train), len(dataset.x_train))
    net = build_network(args.arch, dataset.num_classes)
    ann_cfg = ann_config(**ann_recipe(args.arch))
    diet_cfg = diet_config(T=T)                    # finetune's defaults: batch 64, lr 1e-4
    params = net.init_params(0, xp, init=ann_init(args.arch))
    t_ann = step_seconds(net, params, dataset, ann_cfg, xp, args.steps)
    t_diet = step_seconds(net, params, dataset, diet_cfg, xp, args.steps)  # thresholds 1
    e = eval_seconds(net, params, dataset, xp)
    epoch_test = min(args.epoch_test_images, n_test)

    def ann_epoch(n):
        return math.ceil(n / ann_cfg.batch_size) * t_ann + epoch_test * e

    def diet_epoch(n):
        return math.ceil(n / diet_cfg.batch_size) * t_diet + epoch_test * T * e

    budget = args.budget * args.margin - (time.perf_counter() - STARTED)
    long_images = int(min(args.long_test_images, n_test, 0.05 * budget / (args.long_T * e)))
    pick_images = min(args.pick_images, n_max)
    fixed = {
        "startup of the commands": COMMANDS * startup,
        "threshold search": search_layers(net) * args.find_steps * args.images * e,
        f"the factor's choice ({len(args.scales)} scales)": len(args.scales) * pick_images * T * e,
        "evaluations at T=5 (3) and of the ANN": n_test * e * (3 * T + 1),
        f"converted SNN at T={args.long_T} ({long_images} images)": long_images * args.long_T * e,
    }
    left = budget - sum(fixed.values())
    n_train = n_max
    if left < ann_epoch(n_train) + diet_epoch(n_train):     # fewer images, one epoch of each
        per_image = t_ann / ann_cfg.batch_size + t_diet / diet_cfg.batch_size
        n_train = int((left - epoch_test * (T + 1) * e) / per_image) // 64 * 64   # whole batches
        if n_train < 640:
            raise ConfigError(f"a budget of {args.budget:.0f} s leaves {left:.0f} s for training: "
                              f"not even one epoch of each stage on 640 images")
    ann_epochs = max(1, min(args.max_ann_epochs, int(args.ann_share * left / ann_epoch(n_train))))
    diet_epochs = max(1, min(args.max_diet_epochs,
                             int((left - ann_epochs * ann_epoch(n_train)) / diet_epoch(n_train))))
    chosen = {"n_train": n_train, "n_test": n_test, "epoch_test_images": epoch_test,
              "ann_epochs": ann_epochs, "diet_epochs": diet_epochs, "long_images": long_images,
              "pick_images": pick_images}
    estimate = {**fixed, f"ANN training ({ann_epochs} epochs)": ann_epochs * ann_epoch(n_train),
                f"DIET training ({diet_epochs} epochs)": diet_epochs * diet_epoch(n_train)}
    timings = {"command startup": startup, "ANN step": t_ann, "DIET step (T=5)": t_diet,
               "SNN evaluation per image-step": e}
    print(f"plan: {args.arch} on {args.device}; measured (s): "
          + ", ".join(f"{k} {v:.4g}" for k, v in timings.items()))
    print(f"plan: ANN epoch {ann_epoch(n_train):.1f} s (batch {ann_cfg.batch_size}), DIET epoch "
          f"{diet_epoch(n_train):.1f} s (batch {diet_cfg.batch_size}, T={T}) on {n_train} "
          f"images, each with {epoch_test} test images")
    print(f"plan: budget {args.budget:.0f} s x margin {args.margin} - "
          f"{time.perf_counter() - STARTED:.0f} s of this plan = {budget:.0f} s")
    for k, v in estimate.items():
        print(f"plan:   {k}: {v:.0f} s")
    print(f"plan: chosen {ann_epochs} ANN epochs and {diet_epochs} DIET epochs on {n_train} "
          f"training images" + (f" (of {n_max}: all of them did not fit)" if n_train < n_max else "")
          + f"; {n_test} test images, {long_images} of them at T={args.long_T}; estimated "
          f"{sum(estimate.values()):.0f} s in all")
    return {"arch": args.arch, "device": args.device, "budget_s": args.budget,
            "timings_s": timings, "estimates_s": estimate, **chosen}


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------
def _read(run, stage) -> str:
    path = Path(run) / f"{stage}.txt"
    return path.read_text() if path.exists() else ""


def _evaluation(text) -> dict | None:
    """The JSON that ``diet-np evaluate`` prints, or None."""
    start = text.find("\n{")
    return json.JSONDecoder().raw_decode(text[start + 1:])[0] if start >= 0 else None


def _converted(text):
    found = re.findall(r"converted SNN, T=(\d+): test accuracy ([\d.]+)", text)
    return float(found[-1][1]) if found else None


def _picked(text):
    """The factor pick_scale chose and its lines of measurements, or (None, [])."""
    found = re.findall(r"best scale ([\d.]+)", text)
    return (float(found[-1]) if found else None), re.findall(r"^scale .*$", text, re.M)


def _cell(value):
    return "not reached" if value is None else f"{value:.4f}"


def _accuracy(evaluation):
    return None if evaluation is None else evaluation["accuracy"]


def report(args) -> dict:
    run = Path(args.run)
    chosen = json.loads((run / "plan.json").read_text())
    stages = [line.split("\t") for line in (run / "stages.tsv").read_text().splitlines()]
    ann, diet = _evaluation(_read(run, "ann-test")), _evaluation(_read(run, "diet-test"))
    short, long = _evaluation(_read(run, "convert-test")), _converted(_read(run, "convert-T100"))
    scale, measured = _picked(_read(run, "pick"))
    net = build_network(chosen["arch"], 10)
    n_test, n_long = chosen["n_test"], chosen["long_images"]
    rows = [(f"ANN ({chosen['ann_epochs']} epochs)", 1, n_test, _accuracy(ann)),
            (f"converted SNN, thresholds x{scale}", T, n_test, _accuracy(short)),
            ("converted SNN, unscaled thresholds", 100, n_long, long),
            (f"DIET-SNN ({chosen['diet_epochs']} epochs)", T, n_test, _accuracy(diet))]
    lines = [f"## {chosen['arch']} on CIFAR-10 ({chosen['n_train']} training images), "
             f"{chosen['device']}", "", "machine: " + (run / "machine.txt").read_text().strip(), "",
             "| stage | T | test images | test accuracy |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {name} | {t} | {n} | {_cell(acc)} |" for name, t, n, acc in rows]
    if measured:
        lines += ["", f"The threshold factor, chosen on {chosen['pick_images']} training images "
                      "(benchmarks/pick_scale.py):", ""] + [f"- {m}" for m in measured]
    failed = [(name, rc) for name, _, rc in stages if rc != "0"]
    for name, rc in failed:
        last = [l for l in _read(run, name).splitlines() if l.strip()][-1:] or ["(no output)"]
        lines += ["", f"**stage {name} stopped (exit status {rc}):** {last[0]}"]
    summary = {"plan": chosen, "stages_s": {name: int(s) for name, s, _ in stages},
               "failed": dict(failed), "ann_accuracy": _accuracy(ann),
               "scale": scale, "converted_accuracy": _accuracy(short), "long_T_accuracy": long,
               "diet": diet}
    if diet is not None:
        fields = {k: diet[k] for k in ("accuracy", "loss", "images", "T", "mode", "spike_rates")}
        evaluation = Evaluation(**fields)
        if evaluation.at_chance(net.num_classes):
            lines += ["", "The DIET-SNN is at chance level: its spike rates and energy are not "
                          "results, so none are given."]
        else:
            lines += ["", snn_report(net, evaluation, f"DIET-SNN, T={T}")]
            summary["energy"] = energy_totals(energy_table(net, diet["spike_rates"]))
    lines += ["", "| stage | wall time (s) | exit status |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {s} | {rc} |" for name, s, rc in stages]
    lines += ["", f"total {sum(int(s) for _, s, _ in stages)} s; the plan's estimates (s): "
              + ", ".join(f"{k} {v:.0f}" for k, v in chosen["estimates_s"].items()),
              "", "commands:", "", "```", (run / "commands.txt").read_text().strip(), "```"]
    Path(args.out, "summary.md").write_text("\n".join(lines) + "\n")
    Path(args.out, "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\n".join(lines))
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("plan", help="time a few steps and choose the epoch counts")
    a.add_argument("--arch", default="vgg16")
    a.add_argument("--device", default="gpu")
    a.add_argument("--data-dir", default=None)
    a.add_argument("--budget", type=float, required=True, help="seconds for everything left")
    a.add_argument("--margin", type=float, default=0.9, help="the share of the budget planned")
    a.add_argument("--n-train", type=int, default=None, help="at most this many training images")
    a.add_argument("--n-test", type=int, default=None, help="test images of the evaluations")
    a.add_argument("--epoch-test-images", type=int, default=2000,
                   help="test images of each training epoch's test")
    a.add_argument("--images", type=int, default=512, help="images of the threshold search")
    a.add_argument("--find-steps", type=int, default=100)
    a.add_argument("--scales", type=float, nargs="+", default=list(SCALES),
                   help="the threshold factors pick_scale.py will test")
    a.add_argument("--pick-images", type=int, default=2000,
                   help="training images pick_scale.py tests each factor on")
    a.add_argument("--long-T", type=int, default=100)
    a.add_argument("--long-test-images", type=int, default=2000, help="at most this many")
    a.add_argument("--ann-share", type=float, default=0.67)
    a.add_argument("--max-ann-epochs", type=int, default=300)
    a.add_argument("--max-diet-epochs", type=int, default=100)
    a.add_argument("--steps", type=int, default=5, help="timed steps of each kind")
    a.add_argument("--write", required=True, help="shell assignments of the choice")
    a.add_argument("--json", required=True, help="the plan as JSON")
    b = sub.add_parser("report", help="summary.md and summary.json from the stages' outputs")
    b.add_argument("--run", required=True)
    b.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.command == "report":
        report(args)
        return 0
    try:
        chosen = plan(args)
    except DietError as exc:
        print(f"plan: error: {exc}")
        return 2
    Path(args.json).write_text(json.dumps(chosen, indent=2) + "\n")
    Path(args.write).write_text("".join(f"{k}={chosen[k]}\n" for k in (
        "n_train", "n_test", "epoch_test_images", "ann_epochs", "diet_epochs", "long_images")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
