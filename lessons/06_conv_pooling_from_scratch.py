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
# # Lesson 6: convolution and pooling from scratch
#
# In a convolutional DIET-SNN the input current of layer $l$ is a convolution of the
# previous layer's (pooled) spikes, $I_l^t = W_l \ast g(o_{l-1}^t)$, with 3x3 kernels,
# stride 1, padding 1 and no bias; between blocks sits 2x2 average pooling. Time is
# folded into the batch (`T*B` images), so these are ordinary image operations. This
# lesson builds them from nothing and holds them against the library:
#
# 1. a naive loop convolution, obviously correct and slow;
# 2. **im2col**, which turns every receptive field into a column so that the whole
#    convolution becomes one matrix product, and its adjoint **col2im**;
# 3. the backward pass of the convolution, derived from the matrix product;
# 4. average and max pooling, forward and backward;
# 5. gradient checks with `diet_np.gradcheck`, and timings of the naive loop against
#    the im2col version;
# 6. Winograd's F(2x2, 3x3), the fewer-multiplications algorithm the library runs for
#    3x3 layers with many channels.
#
# Each piece built here is asserted equal to `diet_np.ops`.
#
# **Assumes:** NumPy broadcasting and slicing; no spiking knowledge needed. **Runs in:**
# a few seconds (the naive loop dominates).

# %%
import time

import numpy as np

from diet_np import fast, ops
from diet_np.lessons.common import QUICK, pick, plt, save
from diet_np.data import make_shapes
from diet_np.gradcheck import numerical_gradient, relative_error

print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. The naive convolution
#
# Input `x: (N, C, H, W)`, weights `w: (C_out, C, kh, kw)`, stride $s$, zero padding
# $p$. Output `(N, C_out, Ho, Wo)` with
#
#     Ho = (H + 2p - kh) // s + 1      (and the same for Wo)
#     out[n, o, y, x] = sum_{c, i, j} w[o, c, i, j] * xpad[n, c, y*s + i, x*s + j]
#
# (strictly a cross-correlation, as in every deep-learning library). Four loops over the
# output, one small sum per output value:

# %%
def output_size(size, kernel, stride, pad):
    return (size + 2 * pad - kernel) // stride + 1


def conv_naive(x, w, stride=1, pad=0):
    n_img, _, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    ho, wo = output_size(h, kh, stride, pad), output_size(wd, kw, stride, pad)
    xpad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n_img, c_out, ho, wo), dtype=np.result_type(x, w))
    for n in range(n_img):
        for o in range(c_out):
            for y in range(ho):
                for xx in range(wo):
                    window = xpad[n, :, y * stride:y * stride + kh, xx * stride:xx * stride + kw]
                    out[n, o, y, xx] = np.sum(window * w[o])
    return out


for size, kernel, stride, pad in [(32, 3, 1, 1), (32, 1, 2, 0), (7, 3, 2, 1)]:
    assert output_size(size, kernel, stride, pad) == ops.conv_output_size(size, kernel, stride, pad)
print("output sizes: 32 -> 32 (3x3, s1, p1), 32 -> 16 (1x1, s2, p0), 7 -> 4 (3x3, s2, p1)")

# %% [markdown]
# What a 3x3 convolution computes, on one image of the embedded shapes data set: two
# hand-made edge detectors (summed over the three colour channels) respond where the
# brightness changes from left to right or from top to bottom. The strong responses
# along the border come from the zero padding: outside the image counts as black.

# %%
shapes = make_shapes(n_train=10, n_test=10, seed=3)
image = shapes.x_train[:1].astype(np.float64) / 255.0                # (1, 3, 32, 32)
edge = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 3.0
kernels = np.stack([np.stack([edge] * 3), np.stack([edge.T] * 3)])   # (2, 3, 3, 3)
edges = conv_naive(image, kernels, stride=1, pad=1)
edges_library, _ = ops.conv2d_forward(image, kernels, stride=1, pad=1)
np.testing.assert_allclose(edges, edges_library, atol=1e-12)

fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
axes[0].imshow(image[0].transpose(1, 2, 0))
axes[0].set_title(f"input: {shapes.class_names[shapes.y_train[0]]}")
for ax, k, name in ((axes[1], 0, "left-right edges"), (axes[2], 1, "top-bottom edges")):
    lim = np.abs(edges[0, k]).max()
    im = ax.imshow(edges[0, k], cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(f"3x3 conv: {name}")
    fig.colorbar(im, ax=ax, fraction=0.046)
for ax in axes:
    ax.set_xticks([]), ax.set_yticks([]), ax.grid(False)
save(fig, "06_what_conv_computes")

# %% [markdown]
# ## 2. im2col: every receptive field becomes a column
#
# The sum above is a dot product between the flattened kernel `w[o]` (length
# `C*kh*kw`) and the flattened window under it. Collect all windows as the columns of
# one matrix `col` of shape `(C*kh*kw, N*Ho*Wo)`, and the whole convolution is a single
# matrix product:
#
#     out2d = w.reshape(C_out, C*kh*kw) @ col        -> (C_out, N*Ho*Wo)
#
# The rows of `col` must be ordered `(c, i, j)` to match the reshaped weight; its
# columns are ordered `(n, y, x)`. Filling `col` window by window would be a loop over
# all `N*Ho*Wo` outputs again. Instead loop over the `kh*kw` kernel offsets (9 for
# 3x3): for a fixed offset `(i, j)`, the entries `xpad[:, :, y*s + i, x*s + j]` for all
# `y, x` are one strided slice of the padded image. So `col` is filled with nine slice
# copies. The library does the same (its module docstring describes the layout); the
# version here is written out step by step.

# %%
def im2col_inline(x, kh, kw, stride=1, pad=0):
    """x (N, C, H, W) -> col (C*kh*kw, N*Ho*Wo), rows (c, i, j), columns (n, y, x)."""
    n_img, c, h, wd = x.shape
    ho, wo = output_size(h, kh, stride, pad), output_size(wd, kw, stride, pad)
    xpad = np.zeros((n_img, c, h + 2 * pad, wd + 2 * pad), dtype=x.dtype)
    xpad[:, :, pad:pad + h, pad:pad + wd] = x
    col = np.empty((c, kh, kw, n_img, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = xpad[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]  # (N, C, Ho, Wo)
            col[:, i, j] = patch.transpose(1, 0, 2, 3)                             # (C, N, Ho, Wo)
    return col.reshape(c * kh * kw, n_img * ho * wo)


def conv_im2col(x, w, stride=1, pad=0):
    n_img, _, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    ho, wo = output_size(h, kh, stride, pad), output_size(wd, kw, stride, pad)
    col = im2col_inline(x, kh, kw, stride, pad)
    out2d = w.reshape(c_out, -1) @ col                               # (C_out, N*Ho*Wo)
    return out2d.reshape(c_out, n_img, ho, wo).transpose(1, 0, 2, 3)


rng = np.random.default_rng(0)
conv_cases = [dict(n=2, c=3, h=7, w=6, c_out=4, k=3, stride=1, pad=1),
              dict(n=2, c=2, h=8, w=8, c_out=3, k=3, stride=2, pad=1),
              dict(n=1, c=4, h=6, w=6, c_out=5, k=1, stride=2, pad=0),
              dict(n=3, c=1, h=5, w=9, c_out=2, k=3, stride=1, pad=0)]
for case in conv_cases:
    xc = rng.normal(size=(case["n"], case["c"], case["h"], case["w"]))
    wc = rng.normal(size=(case["c_out"], case["c"], case["k"], case["k"]))
    s, p = case["stride"], case["pad"]
    np.testing.assert_array_equal(im2col_inline(xc, case["k"], case["k"], s, p),
                                  ops.im2col(xc, case["k"], case["k"], s, p))
    reference = conv_naive(xc, wc, s, p)
    np.testing.assert_allclose(conv_im2col(xc, wc, s, p), reference, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ops.conv2d_forward(xc, wc, s, p)[0], reference,
                               rtol=1e-12, atol=1e-12)
print(f"{len(conv_cases)} shapes: inline im2col == ops.im2col; naive == im2col conv == "
      "ops.conv2d_forward")

# %% [markdown]
# The picture for the smallest case: one 4x4 single-channel image holding the numbers
# 1..16, a 3x3 kernel, stride 1, no padding: four windows, so `col` has 4 columns of 9
# rows, each column the window of one output pixel read row by row.

# %%
tiny = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
tiny_col = im2col_inline(tiny, 3, 3)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 4.2), gridspec_kw={"width_ratios": [1, 0.9]})
ax1.imshow(tiny[0, 0], cmap="Blues", vmin=-4, vmax=20)
for (r, cidx), value in np.ndenumerate(tiny[0, 0]):
    ax1.text(cidx, r, f"{value:.0f}", ha="center", va="center", fontsize=12)
ax1.add_patch(plt.Rectangle((-0.45, -0.45), 2.9, 2.9, fill=False, ec="C3", lw=2))
ax1.add_patch(plt.Rectangle((0.55, 0.55), 2.9, 2.9, fill=False, ec="C2", lw=2, ls="--"))
ax1.set_title("input 4x4; red: window of output (0,0)\ngreen: window of output (1,1)")
ax2.imshow(tiny_col, cmap="Blues", vmin=-4, vmax=20, aspect="auto")
for (r, cidx), value in np.ndenumerate(tiny_col):
    ax2.text(cidx, r, f"{value:.0f}", ha="center", va="center", fontsize=10)
ax2.set_xticks(range(4), ["(0,0)", "(0,1)", "(1,0)", "(1,1)"])
ax2.set_yticks(range(9), [f"i={i},j={j}" for i in range(3) for j in range(3)])
ax2.set_xlabel("output pixel (y, x)")
ax2.set_title(r"col = im2col($x$): $9 \times 4$")
for ax in (ax1, ax2):
    ax.grid(False)
ax1.set_xticks([]), ax1.set_yticks([])
save(fig, "06_im2col_picture")
assert tiny_col[:, 0].tolist() == [1, 2, 3, 5, 6, 7, 9, 10, 11]

# %% [markdown]
# ## 3. col2im, the adjoint of im2col
#
# im2col is linear and copies each input pixel into every column whose window covers
# it. Its adjoint (transpose) goes the other way: **col2im** adds each entry of a
# column matrix back onto the pixel it was copied from. It is what the backward pass
# needs, and it is *not* an inverse: `col2im(im2col(x))` multiplies each pixel by the
# number of windows that cover it. The same nine-slice loop works, with `+=` instead of
# a copy (no scatter-add, no fancy indexing).

# %%
def col2im_inline(col, x_shape, kh, kw, stride=1, pad=0):
    """Adjoint of im2col_inline: (C*kh*kw, N*Ho*Wo) -> (N, C, H, W), overlaps added."""
    n_img, c, h, wd = x_shape
    ho, wo = output_size(h, kh, stride, pad), output_size(wd, kw, stride, pad)
    col6 = col.reshape(c, kh, kw, n_img, ho, wo)
    xpad = np.zeros((n_img, c, h + 2 * pad, wd + 2 * pad), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):
            xpad[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += \
                col6[:, i, j].transpose(1, 0, 2, 3)
    return xpad[:, :, pad:pad + h, pad:pad + wd]


adjoint_gaps = []
for case in conv_cases:
    shape = (case["n"], case["c"], case["h"], case["w"])
    k, s, p = case["k"], case["stride"], case["pad"]
    xc = rng.normal(size=shape)
    cols = rng.normal(size=ops.im2col(xc, k, k, s, p).shape)
    np.testing.assert_allclose(col2im_inline(cols, shape, k, k, s, p),
                               ops.col2im(cols, shape, k, k, s, p), rtol=1e-12, atol=1e-12)
    # <im2col(x), cols> == <x, col2im(cols)>: the defining property of the adjoint
    lhs = np.sum(im2col_inline(xc, k, k, s, p) * cols)
    rhs = np.sum(xc * col2im_inline(cols, shape, k, k, s, p))
    adjoint_gaps.append(abs(lhs - rhs) / abs(lhs))
print(f"inline col2im == ops.col2im; <im2col(x), c> = <x, col2im(c)> to "
      f"{max(adjoint_gaps):.1e} (relative)")
assert max(adjoint_gaps) < 1e-12

coverage = col2im_inline(im2col_inline(np.ones((1, 1, 6, 6)), 3, 3, 1, 1), (1, 1, 6, 6), 3, 3, 1, 1)
print("col2im(im2col(ones)) for 3x3, stride 1, pad 1 on 6x6 (windows covering each pixel):")
print(coverage[0, 0].astype(int))
assert coverage[0, 0, 0, 0] == 4 and coverage[0, 0, 0, 2] == 6 and coverage[0, 0, 2, 2] == 9

# %% [markdown]
# ## 4. The backward pass of the convolution
#
# Write the forward as $\mathrm{out} = W_2\, \mathrm{col}$ with `W2 = w.reshape(C_out, -1)` and
# $\mathrm{col} = \mathrm{im2col}(x)$. Given `dout` (reshaped the same way as `out2d`, i.e. to
# `(C_out, N*Ho*Wo)`), the matrix product rule gives
#
#     dW2  = dout2d @ col^T           -> dw = dW2.reshape(w.shape)   (Eq. 12's dW)
#     dcol = W2^T @ dout2d
#     dx   = col2im(dcol)                                           (the adjoint of im2col)
#
# $dx$ is the gradient handed to the previous layer (in the SNN: to the previous
# layer's spikes at the same step). The first layer, fed by the image, needs no $dx$;
# the library skips it there (`need_dx=False`).

# %%
def conv_backward_inline(dout, x, w, stride=1, pad=0):
    c_out, _, kh, kw = w.shape
    dout2d = dout.transpose(1, 0, 2, 3).reshape(c_out, -1)     # (C_out, N*Ho*Wo)
    col = im2col_inline(x, kh, kw, stride, pad)
    dw = (dout2d @ col.T).reshape(w.shape)
    dx = col2im_inline(w.reshape(c_out, -1).T @ dout2d, x.shape, kh, kw, stride, pad)
    return dx, dw


conv_grad_errors = []
for case in conv_cases:
    xc = rng.normal(size=(case["n"], case["c"], case["h"], case["w"]))
    wc = rng.normal(size=(case["c_out"], case["c"], case["k"], case["k"]))
    s, p = case["stride"], case["pad"]
    out, cache = ops.conv2d_forward(xc, wc, s, p)
    g = rng.normal(size=out.shape)                     # loss L = sum(g * out), so dout = g
    dx_inline, dw_inline = conv_backward_inline(g, xc, wc, s, p)
    dx_lib, dw_lib = ops.conv2d_backward(g, cache)
    np.testing.assert_allclose(dx_inline, dx_lib, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw_inline, dw_lib, rtol=1e-12, atol=1e-12)
    loss = lambda: np.sum(g * conv_im2col(xc, wc, s, p))
    err_x = relative_error(dx_inline, numerical_gradient(loss, xc))
    err_w = relative_error(dw_inline, numerical_gradient(loss, wc))
    conv_grad_errors += [err_x, err_w]
    print(f"x {tuple(xc.shape)}, w {tuple(wc.shape)}, stride {s}, pad {p}: "
          f"finite-difference relative error dx {err_x:.1e}, dw {err_w:.1e}")
assert max(conv_grad_errors) < 1e-8

# %% [markdown]
# The convolution is linear in $x$ and in $w$, so central differences are exact up to
# rounding, and the errors are at the 1e-10 level or below: far inside the `1e-8`
# asserted here.
#
# ## 5. Pooling
#
# DIET-SNN uses 2x2 average pooling with stride 2 between convolution blocks. With
# non-overlapping windows, no im2col is needed: view `(N, C, H, W)` as
# `(N, C, H/2, 2, W/2, 2)` and reduce over the two window axes.
#
# * **Average**: `out = mean over the window`; backward: every input of a window gets
#   `dout / 4`.
# * **Max**: `out = max over the window`; backward: the whole `dout` goes to the
#   arg-max (the library gives ties to the first element in row-major order).
#
# On spikes, average pooling gives multiples of 1/4, so the next layer's input is not
# binary; that is expected in the paper's networks.

# %%
def avgpool_inline(x, k=2):
    n_img, c, h, wd = x.shape
    return x.reshape(n_img, c, h // k, k, wd // k, k).mean(axis=(3, 5))


def avgpool_backward_inline(dout, k=2):
    return np.repeat(np.repeat(dout, k, axis=2), k, axis=3) / (k * k)


def maxpool_inline(x, k=2):
    n_img, c, h, wd = x.shape
    windows = x.reshape(n_img, c, h // k, k, wd // k, k).transpose(0, 1, 2, 4, 3, 5)
    windows = windows.reshape(n_img, c, h // k, wd // k, k * k)
    return windows.max(axis=-1), windows.argmax(axis=-1)


def maxpool_backward_inline(dout, argmax, x_shape, k=2):
    n_img, c, h, wd = x_shape
    dwin = np.zeros(dout.shape + (k * k,))
    np.put_along_axis(dwin, argmax[..., None], dout[..., None], axis=-1)
    dwin = dwin.reshape(n_img, c, h // k, wd // k, k, k).transpose(0, 1, 2, 4, 3, 5)
    return dwin.reshape(x_shape)


xp_ = rng.normal(size=(2, 3, 6, 8))
g_pool = rng.normal(size=(2, 3, 3, 4))
# Nudge away from the kinks of max pooling (near-ties inside a window): raise every
# window's maximum by 0.05, using the max-pool backward itself to find where it is.
xp_ = xp_ + maxpool_backward_inline(np.full(g_pool.shape, 0.05), maxpool_inline(xp_)[1], xp_.shape)
avg_lib, avg_cache = ops.avgpool_forward(xp_, 2)
np.testing.assert_allclose(avgpool_inline(xp_), avg_lib, rtol=1e-12)
np.testing.assert_allclose(avgpool_backward_inline(g_pool), ops.avgpool_backward(g_pool, avg_cache),
                           rtol=1e-12)
max_inline, arg_inline = maxpool_inline(xp_)
max_lib, max_cache = ops.maxpool_forward(xp_, 2)
np.testing.assert_array_equal(max_inline, max_lib)
np.testing.assert_allclose(maxpool_backward_inline(g_pool, arg_inline, xp_.shape),
                           ops.maxpool_backward(g_pool, max_cache), rtol=1e-12)

# Finite differences: average pooling is linear; max pooling is checked at a point where
# every window's largest value leads the runner-up by far more than the step h (the
# nudge above).
windows = np.sort(xp_.reshape(2, 3, 3, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 3, 4, 4))
max_gap = float((windows[..., -1] - windows[..., -2]).min())
print(f"smallest gap between a window's largest and second-largest value: {max_gap:.3f}")
assert max_gap > 1e-3
pool_errors = {
    "average": relative_error(avgpool_backward_inline(g_pool),
                              numerical_gradient(lambda: np.sum(g_pool * avgpool_inline(xp_)), xp_)),
    "max": relative_error(maxpool_backward_inline(g_pool, arg_inline, xp_.shape),
                          numerical_gradient(lambda: np.sum(g_pool * maxpool_inline(xp_)[0]), xp_)),
}
print("pooling, inline == library; finite-difference relative errors:",
      {k: f"{v:.1e}" for k, v in pool_errors.items()})
assert max(pool_errors.values()) < 1e-8

spikes = (rng.random((1, 1, 4, 4)) < 0.5).astype(float)
print("spikes:\n", spikes[0, 0].astype(int), "\naverage-pooled:\n", avgpool_inline(spikes)[0, 0])

# %% [markdown]
# ## 6. How much faster is im2col?
#
# The naive convolution runs `N * C_out * Ho * Wo` small NumPy operations in Python;
# im2col runs nine slice copies and one large matrix product, handed to an optimised
# BLAS. Timings (the fastest of a few runs) for a 3x3 convolution with padding 1,
# 3 input channels and 16 output channels, on growing images:

# %%
def best_time(fn, repeats=3):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


sides = pick([8, 16], [8, 16, 32])
batch = pick(2, 4)
w_time = rng.normal(size=(16, 3, 3, 3))
timings = {"naive loops": [], "im2col (inline)": [], "ops.conv2d_forward": []}
for side in sides:
    x_time = rng.normal(size=(batch, 3, side, side))
    timings["naive loops"].append(best_time(lambda: conv_naive(x_time, w_time, 1, 1),
                                            repeats=pick(1, 3)))
    timings["im2col (inline)"].append(best_time(lambda: conv_im2col(x_time, w_time, 1, 1)))
    timings["ops.conv2d_forward"].append(best_time(lambda: ops.conv2d_forward(x_time, w_time, 1, 1)))
speedups = np.array(timings["naive loops"]) / np.array(timings["im2col (inline)"])
for k, side in enumerate(sides):
    print(f"{batch} images 3x{side}x{side} -> 16 channels: naive {1e3 * timings['naive loops'][k]:8.2f} ms,"
          f" im2col {1e3 * timings['im2col (inline)'][k]:6.3f} ms, library "
          f"{1e3 * timings['ops.conv2d_forward'][k]:6.3f} ms  (im2col {speedups[k]:.0f}x faster)")
assert speedups.min() > 5

fig, ax = plt.subplots(figsize=(6.5, 4))
for k, (name, values) in enumerate(timings.items()):
    ax.plot(sides, 1e3 * np.array(values), "o-", color=f"C{k}", label=name)
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xticks(sides, [str(s) for s in sides])
ax.set_xlabel("image side (pixels)")
ax.set_ylabel("time per call (ms, log scale)")
ax.set_title(f"3x3 conv, pad 1, {batch} images, 3 $\\to$ 16 channels")
ax.legend(fontsize=8)
save(fig, "06_conv_timing")

# %% [markdown]
# The exact numbers depend on the machine and on how busy it is; the gap between the
# naive loop and im2col is what matters (printed above). On a busy machine the fast
# curves can jump at the larger sizes, where the BLAS library starts several threads
# that then compete with other programs for the cores; running with
# `OPENBLAS_NUM_THREADS=1` (set before Python starts) removes that effect. The
# library's `conv2d_forward` may organise the work differently from the inline version
# (its module docstring says how), so the two fast curves need not coincide.
#
# ## 7. Fewer multiplications: Winograd's F(2x2, 3x3)
#
# im2col spends 9 multiply-adds per output pixel and input channel. For the 3x3, stride-1,
# padding-1 convolutions of a VGG, the fast engine's CPU path (`diet_np/fast/winograd.py`)
# does 4. The idea, in one dimension: two outputs of a 3-tap filter $g$ over four inputs
# $d$ take 6 products directly, but only 4 this way (Winograd's minimal filtering F(2, 3)):
#
#     m1 = (d0 - d2) g0            m2 = (d1 + d2) (g0 + g1 + g2) / 2
#     m4 = (d1 - d3) g2            m3 = (d2 - d1) (g0 - g1 + g2) / 2
#     y0 = m1 + m2 + m3            y1 = m2 - m3 - m4
#
# The sums on the $g$ side depend only on the weights, computed once per step; those on
# the $d$ side are additions. In matrix form $y = A^{\top} \big[(G g) \odot (B^{\top} d)\big]$,
# and nested in
# two dimensions, $Y = A^{\top} \big[(G g G^{\top}) \odot (B^{\top} D B)\big] A$ for a 4x4
# input tile $D$ and a 2x2
# output tile $Y$: 16 products instead of 36. Summed over input channels, each of the 16
# element-wise products becomes a matrix product over all tiles at once, which is where
# BLAS comes back in. The backward pass runs the same transforms transposed.

# %%
d, g = rng.normal(size=4), rng.normal(size=3)
m1, m4 = (d[0] - d[2]) * g[0], (d[1] - d[3]) * g[2]
m2 = (d[1] + d[2]) * (g[0] + g[1] + g[2]) / 2
m3 = (d[2] - d[1]) * (g[0] - g[1] + g[2]) / 2
winograd_1d = np.array([m1 + m2 + m3, m2 - m3 - m4])
direct_1d = np.array([d[0:3] @ g, d[1:4] @ g])
print("F(2, 3), 4 products:", winograd_1d, " direct, 6 products:", direct_1d)
assert np.allclose(winograd_1d, direct_1d, rtol=1e-12, atol=1e-12)

# the fast engine chooses the algorithm per layer; its `conv` setting forces one
x_w, w_w = rng.normal(size=(2, 8, 6, 6)), rng.normal(size=(5, 8, 3, 3))
dout_w = rng.normal(size=(2, 5, 6, 6))
by_algorithm = {}
for name in ("im2col", "winograd"):
    out_w, cache_w = fast.conv2d_forward(x_w, w_w, 1, 1, name)
    by_algorithm[name] = (out_w,) + fast.conv2d_backward(dout_w, cache_w)
winograd_gaps = [float(np.max(np.abs(a - b))) for a, b in
                 zip(by_algorithm["im2col"], by_algorithm["winograd"])]
print("Winograd vs im2col in float64, largest |difference| of out, dx, dw:",
      " ".join(f"{gap:.1e}" for gap in winograd_gaps))
np.testing.assert_allclose(by_algorithm["winograd"][0], conv_naive(x_w, w_w, 1, 1),
                           rtol=1e-12, atol=1e-12)
assert max(winograd_gaps) < 1e-12

# %% [markdown]
# The two algorithms agree to rounding, gradients included. In float32 they differ in the
# last bits, as any two summation orders do. Winograd pays for its saved products with the
# transforms, additions over the whole image that are limited by memory speed; it wins
# when the products dominate, that is for layers with many channels, so the library uses
# it from 32 input channels up (layer 1, with 3, stays on im2col). From 128 channels on
# maps of 8x8 or more it takes larger tiles, F(4x4, 3x3): 36 products per 4x4 outputs
# (2.25 per output instead of 4), with transform coefficients up to 8 that cost about a
# decimal digit of float32 precision.
#
# ## Summary
#
# * im2col turns a convolution into one matrix product; rows `(c, i, j)` match the
#   reshaped weight, and filling it takes `kh*kw` strided slice copies.
# * col2im is its adjoint (not its inverse): it adds the columns back, counting each
#   pixel once per window that covers it.
# * Backward: $dW = d\mathrm{out}\; \mathrm{col}^{\top}$,
#   $dx = \mathrm{col2im}(W_2^{\top}\, d\mathrm{out})$; both pass
#   finite-difference checks, and equal `diet_np.ops.conv2d_backward`.
# * Non-overlapping pooling is a reshape plus a reduction; average pooling spreads the
#   gradient evenly, max pooling routes it to the arg-max.
# * Winograd's F(2x2, 3x3) computes a 3x3 convolution with 4 instead of 9 products per
#   output and input channel; the library uses it for layers with many channels.
#
# ## Exercises
#
# 1. Run `conv_im2col` with stride 2 and padding 1 on a 7x6 image and compare it with
#    `conv_naive`. What is the output size? *Answer:* $\lfloor (7 + 2 - 3)/2 \rfloor + 1 = 4$
#    rows and $\lfloor (6 + 2 - 3)/2 \rfloor + 1 = 3$ columns; the code below checks both.
# 2. Why is col2im not the inverse of im2col? *Answer:* a pixel covered by $k$ windows
#    appears in $k$ columns, and col2im adds them: col2im(im2col($x$)) is $x$ times the
#    coverage count (section 3's figure), which is what the backward pass needs.
# 3. Max pooling routes each window's gradient to its arg-max. What happens with two
#    equal maxima, as in a window of binary spikes? *Hint:* look at which index `argmax`
#    returns, and at the spike example of section 4.
#
# ### Answer to 1

# %%
x_stride = rng.normal(size=(1, 2, 7, 6))
w_stride = rng.normal(size=(3, 2, 3, 3))
out_stride = conv_im2col(x_stride, w_stride, stride=2, pad=1)
naive_stride = conv_naive(x_stride, w_stride, stride=2, pad=1)
exercise_stride_gap = float(np.abs(out_stride - naive_stride).max())
print(f"stride 2, pad 1: output {out_stride.shape[2:]}, im2col vs naive loop "
      f"{exercise_stride_gap:.1e}")
assert out_stride.shape == (1, 3, 4, 3) and exercise_stride_gap < 1e-12

# %% [markdown]
# **Next:** lesson 7 converts a trained ANN into an SNN.
