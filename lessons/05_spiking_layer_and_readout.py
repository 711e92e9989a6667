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
# # Lesson 5: a spiking layer and the output accumulator (Eq. 6, 7, 9)
#
# Time to classify images. The smallest DIET-SNN has one hidden spiking layer and the
# non-spiking output layer:
#
#     image x --(direct encoding: same x at every step)--> flatten
#       --> fc1: I^t = W_1 x            (linear, no bias; the same at every step)
#       --> LIF: o^t                    (Eq. 2-5, leak lambda_1, threshold v_1)
#       --> out: U^t = U^{t-1} + W_2 o^t   (Eq. 6, no leak, no threshold, no spikes)
#     logits = U^T  ->  softmax cross-entropy                       (Eq. 7)
#
# This lesson
#
# 1. shows direct input encoding: the input current is the same at every step;
# 2. rebuilds the output accumulator (Eq. 6) from the hidden spikes and checks it
#    against the network's logits (the sum over steps, *not* divided by `T`);
# 3. checks the whole network's BPTT (Eq. 9 into Eq. 10–14) against finite differences
#    on a tiny float64 copy in smooth mode;
# 4. trains the network end to end by BPTT with `T = 5` on the embedded shapes data set
#    and shows the loss falling, the test accuracy beating chance (10%), the leak and
#    threshold moving, and a spike raster.
#
# **Assumes:** lessons 1–4. **Runs in:** quick mode a few seconds; full mode about
# 10 s, or much longer on a busy machine with a multi-threaded BLAS (see the README).

# %%
import numpy as np

from diet_np import viz
from diet_np.lessons.common import QUICK, pick, plt, save, timer
from diet_np.data import iterate_batches, make_shapes
from diet_np.gradcheck import DEFAULT_TOL, check_network_gradients, network_kink_margin
from diet_np.layers import Flatten, Linear, Neuron, Readout
from diet_np.lif import lif_forward
from diet_np.network import Network
from diet_np.ops import softmax_cross_entropy
from diet_np.optim import Adam, clamp_neuron_params
from diet_np.probe import probe_network

print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## The data
#
# `make_shapes` draws the embedded data set: 32x32 colour images of ten classes
# (disc, ring, square, triangle, cross, three kinds of stripes, checkerboard, blobs) on
# random backgrounds, generated from a seed, no download. `iterate_batches` yields
# normalised float32 batches (per-channel mean and standard deviation of the training
# set).
#
# A fully connected network sees pixels, not shapes: it has no notion of neighbourhood
# or translation, and in this data set the colours of object and background are
# random. To give it a fair chance we additionally standardise **each image** (subtract
# the image's mean per colour channel, divide by its standard deviation), which removes
# the random background colour. This is preprocessing; the resulting image is still
# what the network sees, unchanged, at every step. Convolutions (lesson 6 onwards) are
# what this data set really calls for.

# %%
n_train, n_test = pick(3000, 5000), 1000
epochs, batch_size, T = pick(3, 8), pick(32, 64), 5
with timer("make_shapes"):
    data = make_shapes(n_train=n_train, n_test=n_test, seed=0)
print(data)
print("classes:", ", ".join(data.class_names))


def standardise(x):
    """Per image: subtract each channel's mean, divide by the image's std (float32)."""
    x = x - x.mean(axis=(2, 3), keepdims=True)
    return (x / (x.std(axis=(1, 2, 3), keepdims=True) + 1e-3)).astype(np.float32)


def batches(split, shuffle, rng=None, size=batch_size):
    x, y = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
    for xb, yb in iterate_batches(x, y, size, np, shuffle=shuffle, rng=rng,
                                  mean=data.mean, std=data.std):
        yield standardise(xb), yb

# %% [markdown]
# ## The network
#
# Built from the library's layers: `Flatten`, `Linear` (no bias), `Neuron` (the LIF
# layer: ReLU in ANN mode, Eq. 2–5 in SNN mode) and `Readout` (Eq. 6). `Network`
# collects their parameters into a plain dict: `fc1.weight` (256 x 3072), `fc1.leak`,
# `fc1.threshold` (scalars) and `out.weight` (10 x 256). `init_params` draws linear
# weights from N(0, 0.01) and sets leak = threshold = 1. This small network has no
# dropout. (`diet_np.architectures.build_network` assembles VGG-style networks from the
# same layers; the explicit list here shows the pieces.)

# %%
hidden = 256
net = Network([Flatten(), Linear("fc1", hidden), Neuron("fc1"), Readout("out", 10)],
              input_shape=(3, 32, 32), num_classes=10, name="fc-snn")
