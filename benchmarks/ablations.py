"""What each part of DIET buys, measured from one converted SNN: tables on stdout.

    python benchmarks/ablations.py learn    --out DIR   # weights only / +threshold / +leak / DIET
    python benchmarks/ablations.py grads    --out DIR   # gradient sizes and updates per layer
    python benchmarks/ablations.py encoding --out DIR   # direct vs rate-coded input, T = 5, 10, 20
    python benchmarks/ablations.py down     --out DIR   # DIET at T = 10 then T = 5, vs T = 5 directly

Every experiment starts from the same converted SNN in DIR: the ANN of ``--ann``
(a checkpoint) or one trained here with the demo's recipe, converted with T_find
``--find-steps`` on 256 training images and thresholds x``--scale``.  Fine-tuning
runs use the library's training loop (:func:`diet_np.training.fit`), each in its own
folder under DIR, so a rerun reuses the runs that finished and resumes the one that
was stopped.  Fine-tuning, logging and every evaluation use the ANN's normalisation.
Each experiment writes its table to DIR/<experiment>.md and its numbers to
DIR/<experiment>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics

import numpy as np

from diet_np.architectures import build_network
from diet_np.engine import apply_process_settings
from diet_np.metrics import energy_table, energy_totals, network_spike_rate
from diet_np.pipeline import (convert_model, load_data, load_model, require_learned, save_model,
                              use_model_normalisation)
from diet_np.training import (PARAM_KINDS, ann_config, diet_config, evaluate, fit, start_run,
                              train_epoch)

VARIANTS = {                          # name -> parameter kinds that learn
    "weights only": ("weight",),
    "weights + thresholds": ("weight", "threshold"),
    "weights + leaks": ("weight", "leak"),
    "weights + leaks + thresholds (DIET)": PARAM_KINDS,
}


# -- the shared starting point ------------------------------------------------
def prepare(args):
    """Data, network and the converted SNN (written once to DIR/converted.npz)."""
    dataset = load_data(args.dataset, n_train=args.n_train, n_test=args.n_test,
                        show_progress=False)
    ann_path = args.ann or os.path.join(args.out, "ann", "checkpoint.npz")
    if not args.ann:
        net = build_network(args.arch, dataset.num_classes)
        params = net.init_params(0)
        cfg = ann_config(epochs=args.ann_epochs, optimizer="adam", lr=1e-3, weight_decay=0.0,
                         schedule="cosine", batch_size=32, augment=False,
                         dropout={"conv": 0.1, "fc": 0.2})
        fit(net, params, dataset, cfg, os.path.dirname(ann_path), arch=args.arch, xp=np,
            resume=True, finished="load", show_progress=False)
    net, ann, model = load_model(ann_path, np, expect_kind=("ann",))
    use_model_normalisation(dataset, model)
    ann_eval = evaluate(net, ann, dataset.x_test, dataset.y_test, dataset, T=1, mode="ann",
                        xp=np, show_progress=False)
    require_learned(ann_eval, net.num_classes, "ANN")
    return dataset, net, ann, model, ann_eval.accuracy


def converted(args, dataset, net, ann, model, encoding="direct"):
    """The converted SNN for ``encoding`` (threshold search under that input), cached."""
    path = os.path.join(args.out, f"converted_{encoding}.npz")
    if not os.path.exists(path):
        net.encoding = encoding
        snn, found = convert_model(net, ann, dataset, np, T_find=args.find_steps,
                                   scale=args.scale, images=256, show_progress=False)
        save_model(path, snn, arch=model.arch, kind="snn", T=5, data=model.data,
                   origin={"converted_from": model.path, "unscaled_thresholds": found,
                           "scale": args.scale, "T_find": args.find_steps, "images": 256,
                           "encoding": encoding})
    net, params, _ = load_model(path, np, expect_kind=("snn",))
    return net, params


def finetune(args, dataset, net, params, name, **overrides):
    """DIET fine-tuning of a copy of ``params`` into DIR/name; returns the result row."""
    params = {k: v.copy() for k, v in params.items()}
    start = {k: float(v) for k, v in params.items() if v.ndim == 0}
    cfg = diet_config(**{"epochs": args.epochs, "lr": args.lr, "batch_size": 32,
                         "augment": False, **overrides})
    fit(net, params, dataset, cfg, os.path.join(args.out, name), arch=args.arch_name, xp=np,
        resume=True, finished="load", show_progress=False)
    row = measure(net, params, dataset, cfg.T, cfg.encoding)
    row["leak_change"] = max(abs(float(params[k]) - v) for k, v in start.items()
                             if k.endswith(".leak"))
    row["threshold_change"] = max(abs(float(params[k]) / v - 1) for k, v in start.items()
                                  if k.endswith(".threshold"))
    return row


def measure(net, params, dataset, T, encoding):
    """Test accuracy, network spike rate and E_ANN / E_SNN at T."""
    ev = evaluate(net, params, dataset.x_test, dataset.y_test, dataset, T=T, mode="snn", xp=np,
                  show_progress=False, encoding=encoding)
    rate = network_spike_rate(net, ev.spike_rates)[0]
    return {"accuracy": ev.accuracy, "spike_rate": rate,
            "energy_ratio": energy_totals(energy_table(net, ev.spike_rates))["ratio"]}


def spread(values):
    """'mean +- sd (min-max)' of a list of accuracies, in percent (one run: its value)."""
    v = [100 * x for x in values]
    if len(v) == 1:
        return f"{v[0]:.1f} (one seed)"
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v):.1f} +- {sd:.1f} ({min(v):.1f}-{max(v):.1f})"


# -- experiments ----------------------------------------------------------------
def learn(args, dataset, net, ann, model, ann_acc):
    """(a)-(d) of the ablation, plus DIET with a larger neuron learning rate."""
    net, snn = converted(args, dataset, net, ann, model)
    start = measure(net, snn, dataset, 5, "direct")
    cases = {name: (kinds, 1.0) for name, kinds in VARIANTS.items()}
    for factor in args.neuron_lr_factors:
        cases[f"DIET, leak and threshold lr x{factor:g}"] = (PARAM_KINDS, factor)
    rows, results = [], {}
    for name, (kinds, factor) in cases.items():
        runs = [finetune(args, dataset, net, snn, f"learn/{_slug(name)}_s{seed}", seed=seed,
                         learn=kinds, neuron_lr_factor=factor) for seed in args.seeds]
        results[name] = runs
        rows.append(f"| {name} | {spread([r['accuracy'] for r in runs])} | "
                    f"{statistics.mean(r['spike_rate'] for r in runs):.3f} | "
                    f"{statistics.mean(r['energy_ratio'] for r in runs):.2f}x | "
                    f"{max(r['leak_change'] for r in runs):.4f} | "
                    f"{max(r['threshold_change'] for r in runs):.1%} |")
    head = [f"ANN {100 * ann_acc:.1f}%; converted SNN at T = 5 (before fine-tuning) "
            f"{100 * start['accuracy']:.1f}%, spike rate {start['spike_rate']:.3f}.",
            f"Fine-tuning at T = 5: {args.epochs} epochs, Adam (AMSGrad) lr {args.lr:g}, "
            f"seeds {', '.join(map(str, args.seeds))}.", "",
            "| trained | test accuracy, % (mean +- sd, range) | spike rate | E_ANN/E_SNN | "
            "largest leak change | largest threshold change |",
            "| --- | --- | ---: | ---: | ---: | ---: |"]
    return "\n".join(head + rows), {"converted": start, "ann_accuracy": ann_acc, **results}


class GradientRecorder:
    """Wraps the run's optimiser: records each step's gradients, then steps."""

    def __init__(self, opt):
        self.opt, self.steps = opt, []

    def step(self, params, grads, lr=None):
        self.steps.append({k: float(np.abs(g).mean()) for k, g in grads.items()}
                          | {k + ":sign": float(np.sign(g)) for k, g in grads.items()
                             if g.ndim == 0})
        self.opt.step(params, grads, lr=lr)


def grads(args, dataset, net, ann, model, ann_acc):
    """Gradient magnitudes and the epoch's relative change of every parameter kind."""
    net, snn = converted(args, dataset, net, ann, model)
    params = {k: v.copy() for k, v in snn.items()}
    cfg = diet_config(epochs=1, lr=args.lr, batch_size=32, augment=False)
    run = start_run(net, params, dataset, cfg, os.path.join(args.out, "grads"),
                    arch=args.arch_name, xp=np, overwrite=True)
    run.opt = GradientRecorder(run.opt)
    train_epoch(net, params, run, dataset, 0, np, show_progress=False)
    steps = run.opt.steps
    lines = [f"One epoch of DIET at T = 5 from the converted SNN ({len(steps)} steps, Adam lr "
             f"{args.lr:g}); gradients are mean |dL/dp| over the epoch's steps, changes "
             "|p_end - p_start| / |p_start| (weights: norms).", "",
             "| layer | mean abs grad: weight (per element) | leak | threshold | steps with "
             "dL/dleak < 0 | relative change: weights | leak | threshold |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    table = {}
    for layer in net.neurons:
        w = next(k for k in net.specs if k.startswith(layer + ".") and k.endswith(".weight"))
        keys = {"weight": w, "leak": f"{layer}.leak", "threshold": f"{layer}.threshold"}
        g = {kind: statistics.mean(s[k] for s in steps) for kind, k in keys.items()}
        pushes_up = statistics.mean(s[keys["leak"] + ":sign"] < 0 for s in steps)
        change = {kind: float(np.linalg.norm(params[k] - snn[k]) / np.linalg.norm(snn[k]))
                  for kind, k in keys.items()}
        table[layer] = {"grad": g, "leak_grad_negative": pushes_up, "change": change}
        lines.append(f"| {layer} | {g['weight']:.2e} | {g['leak']:.2e} | {g['threshold']:.2e} "
                     f"| {pushes_up:.0%} | {change['weight']:.2%} | {change['leak']:.2%} | "
                     f"{change['threshold']:.2%} |")
    return "\n".join(lines), table


def encoding(args, dataset, net, ann, model, ann_acc):
    """Direct against rate-coded input at T = 5, 10, 20: converted and fine-tuned."""
    lines = [f"ANN {100 * ann_acc:.1f}%. Each encoding converts with its own threshold search "
             f"(T_find {args.find_steps}, x{args.scale}); fine-tuning {args.epochs} epochs, "
             f"lr {args.lr:g}, seed 0.", "",
             "| input | T | converted acc. | DIET acc. | DIET spike rate | E_ANN/E_SNN |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    results = {}
    for enc in ("direct", "rate"):
        net_e, snn = converted(args, dataset, net, ann, model, enc)
        for T in args.timesteps:
            before = measure(net_e, snn, dataset, T, enc)
            after = finetune(args, dataset, net_e, snn, f"encoding/{enc}_T{T}", T=T,
                             encoding=enc)
            results[f"{enc} T={T}"] = {"converted": before, "diet": after}
            lines.append(f"| {enc} | {T} | {100 * before['accuracy']:.1f} | "
                         f"{100 * after['accuracy']:.1f} | {after['spike_rate']:.3f} | "
                         f"{after['energy_ratio']:.2f}x |")
    return "\n".join(lines), results


def down(args, dataset, net, ann, model, ann_acc):
    """DIET at T = 10, then fine-tuned to T = 5, against DIET at T = 5 for as many epochs."""
    net, snn = converted(args, dataset, net, ann, model)
    e = args.epochs
    rows, results = [], {}
    for seed in args.seeds:
        direct = finetune(args, dataset, net, snn, f"down/T5_{2 * e}ep_s{seed}", seed=seed,
                          epochs=2 * e)
        at10 = finetune(args, dataset, net, snn, f"down/T10_s{seed}", seed=seed, T=10)
        _, p10, _ = load_model(os.path.join(args.out, f"down/T10_s{seed}", "checkpoint.npz"), np)
        then5 = finetune(args, dataset, net, p10, f"down/T10_then_T5_s{seed}", seed=seed)
        results[seed] = {"T5": direct, "T10": at10, "T10_then_T5": then5}
    for name, key in (("DIET at T = 5", "T5"), ("DIET at T = 10 (tested at T = 10)", "T10"),
                      ("DIET at T = 10, then at T = 5", "T10_then_T5")):
        runs = [results[s][key] for s in args.seeds]
        epochs = {"T5": 2 * e, "T10": e, "T10_then_T5": 2 * e}[key]
        rows.append(f"| {name} | {epochs} | {spread([r['accuracy'] for r in runs])} | "
                    f"{statistics.mean(r['spike_rate'] for r in runs):.3f} | "
                    f"{statistics.mean(r['energy_ratio'] for r in runs):.2f}x |")
    head = [f"From one converted SNN (ANN {100 * ann_acc:.1f}%), lr {args.lr:g}, seeds "
            f"{', '.join(map(str, args.seeds))}.", "",
            "| schedule | epochs | test accuracy, % | spike rate | E_ANN/E_SNN |",
            "| --- | ---: | --- | ---: | ---: |"]
    return "\n".join(head + rows), results


def _slug(name):
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


EXPERIMENTS = {"learn": learn, "grads": grads, "encoding": encoding, "down": down}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", choices=EXPERIMENTS)
    p.add_argument("--out", required=True, help="folder for the runs and tables (reused)")
    p.add_argument("--dataset", default="shapes", choices=("shapes", "cifar10", "cifar100"))
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--n-test", type=int, default=None)
    p.add_argument("--arch", default="vgg5")
    p.add_argument("--ann", default=None, help="start from this ANN checkpoint")
    p.add_argument("--ann-epochs", type=int, default=15)
    p.add_argument("--find-steps", type=int, default=32)
    p.add_argument("--scale", type=float, default=0.6)
    p.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs")
    p.add_argument("--lr", type=float, default=1e-3, help="fine-tuning learning rate")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--timesteps", type=int, nargs="+", default=[5, 10, 20])
    p.add_argument("--neuron-lr-factors", type=float, nargs="*", default=[10.0, 100.0])
    args = p.parse_args(argv)
    apply_process_settings()
    os.makedirs(args.out, exist_ok=True)
    dataset, net, ann, model, ann_acc = prepare(args)
    args.arch_name = model.arch
    table, numbers = EXPERIMENTS[args.experiment](args, dataset, net, ann, model, ann_acc)
    title = (f"## {args.experiment}: {model.arch} on {dataset.name} ({len(dataset.x_train)} "
             f"training / {len(dataset.x_test)} test images)")
    text = f"{title}\n\n{table}\n"
    print(text, flush=True)
    with open(os.path.join(args.out, f"{args.experiment}.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, f"{args.experiment}.json"), "w") as f:
        json.dump({"args": {k: v for k, v in vars(args).items()}, "results": numbers}, f,
                  indent=2, default=str)


if __name__ == "__main__":
    main()
