"""``diet-np``: the command line for the whole pipeline.

    diet-np demo                                  # embedded data: ANN -> SNN -> DIET, T=5
    diet-np train-ann --dataset cifar10 --arch vgg5 --epochs 30 --out runs/c10/ann
    diet-np convert   --checkpoint runs/c10/ann/checkpoint.npz --out runs/c10/converted.npz
    diet-np finetune  --checkpoint runs/c10/converted.npz --timesteps 5 --out runs/c10/diet
    diet-np evaluate  --checkpoint runs/c10/diet/checkpoint.npz --timesteps 5
    diet-np energy    --checkpoint runs/c10/diet/checkpoint.npz --timesteps 5

Every long loop shows a progress bar; training writes ``log.jsonl``,
``curves.png`` and an atomic ``checkpoint.npz`` each epoch and continues with
``--resume``.  A command that reads a checkpoint takes its data set, subset and
normalisation from it; a data flag that disagrees is refused.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from . import __version__
from .architectures import ARCHITECTURES, build_network, default_classes, native_input_shape
from .backend import get_xp
from .data import DATASETS
from .data.image_transforms import CROP
from .encoding import ENCODINGS
from .engine import ENGINES, apply_process_settings
from .errors import ChanceLevelError, ConfigError, DietError, chance_level
from .inspection import inspect_checkpoint
from .lessons import lessons_command
from .metrics import energy_table, format_flops_table
from .model_file import data_conflicts, fingerprint, read_model
from .limits import check_bytes, check_fits
from .outputs import check_output_file, check_output_folder, check_run_dir
from .pipeline import (SHAPES_DEFAULT, convert_model, load_data, load_model, report,
                       require_learned, run_all, save_model, use_model_normalisation)
from .recipes import DEFAULT_RECIPE, RECIPES, ann_init, ann_recipe
from .schedules import SCHEDULES
from .training import (CHECKPOINT, PARAM_KINDS, TrainConfig, ann_config, diet_config, eval_batch,
                       evaluate, fit)
from .weights import export_checkpoint, import_checkpoint

TRAINING_COMMANDS = ("demo", "train-ann", "finetune")


def int_at_least(low):
    """An argparse type: a whole number >= ``low`` (the benchmarks' scripts use these too)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text}")
        return value
    return parse


positive_int = int_at_least(1)


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def positive_float(text):
    """An argparse type: a finite number > 0."""
    value = _number(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def non_negative_float(text):
    """An argparse type: a finite number >= 0 (a weight decay)."""
    value = _number(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def fraction(text):
    """An argparse type: a number in [0, 1) (a momentum, a dropout rate)."""
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {text}")
    return value


def _common(p, device=True, test_images=True):
    if device:
        p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                       help="cpu (NumPy) or gpu (CuPy); a missing GPU is an error")
        p.add_argument("--engine", choices=ENGINES, default="fast",
                       help="reference: the plain functions of each equation; fast: "
                            "diet_np/fast (threads, Winograd, fused kernels), tested equal")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="shapes (embedded, no download), cifar10, cifar100 or imagenet (an "
                        "image folder, --data-dir) (default: the checkpoint's, else shapes)")
    p.add_argument("--data-dir", default=None,
                   help="where CIFAR is cached (default: $DIET_NP_DATA or ~/.cache/diet_np); "
                        "for imagenet the folder holding train/<class>/ and val/<class>/ "
                        "(default: the checkpoint's)")
    p.add_argument("--no-download", action="store_true", help="never download CIFAR")
    p.add_argument("--n-train", type=positive_int, default=None,
                   help="training images: shapes draws this many (default 5000), CIFAR "
                        "takes the first N, an image folder the first N of its classes in "
                        "turn (default all)")
    p.add_argument("--n-test", type=positive_int, default=None,
                   help="test images, likewise (shapes default 1000)")
    if test_images:
        p.add_argument("--test-images", type=positive_int, default=None,
                       help="evaluate on the first N test images only (default: all)")


def _training(p, ann):
    p.add_argument("--epochs", type=positive_int, default=30 if ann else 10,
                   help="training epochs (with --resume: a larger value extends the run)")
    recipe = " (default: the architecture's recipe, diet_np/recipes.py)" if ann else ""
    p.add_argument("--batch-size", type=positive_int, default=None if ann else 64,
                   help="images per step" + recipe)
    p.add_argument("--lr", type=positive_float, default=None if ann else 1e-4,
                   help="learning rate at the start of the schedule" + recipe)
    p.add_argument("--seed", type=int_at_least(0), default=0,
                   help="seeds initialisation, shuffling, augmentation and dropout")
    p.add_argument("--no-augment", action="store_true", help="no random crop + flip")
    p.add_argument("--schedule", choices=tuple(SCHEDULES), default=None if ann else "step",
                   help="step: /10 at the stage's milestones (at most once per epoch); cosine; "
                        "constant: --lr throughout (a run extended with --resume goes on at it)"
                        + recipe)
    p.add_argument("--out", required=True, help="run directory (checkpoint, log, curves)")
    _run_flags(p)


def _dropout(p, default):
    p.add_argument("--dropout", type=fraction, nargs="+",
                   default=None if default is None else list(default),
                   metavar="RATE", help="dropout rate of the conv layers and of the classifier "
                                        "(one value: both)" + ("" if default else " (default: "
                                        "the architecture's recipe, diet_np/recipes.py)"))


def _two_rates(values):
    if len(values) > 2:
        raise ConfigError(f"--dropout takes one or two rates (conv, classifier); got {values}")
    return {"conv": values[0], "fc": values[-1]}


def _encoding(p, default_text):
    p.add_argument("--encoding", choices=ENCODINGS, default=None,
                   help="SNN input: direct (the analog image every step, the paper's) or rate "
                        f"(Bernoulli spikes from the normalised pixels) (default: {default_text})")


def _run_flags(p):
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out (same data and settings; a larger --epochs "
                        "extends it)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier run in --out instead of refusing")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except where there is none to show."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.required:
            return action.help or ""
        return super()._get_help_string(action)


def build_parser():
    parser = argparse.ArgumentParser(prog="diet-np", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add = sub.add_parser
    sub.add_parser = lambda name, **kw: _add(name, formatter_class=_Help, **kw)

    p = sub.add_parser("demo", help="ANN -> conversion -> DIET at T=5 on the embedded data set")
    _common(p)
    p.add_argument("--arch", default="vgg5", choices=ARCHITECTURES)
    p.add_argument("--ann-epochs", type=positive_int, default=15)
    p.add_argument("--diet-epochs", type=positive_int, default=2)
    p.add_argument("--timesteps", type=positive_int, default=5)
    p.add_argument("--long-timesteps", type=positive_int, default=100)
    p.add_argument("--find-steps", type=positive_int, default=32)
    p.add_argument("--scale", type=positive_float, default=0.6)
    p.add_argument("--diet-lr", type=positive_float, default=1e-3)
    p.add_argument("--seed", type=int_at_least(0), default=0,
                   help="seeds both training stages (initialisation, shuffling, dropout)")
    p.add_argument("--out", default=os.path.join("runs", "demo"))
    _run_flags(p)

    p = sub.add_parser("train-ann", help="train the ANN (the architecture's recipe, crop + flip)")
    _common(p)
    p.add_argument("--arch", default="vgg5", choices=ARCHITECTURES)
    _training(p, ann=True)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default=None,
                   help="sgd (ann.py's default) or adam (AMSGrad as the recipe has it) (default: the architecture's recipe, diet_np/recipes.py)")
    p.add_argument("--weight-decay", type=non_negative_float, default=None,
                   help="(default: the architecture's recipe, diet_np/recipes.py)")
    p.add_argument("--momentum", type=fraction, default=None,
                   help="SGD's momentum (default: the architecture's recipe, diet_np/recipes.py)")
    _dropout(p, None)
    p.add_argument("--recipe", choices=tuple(RECIPES), default=None,
                   help=f"the ANN recipe the other flags change (default: {DEFAULT_RECIPE}; "
                        "diet_np/recipes.py)")
    p.add_argument("--warmup-epochs", type=int_at_least(0), default=None,
                   help="epochs of linear warm-up before the schedule (0: none)")
    p.add_argument("--clip-norm", type=float, default=None,
                   help="cap the gradients' global norm at this (0: no clipping)")
    p.add_argument("--lsuv-images", type=int_at_least(0), default=None,
                   help="rescale the initial weights by LSUV on this many training images "
                        "(0: none)")

    p = sub.add_parser("convert", help="ANN -> SNN with 99.7th-percentile thresholds")
    _common(p)
    p.add_argument("--checkpoint", required=True, help="an ANN checkpoint")
    p.add_argument("--out", required=True, help="where to write the converted SNN (.npz)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--find-steps", type=positive_int, default=100, help="T_find (authors: 100)")
    p.add_argument("--images", type=positive_int, default=512, help="images in the search batch")
    p.add_argument("--scale", type=positive_float, default=0.7, help="threshold scaling factor")
    p.add_argument("--timesteps", type=positive_int, nargs="+", default=[5],
                   help="evaluate the converted SNN at these T")
    p.add_argument("--seed", type=int_at_least(0), default=0,
                   help="draws the training images of the threshold search")
    _encoding(p, "direct")

    p = sub.add_parser("finetune", help="DIET: train weights, leaks and thresholds by BPTT")
    _common(p)
    p.add_argument("--checkpoint", required=True, help="a converted or trained SNN checkpoint")
    p.add_argument("--timesteps", type=positive_int, default=5, help="train at this T")
    _training(p, ann=False)
    _dropout(p, (0.1, 0.1))
    _encoding(p, "the checkpoint's")
    p.add_argument("--learn", choices=PARAM_KINDS, nargs="+", default=list(PARAM_KINDS),
                   help="which parameters DIET trains (weights always; leaving out leak or "
                        "threshold freezes them, for ablations)")
    p.add_argument("--neuron-lr-factor", type=positive_float, default=1.0,
                   help="leaks and thresholds learn at --lr times this (1: the paper's one "
                        "learning rate)")

    p = sub.add_parser("evaluate", help="test accuracy (and spike rates of an SNN)")
    _common(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--timesteps", type=positive_int, nargs="+", default=[5],
                   help="evaluate an SNN at these T")
    p.add_argument("--mode", choices=("ann", "snn"), default=None,
                   help="default: the checkpoint's kind")
    p.add_argument("--batch-size", type=positive_int, default=256)
    _encoding(p, "the checkpoint's")

    p = sub.add_parser("energy", help="FLOPs and compute energy, ANN vs SNN (45 nm model)")
    _common(p)
    p.add_argument("--checkpoint", help="an SNN checkpoint: spike rates measured on test data")
    p.add_argument("--arch", choices=ARCHITECTURES, help="FLOPs only, no checkpoint needed")
    p.add_argument("--num-classes", type=positive_int, default=None,
                   help="with --arch: classes of the output layer (default: 1000 for "
                        "vgg16_imagenet, else 10)")
    p.add_argument("--timesteps", type=positive_int, nargs="+", default=[5],
                   help="measure spike rates at these T")
    p.add_argument("--batch-size", type=positive_int, default=256)
    _encoding(p, "the checkpoint's")

    p = sub.add_parser("inspect", help="figures of an SNN: rasters, membrane traces, spike rates")
    _common(p, test_images=False)
    p.add_argument("--checkpoint", required=True, help="an SNN checkpoint")
    p.add_argument("--out", required=True, help="folder for the PNG figures")
    p.add_argument("--timesteps", type=positive_int, default=None,
                   help="T of the probed run (default: the checkpoint's)")
    p.add_argument("--images", type=positive_int, default=8, help="test images probed")
    p.add_argument("--seed", type=int_at_least(0), default=0,
                   help="draws the images and neurons shown")
    p.add_argument("--overwrite", action="store_true", help="replace figures already in OUT")

    p = sub.add_parser("import", help="an ANN or SNN from a state dict or a NIR graph")
    _common(p, device=False, test_images=False)
    p.add_argument("--from", dest="source", required=True,
                   help="a .safetensors or .npz file; authors: also .pth; nir: a .nir file")
    p.add_argument("--arch", choices=ARCHITECTURES,
                   help="the network (default: the one a diet-np export or a NIR graph "
                        "records)")
    p.add_argument("--format", choices=("authors", "diet-np", "nir"), default="authors",
                   help="authors: the authors' PyTorch state-dict keys; diet-np: diet-np's; "
                        "nir: a NIR graph as export --format nir writes it")
    p.add_argument("--timesteps", type=positive_int, default=None,
                   help="T recorded for an SNN (a file with leaks and thresholds) (default: "
                        "the T the file records, else 5)")
    p.add_argument("--out", required=True, help="the checkpoint to write (.npz)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")

    p = sub.add_parser("export", help="a checkpoint as a state dict or a NIR graph")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True,
                   help="FILE.safetensors or FILE.npz; authors: also FILE.pth; nir: FILE.nir")
    p.add_argument("--format", choices=("diet-np", "authors", "nir"), default="diet-np",
                   help="diet-np: diet-np's keys; authors: the authors' PyTorch keys; "
                        "nir: a NIR graph (an SNN checkpoint)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")

    p = sub.add_parser("lessons", help="list the lessons shipped with the package, or copy them")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="print each lesson's file and title")
    what.add_argument("--copy", metavar="DIR",
                      help="copy the lessons into DIR (refuses if a file there would be replaced)")

    for action in sub.choices.values():
        for a in action._actions:
            if a.help is None and a.default is not None:
                a.help = "(default: %(default)s)"
    return parser


