# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 9: the same code on a GPU
#
# Every op in `diet_np` is written against an *array module* `xp`, taken from its input
# arrays: NumPy on the CPU, CuPy on an NVIDIA GPU. Nothing in the forward pass (Eq. 2–6),
# the BPTT (Eq. 9–14) or the update and clamp (Eq. 15) names NumPy directly, so the
# same lines run on either. This lesson
#
# 1. picks a device with `diet_np.backend` and says which one it got;
# 2. lists what changes on a GPU and what must not: no implicit copies between host and
#    device;
# 3. shows the *strict test device*, a CPU array that refuses implicit conversions the
#    way CuPy does, catching every mistake of that kind on a machine without a GPU;
# 4. checks parity: the same forward and backward on NumPy and on the device;
# 5. times a training step on each.
#
# Without a GPU (or without CuPy) the lesson runs on the CPU and the strict device, and
# says so; then it contains no GPU timings.
#
# **Assumes:** lessons 5 and 7 (the `Network` API, a training step).
# **Runs in:** quick mode a few seconds; full mode about 20 s on a CPU (no GPU).

# %%
import os
import tempfile
import time

import matplotlib.ticker
import numpy as np

from diet_np.lessons.common import QUICK, pick, plt, save
from diet_np.architectures import build_network
from diet_np.backend import (BackendError, array_module, default_rng, device_of, get_xp,
                             gpu_available, gpu_status, to_device, to_host)
from diet_np.data import iterate_batches, make_shapes
from diet_np.ops import softmax_cross_entropy
from diet_np.optim import make_optimizer
from diet_np.strict import StrictDeviceError
from diet_np.training import diet_config, fit, train_step

print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. Choosing a device
#
# `gpu_status()` tries to import CuPy and count CUDA devices, once, and never raises; it
# returns `(usable, reason)`. `get_xp(name)` returns the array module for `"cpu"`
# (NumPy), `"gpu"` (CuPy; an error if there is no usable GPU) or `"strict"` (the test
# device of section 3). The CLI's `--device gpu` does the same.

# %%
usable, reason = gpu_status()
HAS_GPU = gpu_available()
assert HAS_GPU == usable
devices = ["strict"] + (["gpu"] if HAS_GPU else [])
if HAS_GPU:
    import cupy
    print(f"GPU found ({reason}): {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}")
else:
    print(f"No usable GPU here ({reason}).")
    print("This run uses the CPU (NumPy) and the strict test device only; "
          "it measures no GPU times.")
    try:
        get_xp("gpu")
    except BackendError as exc:
        print("get_xp('gpu') says:", exc)

# %% [markdown]
# ## 2. What changes, and what must not
#
# What changes is only *where the arrays live*:
#
# * parameters are copied to the device once, `params = to_device(params, xp)`, and
#   back with `to_host(params)` (both take a dict of arrays);
# * each batch is copied explicitly: `iterate_batches(..., xp)` moves the uint8 images
#   (the smallest form) and normalises them on the device;
# * dropout masks come from a generator on the device, `default_rng(xp, seed)`;
# * every function finds its module with `array_module(*inputs)`, which raises
#   `BackendError` if arrays of two libraries meet;
# * on CuPy each LIF layer's loop over the $T$ steps runs as one fused CUDA kernel for
#   the forward and one for the backward (`diet_np/fast/kernels.py`, one thread per neuron),
#   tested equal to the array code, which `DIET_NP_FUSED_LIF=0` selects instead;
# * GPU work is asynchronous: to time it, wait for the device before reading the clock.
#
# What must not happen is a **hidden copy between device and host**. `np.asarray(x)` on
# a GPU array, or an operation mixing a GPU array with a NumPy array, would either fail
# or quietly move data over the PCIe bus and wait for the GPU each time. The training
# step reads nothing back; the loop synchronises only when it logs a number
# (`float(loss)`).
#
# Here is the round trip for a parameter dictionary:

# %%
ARCH = {"features": [16, "A", 32, "A", 64, "A"], "classifier": [128], "name": "shapes_cnn"}
net = build_network(ARCH, num_classes=10)                            # lesson 7's network
host_params = net.init_params(seed=0)
for device in devices:
    xp = get_xp(device)
    dev_params = to_device(host_params, xp)
    back = to_host(dev_params)
    exact = all(np.array_equal(back[k], host_params[k]) for k in host_params)
    print(f"to_device(params, get_xp({device!r})): conv1.weight is now a "
          f"{type(dev_params['conv1.weight']).__name__} on device "
          f"{device_of(dev_params['conv1.weight'])!r}; to_host gives it back exactly: {exact}")
    assert exact and array_module(dev_params["conv1.weight"]) is xp