params = net.init_params(seed=0)
print({k: tuple(v.shape) for k, v in params.items()})

# %% [markdown]
# ## 1. Direct input encoding
#
# `Network.forward_stepwise` runs the network one step at a time and can report each
# spiking layer's input current `I^t` through an `observe` callback. Under direct
# encoding the image is presented unchanged at every step, so `I^t = W_1 x` is the
# same at every step (the multi-step `forward` therefore computes it only once). The
# stepwise and the multi-step forward give the same logits.

# %%
x_demo, y_demo = next(batches("test", shuffle=False, size=8))
currents = []
logits_stepwise, _ = net.forward_stepwise(
    params, x_demo, T=T, observe=lambda name, t, current: currents.append(current.copy()))
logits_multistep, trace = net.forward(params, x_demo, train=False, T=T)
assert len(currents) == T and all(np.array_equal(c, currents[0]) for c in currents)
np.testing.assert_allclose(logits_stepwise, logits_multistep, rtol=1e-5, atol=1e-6)
print(f"fc1's input current is identical at all {T} steps; stepwise and multi-step logits agree")

# %% [markdown]
# ## 2. The output accumulator (Eq. 6)
#
# The output layer has no leak, no threshold and no spikes. It adds `W_2 o^t` to its
# potential at every step, `U^t = U^{t-1} + W_2 o^t` with `U^0 = 0`, and the logits are
# the final potential `U^T`, the sum over all steps. Below, the hidden spikes are
# recomputed with `lif_forward` and the accumulator is written out as a loop; its
# result must equal the network's logits.

# %%
current_fc1 = x_demo.reshape(len(x_demo), -1) @ params["fc1.weight"].T     # (B, 256)
spikes, _ = lif_forward(current_fc1[None], params["fc1.leak"], params["fc1.threshold"], T)
U = np.zeros((len(x_demo), 10), dtype=np.float32)
U_steps = []
for t in range(T):
    U = U + spikes[t] @ params["out.weight"].T                                # Eq. 6
    U_steps.append(U.copy())
np.testing.assert_allclose(U, logits_multistep, rtol=1e-5, atol=1e-6)
assert int(spikes.sum()) == int(trace.spike_counts["fc1"])
print("Eq. 6 by hand == network logits; the logits are U^T (no division by T)")

# %% [markdown]
# Not dividing by `T` does not change which class wins, but it does change the
# softmax: the logits grow with the number of steps, so the loss of Eq. 7 is sharper
# for larger `T`. The loss is
#
# $$p = \operatorname{softmax}(U^T), \qquad L = -\frac{1}{B} \sum_b \log p_{b,\, y_b}
#   \qquad \text{(Eq. 7)}$$
#
# and its gradient with respect to the logits, `dU^T = (p - y) / B`, reaches **every**
# step unchanged, because every step added into `U^T` with weight 1 (Eq. 9):
# `dW_2 = sum_t dU^T (o^t)^T` and `do^t = W_2^T dU^T`. From there BPTT through the LIF
# layer (Eq. 10–14) and the linear layer (Eq. 12) proceeds as in lessons 3–4.
#
# The untrained network's loss starts close to `log(10) = 2.303` (all classes equally
# likely), the first rung of the usual sanity ladder.

# %%
initial_loss = float(softmax_cross_entropy(logits_multistep, y_demo)[0])
print(f"initial loss on 8 test images: {initial_loss:.3f} (log 10 = {np.log(10):.3f})")
assert abs(initial_loss - np.log(10)) < 0.3

# %% [markdown]
# ## 3. Checking the whole network's BPTT
#
# `diet_np.gradcheck.check_network_gradients` compares `Network.backward` with central
# differences of the loss, element by element, for every parameter. It needs float64
# and smooth mode (the primitive of Eq. 8 instead of the spike, lesson 3), so it runs
# on a tiny copy of the architecture: 48 inputs, 6 hidden neurons, 3 classes, `T = 4`,
# with weights scaled up so that the hidden neurons are active. The kink margin (the
# smallest distance of any `z` from 0 or ±1) is printed first.

# %%
tiny = Network([Flatten(), Linear("fc1", 6), Neuron("fc1"), Readout("out", 3)],
               input_shape=(3, 4, 4), num_classes=3, name="tiny")
rng = np.random.default_rng(0)
tiny_params = {"fc1.weight": rng.normal(0.0, 2 / np.sqrt(48), (6, 48)),
               "fc1.leak": np.array(0.9), "fc1.threshold": np.array(0.6),
               "out.weight": rng.normal(0.0, 0.5, (3, 6))}