def explicit_flags(parser, argv) -> set:
    """The destinations of the flags given on the command line (not defaults):
    ``argv`` parsed again with every default suppressed."""
    actions = list(parser._actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                actions.extend(sub._actions)
    saved = [(a, a.default) for a in actions if a.dest not in ("help", "command")]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        return set(vars(parser.parse_args(argv))) - {"command"}
    finally:
        for action, default in saved:
            action.default = default


# --------------------------------------------------------------------------
# data: from the checkpoint where there is one
# --------------------------------------------------------------------------
def _data(args, recorded=None, *, source=""):
    """Load the data set: the one ``recorded`` in a checkpoint (its name, subset
    and normalisation) or, without a checkpoint, the one the flags name.  A flag
    that names another data set or subset than the recorded one is refused."""
    name = args.dataset or (recorded or {}).get("name", "shapes")
    if name == "shapes" and (args.data_dir is not None or args.no_download):
        raise ConfigError("--data-dir and --no-download apply to CIFAR; the shapes data set is "
                          "drawn in memory")
    if name == "imagenet" and args.data_dir is None and recorded is not None:
        args.data_dir = recorded.get("folder")             # the image folder it was trained on
    wanted = {"name": args.dataset, "n_train": args.n_train}
    wanted = {k: v for k, v in wanted.items() if v is not None}
    if recorded is None:
        spec = dict(name=args.dataset or "shapes", n_train=args.n_train, n_test=args.n_test)
    else:
        clash = data_conflicts(recorded, wanted)
        if clash:
            raise ConfigError(f"the data flags disagree with {source}: {'; '.join(clash)}; leave "
                              "them out to use the checkpoint's data")
        spec = dict(name=recorded["name"], n_train=recorded["n_train"],
                    n_test=args.n_test or recorded["n_test"], seed=recorded["seed"] or 0)
    if name == "shapes":              # drawn in float32, then kept as bytes: ~16 per pixel
        images = sum(spec[k] or SHAPES_DEFAULT[k] for k in ("n_train", "n_test"))
        check_bytes(16 * 3 * 32 * 32 * images, np, f"drawing {images} shapes images")
    dataset = load_data(**spec, root=args.data_dir, download=not args.no_download,
                        show_progress=not args.quiet)
    if recorded is not None:
        for key, have in (("num_classes", dataset.num_classes),
                          ("input_shape", list(dataset.x_train.shape[1:]))):
            if recorded[key] != have:
                raise ConfigError(f"{source} was trained with {key} {recorded[key]}, but "
                                  f"{dataset.name} here has {have}")
        if recorded.get("classes", list(dataset.class_names)) != list(dataset.class_names):
            raise ConfigError(f"{source} was trained on the classes of {recorded['folder']}; "
                              f"{args.data_dir} holds other ones")
        if fingerprint(dataset) != recorded["fingerprint"]:
            print(f"note: these {dataset.name} training images differ from the ones {source} "
                  "was trained on (another copy of the data?); using its normalisation",
                  file=sys.stderr)
    print(f"data: {dataset.name}, {len(dataset.x_train)} train / {len(dataset.x_test)} test "
          f"images" + (f" ({dataset.note})" if dataset.note else ""))
    if getattr(args, "test_images", None) and args.test_images < len(dataset.x_test):
        dataset.test_of = len(dataset.x_test)      # a model still records the whole test set
        dataset.x_test = dataset.x_test[:args.test_images]
        dataset.y_test = dataset.y_test[:args.test_images]
        print(f"evaluating on the first {args.test_images} test images only")
    return dataset


def _model_data(args, model):
    dataset = _data(args, model.data, source=f"checkpoint {model.path}")
    use_model_normalisation(dataset, model)
    return dataset


def _check_memory(net, model, xp, *, T, batch, what, training=False):
    """Refuse, before the data set loads, a pass whose arrays cannot fit: ``batch``
    images (at most the recorded training or test set) over T steps."""
    n = model.data["n_train" if training else "n_test"]
    check_fits(net, min(batch, n), T, xp, training=training, what=what)


def _stored_run(args, expect_kind):
    """The checkpoint of the run in ``--out`` that ``--resume`` continues, or None."""
    path = os.path.join(args.out, CHECKPOINT)
    if not (args.resume and os.path.exists(path)):
        return None
    return read_model(path, expect_kind=None if expect_kind is None else (expect_kind,))


def _config(base: TrainConfig, args, explicit, flags) -> TrainConfig:
    """``base`` with the flags applied (``flags``: dest -> (field, convert)): all of
    them for a new run, only the explicitly given ones (``explicit``, a set of
    dests) when resuming, where the stored settings stand in for the defaults."""
    changes = {field: convert(getattr(args, dest)) for dest, (field, convert) in flags.items()
               if (dest in explicit if explicit is not None else getattr(args, dest) is not None)}
    cfg = TrainConfig.from_dict({**base.to_dict(), **changes})
    cfg.validate()
    return cfg


_SAME = (lambda v: v)
_TRAINING_FLAGS = {"epochs": ("epochs", _SAME), "batch_size": ("batch_size", _SAME),
                   "lr": ("lr", _SAME), "seed": ("seed", _SAME),
                   "no_augment": ("augment", lambda v: not v), "schedule": ("schedule", _SAME)}


# --------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------
def _check_image_size(arch, dataset_name):
    """Refuse, before any data is read, an architecture built for other images."""
    want = native_input_shape(arch)
    have = (3, CROP, CROP) if dataset_name == "imagenet" else (3, 32, 32)
    if want != have:
        fits = "vgg16_imagenet (or a narrowed one)" if dataset_name == "imagenet" else \
            "a CIFAR architecture"
        raise ConfigError(f"{arch} takes {'x'.join(map(str, want))} images; {dataset_name}'s "
                          f"are {'x'.join(map(str, have))}: use {fits}")


def _eval_batch_for(input_shape) -> int:
    """The test batch of a new training run and of ``convert``: 256 images of 32x32,
    or as many pixels in larger images (5 at 224x224), so that its arrays stay those
    of a CIFAR evaluation."""
    return max(1, 256 * 32 * 32 // (input_shape[1] * input_shape[2]))


def _cmd_demo(args, explicit):
    _check_image_size(args.arch, args.dataset or "shapes")
    net, xp = build_network(args.arch), get_xp(args.device)   # the class count hardly counts
    check_fits(net, 32, args.timesteps, xp, training=True, what=f"--timesteps {args.timesteps}")
    check_fits(net, eval_batch(256, args.long_timesteps), args.long_timesteps, xp,
               training=False, what=f"--long-timesteps {args.long_timesteps}")
    dataset = _data(args)
    # A short schedule: Adam instead of the paper's 100+ epochs of SGD, no augmentation.
    ann_cfg = ann_config(epochs=args.ann_epochs, optimizer="adam", lr=1e-3, weight_decay=0.0,
                         schedule="cosine", batch_size=32, augment=False, seed=args.seed,
                         dropout={"conv": 0.1, "fc": 0.2})
    diet_cfg = diet_config(epochs=args.diet_epochs, T=args.timesteps, lr=args.diet_lr,
                           batch_size=32, augment=False, seed=args.seed)
    run_all(dataset, args.arch, args.out, ann_cfg, diet_cfg, device=args.device,
            T_find=args.find_steps, scale=args.scale, images=256, long_T=args.long_timesteps,
            resume=args.resume, overwrite=args.overwrite, show_progress=not args.quiet,
            engine=args.engine)


def _cmd_train_ann(args, explicit):
    stored = _stored_run(args, "ann")
    check_run_dir(args.out, resume=args.resume, overwrite=args.overwrite)
    if stored is not None and "arch" not in explicit:
        args.arch = stored.arch
    if stored is not None and "recipe" in explicit:
        raise ConfigError("--recipe chooses a new run's settings; a resumed run goes on with "
                          "the ones stored in its checkpoint")
    base = TrainConfig.from_dict(stored.config) if stored else ann_config(
        **ann_recipe(args.arch, args.recipe),
        eval_batch_size=_eval_batch_for(native_input_shape(args.arch)))
    optimizer = args.optimizer or base.optimizer
    if "momentum" in explicit and optimizer != "sgd":
        raise ConfigError(f"--momentum is SGD's; this run uses {optimizer} (pass --optimizer sgd)")
    cfg = _config(base, args,
                  explicit if stored else None, {
                      **_TRAINING_FLAGS, "weight_decay": ("weight_decay", _SAME),
                      "momentum": ("momentum", _SAME), "optimizer": ("optimizer", _SAME),
                      "dropout": ("dropout", _two_rates),
                      "warmup_epochs": ("warmup_epochs", _SAME),
                      "clip_norm": ("clip_norm", _SAME), "lsuv_images": ("lsuv_images", _SAME)})
    xp = get_xp(args.device)
    _check_image_size(args.arch, args.dataset or (stored.data["name"] if stored else "shapes"))
    dataset = _data(args, stored.data if stored else None, source=f"the run in {args.out}")
    net = build_network(args.arch, dataset.num_classes)
    net.engine = args.engine
    params = net.init_params(cfg.seed, xp, init=ann_init(args.arch, args.recipe))
    fit(net, params, dataset, cfg, args.out, arch=args.arch, xp=xp, resume=args.resume,
        overwrite=args.overwrite, show_progress=not args.quiet)


def _cmd_convert(args, explicit):
    xp = get_xp(args.device)
    net, params, model = load_model(args.checkpoint, xp, expect_kind=("ann",))
    net.engine = args.engine
    last = model.history[-1].get("test_acc") if model.history else None
    if last is not None and last < chance_level(net.num_classes):
        raise ChanceLevelError(f"{args.checkpoint}: the ANN's last test accuracy {last:.4f} is at "
                               "chance level; train it further before converting it")
    check_output_file(args.out, overwrite=args.overwrite, inputs=[args.checkpoint])
    _check_memory(net, model, xp, T=1, batch=args.images, what=f"--images {args.images}",
                  training=True)
    test_batch = _eval_batch_for(net.input_shape)
    for T in args.timesteps:
        _check_memory(net, model, xp, T=T, batch=eval_batch(test_batch, T),
                      what=f"--timesteps {T}")
    dataset = _model_data(args, model)
    net.encoding = args.encoding or "direct"
    snn, found = convert_model(net, params, dataset, xp, T_find=args.find_steps, scale=args.scale,
                               images=args.images, seed=args.seed, show_progress=not args.quiet)
    save_model(args.out, snn, arch=model.arch, kind="snn", T=max(args.timesteps),
               data=model.data, origin={"converted_from": args.checkpoint,
                                        "unscaled_thresholds": found, "scale": args.scale,
                                        "T_find": args.find_steps, "images": args.images,
                                        "seed": args.seed, "encoding": net.encoding})
    print(f"thresholds ({net.encoding} input, before scaling by {args.scale}): "
          + ", ".join(f"{k} {v:.4g}" for k, v in found.items()))
    print(f"converted SNN written to {args.out}")
    for T in args.timesteps:
        ev = evaluate(net, snn, dataset.x_test, dataset.y_test, dataset, T=T, mode="snn", xp=xp,
                      batch_size=test_batch, show_progress=not args.quiet,
                      desc=f"converted T={T}")
        print(f"converted SNN, T={T}: test accuracy {ev.accuracy:.4f}")


def _cmd_finetune(args, explicit):
    stored = _stored_run(args, "snn")
    if os.path.abspath(args.checkpoint) == os.path.abspath(os.path.join(args.out, CHECKPOINT)):
        raise ConfigError(f"--checkpoint {args.checkpoint} is the run file in --out {args.out}: "
                          "fine-tune into another folder (--resume continues a run by --out alone)")
    check_run_dir(args.out, resume=args.resume, overwrite=args.overwrite)
    cfg = _config(TrainConfig.from_dict(stored.config) if stored else diet_config(), args,
                  explicit if stored else None, {
                      **_TRAINING_FLAGS, "timesteps": ("T", _SAME),
                      "dropout": ("dropout", _two_rates), "encoding": ("encoding", _SAME),
                      "learn": ("learn", tuple), "neuron_lr_factor": ("neuron_lr_factor", _SAME)})
    xp = get_xp(args.device)
    net, params, source = load_model(args.checkpoint, xp, expect_kind=("snn",))
    net.engine = args.engine
    if stored is None:                       # a new run tests in batches its images allow
        cfg.eval_batch_size = _eval_batch_for(net.input_shape)
    if stored is None and args.encoding is None:          # the converted net's encoding
        cfg.encoding = source.encoding
    _check_memory(net, source, xp, T=cfg.T, batch=cfg.batch_size, training=True,
                  what=f"--timesteps {cfg.T}, --batch-size {cfg.batch_size}")
    dataset = _model_data(args, source)
    origin = (f"converted, thresholds from T_find={source.origin['T_find']}"
              if "T_find" in source.origin else f"SNN trained at T={source.T}")
    frozen = [k for k in PARAM_KINDS if k not in cfg.learn]
    print(f"fine-tuning {source.arch} ({origin}) at T={cfg.T}, {cfg.encoding} input"
          + (f", {' and '.join(frozen)} frozen" if frozen else ""))
    fit(net, params, dataset, cfg, args.out, arch=source.arch, xp=xp, resume=args.resume,
        overwrite=args.overwrite, show_progress=not args.quiet,
        origin={"finetuned_from": args.checkpoint, "source_T": source.T,
                "source_origin": source.origin})


def _cmd_evaluate(args, explicit):
    xp = get_xp(args.device)
    net, params, model = load_model(args.checkpoint, xp)
    net.engine = args.engine
    mode = args.mode or model.kind
    for flag in ("timesteps", "encoding"):
        if mode == "ann" and flag in explicit:
            raise ConfigError(f"--{flag} applies to an SNN; this evaluates an ANN (one step)")
    net.encoding = args.encoding or net.encoding
    for T in [1] if mode == "ann" else args.timesteps:
        _check_memory(net, model, xp, T=T, batch=eval_batch(args.batch_size, T),
                      what=f"--timesteps {T}, --batch-size {args.batch_size}")
    dataset = _model_data(args, model)
    for T in [1] if mode == "ann" else args.timesteps:
        ev = evaluate(net, params, dataset.x_test, dataset.y_test, dataset, T=T, mode=mode, xp=xp,
                      batch_size=args.batch_size, show_progress=not args.quiet)
        print(json.dumps(ev.summary(net), indent=2))
        if ev.at_chance(net.num_classes):
            print(f"warning: accuracy {ev.accuracy:.4f} at T={T} is at chance level: this "
                  "network did not learn, and its spike rates are not results", file=sys.stderr)


def _cmd_energy(args, explicit):
    if bool(args.checkpoint) == bool(args.arch):
        raise ConfigError("energy needs exactly one of --checkpoint (measured spike rates) "
                          "or --arch (FLOPs only)")
    if args.arch:
        ignored = sorted(explicit & {"dataset", "data_dir", "no_download", "n_train", "n_test",
                                     "test_images", "timesteps", "batch_size", "device",
                                     "encoding"})
        if ignored:
            raise ConfigError("energy --arch counts FLOPs only; it takes no "
                              + ", ".join("--" + d.replace("_", "-") for d in ignored))
        net = build_network(args.arch, args.num_classes or default_classes(args.arch))
        rows = energy_table(net, {n: 0.0 for n in net.neurons})
        print(f"{args.arch}: " + ", ".join(f"{r.layer} {r.flops:,}" for r in rows))
        print(f"total FLOPs (MACs) per image: {sum(r.flops for r in rows):,}")
        print(f"\n{args.arch}, {net.num_classes} classes, {'x'.join(map(str, net.input_shape))} "
              f"input:\n\n{format_flops_table(rows)}")
        return
    if "num_classes" in explicit:
        raise ConfigError("--num-classes goes with --arch; a checkpoint records its classes")
    xp = get_xp(args.device)
    net, params, model = load_model(args.checkpoint, xp, expect_kind=("snn",))
    net.engine = args.engine
    net.encoding = args.encoding or net.encoding
    for T in args.timesteps:
        _check_memory(net, model, xp, T=T, batch=eval_batch(args.batch_size, T),
                      what=f"--timesteps {T}, --batch-size {args.batch_size}")
    dataset = _model_data(args, model)
    for T in args.timesteps:
        ev = evaluate(net, params, dataset.x_test, dataset.y_test, dataset, T=T, mode="snn",
                      xp=xp, batch_size=args.batch_size, show_progress=not args.quiet)
        require_learned(ev, net.num_classes, f"{model.arch} at T={T}")
        print(report(net, ev, f"{model.arch} on {dataset.name}, T={T}"))


def _cmd_inspect(args, explicit):
    xp = get_xp(args.device)
    net, params, model = load_model(args.checkpoint, xp, expect_kind=("snn",))
    net.engine = args.engine
    check_output_folder(args.out)
    T = args.timesteps or model.T
    _check_memory(net, model, xp, T=T, batch=args.images,
                  what=f"--images {args.images}, --timesteps {T}")
    dataset = _model_data(args, model)
    inspect_checkpoint(net, params, model, dataset, args.out, xp=xp, T=args.timesteps,
                       images=args.images, seed=args.seed, overwrite=args.overwrite)


def _cmd_import(args, explicit):
    if args.dataset is None:
        raise ConfigError("import needs --dataset: the data set the weights were trained on "
                          "(its name, classes and normalisation go into the checkpoint)")
    import_checkpoint(args.source, args.arch, args.format, lambda: _data(args), args.out,
                      T=args.timesteps, overwrite=args.overwrite)


def _cmd_export(args, explicit):
    export_checkpoint(args.checkpoint, args.out, overwrite=args.overwrite, fmt=args.format)


COMMANDS = {"demo": _cmd_demo, "train-ann": _cmd_train_ann, "convert": _cmd_convert,
            "finetune": _cmd_finetune, "evaluate": _cmd_evaluate, "energy": _cmd_energy,
            "inspect": _cmd_inspect, "import": _cmd_import, "export": _cmd_export,
            "lessons": lambda args, explicit: lessons_command(args)}


def main(argv=None):
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    explicit = explicit_flags(parser, argv)
    try:
        apply_process_settings()          # process-wide, so set here and not by the library
        COMMANDS[args.command](args, explicit)
    except KeyboardInterrupt:
        hint = ("the last checkpoint written is intact; rerun the same command with --resume "
                "to continue" if args.command in TRAINING_COMMANDS else "nothing was written "
                "after the last completed step")
        print(f"\ninterrupted: {hint}", file=sys.stderr)
        return 130
    except DietError as exc:
        print(f"diet-np {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:          # arrays bigger than the estimate let through
        print(f"diet-np {args.command}: error: out of memory: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:             # the reader of the output left (diet-np ... | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no error at exit
        return 141                      # as a shell reports a process ended by SIGPIPE
    return 0
