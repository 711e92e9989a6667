"""ANN training recipes: settings with which each network learns in a short budget.

What the authors did (spec, "ANN -> SNN conversion", step 1):

* ``ann.py``'s defaults: SGD, momentum 0.9, weight decay 5e-4, lr 1e-2 divided by 10
  at 45/70/90% of the epochs, batch 64, 300 epochs, crop + flip;
* their released CIFAR-10 VGG16 script: **Adam with AMSGrad, lr 1e-4, weight decay
  5e-4, batch 128**, 300 epochs, the same schedule, dropout 0.2 (0.5 in the
  classifier, as their VGG's classifier has it).

Recipes by name (:func:`ann_recipe`; the CLI's ``train-ann --recipe``):

* ``"short"`` (**the default**, every architecture): SGD with Nesterov momentum 0.9,
  lr 0.05, a linear warm-up over 2 epochs then cosine to zero, weight decay 5e-4,
  gradients' global norm clipped at 2.0, the weights rescaled by LSUV on 256
  training images (:mod:`diet_np.lsuv`) after Kaiming's fan-in init, no dropout,
  batch 64.  Made for tens of epochs, not the authors' 300.
* ``"authors"``: the authors' VGG16 script at batch 64 without dropout (Adam
  AMSGrad 1e-4, the step schedule), Kaiming's init (the spec's for ``vgg5``).
* ``"adam-cosine"``: the README's first ``vgg5`` result's recipe (Adam 1e-3, no
  weight decay, cosine, dropout 0.2 in the classifier).

Why ``"short"``: without batch norm the authors' step schedule at a 20-40 epoch
budget divides the rate at 45% of the epochs, after which a deep plain VGG stalls
with training accuracy equal to test accuracy (under-fitting, not data-limited);
and at Kaiming's init the pre-activation variance of ``vgg16_w4`` fades from conv1
to conv13 (:mod:`diet_np.lsuv`).  A warm-up and a data-dependent
start are the usual answers for deep plain networks (LSUV gives every layer the
same output scale), and the clip bounds the steps while the rate is high.  The
measurement that chose it compares both recipes on the same network, initial
weights and batches, scored on held-out *training* images
(``benchmarks/compare_recipes.py``; the curves in docs/recipe.md): ``vgg16_w4``,
10-epoch schedules, 18,000 training images, accuracy on the last 2,000 after epoch
10: **short 62.5%, authors' 44.7%** (level until epoch 4; the authors' curve flattens
once its rate is first divided, at epoch 5).  An earlier version of this module said that SGD
does not start a deep VGG without batch norm and that higher rates do not start
faster: both were measured without a warm-up, and neither holds with one.

Where ``"short"`` departs from the authors':

* **SGD Nesterov 0.05 with warm-up and cosine** instead of Adam AMSGrad 1e-4 with
  the step schedule; **LSUV and gradient clipping** (the authors have neither).
  Neither changes the network the paper converts: conversion and DIET see the
  same layers, no batch norm, no bias.
* **no dropout in the ANN** (the authors: 0.2 after convs, 0.5 in the
  classifier); random crop + flip stay on.  DIET fine-tuning keeps its own dropout.
* **batch 64, not 128**: the project's default batch.

``vgg5`` note: a dropout after a conv is removed where a pool follows (the
dropout would be applied to what the pool averages anyway), and every ``vgg5``
conv is followed by a pool, so its conv dropout rate has no effect; only the
classifier's applies.  The ``"adam-cosine"`` recipe therefore says 0.0 for convs
(the README's ``--dropout 0.1 0.2`` run trained the same network as 0.0 0.2).

**A loss below ln 10 is not yet accuracy above chance**: judge a run by its
test accuracy, as the authors' ``ann.py`` does (it gives up below 15% after 30
epochs; :class:`~diet_np.training.TrainConfig`'s ``chance_epochs`` does the same).
"""
from __future__ import annotations

import math
import time

import numpy as np

from .architectures import ARCHITECTURES, VGG_CONFIGS, build_network, split_width
from .backend import default_rng
from .data import iterate_batches
from .training import run_optimizer, train_step

SHORT = {"optimizer": "sgd", "nesterov": True, "lr": 0.05, "momentum": 0.9,
         "amsgrad": False, "weight_decay": 5e-4, "schedule": "cosine", "warmup_epochs": 2,
         "clip_norm": 2.0, "lsuv_images": 256, "batch_size": 64,
         "dropout": {"conv": 0.0, "fc": 0.0}}
"""The short-budget recipe, every architecture's default (see the module docstring)."""

