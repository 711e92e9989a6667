"""``diet-np``: the command line for the whole pipeline.

    diet-np demo                                  # embedded data: ANN -> SNN -> DIET, T=5
    diet-np train-ann --dataset cifar10 --arch vgg5 --epochs 30 --out runs/c10/ann
    diet-np convert   --checkpoint runs/c10/ann/checkpoint.npz --out runs/c10/converted.npz
    diet-np finetune  --checkpoint runs/c10/converted.npz --timesteps 5 --out runs/c10/diet
    diet-np evaluate  --checkpoint runs/c10/diet/checkpoint.npz --timesteps 5
    diet-np energy    --checkpoint runs/c10/diet/checkpoint.npz --timesteps 5

Every long loop shows a progress bar; training writes ``log.jsonl``,
``curves.png`` and an atomic ``checkpoint.npz`` each epoch and continues with
``--resume``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .architectures import ARCHITECTURES, build_network
from .backend import BackendError, get_xp
from .checkpoint import CheckpointError
from .conversion import ConversionError
from .data import DATASETS, DataError
from .lessons import lessons_command
from .metrics import energy_table
from .pipeline import (convert_model, load_data, load_model, report, run_all, save_model)
from .strict import StrictDeviceError
from .training import ann_config, diet_config, evaluate, fit

USER_ERRORS = (ValueError, TypeError, KeyError, DataError, CheckpointError, BackendError,
               ConversionError, StrictDeviceError, FileNotFoundError, FileExistsError,
               PermissionError)


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _common(p, data=True):
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="cpu (NumPy) or gpu (CuPy); a missing GPU is an error")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    if data:
        p.add_argument("--dataset", choices=DATASETS, default="shapes",
                       help="shapes (embedded, no download), cifar10 or cifar100")
        p.add_argument("--data-dir", default=None,
                       help="where CIFAR is cached (default: $DIET_NP_DATA or ~/.cache/diet_np)")
        p.add_argument("--no-download", action="store_true", help="never download CIFAR")
        p.add_argument("--n-train", type=_positive_int, default=5000, help="shapes: training images")
        p.add_argument("--n-test", type=_positive_int, default=1000, help="shapes: test images")
        p.add_argument("--test-images", type=_positive_int, default=None,
                       help="evaluate on the first N test images only (default: all)")


def _training(p, ann):
    p.add_argument("--epochs", type=_positive_int, default=30 if ann else 10)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--lr", type=_positive_float, default=1e-2 if ann else 1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-augment", action="store_true", help="no random crop + flip")
    p.add_argument("--schedule", choices=("step", "cosine"), default="step")
    p.add_argument("--out", required=True, help="run directory (checkpoint, log, curves)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")


def build_parser():
    parser = argparse.ArgumentParser(prog="diet-np", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="ANN -> conversion -> DIET at T=5 on the embedded data set")
    _common(p)
    p.add_argument("--arch", default="vgg5", choices=ARCHITECTURES)
    p.add_argument("--ann-epochs", type=_positive_int, default=15)
    p.add_argument("--diet-epochs", type=_positive_int, default=2)
    p.add_argument("--timesteps", type=_positive_int, default=5)
    p.add_argument("--long-timesteps", type=_positive_int, default=100)
    p.add_argument("--find-steps", type=_positive_int, default=32)
    p.add_argument("--scale", type=_positive_float, default=0.6)
    p.add_argument("--diet-lr", type=_positive_float, default=1e-3)
    p.add_argument("--out", default=os.path.join("runs", "demo"))
    p.add_argument("--resume", action="store_true")

    p = sub.add_parser("train-ann", help="train the ANN (SGD, step schedule, crop + flip)")
    _common(p)
    p.add_argument("--arch", default="vgg5", choices=ARCHITECTURES)
    _training(p, ann=True)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                   help="sgd (the paper's) or adam")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--dropout", type=float, nargs=2, default=(0.2, 0.5), metavar=("CONV", "FC"))

    p = sub.add_parser("convert", help="ANN -> SNN with 99.7th-percentile thresholds")
    _common(p)
    p.add_argument("--checkpoint", required=True, help="an ANN checkpoint")
    p.add_argument("--out", required=True, help="where to write the converted SNN (.npz)")
    p.add_argument("--find-steps", type=_positive_int, default=100, help="T_find (authors: 100)")
    p.add_argument("--images", type=_positive_int, default=512, help="images in the search batch")
    p.add_argument("--scale", type=_positive_float, default=0.7, help="threshold scaling factor")
    p.add_argument("--timesteps", type=_positive_int, nargs="*", default=[5],
                   help="evaluate the converted SNN at these T")

    p = sub.add_parser("finetune", help="DIET: train weights, leaks and thresholds by BPTT")
    _common(p)
    p.add_argument("--checkpoint", required=True, help="a converted or trained SNN checkpoint")
    p.add_argument("--timesteps", type=_positive_int, default=5)
    _training(p, ann=False)
    p.add_argument("--dropout", type=float, default=0.1)

    p = sub.add_parser("evaluate", help="test accuracy (and spike rates of an SNN)")
    _common(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--timesteps", type=_positive_int, default=5)
    p.add_argument("--mode", choices=("ann", "snn"), default=None,
                   help="default: the checkpoint's kind")
    p.add_argument("--batch-size", type=_positive_int, default=256)

    p = sub.add_parser("energy", help="FLOPs and compute energy, ANN vs SNN (45 nm model)")
    _common(p)
    p.add_argument("--checkpoint", help="an SNN checkpoint: spike rates measured on test data")
    p.add_argument("--arch", choices=ARCHITECTURES, help="FLOPs only, no checkpoint needed")
    p.add_argument("--num-classes", type=_positive_int, default=10)
    p.add_argument("--timesteps", type=_positive_int, default=5)
    p.add_argument("--batch-size", type=_positive_int, default=256)
    _lessons_parser(sub)
    return parser


def _lessons_parser(sub):
    p = sub.add_parser("lessons", help="list the lessons shipped with the package, or copy them")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="print each lesson's file and title")
    what.add_argument("--copy", metavar="DIR",
                      help="copy the lessons into DIR (refuses if a file there would be replaced)")


def _data(args):
    kw = {"n_train": args.n_train, "n_test": args.n_test} if args.dataset == "shapes" else {}
    dataset = load_data(args.dataset, root=args.data_dir, download=not args.no_download, **kw)
    if args.test_images is not None and args.test_images < len(dataset.x_test):
        dataset.x_test = dataset.x_test[:args.test_images]
        dataset.y_test = dataset.y_test[:args.test_images]
        print(f"evaluating on the first {args.test_images} test images only")
    return dataset


def _cmd_demo(args):
    dataset = _data(args)
    print(f"data: {dataset.name}, {len(dataset.x_train)} train / {len(dataset.x_test)} test images")
    # A short schedule: Adam instead of the paper's 100+ epochs of SGD, no augmentation.
    ann_cfg = ann_config(epochs=args.ann_epochs, optimizer="adam", lr=1e-3, weight_decay=0.0,
                         schedule="cosine", batch_size=32, augment=False,
                         dropout={"conv": 0.1, "fc": 0.2})
    diet_cfg = diet_config(epochs=args.diet_epochs, T=args.timesteps, lr=args.diet_lr,
                           batch_size=32, augment=False)
    run_all(dataset, args.arch, args.out, ann_cfg, diet_cfg, device=args.device,
            T_find=args.find_steps, scale=args.scale, images=256, long_T=args.long_timesteps,
            resume=args.resume, show_progress=not args.quiet)


def _cmd_train_ann(args):
    dataset, xp = _data(args), get_xp(args.device)
    cfg = ann_config(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                     augment=not args.no_augment, schedule=args.schedule,
                     weight_decay=args.weight_decay, momentum=args.momentum,
                     optimizer=args.optimizer, dropout=dict(zip(("conv", "fc"), args.dropout)))
    cfg.validate()
    net = build_network(args.arch, dataset.num_classes)
    params = net.init_params(args.seed, xp)
    fit(net, params, dataset, cfg, args.out, arch=args.arch, xp=xp, resume=args.resume,
        show_progress=not args.quiet)


def _cmd_convert(args):
    dataset, xp = _data(args), get_xp(args.device)
    net, params, meta = load_model(args.checkpoint, xp, expect_kind=("ann",), dataset=dataset)
    snn, found = convert_model(net, params, dataset, xp, T_find=args.find_steps, scale=args.scale,
                               images=args.images, show_progress=not args.quiet)
    save_model(args.out, net, snn, meta["arch"], dataset, "snn", max(args.timesteps or [5]),
               {"unscaled_thresholds": found, "scale": args.scale, "T_find": args.find_steps})
    print(f"thresholds (before scaling by {args.scale}): "
          + ", ".join(f"{k} {v:.4g}" for k, v in found.items()))
    print(f"converted SNN written to {args.out}")
    for T in args.timesteps:
        ev = evaluate(net, snn, dataset.x_test, dataset.y_test, dataset, T=T, mode="snn", xp=xp,
                      show_progress=not args.quiet, desc=f"converted T={T}")
        print(f"converted SNN, T={T}: test accuracy {ev.accuracy:.4f}")


def _cmd_finetune(args):
    dataset, xp = _data(args), get_xp(args.device)
    net, params, meta = load_model(args.checkpoint, xp, expect_kind=("snn",), dataset=dataset)
    if os.path.abspath(args.checkpoint) == os.path.abspath(os.path.join(args.out, "checkpoint.npz")):
        raise ValueError("--out must differ from the starting checkpoint's folder "
                         "(use --resume to continue a fine-tuning run)")
    cfg = diet_config(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, T=args.timesteps,
                      seed=args.seed, augment=not args.no_augment, schedule=args.schedule,
                      dropout={"conv": args.dropout, "fc": args.dropout})
    cfg.validate()
    origin = (f"converted, thresholds from T_find={meta['T_find']}" if "T_find" in meta
              else f"SNN trained at T={meta['T']}")
    print(f"fine-tuning {meta['arch']} ({origin}) at T={cfg.T}")
    fit(net, params, dataset, cfg, args.out, arch=meta["arch"], xp=xp, resume=args.resume,
        show_progress=not args.quiet)


def _cmd_evaluate(args):
    dataset, xp = _data(args), get_xp(args.device)
    net, params, meta = load_model(args.checkpoint, xp, dataset=dataset)
    mode = args.mode or meta["kind"]
    T = 1 if mode == "ann" else args.timesteps
    ev = evaluate(net, params, dataset.x_test, dataset.y_test, dataset, T=T, mode=mode, xp=xp,
                  batch_size=args.batch_size, show_progress=not args.quiet)
    print(json.dumps(ev.summary(net), indent=2))


def _cmd_energy(args):
    if bool(args.checkpoint) == bool(args.arch):
        raise ValueError("energy needs exactly one of --checkpoint (measured spike rates) "
                         "or --arch (FLOPs only)")
    if args.arch:
        net = build_network(args.arch, args.num_classes)
        rows = energy_table(net, {n: 0.0 for n in net.neurons})
        print(f"{args.arch}: " + ", ".join(f"{r.layer} {r.flops:,}" for r in rows))
        print(f"total FLOPs (MACs) per image: {sum(r.flops for r in rows):,}")
        return
    dataset, xp = _data(args), get_xp(args.device)
    net, params, meta = load_model(args.checkpoint, xp, expect_kind=("snn",), dataset=dataset)
    ev = evaluate(net, params, dataset.x_test, dataset.y_test, dataset, T=args.timesteps,
                  mode="snn", xp=xp, batch_size=args.batch_size, show_progress=not args.quiet)
    print(report(net, ev, f"{meta['arch']} on {dataset.name}, T={args.timesteps}"))


COMMANDS = {"demo": _cmd_demo, "train-ann": _cmd_train_ann, "convert": _cmd_convert,
            "finetune": _cmd_finetune, "evaluate": _cmd_evaluate, "energy": _cmd_energy,
            "lessons": lessons_command}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("\ninterrupted: the last checkpoint written is intact; rerun with --resume "
              "to continue", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"diet-np {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0
