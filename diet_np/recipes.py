"""ANN training recipes per architecture: settings with which each network leaves chance.

What the authors did (spec, "ANN -> SNN conversion", step 1):

* ``ann.py``'s defaults: SGD, momentum 0.9, weight decay 5e-4, lr 1e-2 divided by 10
  at 45/70/90% of the epochs, batch 64, 300 epochs, crop + flip;
* their released CIFAR-10 VGG16 script: **Adam with AMSGrad, lr 1e-4, weight decay
  5e-4, batch 128**, 300 epochs, the same schedule, dropout 0.2 (0.5 in the
  classifier, as their VGG's classifier has it).

Without batch norm the SGD defaults do not start a deep VGG here: the full VGG16
stayed at loss ln 10 = 2.3026 for 200 steps of batch 64 (issue 13).  Adam scales
every weight's step by its own gradient history, so the small gradients that reach
the early layers of a deep plain network still move them: with the authors' Adam
recipe the training loss of VGG16 leaves ln 10 within the first epoch of the
20,000 shared CIFAR-10 images (``benchmarks/recipe_probe.py``; the measured curves
and the full run are in the README's VGG16 section).  VGG6, VGG9, VGG11 and ResNet20
get the same recipe by analogy; it has not been measured on them here.  **A loss below ln 10 is not yet accuracy above chance**: after
that epoch VGG16 at 1/4 width (train loss 2.22) still gave every test image the
same class (test accuracy 0.100): the logits carry a little information about
the class (eval loss 2.15; argmax after subtracting each class's mean logit: 19%
of 512 test images right) but one class's offset outweighs it.  Judge a run by its
test accuracy, as the authors' ``ann.py`` does (it gives up below 15% after 30
epochs; :class:`~diet_np.training.TrainConfig`'s ``chance_epochs`` does the same).

Where these recipes depart from the authors':

* **Kaiming's fan-in init** for the deep nets (the authors: the spec's), see above.
* **no dropout in the ANN** (the authors: 0.2 after convs, 0.5 in the classifier):
  with it the 1/4-width VGG16 collapsed onto one class for three epochs (above).
  Random crop + flip stay on.  DIET fine-tuning keeps its own dropout.
* **batch 64, not 128**: the project's default batch, and the one the timings and
  the tests use; the loss curves above were measured at batch 64 with the
  authors' lr 1e-4 unchanged.
* ``vgg5`` (this project's small CPU net, not the authors' "VGG5", which is
  ``vgg6`` here) keeps the recipe its README result was measured with: plain Adam,
  lr 1e-3, no weight decay, a cosine schedule, dropout 0.1 / 0.2 (ANN 73.6% on
  20,000 CIFAR-10 images).
* Higher learning rates do not start faster: VGG16 at 1/4 width with Adam lr 1e-3
  reached 2.29 by step 60, then fell back to exactly ln 10 and stayed there.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .architectures import ARCHITECTURES, VGG_CONFIGS, build_network, split_width
from .backend import default_rng
from .data import iterate_batches
from .training import run_optimizer, train_step

AUTHORS_ADAM = {"optimizer": "adam", "amsgrad": True, "lr": 1e-4, "momentum": 0.0,
                "weight_decay": 5e-4, "schedule": "step", "milestones": (0.45, 0.7, 0.9),
                "batch_size": 64, "dropout": {"conv": 0.0, "fc": 0.0}}
"""The authors' CIFAR-10 VGG16 recipe at batch 64 and without dropout (see the
module docstring for why)."""

SMALL_VGG5 = {"optimizer": "adam", "amsgrad": False, "lr": 1e-3, "momentum": 0.0,
              "weight_decay": 0.0, "schedule": "cosine", "batch_size": 64,
              "dropout": {"conv": 0.1, "fc": 0.2}}
"""The recipe of the README's VGG5 result (``train-ann --optimizer adam --lr 1e-3
--weight-decay 0 --schedule cosine --dropout 0.1 0.2``)."""


def _recipe_base(arch) -> str:
    base, _ = split_width(str(arch).lower())     # a narrowed VGG: its full-width recipe
    if base not in VGG_CONFIGS and base != "resnet20":
        raise ValueError(f"no ANN recipe for architecture {arch!r}; "
                         f"choose from {', '.join(ARCHITECTURES)}")
    return base


def ann_init(arch: str) -> str:
    """The ``init`` argument of :meth:`~diet_np.network.Network.init_params` for
    ``arch``'s ANN: ``"kaiming-in"`` for the deep nets, the spec's for ``vgg5``."""
    return "spec" if _recipe_base(arch) == "vgg5" else "kaiming-in"


def ann_recipe(arch: str) -> dict:
    """The :class:`~diet_np.training.TrainConfig` overrides for training ``arch``'s ANN.

    A fresh dict each call (callers may update it).  Unknown names raise a
    ValueError naming the known ones.
    """
    recipe = SMALL_VGG5 if _recipe_base(arch) == "vgg5" else AUTHORS_ADAM
    return {k: dict(v) if isinstance(v, dict) else v for k, v in recipe.items()}


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
