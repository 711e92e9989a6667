"""A DIET network: layers, a parameter dictionary, forward and BPTT backward.

Parameters are a plain ``dict[str, array]``: ``"<layer>.weight"`` for synapses,
``"<layer>.leak"`` and ``"<layer>.threshold"`` (0-d arrays) for each spiking
layer.  :meth:`Network.backward` returns gradients keyed exactly like them.
The same parameters run as an ANN (``mode="ann"``: ReLU neurons, one step) or
as an SNN (``mode="snn"``: LIF neurons over T steps, direct input encoding or,
as a documented option, rate-coded input (:mod:`diet_np.encoding`), the
accumulating output layer of Eq. 6).

Each pass runs one engine (:mod:`diet_np.engine`): ``engine="reference"`` the
plain functions, ``engine="fast"`` (the default) :mod:`diet_np.fast`.  The
trace of a forward pass records the engine, and its backward runs the same.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .backend import array_module, check_float_dtype, require_array, to_device
from .encoding import INPUT, check_encoding, encode, rate_spikes
from .engine import get_engine
from .errors import ParameterError, ParameterKeyError, ParameterTypeError
from .layers import Context, Sequential
from .surrogates import get_surrogate

MODES = ("snn", "ann")
DROPOUT_KINDS = ("conv", "fc")   # the ``kind`` of each :class:`~diet_np.layers.Dropout`


def _check_dropout(dropout) -> dict:
    """A copy of the dropout rates ``{"conv": p, "fc": p}``, each a number in [0, 1)."""
    if not isinstance(dropout, dict):
        raise TypeError(f"dropout must be a dict like {{'conv': 0.2, 'fc': 0.5}}; got "
                        f"{type(dropout).__name__} {dropout!r}")
    for key, rate in dropout.items():
        if key not in DROPOUT_KINDS:
            raise ValueError(f"unknown dropout key {key!r} (rate {rate!r}); the keys are "
                             f"{', '.join(map(repr, DROPOUT_KINDS))}")
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise ValueError(f"dropout[{key!r}] is {rate!r}; a dropout rate must be a number "
                             "in [0, 1)")
    return dict(dropout)


class StopStep(Exception):
    """Raised by an ``observe`` callback of :meth:`Network.forward_stepwise` to end
    the current timestep early (the layers after the observed one are skipped)."""


@dataclass
class Trace:
    """What a forward pass leaves for the backward pass and for metrics.

    ``spike_counts`` maps each spiking layer to its total number of spikes over
    all T steps and the whole batch (a 0-d device array: reading it syncs).
    ``engine`` is the :class:`~diet_np.engine.Engine` the forward ran, its
    settings filled in; the backward runs it too.
    """
    mode: str
    T: int
    batch: int
    caches: list
    spike_counts: dict
    engine: object


INITS = ("spec", "kaiming-in")


class Network:
    """A network built from layers; see :mod:`diet_np.architectures` for VGG/ResNet.

    ``dropout`` gives the default rates ``{"conv": p, "fc": p}`` used in training
    mode; a forward call may override them (the ANN and the SNN of the paper use
    different rates on the same layers).  ``engine`` (an attribute too) is the
    default engine of this network's passes: ``"reference"``, ``"fast"``, an
    :class:`~diet_np.engine.Engine`, or None for ``"fast"``.  ``encoding`` (an
    attribute too) is the default input encoding of its SNN passes: ``"direct"``
    (the paper's) or ``"rate"`` (:mod:`diet_np.encoding`).
    """

    def __init__(self, layers, input_shape, num_classes, name="network", dropout=None,
                 engine=None, encoding="direct"):
        self.name = name
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.body = layers if isinstance(layers, Sequential) else Sequential(layers)
        out = self.body.build(self.input_shape, None)
        if out != (num_classes,):
            raise ValueError(f"{name}: the last layer gives {out}, expected ({num_classes},)")
        self.specs = self.body.param_specs()
        self.neurons = self.body.neurons()
        self.dropout = dict(dropout or {"conv": 0.0, "fc": 0.0})
        self.engine = engine
        self.encoding = check_encoding(encoding)

    # -- parameters ---------------------------------------------------------
    def init_params(self, seed=0, xp=np, dtype=np.float32, init="spec") -> dict:
        """Fresh parameters; leak 1 and threshold 1 (conversion sets the thresholds).

        ``init="spec"`` (the default): the spec's and the authors' weights, conv
        N(0, sqrt(2/(k*k*C_out))), linear N(0, 0.01).  ``init="kaiming-in"``:
        N(0, sqrt(2/fan_in)) for every conv and hidden linear weight and
        N(0, sqrt(1/fan_in)) for the output layer (no ReLU after it), with fan_in
        the inputs of one output unit.  The ANN recipes of :mod:`diet_np.recipes`
        use ``kaiming-in`` for the deep nets: from the spec's init VGG16 at 1/4 width
        (no dropout, Adam lr 1e-4, 300 steps of batch 64) reached loss 2.066 and 21%
        test accuracy, from Kaiming's 1.890 and 35%.
        """
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}; got {init!r}")
        rng = np.random.default_rng(seed)
        readout = f"{self.body.layers[-1].name}.weight"
        params = {}
        for key, spec in self.specs.items():
            if spec.kind != "weight":
                value = np.ones(spec.shape)
            elif init == "spec":
                value = rng.normal(0.0, spec.init_std, spec.shape)
            else:
                fan_in = int(np.prod(spec.shape[1:]))
                gain = 1.0 if key == readout else 2.0
                value = rng.normal(0.0, np.sqrt(gain / fan_in), spec.shape)
            params[key] = to_device(value.astype(dtype), xp)
        return params

    def param_shapes(self) -> dict:
        return {k: s.shape for k, s in self.specs.items()}

    def spiking_layers(self) -> list:
        """Names of the spiking layers, input to output."""
        return list(self.neurons)

    def compute_layers(self) -> list:
        """(name, MACs per image per step, source spiking layer or None) per conv/linear."""
        return self.body.compute_layers()

    # -- checks at the public boundary -------------------------------------
    def validate(self, params, x=None, T=1, mode="snn"):
        """Raise a clear error for bad parameters, input, T or mode: a
        :class:`~diet_np.errors.ParameterError` (a ``ValueError``),
        ``ParameterTypeError`` (a ``TypeError``) or ``ParameterKeyError``.

        Checks keys, that every parameter and ``x`` is an array (not a list or a
        Python float), shapes, one float dtype, one backend, finite input, T >= 1,
        and (SNN) leak in [0, 1] and threshold > 0 for every layer.
        Reading values synchronises with the device; training loops that keep
        parameters in range themselves pass ``check=False`` to forward.
        """
        if mode not in MODES:
            raise ParameterError(f"mode must be one of {MODES}; got {mode!r}")
        if isinstance(T, bool) or not isinstance(T, numbers.Integral) or T < 1:
            raise ParameterError(f"T (timesteps) must be an integer >= 1; got {T!r}")
        if not isinstance(params, dict):
            raise ParameterTypeError("params must be a dict of arrays; got "
                                     f"{type(params).__name__}")
        missing = [k for k in self.specs if k not in params]
        extra = [k for k in params if k not in self.specs]
        if missing or extra:
            raise ParameterKeyError(f"{self.name}: parameters do not match the network "
                                    f"(missing {missing[:3]}, unexpected {extra[:3]})")
        for key in self.specs:
            require_array(f"parameter {key}", params[key])
        if x is not None:
            require_array("x (the input batch)", x)
        xp = array_module(x, *params.values())
        dtype = None
        for key, spec in self.specs.items():
            value = params[key]
            if tuple(value.shape) != spec.shape:
                raise ParameterError(f"parameter {key} has shape {tuple(value.shape)}; "
                                     f"{self.name} expects {spec.shape}")
            check_float_dtype(f"parameter {key}", value)
            if dtype is None:
                dtype = value.dtype
            elif value.dtype != dtype:
                raise ParameterTypeError(f"parameter {key} is {value.dtype} but others are {dtype}")
        if x is not None:
            if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
                shape = ", ".join(map(str, self.input_shape))
                raise ParameterError(f"input must have shape (batch, {shape}); "
                                     f"got {tuple(x.shape)}")
            if x.shape[0] < 1:
                raise ParameterError("input batch is empty")
            check_float_dtype("input", x)
            if x.dtype != dtype:
                raise ParameterTypeError(f"input is {x.dtype} but parameters are {dtype}; "
                                         "normalise images to the parameters' float dtype first")
            if not bool(xp.isfinite(x).all()):
                raise ParameterError("input contains NaN or infinite values")
        if mode == "snn":
            for name in self.neurons:
                leak = float(params[f"{name}.leak"])
                threshold = float(params[f"{name}.threshold"])
                if not 0.0 <= leak <= 1.0:
                    raise ParameterError(f"leak of layer {name} is {leak}; it must lie in [0, 1]")
                if not threshold > 0.0:
                    raise ParameterError(f"threshold of layer {name} is {threshold}; it must "
                                         "be > 0")

    def _context(self, T, mode, train, rng, surrogate, smooth, dropout, dtype):
        if train and not isinstance(train, bool):
            raise TypeError("train must be True or False")
        rates = _check_dropout(self.dropout if dropout is None else dropout)
        return Context(T=T if mode == "snn" else 1, snn=mode == "snn", train=train, rng=rng,
                       surrogate=get_surrogate(surrogate), smooth=smooth, dropout=rates,
                       dtype=dtype)

    # -- forward and backward ----------------------------------------------
    def forward(self, params, x, *, train, T=1, mode="snn", rng=None, surrogate="triangle",
                smooth=False, dropout=None, check=True, engine=None, encoding=None):
        """Logits for a batch: U^T of Eq. 6 in SNN mode, the last layer's output in ANN mode.

        x: (B, C, H, W) normalised images, presented unchanged at every step
        (direct input encoding) or, with ``encoding="rate"`` (None: the network's
        ``encoding``; SNN mode only), as rate-coded spikes drawn from ``rng`` for
        steps 1..T before the layers run.  ``train`` switches dropout on (masks
        drawn from ``rng``, a device Generator, once per call and kept for all T steps).
        ``smooth=True`` sends the surrogate's primitive forward instead of spikes
        (for gradient checks).  ``engine``: ``"reference"``, ``"fast"`` or an
        :class:`~diet_np.engine.Engine` (None: the network's ``engine``).
        Returns ``(logits, trace)``.
        """
        if check:
            self.validate(params, x, T, mode)
        ctx = self._context(T, mode, train, rng, surrogate, smooth, dropout, x.dtype)
        ctx.engine = self._engine(engine)
        encoding = self._encoding(encoding, mode)
        with ctx.engine.scope(array_module(x)):
            inputs = encode(x, ctx.T, encoding, rng)
            if encoding == "rate":
                ctx.spike_counts[INPUT] = array_module(x).abs(inputs).sum()
            logits, caches = self.body.forward(params, inputs, ctx)
        return logits, Trace(mode, ctx.T, x.shape[0], caches, ctx.spike_counts, ctx.engine)

    def _engine(self, engine):
        return get_engine(self.engine if engine is None else engine)

    def _encoding(self, encoding, mode):
        """The pass's input encoding: ``encoding`` or the network's; an ANN pass is direct."""
        encoding = check_encoding(self.encoding if encoding is None else encoding)
        return encoding if mode == "snn" else "direct"

    def backward(self, params, dlogits, trace):
        """BPTT (Eq. 9-14): gradients of the loss for every parameter, same keys."""
        if tuple(dlogits.shape) != (trace.batch, self.num_classes):
            raise ValueError(f"dlogits must have shape ({trace.batch}, {self.num_classes}); "
                             f"got {tuple(dlogits.shape)}")
        grads = {}
        with trace.engine.scope(array_module(dlogits)):
            self.body.backward(params, dlogits, trace.caches, grads)
        return {key: grads[key] for key in self.specs}

    def forward_stepwise(self, params, x, *, T, mode="snn", train=False, rng=None,
                         surrogate="triangle", smooth=False, dropout=None, observe=None,
                         record=None, check=True, engine=None, encoding=None):
        """The same computation one timestep at a time (for teaching, threshold
        search and probes).  ``observe(name, t, current)`` is called with each
        spiking layer's input current I^t before the layer steps; ``record(name,
        t, step)`` after it, with a :class:`~diet_np.layers.NeuronStep` (current,
        u, m, spikes; see :mod:`diet_np.probe`).  Either may raise
        :class:`StopStep` to skip the rest of that step (logits are then None).
        ``engine`` and ``encoding`` as in :meth:`forward` (rate-coded spikes are
        drawn step by step, as :meth:`forward` draws them when dropout is off).
        Returns ``(logits, spike_counts)``."""
        if check:
            self.validate(params, x, T, mode)
        ctx = self._context(T, mode, train, rng, surrogate, smooth, dropout, x.dtype)
        ctx.observe, ctx.record, ctx.engine = observe, record, self._engine(engine)
        encoding = self._encoding(encoding, mode)
        if encoding == "rate" and rng is None:
            raise ValueError("rate encoding draws its input spikes from a generator: pass rng=...")
        state = {}
        logits = None
        with ctx.engine.scope(array_module(x)):
            for t in range(ctx.T):
                ctx.t = t
                step_input = x if encoding == "direct" else rate_spikes(x, rng)
                if encoding == "rate":
                    ctx.spike_counts[INPUT] = (ctx.spike_counts.get(INPUT, 0)
                                               + array_module(x).abs(step_input).sum())
                try:
                    logits = self.body.step(params, step_input, state, ctx)
                except StopStep:
                    logits = None
        return logits, ctx.spike_counts
