"""The same DIET-SNN in PyTorch with autograd: the benchmark's baseline and a cross-check.

:class:`TorchSNN` is built from a diet_np VGG-style :class:`~diet_np.network.Network`
(the layer list of :data:`diet_np.architectures.VGG_CONFIGS`), with the same
parameter names, and follows the spec step by step:

* convs and linears without bias, 2x2 average pooling, dropout masks drawn once
  per minibatch and held for all T steps (inverted scaling 1/(1-p));
* layer 1's current W_1 * x computed once (direct input encoding);
* the LIF neuron of Eq. 2-5 with one learnable leak and threshold per layer;
  the spike (Eq. 3-4) is :class:`TriangleSpike`, whose backward is the surrogate
  of Eq. 8 with respect to both u and v; the reset m = u - v o uses the spike
  *detached* (no surrogate through the reset, but a gradient for v);
* the output layer accumulates U^T = sum_t W_L g(o^t) (Eq. 6); cross-entropy
  (Eq. 7) and Adam come from PyTorch, so BPTT (Eq. 9-14) is PyTorch's autograd.

Two loop orders are offered: ``"folded"`` (layer by layer, time folded into the
batch for conv/linear/pool, only the neuron walks the steps; the order diet_np
uses) and ``"stepwise"`` (time outer, layers inner; the textbook order).

:func:`parity_check` compares losses and gradients with diet_np's hand-written
BPTT in float64 on a tiny network (``python3 benchmarks/bench_train_step.py
--check`` and ``tests/test_torch_parity.py`` run it).

This file imports torch; diet_np itself never does.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from diet_np.layers import AvgPool, Conv, Dropout, Flatten, Linear, MaxPool, Neuron, Readout

LAYOUTS = ("folded", "stepwise")

# Full float32 on CUDA, as CuPy computes: cuDNN would otherwise run convolutions
# in TF32 (10-bit mantissa), a different and cheaper arithmetic.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


class TriangleSpike(torch.autograd.Function):
    """o = H(u / v - 1) (Eq. 3-4); backward: Eq. 8's surrogate w.r.t. u and v.

    do/du = sg(z) / v and do/dv = sg(z) * (-u / v^2) with sg(z) = gamma max(0, 1 - |z|).
    """

    @staticmethod
    def forward(ctx, u, v, gamma):
        ctx.save_for_backward(u, v)
        ctx.gamma = gamma
        return (u / v - 1.0 > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, dspike):
        u, v = ctx.saved_tensors
        sg = ctx.gamma * torch.clamp(1.0 - torch.abs(u / v - 1.0), min=0.0)
        g = dspike * sg
        return g / v, (-(g * u).sum() / (v * v)).reshape(v.shape), None


def lif_step(current, m_prev, leak, threshold, gamma):
    """Eq. 2-5 for one step; returns ``(spike, m)``.  The reset uses the detached spike."""
    u = leak * m_prev + current                          # Eq. 2
    spike = TriangleSpike.apply(u, threshold, gamma)     # Eq. 3-4 (Eq. 8 in backward)
    return spike, u - threshold * spike.detach()         # Eq. 5


class TorchSNN:
    """A VGG-style DIET-SNN in PyTorch, mirroring a diet_np network layer by layer.

    ``params`` are leaf tensors keyed like diet_np's parameters.
    """

    def __init__(self, net, params: dict, device="cpu", dtype=torch.float32, gamma=0.3):
        unsupported = [type(l).__name__ for l in net.body.layers
                       if not isinstance(l, (Conv, Neuron, Dropout, AvgPool, Flatten, Linear,
                                             Readout))]
        if unsupported:
            raise ValueError(f"TorchSNN mirrors VGG-style networks only; got {unsupported}")
        self.net, self.gamma = net, gamma
        self.layers = net.body.layers
        self.params = {k: torch.tensor(np.asarray(v), dtype=dtype, device=device,
                                       requires_grad=True) for k, v in params.items()}

    def _masks(self, x, train, dropout):
        """One keep-mask per Dropout layer, drawn once for the minibatch and held for
        all T steps; ``None`` where dropout is off."""
        masks, shape = {}, tuple(x.shape)           # (B, C, H, W), followed through the layers
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dropout):
                p = dropout.get(layer.kind, 0.0) if train else 0.0
                masks[i] = None if p == 0.0 else \
                    (torch.rand(shape, device=x.device) >= p).to(x.dtype) / (1.0 - p)
            shape = (shape[0],) + tuple(layer.out_shape)
        return masks

    def forward(self, x, T, train=False, dropout=None, layout="folded"):
        """Logits U^T (Eq. 6) for images x (B, C, H, W)."""
        masks = self._masks(x, train, self.net.dropout if dropout is None else dropout)
        if layout == "folded":
            return self._forward_folded(x, T, masks)
        if layout == "stepwise":
            return self._forward_stepwise(x, T, masks)
        raise ValueError(f"layout must be one of {LAYOUTS}; got {layout!r}")

    def _stateless(self, layer, h):
        """Conv, linear, pooling, flatten on a (steps*B, ...) or (B, ...) tensor."""
        p = self.params
        if isinstance(layer, Conv):
            return F.conv2d(h, p[f"{layer.name}.weight"], stride=layer.stride, padding=layer.pad)
        if isinstance(layer, Linear):
            return h @ p[f"{layer.name}.weight"].T
        if isinstance(layer, AvgPool):
            return (F.max_pool2d if isinstance(layer, MaxPool) else F.avg_pool2d)(h, layer.k)
        if isinstance(layer, Flatten):
            return h.reshape(h.shape[0], -1)
        raise TypeError(type(layer).__name__)

    def _forward_folded(self, x, T, masks):
        h = x[None]                                     # (steps, B, ...); 1 step = constant
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Neuron):
                leak, threshold = self._lv(layer)
                m, spikes = torch.zeros_like(h[0]), []
                for t in range(T):
                    spike, m = lif_step(h[t if h.shape[0] > 1 else 0], m, leak, threshold,
                                        self.gamma)
                    spikes.append(spike)
                h = torch.stack(spikes)
            elif isinstance(layer, Dropout):
                h = h if masks[i] is None else h * masks[i]
            elif isinstance(layer, Readout):
                return h.sum(0) @ self.params[f"{layer.name}.weight"].T
            else:
                steps = h.shape[0]
                y = self._stateless(layer, h.reshape((-1,) + tuple(h.shape[2:])))
                h = y.reshape((steps, -1) + tuple(y.shape[1:]))
        raise ValueError("the network has no output layer")

    def _forward_stepwise(self, x, T, masks):
        first_current, m, logits = None, {}, 0.0
        for t in range(T):
            h = x
            for i, layer in enumerate(self.layers):
                if isinstance(layer, Conv) and layer.first:   # direct encoding: once
                    if first_current is None:
                        first_current = self._stateless(layer, h)
                    h = first_current
                elif isinstance(layer, Neuron):
                    leak, threshold = self._lv(layer)
                    prev = m.get(layer.name, torch.zeros_like(h))
                    h, m[layer.name] = lif_step(h, prev, leak, threshold, self.gamma)
                elif isinstance(layer, Dropout):
                    h = h if masks[i] is None else h * masks[i]
                elif isinstance(layer, Readout):
                    logits = logits + h @ self.params[f"{layer.name}.weight"].T  # Eq. 6
                else:
                    h = self._stateless(layer, h)
        return logits

    def _lv(self, layer):
        return self.params[f"{layer.name}.leak"], self.params[f"{layer.name}.threshold"]

    def clamp(self, min_threshold=1e-3):
        """Eq. 15's clamp, as :func:`diet_np.optim.clamp_neuron_params` does it."""
        with torch.no_grad():
            for key, p in self.params.items():
                if key.endswith(".leak"):
                    p.clamp_(0.0, 1.0)
                elif key.endswith(".threshold"):
                    p.clamp_(min=min_threshold)


