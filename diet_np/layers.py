"""Layers of a DIET network: each wraps an op (or the LIF neuron) for sequences.

Activations travel between layers as sequences shaped (T, B, ...).  A sequence
with a leading 1 is the same at every step: the image under direct input
encoding, and so layer 1's current, which is computed once.  Stateless layers
(conv, linear, pooling, flatten) fold time into the batch and run once over
T*B; only :class:`Neuron` walks the steps.

Every layer offers

* ``build(in_shape, source)``: infer shapes (without T and B) and register its
  parameters; ``source`` names the spiking layer whose output feeds it (None
  for the image), used for spike rates and energy;
* ``forward(params, x, ctx) -> (y, cache)`` and
  ``backward(params, dy, cache, grads) -> dx`` over all steps at once;
* ``step(params, x, state, ctx) -> y`` for one step (teaching, conversion).

The same layers serve the ANN (``ctx.snn`` False: :class:`Neuron` is a ReLU,
T = 1) and the SNN.  ``ctx.engine`` (:mod:`diet_np.engine`) picks the reference
ops (:mod:`diet_np.lif`, :mod:`diet_np.ops`) or the fast ones
(:mod:`diet_np.fast`); a layer's cache records the engine its forward ran, and
its backward runs the same one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from . import fast, ops
from .backend import array_module
from .engine import get_engine
from .lif import LIFCache, lif_backward, lif_forward, lif_step
from .readout import readout_backward, readout_forward, readout_step


@dataclass
class Context:
    """What one forward pass needs to know besides parameters and input."""
    T: int
    snn: bool
    train: bool
    rng: object = None              # device Generator for dropout masks
    surrogate: object = None
    smooth: bool = False
    dropout: dict = field(default_factory=dict)   # {"conv": p, "fc": p}
    dtype: object = None            # the pass's float dtype (spikes travel as booleans)
    spike_counts: dict = field(default_factory=dict)
    observe: object = None          # stepwise only: observe(name, t, current)
    record: object = None           # stepwise only: record(name, t, NeuronStep)
    t: int = 0                      # stepwise only: the current step
    engine: object = field(default_factory=get_engine)   # reference or fast ops


class NeuronStep(NamedTuple):
    """One step of one spiking layer, as :meth:`Neuron.step` computed it (Eq. 2-5):
    input current I^t, potential u^t before and m^t after the reset, spikes o^t (bool)."""
    current: object
    u: object
    m: object
    spikes: object


@dataclass(frozen=True)
class ParamSpec:
    """Shape and role of one parameter: kind is 'weight', 'leak' or 'threshold'."""
    shape: tuple
    kind: str
    init_std: float = 0.0


def _fold(x):
    return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


def _unfold(y, steps):
    return y.reshape((steps, y.shape[0] // steps) + y.shape[1:])


def _ops(engine):
    """The op functions of an engine: :mod:`diet_np.fast` or the reference :mod:`diet_np.ops`."""
    return fast if engine.fast else ops


class Layer:
    """Base class: a layer with no parameters and no state.

    Under the fast engine a :class:`Neuron` sends its spikes on as booleans and
    reuses its neighbours' arrays, but only where a layer declares it safe; a
    layer that declares nothing gets float input and keeps its arrays:

    * ``takes_spikes``: forward and backward are correct on boolean spikes;
    * ``fresh_output``: forward returns a new array that nothing else holds (not
      its input, not in its cache), so the Neuron it feeds may store u^t in it;
    * ``fresh_grad``: backward returns a new array that nothing else holds, so
      the Neuron before it may store dI^t in it;
    * ``passes_arrays``: the layer may hand on its argument itself (or a view):
      the layer beyond it decides about ``fresh_*``.
    """
    takes_spikes = False
    fresh_output = False
    fresh_grad = False
    passes_arrays = False

    def build(self, in_shape, source):
        self.in_shape, self.source = tuple(in_shape), source
        self.out_shape = self._out_shape(self.in_shape)
        return self.out_shape

    def _out_shape(self, in_shape):
        return in_shape

    def param_specs(self) -> dict:
        return {}

    def compute_layers(self) -> list:
        """(name, MACs per image per step, source) of conv/linear layers inside."""
        return []

    def neurons(self) -> dict:
        """Spiking layer name -> neurons per image."""
        return {}

    def step(self, params, x, state, ctx):
        y, _ = self.forward(params, x[None], ctx)
        return y[0]


class Conv(Layer):
    """k x k convolution, no bias (I = W * g(o), Eq. 2's input current)."""
    takes_spikes = fresh_output = fresh_grad = True

    def __init__(self, name, channels, kernel=3, stride=1, pad=1, first=False):
        self.name, self.channels, self.kernel = name, channels, kernel
        self.stride, self.pad, self.first = stride, pad, first

    def _out_shape(self, in_shape):
        if len(in_shape) != 3:
            raise ValueError(f"{self.name}: a convolution needs (C, H, W) input; got {in_shape}")
        c, h, w = in_shape
        return (self.channels, ops.conv_output_size(h, self.kernel, self.stride, self.pad),
                ops.conv_output_size(w, self.kernel, self.stride, self.pad))

    def param_specs(self):
        k, c_in = self.kernel, self.in_shape[0]
        std = math.sqrt(2.0 / (k * k * self.channels))
        return {f"{self.name}.weight": ParamSpec((self.channels, c_in, k, k), "weight", std)}

    def compute_layers(self):
        k = self.kernel
        c_out, h, w = self.out_shape
        return [(self.name, k * k * self.in_shape[0] * c_out * h * w, self.source)]

    def forward(self, params, x, ctx):
        w = params[f"{self.name}.weight"]
        if ctx.engine.fast:
            y, cache = fast.conv2d_forward(_fold(x), w, self.stride, self.pad, ctx.engine.conv)
        else:
            y, cache = ops.conv2d_forward(_fold(x), w, self.stride, self.pad)
        return _unfold(y, x.shape[0]), (ctx.engine, cache)

    def backward(self, params, dy, cache, grads):
        engine, cache = cache
        dx, grads[f"{self.name}.weight"] = _ops(engine).conv2d_backward(
            _fold(dy), cache, need_dx=not self.first)
        return None if dx is None else _unfold(dx, dy.shape[0])


class Linear(Layer):
    """Fully connected layer without bias."""
    takes_spikes = fresh_output = fresh_grad = True

    def __init__(self, name, features, first=False):
        self.name, self.features, self.first = name, features, first

    def _out_shape(self, in_shape):
        if len(in_shape) != 1:
            raise ValueError(f"{self.name}: a linear layer needs flat input; got {in_shape}")
        return (self.features,)

    def param_specs(self):
        return {f"{self.name}.weight": ParamSpec((self.features, self.in_shape[0]), "weight", 0.01)}

    def compute_layers(self):
        return [(self.name, self.in_shape[0] * self.features, self.source)]

    def forward(self, params, x, ctx):
        y, cache = _ops(ctx.engine).linear_forward(_fold(x), params[f"{self.name}.weight"])
        return _unfold(y, x.shape[0]), (ctx.engine, cache)

    def backward(self, params, dy, cache, grads):
        engine, cache = cache
        dx, grads[f"{self.name}.weight"] = _ops(engine).linear_backward(
            _fold(dy), cache, need_dx=not self.first)
        return None if dx is None else _unfold(dx, dy.shape[0])


class Neuron(Layer):
    """The spiking LIF neuron of layer ``name`` (Eq. 2-5, 10-14); ReLU in the ANN.

    Parameters: ``{name}.leak`` and ``{name}.threshold``, one scalar each.
    Under the fast engine its u^t take the place of its input current when
    ``overwrites_current`` and its dI^t that of the incoming gradient when
    ``overwrites_grad``; :class:`Sequential` sets both from what its neighbours
    declare (see :class:`Layer`).
    """
    overwrites_current = False
    overwrites_grad = False

    def __init__(self, name):
        self.name = name

    def param_specs(self):
        return {f"{self.name}.leak": ParamSpec((), "leak"),
                f"{self.name}.threshold": ParamSpec((), "threshold")}

    def neurons(self):
        return {self.name: int(np.prod(self.in_shape))}

    def _lv(self, params):
        return params[f"{self.name}.leak"], params[f"{self.name}.threshold"]

    def forward(self, params, x, ctx):
        if not ctx.snn:
            y, mask = ops.relu_forward(x)
            return y, (ctx.engine, mask)
        leak, threshold = self._lv(params)
        if ctx.engine.fast:       # spikes go on as booleans
            out, cache = fast.lif_forward(x, leak, threshold, ctx.T, ctx.smooth, ctx.surrogate,
                                          compact=True, overwrite=self.overwrites_current,
                                          fused=ctx.engine.fused_lif)
        else:
            out, cache = lif_forward(x, leak, threshold, ctx.T, ctx.smooth, ctx.surrogate)
        ctx.spike_counts[self.name] = array_module(x).count_nonzero(cache.spikes)
        return out, (ctx.engine, cache)

    def backward(self, params, dy, cache, grads):
        leak, threshold = self._lv(params)
        engine, cache = cache
        if isinstance(cache, LIFCache):
            if engine.fast:
                dlif = fast.lif_backward(dy, cache, overwrite=self.overwrites_grad,
                                         fused=engine.fused_lif)
            else:
                dlif = lif_backward(dy, cache)
            dx, grads[f"{self.name}.leak"], grads[f"{self.name}.threshold"] = dlif
            return dx
        xp = array_module(dy)
        grads[f"{self.name}.leak"] = xp.zeros_like(leak)
        grads[f"{self.name}.threshold"] = xp.zeros_like(threshold)
        return ops.relu_backward(dy, cache)

    def step(self, params, x, state, ctx):
        if ctx.observe is not None:
            ctx.observe(self.name, ctx.t, x)
        if not ctx.snn:
            return ops.relu_forward(x)[0]
        leak, threshold = self._lv(params)
        xp = array_module(x)
        m = state.get("m")
        if m is None:
            m = xp.zeros(x.shape, dtype=x.dtype)
        spike, state["m"], u = lif_step(x, m, leak, threshold)
        if ctx.record is not None:
            ctx.record(self.name, ctx.t, NeuronStep(x, u, state["m"], spike))
        count = xp.count_nonzero(spike)
        prev = ctx.spike_counts.get(self.name)
        ctx.spike_counts[self.name] = count if prev is None else prev + count
        if ctx.smooth:
            return ctx.surrogate.primitive(u / threshold - 1.0)
        return spike.astype(x.dtype)


class AvgPool(Layer):
    """k x k average pooling, stride k."""
    takes_spikes = fresh_output = fresh_grad = True

    def __init__(self, k=2):
        self.k = k

    def _out_shape(self, in_shape):
        c, h, w = in_shape
        if h % self.k or w % self.k:
            raise ValueError(f"{self.k}x{self.k} pooling needs sides divisible by {self.k}; "
                             f"got {in_shape}")
        return (c, h // self.k, w // self.k)

    def forward(self, params, x, ctx):
        if ctx.engine.fast:       # boolean spikes averaged into the pass's dtype
            y, cache = fast.avgpool_forward(_fold(x), self.k, ctx.dtype)
        else:
            y, cache = ops.avgpool_forward(_fold(x), self.k)
        return _unfold(y, x.shape[0]), (ctx.engine, cache)

    def backward(self, params, dy, cache, grads):
        engine, cache = cache
        return _unfold(_ops(engine).avgpool_backward(_fold(dy), cache), dy.shape[0])


class MaxPool(AvgPool):
    """k x k max pooling, stride k (one version for both engines)."""

    def forward(self, params, x, ctx):
        y, cache = ops.maxpool_forward(_fold(x), self.k)
        return _unfold(y, x.shape[0]), cache

    def backward(self, params, dy, cache, grads):
        return _unfold(ops.maxpool_backward(_fold(dy), cache), dy.shape[0])


class Dropout(Layer):
    """Inverted dropout, one mask per minibatch kept for all T steps.

    ``kind`` ('conv' or 'fc') picks the rate from ``ctx.dropout``; off unless
    ``ctx.train`` (and then it hands its input on as it is).
    """
    takes_spikes = passes_arrays = True

    def __init__(self, kind):
        self.kind = kind

    def _rate(self, ctx):
        return ctx.dropout.get(self.kind, 0.0) if ctx.train else 0.0

    def _mask(self, x_shape, ctx):
        if ctx.rng is None:
            raise ValueError("training mode with dropout needs a random generator (rng=...)")
        return ops.dropout_mask(x_shape, self._rate(ctx), ctx.rng, ctx.dtype)

    def forward(self, params, x, ctx):
        if self._rate(ctx) == 0.0:
            return x, None
        y, mask = _ops(ctx.engine).dropout_forward(x, self._mask(x.shape[1:], ctx))
        return y, (ctx.engine, mask)                                  # y in ctx.dtype

    def backward(self, params, dy, cache, grads):
        if cache is None:
            return dy
        engine, mask = cache
        return _ops(engine).dropout_backward(dy, mask)

    def step(self, params, x, state, ctx):
        if self._rate(ctx) == 0.0:
            return x
        if "mask" not in state:
            state["mask"] = self._mask(x.shape, ctx)
        return x * state["mask"]


class Flatten(Layer):
    """(T, B, C, H, W) -> (T, B, C*H*W), in C, H, W order."""
    takes_spikes = passes_arrays = True

    def _out_shape(self, in_shape):
        return (int(np.prod(in_shape)),)

    def forward(self, params, x, ctx):
        return x.reshape(x.shape[:2] + (-1,)), x.shape

    def backward(self, params, dy, cache, grads):
        return dy.reshape(cache)


class Readout(Layer):
    """The accumulating, non-spiking output layer (Eq. 6; gradient Eq. 9)."""
    takes_spikes = True

    def __init__(self, name, classes):
        self.name, self.classes = name, classes

    def _out_shape(self, in_shape):
        if len(in_shape) != 1:
            raise ValueError(f"{self.name}: the output layer needs flat input; got {in_shape}")
        return (self.classes,)

    def param_specs(self):
        return {f"{self.name}.weight": ParamSpec((self.classes, self.in_shape[0]), "weight", 0.01)}

    def compute_layers(self):
        return [(self.name, self.in_shape[0] * self.classes, self.source)]

    def forward(self, params, x, ctx):
        return readout_forward(x, params[f"{self.name}.weight"])

    def backward(self, params, dy, cache, grads):
        dx, grads[f"{self.name}.weight"] = readout_backward(dy, cache)
        return dx

    def step(self, params, x, state, ctx):
        w = params[f"{self.name}.weight"]
        if "U" not in state:
            xp = array_module(x)
            state["U"] = xp.zeros((x.shape[0], self.classes), dtype=w.dtype)
        state["U"] = readout_step(state["U"], x, w)
        return state["U"]


class Sequential(Layer):
    """Layers applied in order; the spiking layer most recently passed is the
    ``source`` of the next compute layer.  A layer that does not declare
    ``takes_spikes`` gets boolean spikes as floats of the pass's dtype."""
    takes_spikes = True

    def __init__(self, layers):
        self.layers = list(layers)

    def build(self, in_shape, source):
        self.in_shape, self.source = tuple(in_shape), source
        shape = self.in_shape
        for i, layer in enumerate(self.layers):
            shape = layer.build(shape, source)
            if isinstance(layer, Neuron):
                source = layer.name
                layer.overwrites_current = _declares(reversed(self.layers[:i]), "fresh_output")
                layer.overwrites_grad = _declares(self.layers[i + 1:], "fresh_grad")
            elif isinstance(layer, Sequential):
                source = layer.last_source(source)
        self.out_shape = shape
        return shape

    def last_source(self, source):
        for layer in self.layers:
            if isinstance(layer, Neuron):
                source = layer.name
            elif isinstance(layer, Sequential):
                source = layer.last_source(source)
        return source

    def param_specs(self):
        return {k: v for layer in self.layers for k, v in layer.param_specs().items()}

    def compute_layers(self):
        return [c for layer in self.layers for c in layer.compute_layers()]

    def neurons(self):
        return {k: v for layer in self.layers for k, v in layer.neurons().items()}

    def forward(self, params, x, ctx):
        caches = []
        for layer in self.layers:
            if x.dtype == bool and not layer.takes_spikes:
                x = x.astype(ctx.dtype)
            x, cache = layer.forward(params, x, ctx)
            caches.append(cache)
        return x, caches

    def backward(self, params, dy, caches, grads):
        for layer, cache in zip(reversed(self.layers), reversed(caches)):
            if dy is None:          # below the first compute layer: nothing needs a gradient
                break
            dy = layer.backward(params, dy, cache, grads)
        return dy

    def step(self, params, x, state, ctx):
        for i, layer in enumerate(self.layers):
            x = layer.step(params, x, state.setdefault(i, {}), ctx)
        return x


def _declares(layers, what) -> bool:
    """Whether the first of ``layers`` that does not just pass arrays on declares
    ``what`` (False when there is none: the neighbour lies outside, unknown)."""
    for layer in layers:
        if not layer.passes_arrays:
            return getattr(layer, what)
    return False


def _sum_to_steps(d, steps):
    """Reduce a (T, B, ...) gradient to ``steps`` leading entries (1 = constant input)."""
    return d.sum(axis=0, keepdims=True) if d.shape[0] != steps else d


class ResidualBlock(Sequential):
    """The authors' ResNet basic block: conv-LIF-dropout-conv, whose current is
    added to the shortcut's current (identity, or a 1x1 stride-s conv) and fed to
    one LIF neuron.  Parameters are ``{name}.conv1.*``, ``{name}.conv2.*`` and
    ``{name}.shortcut.weight``."""
    fresh_grad = True                  # backward returns the sum of its two paths

    def __init__(self, name, channels, stride=1):
        self.name, self.channels, self.stride = name, channels, stride
        super().__init__([Conv(f"{name}.conv1", channels, 3, stride, 1),
                          Neuron(f"{name}.conv1"), Dropout("conv"),
                          Conv(f"{name}.conv2", channels)])
        self.neuron = Neuron(f"{name}.conv2")
        self.neuron.overwrites_current = True       # main + short is the block's own sum
        self.shortcut = None

    def build(self, in_shape, source):
        out = super().build(in_shape, source)
        if self.stride != 1 or in_shape[0] != self.channels:
            self.shortcut = Conv(f"{self.name}.shortcut", self.channels, 1, self.stride, 0)
            self.shortcut.build(in_shape, source)
        elif tuple(in_shape) != tuple(out):
            raise ValueError(f"{self.name}: identity shortcut needs matching shapes")
        self.neuron.build(out, source)
        self.in_shape, self.source = tuple(in_shape), source
        return out

    def last_source(self, source):
        return self.neuron.name

    def _parts(self):
        return [self.shortcut, self.neuron] if self.shortcut else [self.neuron]

    def param_specs(self):
        specs = super().param_specs()
        for part in self._parts():
            specs.update(part.param_specs())
        return specs

    def compute_layers(self):
        return super().compute_layers() + (self.shortcut.compute_layers() if self.shortcut else [])

    def neurons(self):
        return {**super().neurons(), **self.neuron.neurons()}

    def forward(self, params, x, ctx):
        main, caches = super().forward(params, x, ctx)
        short, short_cache = (self.shortcut.forward(params, x, ctx) if self.shortcut
                              else (x, None))
        out, neuron_cache = self.neuron.forward(params, main + short, ctx)
        return out, (caches, short_cache, neuron_cache, x.shape[0])

    def backward(self, params, dy, cache, grads):
        caches, short_cache, neuron_cache, steps = cache
        dsum = self.neuron.backward(params, dy, neuron_cache, grads)
        dx = _sum_to_steps(super().backward(params, dsum, caches, grads), steps)
        dshort = (self.shortcut.backward(params, dsum, short_cache, grads) if self.shortcut
                  else dsum)
        return dx + _sum_to_steps(dshort, steps)

    def step(self, params, x, state, ctx):
        main = super().step(params, x, state, ctx)
        short = self.shortcut.step(params, x, {}, ctx) if self.shortcut else x
        return self.neuron.step(params, main + short, state.setdefault("neuron", {}), ctx)
