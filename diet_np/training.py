"""Training and evaluation loops for the ANN and for DIET fine-tuning of the SNN.

One training step is: forward over T (Eq. 2-6), the loss (Eq. 7), BPTT (Eq.
9-14), the optimiser step and the clamp (Eq. 15).  Nothing in the step reads a
value back to the host; the loop synchronises only when it logs.

A run is three named steps: :func:`start_run` (a new run, or the one in the
folder resumed, after checking that it is the same run), :func:`train_epoch`
and :func:`end_epoch` (test, checkpoint, log); :func:`fit` strings them
together.  Every epoch ends with a model checkpoint written atomically
(:mod:`diet_np.model_file`: parameters, optimiser state, configuration, data
record and the history of finished epochs).  All randomness of epoch e
(shuffle, augmentation, dropout masks) comes from generators seeded with
(seed, e), so a run resumed from a checkpoint continues exactly as the
uninterrupted run would have (bit-identical on the CPU).

A run stops with :class:`~diet_np.errors.DivergenceError` at the first
non-finite loss (or parameter, or optimiser state), leaving the last good
checkpoint as it was, and with :class:`~diet_np.errors.ChanceLevelError` when
the network is still at chance level after ``chance_epochs`` epochs.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .backend import array_module, default_rng, to_device, to_host
from .checkpoint import check_compatible
from .data import check_labeled_images, iterate_batches, normalize, num_batches
from .engine import get_engine
from .errors import ChanceLevelError, ConfigError, DivergenceError, RunError, chance_level
from .limits import check_fits
from .encoding import ENCODINGS
from .metrics import network_spike_rate, spike_rates
from .model_file import data_conflicts, data_record, first_non_finite, read_model, write_model
from .ops import softmax_cross_entropy
from .lsuv import lsuv_init
from .optim import clamp_neuron_params, clip_grad_norm, make_optimizer
from .outputs import prepare_run_dir, writing
from .progress import progress
from .records import RunLog, plot_curves
from .schedules import SCHEDULES, make_schedule
from .surrogates import SURROGATES

CHECKPOINT = "checkpoint.npz"

#: The kinds of parameter (:class:`~diet_np.layers.ParamSpec`): Eq. 15 trains all three.
PARAM_KINDS = ("weight", "leak", "threshold")

#: Fields added to :class:`TrainConfig` after checkpoints were first written, with
#: the value every earlier run had.
ADDED_FIELDS = {"encoding": "direct", "learn": PARAM_KINDS, "neuron_lr_factor": 1.0,
                "nesterov": False, "warmup_epochs": 0, "clip_norm": 0.0, "lsuv_images": 0}
LOG = "log.jsonl"
CURVES = "curves.png"


@dataclass
class TrainConfig:
    """Hyper-parameters of one training stage.  :func:`ann_config` and
    :func:`diet_config` give the paper's settings."""
    mode: str = "ann"                    # "ann" (ReLU, one step) or "snn" (DIET, T steps)
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    amsgrad: bool = False
    schedule: str = "step"
    milestones: tuple = (0.45, 0.7, 0.9)
    T: int = 1
    dropout: dict = field(default_factory=lambda: {"conv": 0.2, "fc": 0.5})
    augment: bool = True
    seed: int = 0
    surrogate: str = "triangle"
    eval_batch_size: int = 256
    chance_epochs: int = 5               # still at chance after this many epochs: stop (0: never)
    encoding: str = "direct"             # SNN input: "direct" (the paper's) or "rate"
    learn: tuple = PARAM_KINDS           # which parameter kinds the optimiser updates
    neuron_lr_factor: float = 1.0        # leaks and thresholds step at lr x this factor
    nesterov: bool = False               # SGD with Nesterov momentum (Adam ignores it)
    warmup_epochs: int = 0               # a linear warm-up before the schedule (per step);
                                         # at most half the epochs (none in a 1-epoch run)
    clip_norm: float = 0.0               # gradients' global norm capped at this (0: never)
    lsuv_images: int = 0                 # a new run's weights rescaled by LSUV on this many
                                         # training images (diet_np/lsuv.py; 0: never)

    def validate(self):
        """Raise a clear ConfigError for an invalid hyper-parameter."""
        checks = [
            (self.mode in ("ann", "snn"), f"mode must be 'ann' or 'snn'; got {self.mode!r}"),
            (_is_int(self.epochs) and self.epochs >= 1, f"epochs must be an integer >= 1; got {self.epochs!r}"),
            (_is_int(self.batch_size) and self.batch_size >= 1,
             f"batch size must be an integer >= 1; got {self.batch_size!r}"),
            (_is_int(self.eval_batch_size) and self.eval_batch_size >= 1,
             f"evaluation batch size must be an integer >= 1; got {self.eval_batch_size!r}"),
            (_is_real(self.lr) and 0 < self.lr < math.inf,
             f"learning rate must be a finite number > 0; got {self.lr!r}"),
            (_is_real(self.weight_decay) and 0 <= self.weight_decay < math.inf,
             f"weight decay must be a finite number >= 0; got {self.weight_decay!r}"),
            (_is_real(self.momentum) and 0 <= self.momentum < 1,
             f"momentum must lie in [0, 1); got {self.momentum!r}"),
            (_is_int(self.T) and self.T >= 1, f"T (timesteps) must be an integer >= 1; got {self.T!r}"),
            (self.mode == "snn" or self.T == 1, "the ANN runs one step: T must be 1 in mode 'ann'"),
            (isinstance(self.dropout, dict) and set(self.dropout) == {"conv", "fc"}
             and all(_is_real(p) and 0 <= p < 1 for p in self.dropout.values()),
             f"dropout rates must lie in [0, 1); got {self.dropout}"),
            (_is_int(self.seed) and self.seed >= 0, f"seed must be an integer >= 0; got {self.seed!r}"),
            (isinstance(self.schedule, str) and self.schedule in SCHEDULES,
             f"schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}"),
            (isinstance(self.surrogate, str) and self.surrogate in SURROGATES,
             f"surrogate must be one of {', '.join(SURROGATES)}; got {self.surrogate!r}"),
            (_is_int(self.chance_epochs) and self.chance_epochs >= 0,
             f"chance_epochs must be an integer >= 0; got {self.chance_epochs!r}"),
            (self.encoding in ENCODINGS,
             f"encoding must be one of {ENCODINGS}; got {self.encoding!r}"),
            (self.mode == "snn" or self.encoding == "direct",
             "the ANN sees the analog image: encoding must be 'direct' in mode 'ann'"),
            ("weight" in self.learn and set(self.learn) <= set(PARAM_KINDS)
             and len(set(self.learn)) == len(self.learn),
             f"learn names the parameter kinds to train, weights among them, each once, from "
             f"{PARAM_KINDS}; got {self.learn!r}"),
            (_is_real(self.neuron_lr_factor) and 0 < self.neuron_lr_factor < math.inf,
             f"neuron_lr_factor must be a finite number > 0; got {self.neuron_lr_factor!r}"),
            (isinstance(self.nesterov, bool), f"nesterov must be True or False; got {self.nesterov!r}"),
            (not self.nesterov or self.optimizer != "sgd" or self.momentum > 0,
             "SGD's Nesterov momentum needs momentum > 0"),
            (_is_int(self.warmup_epochs) and self.warmup_epochs >= 0,
             f"warmup_epochs must be an integer >= 0; got {self.warmup_epochs!r}"),
            (isinstance(self.clip_norm, (int, float)) and not isinstance(self.clip_norm, bool)
             and 0 <= self.clip_norm < float("inf"),
             f"clip_norm must be a finite number >= 0 (0: no clipping); got {self.clip_norm!r}"),
            (_is_int(self.lsuv_images) and self.lsuv_images >= 0,
             f"lsuv_images must be an integer >= 0 (0: no LSUV); got {self.lsuv_images!r}"),
            (self.mode == "ann" or not self.lsuv_images,
             "LSUV initialises an ANN: lsuv_images must be 0 in mode 'snn'"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["milestones"], d["learn"] = list(self.milestones), list(self.learn)
        return d

    @classmethod
    def from_dict(cls, d):
        """The config stored by :meth:`to_dict`; unknown or missing fields are a ConfigError."""
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(d, dict):
            raise ConfigError(f"a stored training config is a dict, not {type(d).__name__}")
        d = {**ADDED_FIELDS, **d}
        unknown, missing = sorted(set(d) - names), sorted(names - set(d))
        if unknown or missing:
            raise ConfigError("stored training config does not match this diet-np's: "
                              + "; ".join(p for p in (f"unknown {unknown}" if unknown else "",
                                                      f"missing {missing}" if missing else "") if p))
        for key in ("milestones", "learn"):
            if not isinstance(d[key], (list, tuple)):
                raise ConfigError(f"stored training config: {key} is {d[key]!r}, not a list")
            d[key] = tuple(d[key])
        return cls(**d)


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def ann_config(**overrides) -> TrainConfig:
    """The authors' ANN training: SGD, momentum 0.9, weight decay 5e-4, lr 1e-2
    divided by 10 at 45/70/90% of the epochs, batch 64, crop + flip, dropout
    0.2 (conv) / 0.5 (classifier)."""
    return TrainConfig(**overrides)


def diet_config(**overrides) -> TrainConfig:
    """The authors' DIET fine-tuning: Adam (amsgrad), lr 1e-4, no weight decay
    (it would also decay thresholds and leaks), lr divided at 60/80/90%, T = 5,
    dropout 0.1."""
    base = dict(mode="snn", optimizer="adam", amsgrad=True, lr=1e-4, momentum=0.0,
                weight_decay=0.0, milestones=(0.6, 0.8, 0.9), T=5,
                dropout={"conv": 0.1, "fc": 0.1})
    base.update(overrides)
    return TrainConfig(**base)


def run_optimizer(cfg, engine=None):
    """The optimiser ``cfg`` names, with its hyper-parameters (``engine``: Adam's
    update, ``"reference"`` or ``"fast"``; None: the default)."""
    shared = dict(weight_decay=cfg.weight_decay, neuron_lr_factor=cfg.neuron_lr_factor)
    if cfg.optimizer == "sgd":
        return make_optimizer("sgd", cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                              **shared)
    return make_optimizer(cfg.optimizer, cfg.lr, engine=engine, amsgrad=cfg.amsgrad, **shared)


def trained_keys(net, cfg) -> list:
    """The parameters the optimiser updates: those whose kind ``cfg.learn`` names
    (all of them for DIET; ``("weight",)`` freezes leaks and thresholds)."""
    return [key for key, spec in net.specs.items() if spec.kind in cfg.learn]


def train_step(net, params, opt, x, y, *, cfg, rng, lr):
    """One step of DIET training (or ANN training in mode 'ann').

    Returns ``(loss, correct)`` as 0-d device arrays; nothing is synchronised.
    """
    logits, trace = net.forward(params, x, train=True, T=cfg.T, mode=cfg.mode, rng=rng,
                                surrogate=cfg.surrogate, dropout=cfg.dropout, check=False,
                                encoding=cfg.encoding)
    loss, dlogits = softmax_cross_entropy(logits, y, check=False)   # labels checked per run
    grads = net.backward(params, dlogits, trace)
    keys = trained_keys(net, cfg)
    if cfg.clip_norm:
        clip_grad_norm({k: grads[k] for k in keys}, cfg.clip_norm)
    opt.step({k: params[k] for k in keys}, {k: grads[k] for k in keys}, lr=lr)
    if cfg.mode == "snn":
        clamp_neuron_params(params)                     # Eq. 15
    return loss, (logits.argmax(axis=1) == y).sum()


@dataclass
class Evaluation:
    accuracy: float
    loss: float
    images: int
    T: int
    mode: str
    spike_rates: dict          # layer -> spikes per neuron over all T (SNN only)
    top5: float | None = None  # the label among the 5 highest outputs (over 5 classes only)

    def at_chance(self, num_classes) -> bool:
        """True when the accuracy is under 1.5x chance (:func:`diet_np.errors.chance_level`)."""
        return self.accuracy < chance_level(num_classes)

    def summary(self, net=None):
        d = {"accuracy": self.accuracy, "loss": self.loss, "images": self.images, "T": self.T,
             "mode": self.mode, "spike_rates": self.spike_rates}
        if self.top5 is not None:
            d["top5_accuracy"] = self.top5
        if self.spike_rates and net is not None:
            d["network_spike_rate"], d["mean_layer_spike_rate"] = network_spike_rate(net, self.spike_rates)
        return d


def eval_batch(batch_size, T):
    """The batch :func:`evaluate` runs at T: for T > 5 it shrinks so that T * batch
    stays at most 5 * ``batch_size``."""
    return max(1, batch_size * 5 // T) if T > 5 else batch_size


def evaluate(net, params, x, y, dataset, *, T, mode, xp, batch_size=256, show_progress=True,
             desc="evaluate", surrogate="triangle", encoding=None, seed=0):
    """Accuracy (and top-5 accuracy for more than 5 classes), mean loss and per-layer
    spike rates on (x, y) (host uint8 images), normalised with ``dataset.mean`` /
    ``dataset.std``.  ``encoding``: the input
    encoding (None: the network's); rate-coded spikes are drawn from ``seed``.

    For T > 5 the batch shrinks so that T * batch stays at most 5 * batch_size:
    the multi-step forward keeps every step's potentials, so memory grows with T.
    """
    net.validate(params, None, T, mode)
    check_labeled_images(x, y, net.num_classes, desc, net.input_shape)
    batch_size = eval_batch(batch_size, T)
    check_fits(net, min(batch_size, len(x)), T, xp, training=False, what=f"{desc} at T={T}")
    loss_sum = correct = top5 = 0
    counts = {}
    rng = default_rng(xp, seed)          # rate-coded input only; dropout is off here
    bar = progress(iterate_batches(x, y, batch_size, xp, shuffle=False, mean=dataset.mean,
                                   std=dataset.std),
                   total=num_batches(len(x), batch_size), desc=desc, enabled=show_progress)
    for xb, yb in bar:
        xb = xb.astype(params[next(iter(params))].dtype, copy=False)
        logits, trace = net.forward(params, xb, train=False, T=T, mode=mode, check=False,
                                    surrogate=surrogate, rng=rng, encoding=encoding)
        loss, _ = softmax_cross_entropy(logits, yb, check=False)
        loss_sum = loss_sum + loss * len(yb)
        correct = correct + (logits.argmax(axis=1) == yb).sum()
        if net.num_classes > 5:      # fewer than 5 outputs score above the label's
            label = xp.take_along_axis(logits, yb[:, None], axis=1)
            top5 = top5 + ((logits > label).sum(axis=1) < 5).sum()
        for k, v in trace.spike_counts.items():
            counts[k] = counts.get(k, 0) + v
    n = len(x)
    rates = spike_rates(net, {k: float(v) for k, v in counts.items()}, n) if mode == "snn" else {}
    return Evaluation(float(correct) / n, float(loss_sum) / n, n, T, mode, rates,
                      float(top5) / n if net.num_classes > 5 else None)


#: Losses are read back to the host (one sync) every this many steps, to stop at
#: the first non-finite one without a sync per step on a GPU.
CHECK_EVERY = 10

#: Settings a resumed run may change, and what the change does; any other
#: difference from the stored configuration is refused.
RESUMABLE = {
    "epochs": "extends the run: the schedule is recomputed over the new total; the epochs "
              "already trained keep the rates they ran at (see log.jsonl)",
    "eval_batch_size": "changes only how the test set is batched",
}


@dataclass
class Run:
    """A training run in progress, as :func:`start_run` sets it up."""
    dir: str
    cfg: TrainConfig
    arch: str
    data: dict             # model_file.data_record of the training data
    origin: dict           # where the starting parameters came from
    opt: object
    schedule: object
    start: int             # epochs finished before this call
    history: list          # one record per finished epoch (log.jsonl holds the same)
    log: RunLog

    @property
    def checkpoint(self) -> str:
        return os.path.join(self.dir, CHECKPOINT)

    def last_good(self) -> str:
        """Where a stopped run left its last good state, for error messages."""
        if not self.history:
            return "No checkpoint had been written yet."
        return (f"The last good checkpoint, after epoch {len(self.history)}, is left as it was "
                f"in {self.checkpoint}.")


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _schedule(cfg):
    """The run's rate schedule; its warm-up takes at most half the epochs, so that a
    short run of a warm-up recipe still has its schedule."""
    warmup = min(cfg.warmup_epochs, cfg.epochs // 2)
    return make_schedule(cfg.schedule, cfg.lr, cfg.epochs, warmup, **(
        {"milestones": tuple(cfg.milestones)} if cfg.schedule == "step" else {}))


def _check_same_run(ckpt, arch, cfg, data) -> None:
    if ckpt.config is None:
        raise RunError(f"{ckpt.path} holds a model that was not trained by a run (converted or "
                       "imported): there is nothing to resume")
    problems = []
    if ckpt.arch != arch:
        problems.append(f"architecture {ckpt.arch!r} in the checkpoint, {arch!r} here")
    if ckpt.kind != cfg.mode:
        problems.append(f"it is an {ckpt.kind.upper()} run, this is an {cfg.mode.upper()} run")
    problems += data_conflicts(ckpt.data, data)
    if not problems and ckpt.data["fingerprint"] != data["fingerprint"]:
        problems.append(f"its training images differ from these (fingerprint "
                        f"{ckpt.data['fingerprint']} vs {data['fingerprint']}: another copy?)")
    if problems:
        raise RunError(f"cannot resume {ckpt.path}: " + "; ".join(problems))


def _resumed_config(stored: TrainConfig, cfg: TrainConfig, done: int, path) -> TrainConfig:
    changed = [f.name for f in dataclasses.fields(cfg)
               if getattr(cfg, f.name) != getattr(stored, f.name)]
    refused = [n for n in changed if n not in RESUMABLE]
    if refused:
        diff = ", ".join(f"{n} {getattr(stored, n)!r} -> {getattr(cfg, n)!r}" for n in refused)
        raise RunError(f"cannot resume {path} with other settings ({diff}): a resumed run "
                       "continues the stored one; resume without them, or start a new run "
                       "(another --out, or --overwrite)")
    if cfg.epochs < done:
        raise RunError(f"{path} has trained {done} epochs already; --epochs {cfg.epochs} "
                       "would end it before that")
    for n in changed:
        _note(f"resuming {path}: {n} {getattr(stored, n)!r} -> {getattr(cfg, n)!r} "
              f"({RESUMABLE[n]})")
    return cfg


def start_run(net, params, dataset, cfg: TrainConfig, run_dir, *, arch, xp, resume=False,
              overwrite=False, origin=None, finished="error") -> Run:
    """Set up a run in ``run_dir``: a new one, or (``resume``) the one whose
    checkpoint is there, after checking it is the same run.

    A resumed run must have the same architecture, kind, data set and subset;
    of the settings only those in :data:`RESUMABLE` may differ (said on stderr).
    Its parameters and optimiser state are loaded into ``params`` and the run's
    ``log.jsonl`` is rewritten from the checkpoint's history, so the two agree
    whatever point an interruption hit.  A run that has finished its epochs is
    an error (``finished="error"``) or is returned as it is (``"load"``).
    Without ``resume``, an existing run in the folder is replaced only with
    ``overwrite``.
    """
    cfg.validate()
    for split in ("train", "test"):
        check_labeled_images(getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}"),
                             net.num_classes, f"{dataset.name} {split}", net.input_shape)
    check_fits(net, min(cfg.batch_size, len(dataset.x_train)), cfg.T, xp, training=True,
               what=f"batch size {cfg.batch_size} at T={cfg.T}")
    run_dir = prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    log = RunLog(os.path.join(run_dir, LOG))
    data = data_record(dataset)
    ckpt_path = os.path.join(run_dir, CHECKPOINT)
    start, history, origin, state = 0, [], dict(origin or {}), None
    if resume and os.path.exists(ckpt_path):
        ckpt = read_model(ckpt_path, xp)
        _check_same_run(ckpt, arch, cfg, data)
        cfg = _resumed_config(TrainConfig.from_dict(ckpt.config), cfg, ckpt.epoch, ckpt_path)
        check_compatible(ckpt.params, net.param_shapes(), what=ckpt_path)
        bad = first_non_finite(ckpt.optimizer_state or {}, "optimiser state")
        if bad is not None:
            raise RunError(f"cannot resume {ckpt_path}: {bad} holds non-finite values")
        for k, v in ckpt.params.items():
            params[k][...] = v
        start, history, origin = ckpt.epoch, list(ckpt.history), ckpt.origin
        state = ckpt.optimizer_state
        if start == cfg.epochs and finished == "error":
            raise RunError(f"the run in {run_dir} has finished its {start} epochs; pass a "
                           "larger --epochs to extend it")
        _note(f"resumed {ckpt_path} after epoch {start} of {cfg.epochs}")
    elif resume:
        _note(f"no checkpoint in {run_dir} yet: the run starts at epoch 1")
    if start == 0 and cfg.lsuv_images:
        # By index, not by slice: an image folder's slice is another lazy folder, its
        # indexed images are decoded arrays.
        first = np.arange(min(cfg.lsuv_images, len(dataset.x_train)))
        images = normalize(dataset.x_train[first], dataset.mean, dataset.std)
        factors = lsuv_init(net, params, to_device(images, xp))
        _note(f"LSUV on the first {len(images)} training images: weights x "
              + " ".join(f"{f:.3g}" for f in factors.values()))
    opt = run_optimizer(cfg, engine=get_engine(net.engine).name)
    if state is not None:
        opt.load_state_dict(state)
    if resume and (history or os.path.exists(log.path)):
        with writing(log.path):
            log.rewrite(history)
    return Run(run_dir, cfg, arch, data, origin, opt, _schedule(cfg), start, history, log)


def _check_losses(losses, first_step, epoch, n, lr, run) -> None:
    xp = array_module(losses[0])
    finite = to_host(xp.isfinite(xp.stack(losses)))
    if not finite.all():
        k = int(np.argmin(finite))
        raise DivergenceError(
            f"training diverged: the loss is {float(to_host(losses[k]))} at epoch {epoch + 1}, "
            f"step {first_step + k + 1} of {n} (learning rate {lr:g}: too high for this "
            f"network?). {run.last_good()}")


def train_epoch(net, params, run: Run, dataset, epoch, xp, show_progress=True) -> dict:
    """Train ``params`` for epoch ``epoch`` (from 0); return the epoch's record so far
    (rate used, training loss and accuracy, seconds).  Stops with
    :class:`DivergenceError` at the first non-finite loss."""
    cfg = run.cfg
    n = num_batches(len(dataset.x_train), cfg.batch_size)
    per_step = run.schedule.per_step
    lr = run.schedule.lr_at(epoch + 0.5 / n if per_step else epoch)   # the epoch's first rate
    host_rng = np.random.default_rng([cfg.seed, epoch])
    dropout_rng = default_rng(xp, cfg.seed * 1_000_003 + epoch)
    dtype = params[next(iter(params))].dtype
    batches = iterate_batches(dataset.x_train, dataset.y_train, cfg.batch_size, xp,
                              shuffle=True, rng=host_rng, augment=cfg.augment,
                              mean=dataset.mean, std=dataset.std)
    bar = progress(batches, total=n, desc=f"{cfg.mode} epoch {epoch + 1}/{cfg.epochs}",
                   enabled=show_progress)
    tic = time.perf_counter()
    loss_sum = correct = 0
    seen = 0
    pending = []
    for i, (xb, yb) in enumerate(bar):
        step_lr = run.schedule.lr_at(epoch + (i + 0.5) / n) if per_step else lr
        loss, right = train_step(net, params, run.opt, xb.astype(dtype, copy=False), yb,
                                 cfg=cfg, rng=dropout_rng, lr=step_lr)
        loss_sum = loss_sum + loss * len(yb)
        correct = correct + right
        seen += len(yb)
        pending.append(loss)
        if len(pending) == CHECK_EVERY or i == n - 1:      # the only syncs of the loop
            _check_losses(pending, i + 1 - len(pending), epoch, n, lr, run)
            pending = []
            if show_progress:
                bar.set_postfix(loss=float(loss_sum) / seen, acc=float(correct) / seen)
    if pending:
        _check_losses(pending, n - len(pending), epoch, n, lr, run)
    return {"epoch": epoch + 1, "lr": lr, "train_loss": float(loss_sum) / seen,
            "train_acc": float(correct) / seen, "train_seconds": time.perf_counter() - tic}


def end_epoch(net, params, run: Run, dataset, record, xp, show_progress=True) -> dict:
    """Test, then checkpoint and log the epoch of ``record`` (from :func:`train_epoch`).

    Non-finite parameters or optimiser state stop the run before anything is
    written; a network still at chance after ``chance_epochs`` epochs stops it
    after its checkpoint is written.  Returns the completed record.
    """
    cfg, epoch = run.cfg, record["epoch"]
    bad = first_non_finite(params) or first_non_finite(run.opt.state_dict(), "optimiser state")
    if bad is not None:
        raise DivergenceError(f"training diverged: {bad} holds non-finite values after epoch "
                              f"{epoch} (learning rate {record['lr']:g}: too high for this "
                              f"network?). {run.last_good()}")
    test = evaluate(net, params, dataset.x_test, dataset.y_test, dataset, T=cfg.T,
                    mode=cfg.mode, xp=xp, batch_size=cfg.eval_batch_size,
                    show_progress=show_progress, desc="  test", surrogate=cfg.surrogate,
                    encoding=cfg.encoding)
    seconds = record.pop("train_seconds")
    record.update(test_loss=test.loss, test_acc=test.accuracy, train_seconds=seconds)
    if test.top5 is not None:
        record["test_top5"] = test.top5
    if cfg.mode == "snn":
        record["leaks"] = {n: float(params[f"{n}.leak"]) for n in net.neurons}
        record["thresholds"] = {n: float(params[f"{n}.threshold"]) for n in net.neurons}
        record["spike_rate"] = network_spike_rate(net, test.spike_rates)[0]
    run.history.append(record)
    with writing(run.checkpoint):
        write_model(run.checkpoint, params, arch=run.arch, kind=cfg.mode, T=cfg.T,
                    data=run.data, epoch=epoch, config=cfg.to_dict(), history=run.history,
                    origin=run.origin, optimizer_state=run.opt.state_dict())
    with writing(run.log.path):
        run.log.append(record)
    curves = os.path.join(run.dir, CURVES)
    with writing(curves):
        plot_curves(run.history, curves)
    print(f"{cfg.mode} epoch {epoch}/{cfg.epochs}: lr {record['lr']:.3g} | train loss "
          f"{record['train_loss']:.4f} acc {record['train_acc']:.4f} | test acc "
          f"{test.accuracy:.4f}" + ("" if test.top5 is None else f" top-5 {test.top5:.4f}")
          + f" | {seconds:.1f}s", flush=True)
    if epoch == cfg.chance_epochs and test.at_chance(net.num_classes):
        raise ChanceLevelError(
            f"{cfg.mode.upper()} test accuracy {test.accuracy:.4f} after {epoch} epochs is at "
            f"chance level (under {chance_level(net.num_classes):.3f} for {net.num_classes} "
            f"classes): the network is not learning, so the run stops here (its checkpoint is "
            f"in {run.dir}). Check the learning rate and the architecture's recipe "
            "(diet_np/recipes.py).")
    return record


def fit(net, params, dataset, cfg: TrainConfig, run_dir, *, arch, xp, resume=False,
        overwrite=False, show_progress=True, origin=None, finished="error",
        stop_after_epochs=None):
    """Train ``params`` in place for ``cfg.epochs`` epochs, checkpointing each one:
    :func:`start_run`, then :func:`train_epoch` and :func:`end_epoch` per epoch.

    ``origin`` (a JSON-able dict) is stored in every checkpoint: where the
    starting parameters came from.  ``stop_after_epochs`` ends the call early
    (to test resuming).  Returns the run's per-epoch records.
    """
    run = start_run(net, params, dataset, cfg, run_dir, arch=arch, xp=xp, resume=resume,
                    overwrite=overwrite, origin=origin, finished=finished)
    for epoch in range(run.start, run.cfg.epochs):
        if stop_after_epochs is not None and epoch - run.start >= stop_after_epochs:
            break
        record = train_epoch(net, params, run, dataset, epoch, xp, show_progress)
        end_epoch(net, params, run, dataset, record, xp, show_progress)
    return list(run.history)