def training_step(model, opt, x, y, T, layout="folded"):
    """One DIET-SNN training step: forward over T, BPTT by autograd, Adam, clamp."""
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model.forward(x, T, train=True, layout=layout), y)   # Eq. 7
    loss.backward()
    opt.step()
    model.clamp()
    return loss


def parity_check(T=4, seed=0, layout="folded"):
    """Loss, gradients and one Adam (AMSGrad) step plus clamp of diet_np and of
    :class:`TorchSNN` on a tiny float64 network (dropout off), every layer spiking.

    Returns ``{name: relative error}``: ``"loss"``, one entry per parameter's
    gradient and ``"<param> after step"``; all should be ~1e-12 or below.
    """
    from diet_np.architectures import vgg
    from diet_np.ops import softmax_cross_entropy
    from diet_np.optim import Adam, clamp_neuron_params

    net = vgg([4, "A", 6, "A"], [8], num_classes=3, input_shape=(3, 8, 8))
    rng = np.random.default_rng(seed)
    params = {}
    for key, spec in net.specs.items():            # every layer active (as tests/conftest.py)
        if spec.kind == "weight":
            params[key] = rng.normal(0.0, 3.0 / np.sqrt(np.prod(spec.shape[1:])), spec.shape)
        else:
            params[key] = np.array(rng.uniform(*((0.6, 0.95) if spec.kind == "leak"
                                                 else (0.2, 0.5))))
    x, y = rng.normal(size=(4, 3, 8, 8)), np.array([0, 1, 2, 1])

    logits, trace = net.forward(params, x, train=False, T=T)
    loss, dlogits = softmax_cross_entropy(logits, y)
    grads = net.backward(params, dlogits, trace)
    if not all(float(c) > 0 for c in trace.spike_counts.values()):
        raise RuntimeError("parity check: a layer is silent; the check would be vacuous")

    model = TorchSNN(net, params, dtype=torch.float64)
    t_loss = F.cross_entropy(model.forward(torch.from_numpy(x), T, layout=layout),
                             torch.from_numpy(y))
    t_loss.backward()

    def rel(a, b):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        return float(np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max(), 1e-300))

    errors = {"loss": rel(loss, t_loss.item())}
    for key in params:
        errors[key] = rel(grads[key], model.params[key].grad.numpy())

    Adam(1e-2, amsgrad=True).step(params, grads)
    clamp_neuron_params(params)
    torch.optim.Adam(model.params.values(), lr=1e-2, amsgrad=True).step()
    model.clamp()
    for key in params:
        errors[f"{key} after step"] = rel(params[key], model.params[key].detach().numpy())
    return errors
