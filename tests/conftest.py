"""Shared fixtures: small float64 networks whose every layer spikes."""
import numpy as np
import pytest

from diet_np.backend import gpu_available


def lively_params(net, seed, threshold=(0.2, 0.5), leak=(0.6, 0.95), gain=3.0):
    """float64 parameters scaled so that every layer is active: weights
    N(0, gain/sqrt(fan_in)), leaks and thresholds drawn uniformly."""
    rng = np.random.default_rng(seed)
    params = {}
    for key, spec in net.specs.items():
        if spec.kind == "weight":
            fan_in = int(np.prod(spec.shape[1:]))
            params[key] = rng.normal(0.0, gain / np.sqrt(fan_in), spec.shape)
        elif spec.kind == "leak":
            params[key] = np.array(rng.uniform(*leak))
        else:
            params[key] = np.array(rng.uniform(*threshold))
    return params


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
