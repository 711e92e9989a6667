"""CuPy parity tests; collected everywhere, run only where CuPy sees a CUDA device."""
import numpy as np
import pytest

from diet_np.architectures import vgg
from diet_np.backend import get_xp, to_device, to_host
from diet_np.ops import softmax_cross_entropy

pytestmark = pytest.mark.gpu


def test_forward_backward_match_numpy():
    cp = get_xp("gpu")
    net = vgg([8, "A", 8, "M"], [16], num_classes=4, input_shape=(3, 16, 16))
    params = net.init_params(0, dtype=np.float64)
    for k in params:
        if k.endswith(".threshold"):
            params[k][...] = 0.1
    x = np.random.default_rng(0).normal(size=(5, 3, 16, 16))
    y = np.array([0, 1, 2, 3, 0])
    out = {}
    for xp in (np, cp):
        p, xx, yy = to_device(params, xp), to_device(x, xp), to_device(y, xp)
        logits, trace = net.forward(p, xx, train=False, T=4)
        loss, d = softmax_cross_entropy(logits, yy)
        out[xp.__name__] = (float(loss), to_host(net.backward(p, d, trace)))
    assert np.isclose(out["numpy"][0], out["cupy"][0], rtol=1e-10)
    for k in params:
        np.testing.assert_allclose(out["numpy"][1][k], out["cupy"][1][k], rtol=1e-8, atol=1e-12)


def test_get_xp_gpu_returns_cupy():
    assert get_xp("gpu").__name__ == "cupy"