# %% [markdown]
# ## 3. The strict device: CuPy's refusals, on a CPU
#
# CI machines have no GPU, yet code that converts device arrays implicitly would break
# there. `get_xp("strict")` returns a module whose arrays wrap NumPy arrays but refuse
# `np.asarray` and refuse to meet NumPy arrays in an operation or as an index. Size-1
# conversions (`float(x)`, `bool(x)`) are allowed, as on CuPy, where each is a
# synchronisation. CuPy itself raises a `TypeError` for an implicit conversion to NumPy
# and for arithmetic with a NumPy array; the strict device raises `StrictDeviceError`,
# a `TypeError` subclass, and is stricter in places (NumPy index arrays).

# %%
xs = get_xp("strict")
a = xs.ones((2, 3), dtype=np.float32)
refusals = {
    "np.asarray(a)": lambda: np.asarray(a),
    "a + np.ones((2, 3))": lambda: a + np.ones((2, 3)),
    "np.ones((2, 3)) * a": lambda: np.ones((2, 3)) * a,
    "a[np.array([0])]": lambda: a[np.array([0])],
    "softmax_cross_entropy(a, np.array([0, 1]))":
        lambda: softmax_cross_entropy(a, np.array([0, 1])),
}
refused = {}
for text, attempt in refusals.items():
    try:
        attempt()
        refused[text] = None
    except (StrictDeviceError, BackendError) as exc:
        refused[text] = type(exc).__name__
        print(f"{text:45s} -> {type(exc).__name__}: {str(exc)[:70]}...")
assert all(refused.values()), refused
assert issubclass(StrictDeviceError, TypeError)
print("allowed: float(a.sum()) =", float(a.sum()), "; to_host(a) is a", type(to_host(a)).__name__)

# %% [markdown]
# The real test: a whole fine-tuning run, with data loading, dropout, BPTT, AMSGrad,
# the clamp, evaluation, spike counting, logging and a checkpoint, on the strict device.
# Any hidden conversion anywhere in `fit` would raise.

# %%
small = make_shapes(n_train=64, n_test=32, seed=3)
params_strict = to_device(host_params, xs)
for k in params_strict:
    if k.endswith(".threshold"):
        params_strict[k][...] = 0.5                        # a made-up SNN that spikes
with tempfile.TemporaryDirectory() as run_dir:
    strict_log = fit(net, params_strict, small, diet_config(epochs=1, batch_size=32, T=3), run_dir,
                     arch=ARCH, xp=xs, show_progress=False)
print("fit on the strict device finished:",
      {k: strict_log[0][k] for k in ("train_loss", "test_acc")})
assert device_of(params_strict["fc1.threshold"]) == "strict"

# %% [markdown]
# ## 4. Parity: the same numbers on every device
#
# One forward and backward pass in float64 on a batch of images, with thresholds low
# enough that every layer spikes, on NumPy and on each device. The strict device runs
# NumPy underneath, so it must agree bit for bit, provided the NumPy run does its sums
# in the same order: on NumPy arrays diet_np splits convolutions, dense and LIF layers
# into one block per CPU core (`diet_np/fast/parallel.py`), which regroups a few sums, while
# the strict device, like CuPy, runs each as one block; so the NumPy reference runs with
# one worker, `DIET_NP_THREADS=1`. A GPU sums in a different order, so
# its results agree to rounding; a potential that lands within rounding error of a
# threshold could then fire on one device and not the other, which the check would
# report as a mismatch.

# %%
def forward_backward(xp, params64, x, y, T=4):
    p, xx, yy = to_device(params64, xp), to_device(x, xp), to_device(y, xp)
    logits, trace = net.forward(p, xx, train=False, T=T, mode="snn")
    loss, dlogits = softmax_cross_entropy(logits, yy)
    grads = net.backward(p, dlogits, trace)
    spikes = {k: float(v) for k, v in trace.spike_counts.items()}
    return float(loss), to_host(logits), to_host(grads), spikes


params64 = net.init_params(seed=0, dtype=np.float64)
for k in params64:
    if k.endswith(".threshold"):
        params64[k][...] = 0.3
x64, y64 = next(iterate_batches(small.x_train, small.y_train, 16, np, shuffle=False,
                                mean=small.mean, std=small.std))
x64 = x64.astype(np.float64)
threads_before = os.environ.get("DIET_NP_THREADS")
os.environ["DIET_NP_THREADS"] = "1"
reference = forward_backward(np, params64, x64, y64)
if threads_before is None:
    del os.environ["DIET_NP_THREADS"]
else:
    os.environ["DIET_NP_THREADS"] = threads_before
print("spikes per layer (NumPy):", {k: int(v) for k, v in reference[3].items()})
assert all(v > 0 for v in reference[3].values())
parity = {}
for device in devices:
    result = forward_backward(get_xp(device), params64, x64, y64)
    worst = max(float(np.max(np.abs(result[2][k] - reference[2][k]))
                      / (np.max(np.abs(reference[2][k])) + 1e-30)) for k in reference[2])
    parity[device] = {"loss": abs(result[0] - reference[0]), "grads": worst,
                      "logits": float(np.max(np.abs(result[1] - reference[1]))),
                      "spikes equal": result[3] == reference[3]}
    print(f"{device}: |loss difference| {parity[device]['loss']:.1e}, largest relative "
          f"gradient difference {worst:.1e}, spike counts equal: {parity[device]['spikes equal']}")
