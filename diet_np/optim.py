"""Hand-written optimisers and the neuron-parameter clamp of Eq. 15.

Eq. 15 updates every learnable parameter theta in {W_l, lambda_l, v_l} with an
optimiser step and then clamps the neuron parameters (:func:`clamp_neuron_params`).

Parameters are a plain ``dict[str, array]`` (NumPy, CuPy or the strict device);
gradients are a dict with the same keys and shapes.  Every update is done **in
place** on the parameter arrays, so references held by the network stay valid,
and everything stays on the arrays' device (no host synchronisation).

The update formulas are PyTorch's (``torch.optim.SGD`` / ``torch.optim.Adam``):

* coupled L2 weight decay: ``g = grad + weight_decay * p``;
* SGD momentum: ``b = g`` on the first step, then ``b = momentum * b + g``;
  the step uses ``b`` (or ``g + momentum * b`` with Nesterov);
* Adam: ``m = b1 m + (1-b1) g``, ``s = b2 s + (1-b2) g^2``, bias corrections
  ``1 - b1^t`` and ``1 - b2^t``; with AMSGrad the running maximum of ``s`` is used
  in the denominator.

**Weight decay applies only to ``.weight`` keys, never to ``.leak`` or
``.threshold``**: decaying lambda_l and v_l towards zero would silence the network
(the reason DIET fine-tuning uses no weight decay at all).

``neuron_lr_factor`` (default 1, the paper's single learning rate) multiplies
the learning rate of the ``.leak`` and ``.threshold`` keys only: a documented
option of ours, since at the paper's rate the leaks hardly move.
"""
from __future__ import annotations

import inspect
import math

import numpy as np

from .backend import array_module
from .engine import ENGINES
from .errors import ConfigError, ParameterError, ParameterTypeError
from .fast.adam import adam_update
from .fast.parallel import pool_scope

WEIGHT_SUFFIX = ".weight"
LEAK_SUFFIX = ".leak"
THRESHOLD_SUFFIX = ".threshold"


# --------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------
def _check_real(name: str, value, low=None, high=None, low_open=False, high_open=False) -> float:
    """Return ``value`` as a Python float, or raise ConfigError (a ValueError) naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        bound = "(" if low_open else "["
        hi = "inf" if high is None else high
        close = ")" if high_open or high is None else "]"
        raise ConfigError(f"{name} must lie in {bound}{low}, {hi}{close}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        bound = "(" if low_open else "["
        lo = "-inf" if low is None else low
        close = ")" if high_open else "]"
        raise ConfigError(f"{name} must lie in {bound}{lo}, {high}{close}, got {value}")
    return value


def _check_lr(lr) -> float:
    return _check_real("learning rate lr", lr, low=0.0)


def check_grads(params: dict, grads: dict) -> None:
    """Raise a clear error unless ``grads`` has exactly ``params``' keys and shapes.

    Also checks that each gradient lives on the same backend as its parameter.
    """
    if not isinstance(params, dict) or not isinstance(grads, dict):
        raise ParameterTypeError("params and grads must both be dicts of arrays, got "
                                 f"{type(params).__name__} and {type(grads).__name__}")
    missing = [k for k in params if k not in grads]
    if missing:
        raise ParameterError(f"no gradient for parameter {missing[0]!r}"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    extra = [k for k in grads if k not in params]
    if extra:
        raise ParameterError(f"gradient {extra[0]!r} has no matching parameter"
                             + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    for k, p in params.items():
        g = grads[k]
        if tuple(g.shape) != tuple(p.shape):
            raise ParameterError(f"gradient for {k!r} has shape {tuple(g.shape)} but the "
                                 f"parameter has shape {tuple(p.shape)}")
        array_module(p, g)  # raises BackendError naming both libraries when mixed


def _zeros_like(p):
    """A fresh zero buffer on ``p``'s device (a real array even when ``p`` is 0-d)."""
    return array_module(p).zeros(p.shape, dtype=p.dtype)


def _with_decay(key: str, p, g, weight_decay: float):
    """Coupled L2 decay, only for ``.weight`` keys (never leaks or thresholds)."""
    if weight_decay != 0.0 and key.endswith(WEIGHT_SUFFIX):
        return g + weight_decay * p
    return g


