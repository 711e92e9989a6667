"""ANN -> SNN conversion: per-layer 99.7th-percentile thresholds (the paper's initialisation).

The procedure of the spec, step by step:

1. the trained ANN's weights are copied into the SNN unchanged, with leak 1
   (integrate-and-fire neurons);
2. layer by layer, with the earlier layers' (unscaled) thresholds already in
   place, the SNN is simulated on one batch of training images for ``T_find``
   steps (evaluation mode, no gradients); at every step t the 99.7th percentile
   of all elements of layer l's input current I_l^t is taken, and v_l is the
   maximum of those over t;
3. every threshold is multiplied by a scaling factor.

The percentile is the authors' k-th smallest element with
k = 1 + round(0.997 * (n - 1)), no interpolation.  A layer whose maximum stays
<= 0 would get a threshold <= 0: that raises :class:`ConversionError` naming it.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .backend import array_module, default_rng
from .errors import DietError
from .network import StopStep
from .progress import progress


class ConversionError(DietError, ValueError):
    """The threshold search cannot produce a valid threshold."""


def percentile_k(values, q: float = 0.997):
    """The k-th smallest element with k = 1 + round(q * (n - 1)) (0-d device array)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"percentile must be a fraction in [0, 1]; got {q}")
    xp = array_module(values)
    flat = values.reshape(-1)
    k = int(round(q * (flat.size - 1)))          # 0-based index of the k-th smallest
    return xp.partition(flat, k)[k]


def ann_to_snn_params(params) -> dict:
    """Copy ANN parameters for the SNN: same weights, every leak 1 (IF neurons)."""
    converted = {}
    for key, value in params.items():
        converted[key] = value.copy()
        if key.endswith(".leak"):
            converted[key][...] = 1.0
    return converted


def find_thresholds(net, params, x, T_find: int = 100, q: float = 0.997, show_progress=True,
                    encoding=None, seed=0):
    """Set every spiking layer's threshold, in place, from the per-step input-current
    percentile (step 2 above).  Returns ``{layer: threshold}`` as host floats.

    ``x`` is one batch of normalised training images (the authors use 512).
    Under direct encoding (``encoding``: None for the network's) layer 1's current
    is the same at every step, so one step suffices for it; rate-coded input
    (spikes drawn from ``seed``, the same ones for every layer's search) takes
    all ``T_find`` steps.
    """
    net.validate(params, x, T_find, "snn")
    encoding = net._encoding(encoding, "snn")
    xp = array_module(x)
    found = {}
    bar = progress(net.spiking_layers(), desc="threshold search", enabled=show_progress)
    for index, layer in enumerate(bar):
        per_step = []

        def observe(name, t, current, layer=layer):
            if name == layer:
                per_step.append(percentile_k(current, q))
                raise StopStep

        steps = 1 if index == 0 and encoding == "direct" else T_find
        net.forward_stepwise(params, x, T=steps, observe=observe, check=False,
                             encoding=encoding, rng=default_rng(xp, seed))
        threshold = float(xp.stack(per_step).max())
        if not math.isfinite(threshold):
            raise ConversionError(
                f"layer {layer}: the threshold search found a non-finite input-current "
                f"percentile ({threshold}); the ANN parameters or the images hold NaN or "
                "infinite values, or the ANN diverged")
        if not threshold > 0:
            raise ConversionError(
                f"layer {layer} stayed silent during the threshold search (the {q:.1%} "
                f"percentile of its input current never rose above 0 in {len(per_step)} "
                "steps); train the ANN longer or use more search steps or images")
        params[f"{layer}.threshold"][...] = threshold
        found[layer] = threshold
        bar.set_postfix(layer=layer, v=threshold)
    return found


def _check_scale(scale) -> None:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"threshold scale must be a number; got {type(scale).__name__} "
                        f"{scale!r}")
    if not (math.isfinite(scale) and scale > 0):
        raise ConversionError(f"threshold scale must be a finite number > 0; got {scale}")


def scale_thresholds(params, scale: float) -> None:
    """Step 3: multiply every threshold by ``scale`` (0.2-0.7 in the authors' scripts).

    ``scale`` must be a finite number > 0, and every scaled threshold must stay
    finite and > 0 in the parameters' dtype (float32 overflows above about 3.4e38);
    otherwise :class:`ConversionError` names the value or the layer and nothing is
    changed.
    """
    _check_scale(scale)
    scaled = {key: (value * scale).astype(value.dtype) for key, value in params.items()
              if key.endswith(".threshold")}
    for key, value in scaled.items():
        v = float(value)
        if not (math.isfinite(v) and v > 0):
            raise ConversionError(
                f"layer {key.removesuffix('.threshold')}: threshold {float(params[key])} times "
                f"scale {scale} gives {v} in {value.dtype}; choose a scale that keeps every "
                "threshold finite and > 0")
    for key, value in scaled.items():
        params[key][...] = value


def convert(net, ann_params, x, T_find: int = 100, scale: float = 0.7, q: float = 0.997,
            show_progress=True, encoding=None):
    """The whole conversion: returns ``(snn_params, unscaled_thresholds)``; the
    threshold search runs under ``encoding`` (None: the network's)."""
    if not isinstance(T_find, (int, np.integer)) or T_find < 1:
        raise ValueError(f"T_find must be an integer >= 1; got {T_find!r}")
    _check_scale(scale)  # before the search, which takes a while
    params = ann_to_snn_params(ann_params)
    found = find_thresholds(net, params, x, T_find, q, show_progress, encoding=encoding)
    scale_thresholds(params, scale)
    return params, found