strict_parity = parity["strict"]
assert strict_parity["loss"] == 0 and strict_parity["grads"] == 0 and strict_parity["spikes equal"]
if HAS_GPU:
    assert parity["gpu"]["spikes equal"] and parity["gpu"]["grads"] < 1e-8

# %% [markdown]
# ## 5. Timing a training step
#
# One DIET training step (`train_step`: forward over $T = 5$, loss, BPTT, AMSGrad, clamp)
# on lesson 7's network, in float32, for a few batch sizes. On a GPU the clock is read
# only after `cupy.cuda.Device().synchronize()`, and the first steps (kernel compilation)
# are not timed. The strict device's times are CPU times with a wrapper's overhead: they
# say nothing about a GPU, and are shown only to make that plain.

# %%
def sync(xp):
    if getattr(xp, "__name__", "") == "cupy":
        xp.cuda.Device().synchronize()


def time_train_step(device, batch, repeats):
    xp = get_xp(device) if device != "cpu" else np
    params = to_device(host_params, xp)
    for k in params:
        if k.endswith(".threshold"):
            params[k][...] = 0.5
    x, y = next(iterate_batches(timing_data.x_train, timing_data.y_train, batch, xp,
                                shuffle=False, mean=timing_data.mean, std=timing_data.std))
    cfg, opt, rng = diet_config(T=5), make_optimizer("adam", 1e-4, amsgrad=True), default_rng(xp, 0)
    for _ in range(2):                                            # warm-up, not timed
        train_step(net, params, opt, x, y, cfg=cfg, rng=rng, lr=1e-4)
    sync(xp)
    start = time.perf_counter()
    for _ in range(repeats):
        train_step(net, params, opt, x, y, cfg=cfg, rng=rng, lr=1e-4)
    sync(xp)
    return (time.perf_counter() - start) / repeats


batches = pick([16, 64], [16, 64, 256])
if HAS_GPU:
    batches = batches + [1024]
timing_data = make_shapes(n_train=max(batches), n_test=10, seed=3)
repeats = pick(2, 5)
timings = {d: [time_train_step(d, b, repeats) for b in batches] for d in ["cpu"] + devices}
print("seconds per training step (T = 5)")
print("batch  " + "  ".join(f"{d:>8s}" for d in timings))
for i, b in enumerate(batches):
    print(f"{b:5d}  " + "  ".join(f"{timings[d][i]:8.4f}" for d in timings))

fig, ax = plt.subplots(figsize=(7, 4))
for d, marker in zip(timings, "osd"):
    label = {"cpu": "NumPy (CPU)", "strict": "strict device (CPU emulation, not a GPU)",
             "gpu": "CuPy (GPU)"}[d]
    ax.plot(batches, np.array(timings[d]) / np.array(batches) * 1e3, marker + "-", label=label)
ax.set_xscale("log", base=2)
per_image = [t / b for d in timings for t, b in zip(timings[d], batches)]
if max(per_image) / min(per_image) > 10:                         # a GPU in the picture
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
else:
    ax.set_ylim(0, 1.15e3 * max(per_image))
ax.set_xticks(batches)
ax.set_xticklabels([str(b) for b in batches])
ax.set_xlabel("batch size")
ax.set_ylabel("milliseconds per image per training step")
ax.set_title("DIET training step, $T = 5$, lesson 7's network"
             + ("" if HAS_GPU else "\n(no GPU on this machine: CPU only)"))
ax.legend(fontsize=9)
save(fig, "09_timings")

# %% [markdown]
# ## Summary
#
# * The device is a run-time choice (`get_xp`), and everything follows the arrays it
#   is given; nothing is copied between host and device except by `to_device` and
#   `to_host`.
# * The strict device refuses what CuPy refuses, so CI without a GPU still catches
#   implicit conversions; a whole `fit` runs on it.
# * The forward and backward agree across devices (bit for bit on the strict device);
#   the printed table holds this machine's timings, and GPU times appear only where a
#   GPU was found.
#
# ## Exercises
#
# 1. Why does `float(a)` on a strict-device array fail, and what is the explicit
#    replacement? *Answer:* it is an implicit copy from device to host, which CuPy
#    refuses too; `float(to_host(a))` says where the copy happens.
# 2. Extend the timing table to a batch of 1024 on the CPU. Does the time per image
#    keep falling? *Hint:* it falls while larger matrix products use the cores better,
#    and stops falling once they are busy; on a GPU it falls much further.
# 3. Run one epoch of lesson 8's fine-tuning with `xp = get_xp("gpu")` where a GPU is
#    found. Which arrays must you move yourself? *Hint:* the parameters (`to_device`);
#    `fit` moves each batch.
#
# **Next:** lesson 10 puts the pipeline together for VGG16 on CIFAR-10, the run that
# needs a GPU.