class _Optimizer:
    """Shared bookkeeping: step count, lr override, state (de)serialisation."""

    kind = ""
    _buffers: tuple[str, ...] = ()

    def __init__(self, lr, neuron_lr_factor=1.0):
        self.lr = _check_lr(lr)
        self.neuron_lr_factor = _check_real("neuron_lr_factor", neuron_lr_factor, low=0.0,
                                            low_open=True)
        self.step_count = 0
        self.state: dict[str, dict[str, object]] = {}

    def _resolve_lr(self, lr) -> float:
        return self.lr if lr is None else _check_lr(lr)

    def _factor(self, key: str) -> float:
        """The learning-rate multiplier of parameter ``key`` (leaks and thresholds
        take ``neuron_lr_factor``, weights 1)."""
        neuron = key.endswith((LEAK_SUFFIX, THRESHOLD_SUFFIX))
        return self.neuron_lr_factor if neuron else 1.0

    def _buffer(self, key: str, name: str, p):
        """The state buffer ``name`` of parameter ``key``, checked against ``p``."""
        slot = self.state.setdefault(key, {})
        buf = slot.get(name)
        if buf is None:
            buf = slot[name] = _zeros_like(p)
        elif tuple(buf.shape) != tuple(p.shape):
            raise ParameterError(f"optimiser state {name!r} of {key!r} has shape "
                                 f"{tuple(buf.shape)} but the parameter has shape {tuple(p.shape)}"
                                 " (state from another model?)")
        else:
            array_module(p, buf)
        return buf

    def _hyper(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        """A copy of the state: ``kind``, ``step`` and hyper-parameters (plain
        scalars) and ``state`` = ``{param key: {buffer name: array}}`` (arrays
        copied on their own device)."""
        return {
            "kind": self.kind,
            "step": self.step_count,
            "lr": self.lr,
            **self._hyper(),
            "state": {k: {n: b.copy() for n, b in slot.items()} for k, slot in self.state.items()},
        }

    def load_state_dict(self, d: dict) -> None:
        """Restore the step count and the per-parameter buffers (copied).

        Hyper-parameters come from the constructor (the run's config decides them);
        the saved ones are only checked where the buffers depend on them.
        """
        if not isinstance(d, dict) or "kind" not in d or "state" not in d:
            raise ParameterError("not an optimiser state dict (needs 'kind', 'step' and 'state')")
        if d["kind"] != self.kind:
            raise ParameterError(f"cannot load a {d['kind']!r} optimiser state into {self.kind!r}")
        self._check_loaded(d)
        step = d.get("step")
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ParameterError(f"optimiser state has an invalid step count {step!r}")
        state = {}
        for key, slot in d["state"].items():
            if not isinstance(slot, dict):
                raise ParameterError(f"optimiser state for {key!r} must be a dict of arrays")
            unknown = set(slot) - set(self._buffers)
            if unknown:
                raise ParameterError(f"optimiser state for {key!r} has unknown buffers "
                                     f"{sorted(unknown)}; a {self.kind} optimiser keeps "
                                     f"{list(self._buffers)}")
            state[key] = {n: b.copy() for n, b in slot.items()}
        self.step_count = int(step)
        self.state = state

    def _check_loaded(self, d: dict) -> None:
        pass

    def step(self, params: dict, grads: dict, lr=None) -> None:  # pragma: no cover
        raise NotImplementedError


class SGD(_Optimizer):
    """Stochastic gradient descent with (Nesterov) momentum, PyTorch's formulas.

    Used for the ANN before conversion (momentum 0.9, weight decay 5e-4).  Weight
    decay is applied only to ``.weight`` parameters, never to leaks or thresholds.
    """

    kind = "sgd"
    _buffers = ("momentum_buffer",)

    def __init__(self, lr, momentum=0.9, weight_decay=0.0, nesterov=False, neuron_lr_factor=1.0):
        super().__init__(lr, neuron_lr_factor)
        self.momentum = _check_real("momentum", momentum, low=0.0, high=1.0, high_open=True)
        self.weight_decay = _check_real("weight_decay", weight_decay, low=0.0)
        if not isinstance(nesterov, bool):
            raise ConfigError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and self.momentum == 0.0:
            raise ConfigError("Nesterov momentum needs momentum > 0")
        self.nesterov = nesterov

    def _hyper(self):
        return {"momentum": self.momentum, "weight_decay": self.weight_decay,
                "nesterov": self.nesterov}

    def step(self, params: dict, grads: dict, lr=None) -> None:
        """One in-place update of every parameter (Eq. 15's optimiser step)."""
        lr = self._resolve_lr(lr)
        check_grads(params, grads)
        first = {k: "momentum_buffer" not in self.state.get(k, {}) for k in params}
        for key, p in params.items():
            g = _with_decay(key, p, grads[key], self.weight_decay)
            if self.momentum != 0.0:
                buf = self._buffer(key, "momentum_buffer", p)
                if first[key]:
                    buf[...] = g
                else:
                    buf *= self.momentum
                    buf += g
                g = g + self.momentum * buf if self.nesterov else buf
            p -= lr * self._factor(key) * g
        self.step_count += 1


class Adam(_Optimizer):
    """Adam / AMSGrad with bias correction, PyTorch's formulas.

    DIET fine-tuning uses ``Adam(1e-4, amsgrad=True)`` without weight decay.  Any
    weight decay given is coupled L2 on ``.weight`` parameters only, never on
    leaks or thresholds.  ``engine``: ``"reference"`` runs :meth:`_update` on
    whole arrays, ``"fast"`` (the default) :func:`diet_np.fast.adam.adam_update`,
    the same passes in cache-sized blocks on the CPU pool.
    """

    kind = "adam"
    _buffers = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 engine="fast", neuron_lr_factor=1.0):
        super().__init__(lr, neuron_lr_factor)
        if engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
        self.engine = engine
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise ConfigError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
        self.beta1 = _check_real("betas[0]", b1, low=0.0, high=1.0, high_open=True)
        self.beta2 = _check_real("betas[1]", b2, low=0.0, high=1.0, high_open=True)
        self.eps = _check_real("eps", eps, low=0.0, low_open=True)
        self.weight_decay = _check_real("weight_decay", weight_decay, low=0.0)
        if not isinstance(amsgrad, bool):
            raise ConfigError(f"amsgrad must be True or False, got {amsgrad!r}")
        self.amsgrad = amsgrad

    @property
    def betas(self) -> tuple[float, float]:
        return (self.beta1, self.beta2)

    def _scratch_like(self, p):
        """A work buffer shaped like ``p``, reused across parameters and steps (large
        fresh allocations cost page faults on every step)."""
        xp = array_module(p)
        buf = getattr(self, "_scratch", None)
        if buf is None or buf.size < p.size or buf.dtype != p.dtype or array_module(buf) is not xp:
            buf = self._scratch = xp.empty(max(p.size, 1), dtype=p.dtype)
        return buf[:p.size].reshape(p.shape)

    def _hyper(self):
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay, "amsgrad": self.amsgrad}

    def _check_loaded(self, d):
        has_max = any("max_exp_avg_sq" in slot for slot in d["state"].values())
        saved = bool(d.get("amsgrad", has_max))
        if saved != self.amsgrad:
            raise ParameterError(f"optimiser state was saved with amsgrad={saved} but this "
                                 f"Adam has amsgrad={self.amsgrad}")

    def step(self, params: dict, grads: dict, lr=None) -> None:
        """One in-place update of every parameter (Eq. 15's optimiser step)."""
        lr = self._resolve_lr(lr)
        check_grads(params, grads)
        t = self.step_count + 1
        step_size = lr / (1.0 - self.beta1 ** t)
        bc2_sqrt = math.sqrt(1.0 - self.beta2 ** t)
        for key, p in params.items():
            g = _with_decay(key, p, grads[key], self.weight_decay)
            m = self._buffer(key, "exp_avg", p)
            s = self._buffer(key, "exp_avg_sq", p)
            s_max = self._buffer(key, "max_exp_avg_sq", p) if self.amsgrad else None
            size = step_size * self._factor(key)
            if self.engine == "fast":
                adam_update(p, g, m, s, s_max, self._scratch_like(p), self.beta1, self.beta2,
                            self.eps, size, bc2_sqrt)
            else:
                self._update(p, g, m, s, s_max, size, bc2_sqrt)
        self.step_count = t

    def _update(self, p, g, m, s, s_max, step_size, bc2_sqrt):
        """Eq. 15's optimiser step by Adam's formulas on whole arrays, in place on
        p, m, s (and s_max):

            m = b1 m + (1 - b1) g,   s = b2 s + (1 - b2) g^2,   s_max = max(s_max, s)
            p -= lr / (1 - b1^t) * m / (sqrt(s) / sqrt(1 - b2^t) + eps)
        """
        xp = array_module(p)
        m[...] = self.beta1 * m + (1.0 - self.beta1) * g
        s[...] = self.beta2 * s + (1.0 - self.beta2) * (g * g)
        if s_max is not None:                                        # AMSGrad
            s_max[...] = xp.maximum(s_max, s)
            s = s_max
        p -= m / (xp.sqrt(s) / bc2_sqrt + self.eps) * step_size


_OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def make_optimizer(name: str, lr, engine=None, **kw):
    """Build an optimiser by name: ``"sgd"``, ``"adam"`` or ``"amsgrad"``
    (Adam with ``amsgrad=True``).  Keyword arguments go to the constructor.
    ``engine`` (``"reference"`` or ``"fast"``; None: Adam's default) picks Adam's
    update; SGD's is one plain path under either."""
    if engine is not None and engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if not isinstance(name, str):
        raise ConfigError(f"optimiser name must be a string, got {name!r}")
    key = name.strip().lower()
    if key == "amsgrad":
        if kw.get("amsgrad") is False:
            raise ConfigError("optimiser 'amsgrad' cannot take amsgrad=False")
        key, kw = "adam", {**kw, "amsgrad": True}
    if key not in _OPTIMIZERS:
        raise ConfigError(f"unknown optimiser {name!r}; expected one of sgd, adam, amsgrad")
    cls = _OPTIMIZERS[key]
    allowed = [a for a in inspect.signature(cls).parameters if a not in ("lr", "engine")]
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise ConfigError(f"optimiser {name!r} got unknown argument(s) {', '.join(unknown)}; "
                          f"it takes {', '.join(allowed)}")
    if engine is not None and cls is Adam:
        kw["engine"] = engine
    return cls(lr, **kw)


