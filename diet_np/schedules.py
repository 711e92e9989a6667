"""Learning-rate schedules over epochs.

Epochs are counted from 0; ``lr_at(epoch)`` accepts any real ``epoch`` in
``[0, total_epochs]`` (a fractional epoch gives a per-iteration schedule).

* ANN training (authors): ``StepSchedule(1e-2, E)`` divides by 10 at 45%, 70% and
  90% of the epochs.
* DIET fine-tuning (authors): ``StepSchedule(1e-4, E, milestones=(0.6, 0.8, 0.9))``.
* The short-budget ANN recipe (:mod:`diet_np.recipes`): ``Warmup(CosineSchedule(0.05,
  E - 2), 2)``, a linear rise over 2 epochs, then cosine over the rest.

A schedule with ``per_step = True`` (:class:`Warmup`) is read at every training
step (at the middle of the step, ``epoch + (i + 0.5) / steps``); the others once
per epoch, at its start.
"""
from __future__ import annotations

import math

from .optim import _check_real


def _check_epochs(total_epochs) -> int:
    if isinstance(total_epochs, bool) or not isinstance(total_epochs, int) or total_epochs < 1:
        raise ValueError(f"total_epochs must be a positive integer, got {total_epochs!r}")
    return total_epochs


class _Schedule:
    per_step = False

    def __init__(self, base_lr, total_epochs):
        self.base_lr = _check_real("base_lr", base_lr, low=0.0)
        self.total_epochs = _check_epochs(total_epochs)

    def _check_epoch(self, epoch) -> float:
        return _check_real("epoch", epoch, low=0.0, high=float(self.total_epochs))

    def lr_at(self, epoch) -> float:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class ConstantSchedule(_Schedule):
    """The same learning rate throughout."""

    def lr_at(self, epoch) -> float:
        self._check_epoch(epoch)
        return self.base_lr


class StepSchedule(_Schedule):
    """Multiply the rate by ``gamma`` at given fractions of training.

    Milestone epochs are ``int(fraction * total_epochs)``, as the authors compute
    them, with one departure for short runs: where two milestones would fall on
    the same epoch (PyTorch's ``MultiStepLR`` then divides twice at once: 1e-3
    to 1e-5 in one step), a later one moves to the next epoch, and no milestone
    falls on epoch 0 (the first epoch always runs at ``base_lr``).  Milestones
    moved to ``total_epochs`` or beyond are dropped.  So every epoch boundary
    divides at most once: with (0.6, 0.8, 0.9) and 5 epochs the rates are
    base, base, base, base/10, base/100; with 2 epochs base, base/10.  From
    milestone epoch ``e_k`` on, ``k`` divisions have been applied.
    """

    def __init__(self, base_lr, total_epochs, milestones=(0.45, 0.7, 0.9), gamma=0.1):
        super().__init__(base_lr, total_epochs)
        try:
            fractions = tuple(milestones)
        except TypeError:
            raise ValueError(f"milestones must be a sequence of fractions, got {milestones!r}") from None
        fractions = tuple(_check_real(f"milestones[{i}]", f, low=0.0, high=1.0, low_open=True)
                          for i, f in enumerate(fractions))
        if any(b <= a for a, b in zip(fractions, fractions[1:])):
            raise ValueError(f"milestones must be strictly increasing, got {fractions}")
        self.milestones = fractions
        self.gamma = _check_real("gamma", gamma, low=0.0, low_open=True)
        epochs = []
        for f in fractions:
            e = max(int(f * self.total_epochs), epochs[-1] + 1 if epochs else 1)
            if e < self.total_epochs:
                epochs.append(e)
        self.milestone_epochs = tuple(epochs)

    def lr_at(self, epoch) -> float:
        epoch = self._check_epoch(epoch)
        k = sum(epoch >= e for e in self.milestone_epochs)
        return self.base_lr * self.gamma ** k


class CosineSchedule(_Schedule):
    """Cosine annealing from ``base_lr`` at epoch 0 to ``min_lr`` at ``total_epochs``."""

    def __init__(self, base_lr, total_epochs, min_lr=0.0):
        super().__init__(base_lr, total_epochs)
        self.min_lr = _check_real("min_lr", min_lr, low=0.0, high=self.base_lr)

    def lr_at(self, epoch) -> float:
        epoch = self._check_epoch(epoch)
        cos = 0.5 * (1.0 + math.cos(math.pi * epoch / self.total_epochs))
        return self.min_lr + (self.base_lr - self.min_lr) * cos


class Warmup:
    """A linear warm-up over ``warmup_epochs`` epochs, then ``schedule`` over the rest.

    ``lr_at(t) = schedule.base_lr * t / warmup_epochs`` for ``t < warmup_epochs``,
    then ``schedule.lr_at(t - warmup_epochs)``; ``total_epochs`` is the sum.  Read
    per step, so the rate rises smoothly from near zero.
    """
    per_step = True

    def __init__(self, schedule, warmup_epochs):
        if not isinstance(schedule, _Schedule):
            raise ValueError(f"Warmup wraps a schedule, got {schedule!r}")
        self.schedule = schedule
        self.warmup_epochs = _check_epochs(warmup_epochs)
        self.base_lr = schedule.base_lr
        self.total_epochs = schedule.total_epochs + self.warmup_epochs

    def lr_at(self, epoch) -> float:
        t = _check_real("epoch", epoch, low=0.0, high=float(self.total_epochs))
        if t < self.warmup_epochs:
            return self.base_lr * t / self.warmup_epochs
        return self.schedule.lr_at(t - self.warmup_epochs)

    def __repr__(self):
        return f"Warmup({self.schedule!r}, warmup_epochs={self.warmup_epochs})"


#: The schedules by name, as ``make_schedule`` and the CLI's ``--schedule`` take them.
SCHEDULES = {"step": StepSchedule, "cosine": CosineSchedule, "constant": ConstantSchedule}


def make_schedule(name: str, base_lr, total_epochs, warmup_epochs=0, **kw):
    """Build a schedule by name: ``"step"``, ``"cosine"`` or ``"constant"``, over
    ``total_epochs`` epochs; with ``warmup_epochs`` > 0 the first of them are a
    linear :class:`Warmup` and the named schedule runs over the rest."""
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
    cls = SCHEDULES[key]
    allowed = ("milestones", "gamma") if cls is StepSchedule else \
        ("min_lr",) if cls is CosineSchedule else ()
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ValueError(f"schedule {name!r} got unknown argument(s) {', '.join(unknown)}; "
                         f"it takes {', '.join(allowed) if allowed else 'none'}")
    if not warmup_epochs:
        return cls(base_lr, total_epochs, **kw)
    warmup = _check_epochs(warmup_epochs)
    if warmup >= _check_epochs(total_epochs):
        raise ValueError(f"a warm-up of {warmup} epochs leaves none of {total_epochs} for "
                         f"the {key} schedule")
    return Warmup(cls(base_lr, total_epochs - warmup, **kw), warmup)