x_tiny, y_tiny = rng.normal(size=(4, 3, 4, 4)), rng.integers(0, 3, 4)
margin = network_kink_margin(tiny, tiny_params, x_tiny, T=4)
network_errors = check_network_gradients(tiny, tiny_params, x_tiny, y_tiny, T=4)
print(f"kink margin {margin:.3f}; relative errors:",
      {k: f"{v:.1e}" for k, v in network_errors.items()})
assert margin > 1e-3 and max(network_errors.values()) < DEFAULT_TOL

# %% [markdown]
# ## 4. Training end to end
#
# The training step is the whole of DIET-SNN in miniature: forward over `T = 5` steps,
# loss (Eq. 7), `Network.backward` (Eq. 9–14), an Adam step and the clamp (Eq. 15).
# `check=False` skips the input validation that reads values back from the arrays
# (the clamp keeps the parameters valid).

# %%
opt = Adam(3e-4)
shuffle_rng = np.random.default_rng(1)


def evaluate(params):
    correct = total = spikes_total = 0
    for xb, yb in batches("test", shuffle=False, size=250):
        logits, tr = net.forward(params, xb, train=False, T=T)
        correct += int((logits.argmax(axis=1) == yb).sum())
        total += len(yb)
        spikes_total += int(tr.spike_counts["fc1"])
    return correct / total, spikes_total / (total * hidden)


initial_accuracy, initial_rate = evaluate(params)
batch_losses, epoch_accuracy, leak_hist, threshold_hist = [], [initial_accuracy], [], []
with timer(f"training, {epochs} epochs of {n_train} images"):
    for epoch in range(epochs):
        for xb, yb in batches("train", shuffle=True, rng=shuffle_rng):
            logits, tr = net.forward(params, xb, train=True, T=T, check=False)
            loss, dlogits = softmax_cross_entropy(logits, yb)              # Eq. 7, 9
            grads = net.backward(params, dlogits, tr)                      # Eq. 9-14
            opt.step(params, grads)                                        # Eq. 15
            clamp_neuron_params(params)
            batch_losses.append(float(loss))
            leak_hist.append(float(params["fc1.leak"]))
            threshold_hist.append(float(params["fc1.threshold"]))
        accuracy, rate = evaluate(params)
        epoch_accuracy.append(accuracy)
        print(f"epoch {epoch + 1}: training loss (last 20 batches) "
              f"{np.mean(batch_losses[-20:]):.3f}, test accuracy {100 * accuracy:.1f}%, "
              f"spikes per hidden neuron per image {rate:.2f}")

final_accuracy, final_rate = epoch_accuracy[-1], rate
first_loss, last_loss = np.mean(batch_losses[:20]), np.mean(batch_losses[-20:])
print(f"loss {first_loss:.3f} -> {last_loss:.3f}; test accuracy "
      f"{100 * initial_accuracy:.1f}% -> {100 * final_accuracy:.1f}% (chance 10%)")
print(f"leak 1.0 -> {leak_hist[-1]:.3f}, threshold 1.0 -> {threshold_hist[-1]:.3f}")
accuracy_margin = pick(0.05, 0.12)
assert last_loss < first_loss - 0.2
assert final_accuracy > 0.10 + accuracy_margin, final_accuracy

# %% [markdown]
# The test accuracy clears chance by more than the margin asserted above (5 points in
# quick mode, 12 in full mode, on 1000 test images, where a chance-level classifier
# would stay within about 3 points of 10%). A fully connected network stays far from
# what a CNN reaches on this data; the point here is the mechanics.
#
# The training loss falls in steps, at the start of each epoch: an image seen before
# is fitted better the second time. That is memorisation as much as learning, and in
# full mode the test accuracy levels off while the training loss keeps falling.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
steps_per_epoch = len(batch_losses) / epochs
window = 10
smooth = np.convolve(batch_losses, np.ones(window) / window, mode="valid")
axes[0].plot(batch_losses, color="0.75", lw=0.8, label="per batch")
axes[0].plot(np.arange(window - 1, len(batch_losses)), smooth, color="k", label=f"mean of {window}")
axes[0].axhline(np.log(10), color="C3", ls=":", lw=1, label="log 10")
axes[0].set_xlabel("training batch")
axes[0].set_ylabel("cross-entropy loss (Eq. 7)")
axes[0].set_title("Training loss")
axes[0].legend(fontsize=8)
axes[1].plot(np.arange(epochs + 1), 100 * np.array(epoch_accuracy), "o-", color="C0")
axes[1].axhline(10, color="C3", ls=":", lw=1, label="chance")
axes[1].set_xlabel("epoch")
axes[1].set_ylabel("test accuracy (%)")
axes[1].set_title(f"Test accuracy ({n_test} images)")
axes[1].set_ylim(0, max(40, 110 * max(epoch_accuracy)))
axes[1].legend(fontsize=8)
axes[2].plot(leak_hist, label="leak lambda_1")
axes[2].plot(threshold_hist, label="threshold v_1")
axes[2].set_xlabel("training batch")
axes[2].set_ylabel("value")
axes[2].set_title("The hidden layer's leak and threshold")
axes[2].legend(fontsize=8)
save(fig, "05_training")

