"""CuPy parity tests; collected everywhere, run only where CuPy sees a CUDA device."""
import numpy as np
import pytest
from conftest import with_thresholds

from diet_np.architectures import vgg
from diet_np.backend import get_xp, to_device, to_host
from diet_np.engine import Engine
from diet_np.ops import softmax_cross_entropy

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("engine", [Engine("reference"), Engine("fast", conv="im2col"),
                                    Engine("fast", conv="winograd")])
def test_forward_backward_match_numpy(engine):
    """A whole network on CuPy against NumPy, in the reference engine and the fast
    one under both convolution algorithms (the 32-channel layer is one Winograd
    applies to)."""
    from diet_np.fast.conv import algorithm

    cp = get_xp("gpu")
    if engine.fast:
        assert algorithm((5, 32, 8, 8), (32, 32, 3, 3), 1, 1, cp, engine.conv) == \
            (2 if engine.conv == "winograd" else 0)
    net = vgg([32, "A", 32, "M"], [16], num_classes=4, input_shape=(3, 16, 16))
    net.engine = engine
    params = net.init_params(0, dtype=np.float64)
    with_thresholds(params, 0.1)
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


def test_conv_in_several_chunks_matches_numpy(monkeypatch):
    """The GPU chunking of im2col (by bytes) against NumPy's, forcing many chunks."""
    from diet_np.fast import conv

    cp = get_xp("gpu")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 5, 9, 9))
    w = rng.normal(size=(6, 5, 3, 3))
    dout = rng.normal(size=(7, 6, 9, 9))
    out, cache = conv.conv2d_forward(x, w, 1, 1)
    dx, dw = conv.conv2d_backward(dout, cache)
    monkeypatch.setattr(conv, "GPU_CHUNK_BYTES", 5 * 9 * 8 * 81 * 2)   # two images a chunk
    gout, gcache = conv.conv2d_forward(cp.asarray(x), cp.asarray(w), 1, 1)
    assert len(conv._chunks(gcache[0], 3, 3, 1, 1, gcache[1].dtype)) == 4
    gdx, gdw = conv.conv2d_backward(cp.asarray(dout), gcache)
    for a, b in ((out, gout), (dx, gdx), (dw, gdw)):
        np.testing.assert_allclose(to_host(b), a, rtol=1e-10, atol=1e-12)


_SPIN = r"""
extern "C" __global__ void spin(long long ns) {
    long long start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do { asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now)); } while (now - start < ns);
}
"""


@pytest.mark.parametrize("engine", [Engine("reference"), Engine("fast", fused_lif=False),
                                    Engine("fast", fused_lif=True)])
def test_training_step_never_waits_for_the_device(engine):
    """Queue a kernel that keeps the GPU busy for 3 s, then a whole training step
    (forward over T, BPTT, Adam, clamp): if anything in the step waited for the
    device (a copy to the host, a float(), a pageable host-to-device copy), the
    busy kernel would have finished by the time the step returns."""
    import cupy

    from diet_np.backend import default_rng
    from diet_np.optim import make_optimizer
    from diet_np.training import diet_config, train_step

    net = vgg([8, "A", 16, "M"], [32], num_classes=4, input_shape=(3, 16, 16),
              dropout={"conv": 0.1, "fc": 0.1})
    net.engine = engine
    params = to_device(net.init_params(0), cupy)
    x = cupy.asarray(np.random.default_rng(0).normal(size=(6, 3, 16, 16)).astype(np.float32))
    y = cupy.asarray(np.array([0, 1, 2, 3, 0, 1]))
    cfg = diet_config(T=4)
    opt = make_optimizer("adam", 1e-3, amsgrad=True, engine=engine.name)
    rng = default_rng(cupy, 0)
    train_step(net, params, opt, x, y, cfg=cfg, rng=rng, lr=1e-3)      # compile, allocate
    cupy.cuda.Device().synchronize()
    spin = cupy.RawKernel(_SPIN, "spin")
    spin((1,), (1,), (np.int64(3_000_000_000),))
    busy = cupy.cuda.Event()
    busy.record()
    loss, correct = train_step(net, params, opt, x, y, cfg=cfg, rng=rng, lr=1e-3)
    assert not busy.done, "the training step waited for the device"
    cupy.cuda.Device().synchronize()
    assert np.isfinite(float(loss)) and 0 <= int(correct) <= 6


def test_pipeline_runs_on_the_gpu(tmp_path):
    """ANN training, conversion, DIET fine-tuning and evaluation with CuPy arrays
    end to end, checkpoints written from the device."""
    from diet_np.data import make_shapes
    from diet_np.pipeline import run_all
    from diet_np.training import ann_config, diet_config

    data = make_shapes(n_train=128, n_test=64, seed=2)
    arch = {"features": [8, "A", 16, "A"], "classifier": [32], "name": "tiny"}
    summary = run_all(data, arch, str(tmp_path), ann_config(epochs=2, batch_size=32, lr=0.05),
                      diet_config(epochs=1, batch_size=32, T=3), device="gpu", T_find=4,
                      images=32, long_T=8, show_progress=False)
    assert summary["device"] == "gpu"
    for value in (summary["ann_accuracy"], summary["converted"]["accuracy"],
                  summary["diet"]["accuracy"]):
        assert 0.0 <= value <= 1.0
    assert (tmp_path / "diet" / "checkpoint.npz").exists()


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_adam_step_matches_numpy(engine):
    """Adam (with AMSGrad and weight decay) on CuPy arrays against NumPy's."""
    from diet_np.optim import make_optimizer

    cp = get_xp("gpu")
    rng = np.random.default_rng(3)
    params = {"a.weight": rng.normal(size=(70, 300)), "a.leak": np.array(0.9)}
    grads = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(3)]
    out = {}
    for xp in (np, cp):
        p = to_device({k: v.copy() for k, v in params.items()}, xp)   # steps update in place
        opt = make_optimizer("adam", 1e-2, amsgrad=True, weight_decay=1e-3, engine=engine)
        for g in grads:
            opt.step(p, to_device(g, xp))
        out[xp.__name__] = to_host(p)
    for k in params:
        np.testing.assert_allclose(out["cupy"][k], out["numpy"][k], rtol=1e-12, atol=1e-14)