def clamp_neuron_params(params: dict, min_threshold: float = 1e-3) -> None:
    """Eq. 15's clamp after each step, in place and on the arrays' device.

    ``.leak``: 0 <= lambda_l <= 1 (the authors clamp only from above; the lower
    bound is our documented safety).  ``.threshold``: v_l >= ``min_threshold``
    (a safety, so that z = u / v - 1 stays defined).  Weights are untouched.
    """
    min_threshold = _check_real("min_threshold", min_threshold, low=0.0, low_open=True)
    for key, p in params.items():
        if key.endswith(LEAK_SUFFIX):
            array_module(p).clip(p, 0.0, 1.0, out=p)
        elif key.endswith(THRESHOLD_SUFFIX):
            array_module(p).maximum(p, min_threshold, out=p)


def clip_grad_norm(grads: dict, max_norm: float):
    """Scale ``grads`` in place so that their global L2 norm is at most ``max_norm``.

    The norm is taken over all arrays together, ``sqrt(sum_k ||g_k||^2)``; when it
    exceeds ``max_norm`` every gradient is multiplied by ``max_norm / norm`` (one
    direction kept, its length capped), as ``torch.nn.utils.clip_grad_norm_``
    does.  Returns the norm before clipping as a 0-d device array (no host sync).
    """
    max_norm = _check_real("max_norm", max_norm, low=0.0, low_open=True)
    arrays = list(grads.values())
    xp = array_module(*arrays)
    with pool_scope(xp):                       # OpenBLAS one thread, as in every pass
        norm = xp.sqrt(sum(xp.vdot(g.ravel(), g.ravel()) for g in arrays))
    factor = xp.minimum(xp.asarray(1.0, dtype=norm.dtype), max_norm / (norm + 1e-6))
    for g in arrays:
        g *= factor.astype(g.dtype)
    return norm
