"""Training and evaluation loops for the ANN and for DIET fine-tuning of the SNN.

One training step is: forward over T (Eq. 2-6), the loss (Eq. 7), BPTT (Eq.
9-14), the optimiser step and the clamp (Eq. 15).  Nothing in the step reads a
value back to the host; the loop synchronises only when it logs.

Every epoch ends with a checkpoint written atomically (parameters, optimiser
state, configuration and the number of finished epochs).  All randomness of
epoch e (shuffle, augmentation, dropout masks) comes from generators seeded
with (seed, e), so a run resumed from a checkpoint continues exactly as the
uninterrupted run would have (bit-identical on the CPU).
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .backend import array_module, default_rng
from .checkpoint import check_compatible, load_checkpoint, save_checkpoint
from .data import iterate_batches, num_batches
from .host_memory import keep_freed_memory
from .metrics import network_spike_rate, spike_rates
from .ops import softmax_cross_entropy
from .optim import clamp_neuron_params, make_optimizer
from .progress import progress
from .records import RunLog, plot_curves
from .schedules import make_schedule

CHECKPOINT = "checkpoint.npz"
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

    def validate(self):
        """Raise a clear ValueError for an invalid hyper-parameter."""
        checks = [
            (self.mode in ("ann", "snn"), f"mode must be 'ann' or 'snn'; got {self.mode!r}"),
            (_is_int(self.epochs) and self.epochs >= 1, f"epochs must be an integer >= 1; got {self.epochs!r}"),
            (_is_int(self.batch_size) and self.batch_size >= 1,
             f"batch size must be an integer >= 1; got {self.batch_size!r}"),
            (_is_int(self.eval_batch_size) and self.eval_batch_size >= 1,
             f"evaluation batch size must be an integer >= 1; got {self.eval_batch_size!r}"),
            (isinstance(self.lr, (int, float)) and self.lr > 0, f"learning rate must be > 0; got {self.lr!r}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0; got {self.weight_decay!r}"),
            (_is_int(self.T) and self.T >= 1, f"T (timesteps) must be an integer >= 1; got {self.T!r}"),
            (self.mode == "snn" or self.T == 1, "the ANN runs one step: T must be 1 in mode 'ann'"),
            (all(0 <= p < 1 for p in self.dropout.values()),
             f"dropout rates must lie in [0, 1); got {self.dropout}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        d["milestones"] = tuple(d.get("milestones", ()))
        return cls(**d)


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


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


def _optimizer(cfg):
    if cfg.optimizer == "sgd":
        return make_optimizer("sgd", cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return make_optimizer(cfg.optimizer, cfg.lr, weight_decay=cfg.weight_decay, amsgrad=cfg.amsgrad)


def train_step(net, params, opt, x, y, *, cfg, rng, lr):
    """One step of DIET training (or ANN training in mode 'ann').

    Returns ``(loss, correct)`` as 0-d device arrays; nothing is synchronised.
    """
    logits, trace = net.forward(params, x, train=True, T=cfg.T, mode=cfg.mode, rng=rng,
                                surrogate=cfg.surrogate, dropout=cfg.dropout, check=False)
    loss, dlogits = softmax_cross_entropy(logits, y)
    grads = net.backward(params, dlogits, trace)
    opt.step(params, grads, lr=lr)
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

    def summary(self, net=None):
        d = {"accuracy": self.accuracy, "loss": self.loss, "images": self.images, "T": self.T,
             "mode": self.mode, "spike_rates": self.spike_rates}
        if self.spike_rates and net is not None:
            d["network_spike_rate"], d["mean_layer_spike_rate"] = network_spike_rate(net, self.spike_rates)
        return d


def evaluate(net, params, x, y, dataset, *, T, mode, xp, batch_size=256, show_progress=True,
             desc="evaluate", surrogate="triangle"):
    """Accuracy, mean loss and per-layer spike rates on (x, y) (host uint8 images).

    For T > 5 the batch shrinks so that T * batch stays at most 5 * batch_size:
    the multi-step forward keeps every step's potentials, so memory grows with T.
    """
    net.validate(params, None, T, mode)
    if xp is np:
        keep_freed_memory()
    batch_size = max(1, batch_size * 5 // T) if T > 5 else batch_size
    loss_sum = correct = 0
    counts = {}
    bar = progress(iterate_batches(x, y, batch_size, xp, shuffle=False, mean=dataset.mean,
                                   std=dataset.std),
                   total=num_batches(len(x), batch_size), desc=desc, enabled=show_progress)
    for xb, yb in bar:
        xb = xb.astype(params[next(iter(params))].dtype, copy=False)
        logits, trace = net.forward(params, xb, train=False, T=T, mode=mode, check=False,
                                    surrogate=surrogate)
        loss, _ = softmax_cross_entropy(logits, yb)
        loss_sum = loss_sum + loss * len(yb)
        correct = correct + (logits.argmax(axis=1) == yb).sum()
        for k, v in trace.spike_counts.items():
            counts[k] = counts.get(k, 0) + v
    n = len(x)
    rates = spike_rates(net, {k: float(v) for k, v in counts.items()}, n) if mode == "snn" else {}
    return Evaluation(float(correct) / n, float(loss_sum) / n, n, T, mode, rates)


def checkpoint_meta(net, arch, dataset, cfg, epoch, extra=None):
    """What a checkpoint needs to rebuild its network and continue its run."""
    meta = {"arch": arch, "num_classes": net.num_classes, "input_shape": list(net.input_shape),
            "dataset": dataset.name, "kind": cfg.mode, "T": cfg.T, "epoch": epoch,
            "config": cfg.to_dict()}
    meta.update(extra or {})
    return meta


def fit(net, params, dataset, cfg: TrainConfig, run_dir, *, arch, xp, resume=False,
        show_progress=True, meta=None, stop_after_epochs=None):
    """Train ``params`` in place for ``cfg.epochs`` epochs, checkpointing each one.

    With ``resume=True`` and a checkpoint in ``run_dir``, training continues from
    it (its parameters, optimiser state and epoch count; the stored config is
    used).  ``stop_after_epochs`` ends the call early (to test resuming).
    Returns the list of per-epoch records.
    """
    cfg.validate()
    if xp is np:
        keep_freed_memory()
    os.makedirs(run_dir, exist_ok=True)
    ckpt_path = os.path.join(run_dir, CHECKPOINT)
    log = RunLog(os.path.join(run_dir, LOG))
    opt = _optimizer(cfg)
    start = 0
    if resume and os.path.exists(ckpt_path):
        ckpt = load_checkpoint(ckpt_path, xp)
        check_compatible(ckpt.params, net.param_shapes(), what=ckpt_path)
        stored = TrainConfig.from_dict(ckpt.meta["config"])
        if stored != cfg:
            changed = ", ".join(f"{f.name} {getattr(cfg, f.name)!r} -> {getattr(stored, f.name)!r}"
                                for f in dataclasses.fields(cfg)
                                if getattr(cfg, f.name) != getattr(stored, f.name))
            print(f"resuming with the configuration stored in {ckpt_path}, "
                  f"not the one given ({changed})")
            cfg = stored
            opt = _optimizer(cfg)
        for k, v in ckpt.params.items():
            params[k][...] = v
        if ckpt.optimizer_state is not None:
            opt.load_state_dict(ckpt.optimizer_state)
        start = int(ckpt.meta["epoch"])
        log.truncate_after(start)
        print(f"resumed from {ckpt_path} after epoch {start}")
    elif os.path.exists(log.path):
        os.remove(log.path)
    schedule = make_schedule(cfg.schedule, cfg.lr, cfg.epochs, **(
        {"milestones": tuple(cfg.milestones)} if cfg.schedule == "step" else {}))
    dtype = params[next(iter(params))].dtype
    for epoch in range(start, cfg.epochs):
        if stop_after_epochs is not None and epoch - start >= stop_after_epochs:
            break
        lr = schedule.lr_at(epoch)
        host_rng = np.random.default_rng([cfg.seed, epoch])
        dropout_rng = default_rng(xp, cfg.seed * 1_000_003 + epoch)
        tic = time.perf_counter()
        loss_sum = correct = 0
        seen = 0
        batches = iterate_batches(dataset.x_train, dataset.y_train, cfg.batch_size, xp,
                                  shuffle=True, rng=host_rng, augment=cfg.augment,
                                  mean=dataset.mean, std=dataset.std)
        bar = progress(batches, total=num_batches(len(dataset.x_train), cfg.batch_size),
                       desc=f"{cfg.mode} epoch {epoch + 1}/{cfg.epochs}", enabled=show_progress)
        for i, (xb, yb) in enumerate(bar):
            loss, right = train_step(net, params, opt, xb.astype(dtype, copy=False), yb,
                                     cfg=cfg, rng=dropout_rng, lr=lr)
            loss_sum = loss_sum + loss * len(yb)
            correct = correct + right
            seen += len(yb)
            if show_progress and i % 10 == 0:             # the only syncs: for the log line
                bar.set_postfix(loss=float(loss_sum) / seen, acc=float(correct) / seen)
        train_seconds = time.perf_counter() - tic
        test = evaluate(net, params, dataset.x_test, dataset.y_test, dataset, T=cfg.T,
                        mode=cfg.mode, xp=xp, batch_size=cfg.eval_batch_size,
                        show_progress=show_progress, desc="  test", surrogate=cfg.surrogate)
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": float(loss_sum) / seen,
                  "train_acc": float(correct) / seen, "test_loss": test.loss,
                  "test_acc": test.accuracy, "train_seconds": train_seconds}
        if cfg.mode == "snn":
            record["leaks"] = {n: float(params[f"{n}.leak"]) for n in net.neurons}
            record["thresholds"] = {n: float(params[f"{n}.threshold"]) for n in net.neurons}
            record["spike_rate"] = network_spike_rate(net, test.spike_rates)[0]
        save_checkpoint(ckpt_path, params,
                        checkpoint_meta(net, arch, dataset, cfg, epoch + 1,
                                        dict(meta or {}, test_acc=test.accuracy)),
                        opt.state_dict())
        log.append(record)
        plot_curves(log.read(), os.path.join(run_dir, CURVES))
        print(f"{cfg.mode} epoch {epoch + 1}/{cfg.epochs}: train loss {record['train_loss']:.4f} "
              f"acc {record['train_acc']:.4f} | test acc {test.accuracy:.4f} | "
              f"{train_seconds:.1f}s", flush=True)
    return log.read()