# %% [markdown]
# ## A spike raster
#
# The hidden layer's spikes for four correctly classified test images of different
# classes: 64 randomly chosen hidden neurons (rows, the same for every image, ordered
# by how much they fire overall) over the `T = 5` steps (columns). Below each raster,
# the output potential `U^t` of the true class and of the strongest other class, step
# by step. The spikes come from a probe, `diet_np.probe.probe_network`, which runs the
# network step by step and records each spiking layer's current `I^t`, potentials `u^t`
# (before the reset) and `m^t` (after it) and spikes `o^t`; `diet_np.viz.raster` draws
# them (`diet-np inspect` writes the same figures for a saved network). With constant input each neuron fires regularly (lesson 1), so its spike
# count over `T` steps encodes its current; the accumulator adds `W_2 o^t` at every
# step and the winning class pulls ahead as the steps add up.

# %%
x_show, y_show = next(batches("test", shuffle=False, size=250))
logits_show, _ = net.forward(params, x_show, train=False, T=T)
correct_show = logits_show.argmax(axis=1) == y_show
picked = []
for c in range(10):
    found = np.flatnonzero(correct_show & (y_show == c))
    if len(found) and len(picked) < 4:
        picked.append(int(found[0]))
picked += [i for i in range(len(y_show)) if i not in picked][:4 - len(picked)]  # (fallback)
_, probed = probe_network(net, params, x_show[picked], T)
spikes_pick = probed["fc1"].spikes                                          # (T, 4, 256), bool
U_pick = np.cumsum(spikes_pick @ params["out.weight"].T, axis=0)           # U^t, t = 1..T
np.testing.assert_allclose(U_pick[-1], logits_show[picked], rtol=1e-4, atol=1e-5)
chosen = np.random.default_rng(0).choice(hidden, 64, replace=False)
shown = chosen[np.argsort(-spikes_pick[:, :, chosen].sum(axis=(0, 1)), kind="stable")]

fig, axes = plt.subplots(2, 4, figsize=(13, 6.5), gridspec_kw={"height_ratios": [2.2, 1]})
for k, idx in enumerate(picked):
    viz.raster(probed["fc1"], image=k, neurons=shown, ax=axes[0, k])
    axes[0, k].set_title(f"{data.class_names[y_show[idx]]}: {int(spikes_pick[:, k].sum())} "
                         f"spikes in all {hidden} neurons", fontsize=9)
    axes[0, k].set_ylabel("")
    true = int(y_show[idx])
    rival = int(np.argsort(-U_pick[-1, k])[0 if np.argmax(U_pick[-1, k]) != true else 1])
    axes[1, k].plot(range(1, T + 1), U_pick[:, k, true], "o-", color="C2",
                    label=f"U^t, true class ({data.class_names[true]})")
    axes[1, k].plot(range(1, T + 1), U_pick[:, k, rival], "s--", color="C3",
                    label=f"U^t, best other ({data.class_names[rival]})")
    axes[1, k].set_xticks(range(1, T + 1))
    axes[1, k].set_xlabel("time step t")
    axes[1, k].legend(fontsize=7)
axes[0, 0].set_ylabel("hidden neuron (64 of 256)")
axes[1, 0].set_ylabel("output potential U^t")
save(fig, "05_spike_raster")

# %% [markdown]
# ## Summary
#
# * Direct input encoding: the image is the input at every step, so the first layer's
#   current is computed once and is identical at every step.
# * The output layer accumulates `U^t = U^{t-1} + W_2 o^t`; the logits are `U^T`, not
#   divided by `T` (Eq. 6), and `dU^T = (p - y)/B` reaches every step (Eq. 7, 9).
# * The network's BPTT passes an element-wise finite-difference check in smooth mode.
# * Trained end to end with `T = 5`, a single spiking layer learns the shapes well
#   above chance, and its leak and threshold move along with the weights.
#
# **Next:** lesson 6 builds convolution and pooling, the layers this data set needs.