AUTHORS_ADAM = {"optimizer": "adam", "amsgrad": True, "lr": 1e-4, "momentum": 0.0,
                "weight_decay": 5e-4, "schedule": "step", "milestones": (0.45, 0.7, 0.9),
                "batch_size": 64, "dropout": {"conv": 0.0, "fc": 0.0}}
"""The authors' CIFAR-10 VGG16 recipe at batch 64 and without dropout."""

SMALL_VGG5 = {"optimizer": "adam", "amsgrad": False, "lr": 1e-3, "momentum": 0.0,
              "weight_decay": 0.0, "schedule": "cosine", "batch_size": 64,
              "dropout": {"conv": 0.0, "fc": 0.2}}
"""The recipe of the README's first VGG5 result (``train-ann --optimizer adam --lr 1e-3
--weight-decay 0 --schedule cosine --dropout 0.1 0.2``; the 0.1 never applied)."""

#: The recipes by name, as :func:`ann_recipe` and ``train-ann --recipe`` take them.
RECIPES = {"short": SHORT, "authors": AUTHORS_ADAM, "adam-cosine": SMALL_VGG5}
DEFAULT_RECIPE = "short"


def _recipe_base(arch) -> str:
    base, _ = split_width(str(arch).lower())     # a narrowed VGG: its full-width recipe
    if base not in VGG_CONFIGS and base != "resnet20":
        raise ValueError(f"no ANN recipe for architecture {arch!r}; "
                         f"choose from {', '.join(ARCHITECTURES)}")
    return base


def _recipe_name(name) -> str:
    name = DEFAULT_RECIPE if name is None else name
    if name not in RECIPES:
        raise ValueError(f"unknown ANN recipe {name!r}; choose from {', '.join(RECIPES)}")
    return name


def ann_init(arch: str, recipe=None) -> str:
    """The ``init`` argument of :meth:`~diet_np.network.Network.init_params` for
    ``arch``'s ANN under ``recipe`` (None: the default): ``"kaiming-in"``, except the
    spec's for ``vgg5`` under the Adam recipes (as their results were measured)."""
    base, name = _recipe_base(arch), _recipe_name(recipe)
    return "spec" if base == "vgg5" and name != "short" else "kaiming-in"


def ann_recipe(arch: str, recipe=None) -> dict:
    """The :class:`~diet_np.training.TrainConfig` overrides for training ``arch``'s ANN
    with the recipe named ``recipe`` (None: ``"short"``, every architecture's default).

    A fresh dict each call (callers may update it).  Unknown names raise a
    ValueError naming the known ones.
    """
    _recipe_base(arch)
    chosen = RECIPES[_recipe_name(recipe)]
    return {k: dict(v) if isinstance(v, dict) else v for k, v in chosen.items()}


def training_batches(dataset, cfg, xp=np):
    """Training batches of ``dataset`` without end, reshuffled (and re-augmented) each
    pass with generators seeded by ``(cfg.seed, pass)`` as :func:`~diet_np.training.fit`
    seeds its epochs."""
    for epoch in range(2 ** 31):
        yield from iterate_batches(dataset.x_train, dataset.y_train, cfg.batch_size, xp,
                                   shuffle=True, rng=np.random.default_rng([cfg.seed, epoch]),
                                   augment=cfg.augment, mean=dataset.mean, std=dataset.std)


def loss_curve(arch, dataset, cfg, steps, every=30, init_seed=0, params=None):
    """Does a recipe start?  Train ``arch`` (fresh ``init_params(init_seed,
    init=ann_init(arch))`` unless ``params`` is given) for ``steps`` steps of ``cfg``.

    Returns ``(curve, seconds_per_step)`` with ``curve`` a list of
    ``(step, mean training loss of the last every steps)``; chance is
    ``ln(num_classes)`` (2.3026 for ten classes).  Stops early at a non-finite loss
    (its window is reported as ``nan``/``inf``).
    """
    cfg.validate()
    net = build_network(arch, dataset.num_classes)
    if params is None:
        params = net.init_params(seed=init_seed, init=ann_init(arch))
    opt, rng = run_optimizer(cfg), default_rng(np, cfg.seed)
    curve, window, tic, step = [], [], time.perf_counter(), 0
    for step, (xb, yb) in zip(range(1, steps + 1), training_batches(dataset, cfg)):
        loss, _ = train_step(net, params, opt, xb.astype(np.float32), yb, cfg=cfg, rng=rng,
                             lr=cfg.lr)
        window.append(float(loss))
        if not math.isfinite(window[-1]) or step % every == 0:
            curve.append((step, float(np.mean(window))))
            window = []
            if not math.isfinite(curve[-1][1]):
                break
    return curve, (time.perf_counter() - tic) / max(step, 1)
