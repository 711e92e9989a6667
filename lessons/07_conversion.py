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
# # Lesson 7: ANN → SNN conversion, and why it needs many timesteps
#
# DIET-SNN does not train a deep SNN from random weights. It first trains an ordinary
# ANN of the same shape (ReLU instead of LIF neurons), copies its weights into the SNN
# and picks one threshold per layer; only then does BPTT fine-tune it (lesson 8). This
# lesson does the conversion on the embedded shapes data set:
#
# 1. trains a small CNN as an ANN (`mode="ann"`: ReLU, one step);
# 2. converts it with `diet_np.conversion.convert`: leak 1, and each layer's threshold
#    from the 99.7th percentile of its input current, found layer by layer;
# 3. opens up the threshold search: the per-step percentiles, and why a percentile
#    rather than the maximum;
# 4. measures the converted SNN's accuracy against the number of timesteps $T$: the
#    *latency problem* (accuracy climbs slowly with $T$);
# 5. shows what the threshold scaling factor does to that curve.
#
# **Assumes:** lessons 1–6 (the LIF neuron, the output accumulator, the `Network`
# API). **Runs in:** quick mode about 20–30 s; full mode about 4 minutes (times on two
# busy CPU cores, one BLAS thread; see `lessons/README.md`).

# %%
import numpy as np

from diet_np.lessons.common import QUICK, figure_dir, pick, plt, save, timer
from diet_np.architectures import build_network
from diet_np.checkpoint import load_checkpoint
from diet_np.conversion import convert, percentile_k, scale_thresholds
from diet_np.data import iterate_batches, make_shapes
from diet_np.layers import Context
from diet_np.pipeline import conversion_batch
from diet_np.training import ann_config, evaluate, fit

print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. The ANN
#
# One network definition serves both worlds: `build_network` returns a `Network` whose
# parameters (`conv1.weight`, `conv1.leak`, `conv1.threshold`, ...) run as an ANN with
# `mode="ann"` (each neuron is a ReLU, one step; leak and threshold unused) or as an SNN
# with `mode="snn"` (LIF neurons over $T$ steps). Ours is a VGG-style CNN with the
# paper's building blocks: 3x3 convolutions without bias, 2x2 average pooling, a hidden
# linear layer and the output layer:
#
#     conv1 (16) - avgpool - conv2 (32) - avgpool - conv3 (64) - avgpool - fc1 (128) - out (10)
#
# Four spiking layers (conv1-3, fc1) once converted. The paper trains its ANNs with SGD
# on a step schedule, with augmentation (lesson 10 shows that recipe); to keep a CPU
# lesson short we train with Adam for a few epochs, without augmentation and with light
# dropout.
# Everything the lesson depends on is in `RECIPE`; lesson 8 reads it back from the
# checkpoint that this cell writes. Networks with this initialisation (the paper's: no
# batch norm, no biases, small linear-layer weights) sit near chance for a while before
# they learn; how long depends on the seed, and the seed below leaves the plateau within the
# quick mode's five epochs.

# %%
RECIPE = {
    "data": {"n_train": pick(3000, 6000), "n_test": pick(300, 1000), "seed": 0},
    "arch": {"features": [16, "A", 32, "A", 64, "A"], "classifier": [128], "name": "shapes_cnn"},
    "ann": {"optimizer": "adam", "lr": 3e-3, "momentum": 0.0, "weight_decay": 0.0,
            "epochs": pick(5, 12), "milestones": pick([0.8], [0.6, 0.85]), "batch_size": 32,
            "augment": False, "dropout": {"conv": 0.0, "fc": 0.1}, "seed": 1},
}
data = make_shapes(**RECIPE["data"])
print(data)
net = build_network(RECIPE["arch"], data.num_classes)
print("spiking layers and neurons per image:", net.neurons)

# %% [markdown]
# `fit` trains in place, writes a checkpoint and a JSON log every epoch, and can resume.
# The run folder sits beside the figures. If it already holds a finished run of the same
# recipe (a second run of this lesson, or lesson 8 after this one), `resume=True` loads
# it instead of training again.

# %%
ann_cfg = ann_config(**{k: v for k, v in RECIPE["ann"].items() if k != "milestones"},
                     milestones=tuple(RECIPE["ann"]["milestones"]))
ann_dir = figure_dir() / f"07_ann_{'quick' if QUICK else 'full'}"
ann_ckpt = ann_dir / "checkpoint.npz"
reuse = ann_ckpt.exists() and load_checkpoint(ann_ckpt).meta.get("origin", {}).get("recipe") == RECIPE
ann_params = net.init_params(seed=RECIPE["ann"]["seed"])
with timer("ANN training" + (" (reused)" if reuse else "")):
    ann_log = fit(net, ann_params, data, ann_cfg, ann_dir, arch=RECIPE["arch"], xp=np,
                  resume=reuse, overwrite=not reuse, finished="load", show_progress=False,
                  origin={"recipe": RECIPE})
assert ann_log[-1]["epoch"] == ann_cfg.epochs
ann_accuracy = evaluate(net, ann_params, data.x_test, data.y_test, data, T=1, mode="ann",
                        xp=np, show_progress=False).accuracy
print(f"ANN test accuracy: {ann_accuracy:.3f} ({len(data.x_test)} test images; chance 0.10)")
assert ann_accuracy > pick(0.4, 0.7)

# %% [markdown]
# ## 2. Conversion, step by step
#
# Why can an ANN's weights drive an SNN at all? Take an integrate-and-fire neuron
# (leak 1) with threshold $v$ and a constant input current $I \ge 0$. With the soft reset
# (Eq. 5) nothing is thrown away, so after $T$ steps its spike count is within one of
# `T I / v` (lesson 1): its firing rate is `I / v` per step, clipped at one spike per
# step. A rate proportional to a ReLU of the input is exactly what an ANN
# neuron computes. So, with the ANN's weights, every spiking layer passes on
# (approximately) its ANN activation divided by its threshold, provided the threshold
# is large enough that the rate seldom hits the one-spike-per-step ceiling and small
# enough that neurons fire at all within $T$ steps. Choosing the thresholds is the
# whole conversion:
#
# 1. copy the ANN's weights into the SNN unchanged, and set every leak to 1
#    (integrate-and-fire neurons);
# 2. for each spiking layer $l$, in order from the input, with the thresholds of the
#    layers before it already set: run the SNN on one batch of training images for
#    `T_find` steps (evaluation mode, no gradients); at each step $t$ take the 99.7th
#    percentile of all elements of the input current $I_l^t$ (every neuron and every
#    image of the batch) and set $v_l$ to the largest of these per-step percentiles;
# 3. multiply every threshold by one scaling factor (section 5).
#
# The authors use 512 images and $T_{\mathrm{find}} = 100$; the quick mode uses fewer. The
# percentile is the $k$-th smallest value with $k = 1 + \operatorname{round}(0.997 (n - 1))$, as in
# the authors' code (`percentile_k`). Layer 1's current $W_1 x$ is the same at every
# step (direct input encoding), so its search needs one step.
#
# `convert(net, ann_params, x, T_find, scale)` does all three steps and returns the
# SNN's parameters and the unscaled thresholds. We ask for `scale=1` and scale copies
# ourselves afterwards, so that one search serves every scaling factor.

# %%
T_find, search_images = pick(30, 100), pick(128, 512)
x_search = conversion_batch(data, search_images, np)          # normalised training images
with timer(f"threshold search, {search_images} images, T_find = {T_find}"):
    snn_params, thresholds = convert(net, ann_params, x_search, T_find=T_find, scale=1.0,
                                     show_progress=False)
for layer, v in thresholds.items():
    print(f"  v_{layer} = {v:.4f}")
assert all(float(snn_params[f"{n}.leak"]) == 1.0 for n in net.neurons)
assert all(np.array_equal(snn_params[k], ann_params[k])
           for k in ann_params if k.endswith(".weight"))                # weights copied
assert all(v > 0 for v in thresholds.values())

# %% [markdown]
# ## 3. Inside the threshold search
#
# Layer $l$'s input current is computed from the spikes of layer `l - 1`, which depend on
# the thresholds of layers `1 .. l - 1`, but never on $v_l$ or on any later threshold. So
# the layer-by-layer search matters only in one direction: each layer must be measured
# with the *final* thresholds of the layers before it, because those decide what it
# receives. Measuring the spiking network's own currents, rather than the ANN's
# activations, lets each threshold absorb the spike quantisation of the layers before it.
#
# That also means one stepwise run with all the thresholds in place shows us every
# layer's search at once. `forward_stepwise` calls `observe(layer, t, current)` with each
# spiking layer's input current $I_l^t$ at every step; we record its 99.7th percentile,
# and keep the current of the step where that percentile peaks, for a histogram. The
# largest per-step percentile must be exactly the threshold that `convert` chose.

# %%
per_step = {name: [] for name in net.spiking_layers()}
peak_current = {}


def observe(name, t, current):
    value = float(percentile_k(current))
    if not per_step[name] or value > max(per_step[name]):
        peak_current[name] = current.copy()
    per_step[name].append(value)


net.forward_stepwise(snn_params, x_search, T=T_find, observe=observe)
for name in net.spiking_layers():
    steps = np.array(per_step[name])
    assert steps.max() == thresholds[name], name          # the same search, reproduced
    print(f"{name}: percentile largest at step {steps.argmax() + 1:3d} of {T_find}, "
          f"v = {steps.max():.4f}; max / 99.7th percentile of that step's current: "
          f"{peak_current[name].max() / steps.max():.2f}")
conv1_steps = np.array(per_step["conv1"])
assert np.all(conv1_steps == conv1_steps[0])                # direct encoding: constant current

# %% [markdown]
# In the figure's left panel, the deeper layers' percentiles start low: at the first
# steps the layers before them have hardly fired yet. They settle after a few
# steps, and the maximum over the steps lands a little above the settled value. That is
# why the search runs for many steps rather than one.
#
# Why the 99.7th percentile and not the maximum current? The maximum is set by a handful
# of outliers; a threshold that high would make almost every other neuron fire rarely,
# which costs timesteps. The percentile lets the rare largest currents saturate (at one
# spike per step) and gives everyone else a higher rate. The printed ratios show how far
# above the percentile the maximum lies. And why the per-step *current* and not the
# membrane potential? The threshold is compared with $u^t$, which accumulates the
# currents; but with the soft reset an IF neuron's rate is current divided by threshold,
# so it is the current that the threshold must be matched to.

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
steps_axis = np.arange(1, T_find + 1)
for i, name in enumerate(net.spiking_layers()):
    steps = np.array(per_step[name])
    ax1.plot(steps_axis, steps / thresholds[name], "-", color=f"C{i}", label=f"{name}")
    ax1.plot(steps.argmax() + 1, 1.0, "o", color=f"C{i}")
ax1.set_xlabel("step $t$ of the threshold search")
ax1.set_ylabel("99.7th percentile of $I_l^t$ / $v_l$")
ax1.set_title("Per-step percentile of each layer's input current\n"
              "(v_l = its maximum over t, dots)")
ax1.set_ylim(bottom=0)
ax1.legend()
shown = "conv2"
values = peak_current[shown].ravel()
ax2.hist(values, bins=120, color="0.6", log=True)
ax2.axvline(thresholds[shown], color="C3", lw=2,
            label=f"99.7th percentile = $v$ ({thresholds[shown]:.2f})")
ax2.axvline(values.max(), color="k", ls="--", label=f"maximum ({values.max():.2f})")
ax2.set_xlabel(f"input current $I^t$ of {shown} (all neurons, all {search_images} images)")
ax2.set_ylabel("count (log scale)")
ax2.set_title(f"{shown}'s currents at the step where the percentile peaks")
ax2.legend(fontsize=9)
save(fig, "07_threshold_search")

# %% [markdown]
# ## 4. Accuracy against the number of timesteps: the latency problem
#
# Evaluating the converted SNN at $T = 1, 2, \dots, 64$ separately would repeat a lot of
# work. The SNN is causal: the first $T$ steps of a longer run are exactly a run of $T$
# steps, and the output layer's potential after step $t$ is the logit vector $U^t$ of
# Eq. 6. So one run of `T_max` steps gives the accuracy at every $T \le T_{\max}$, if we read
# $U^t$ after each step. Here is that loop written out (it is what `forward_stepwise`
# does inside): the network's layers each have a `step` method, and a `Context` carries
# the step number and collects spike counts.

# %%
def accuracy_at_every_T(params, x, y, T_max, batch=250):
    """Accuracy of the SNN at T = 1..T_max from one run of T_max steps per batch, and the
    spikes per neuron (all spiking layers, averaged over neurons and images) fired by
    the end of each step."""
    net.validate(params, None, T_max, "snn")
    correct, spikes = np.zeros(T_max), np.zeros(T_max)
    for xb, yb in iterate_batches(x, y, batch, np, shuffle=False, mean=data.mean, std=data.std):
        ctx = Context(T=T_max, snn=True, train=False)
        state = {}
        for t in range(T_max):
            ctx.t = t
            U = net.body.step(params, xb, state, ctx)       # U^t, the logits after t+1 steps
            correct[t] += int((U.argmax(axis=1) == yb).sum())
            spikes[t] += sum(float(c) for c in ctx.spike_counts.values())
    return correct / len(x), spikes / (len(x) * sum(net.neurons.values()))


T_max = pick(64, 256)
x_test, y_test = data.x_test, data.y_test
with timer(f"converted SNN, one run of {T_max} steps on {len(x_test)} test images"):
    acc_vs_T, spikes_vs_T = accuracy_at_every_T(snn_params, x_test, y_test, T_max)
T_axis = np.arange(1, T_max + 1)
for T in (1, 2, 4, 8, 16, 32, 64, 128, 256):
    if T <= T_max:
        print(f"T = {T:3d}: accuracy {acc_vs_T[T - 1]:.3f}")

# The shortcut agrees with a separate evaluation at T = 5:
check5 = evaluate(net, snn_params, x_test, y_test, data, T=5, mode="snn", xp=np,
                  show_progress=False).accuracy
print(f"evaluate(..., T=5): {check5:.3f}; read off the long run: {acc_vs_T[4]:.3f}")
assert abs(check5 - acc_vs_T[4]) <= 1.0 / len(x_test) + 1e-12

within = np.flatnonzero(acc_vs_T >= ann_accuracy - 0.03)
T_close = int(within[0]) + 1 if len(within) else None
print(f"ANN {ann_accuracy:.3f}; the SNN first comes within 3 points of it at T = {T_close}")

# %% [markdown]
# In the first steps hardly any spikes reach the output layer (the deeper layers'
# currents start low, as in the search above), and the prediction is at chance;
# the accuracy then rises over tens of steps. The reason is the rate code: a neuron whose
# current is 10% of its threshold needs about ten steps for its first spike, and a layer
# cannot pass on what it has not yet received, so the delays add up with depth. Our
# four-layer network needs a couple of dozen steps; deeper ones need more (in the
# authors' results sheet a converted VGG16 reached 77.05% at $T = 20$, against 93.72%
# for its ANN). Those steps, each one a pass through the whole network, are what DIET
# sets out to remove.

# %%
def accuracy_vs_T_axes(ax, T_max):
    """Accuracy (0-1) against timesteps 1..T_max on a log2 axis with ticks at powers of 2."""
    ticks = [T for T in (1, 2, 4, 8, 16, 32, 64, 128, 256) if T <= T_max]
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(T) for T in ticks])
    ax.set_xlabel("timesteps $T$ (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)


assert acc_vs_T[0] < 0.2                                         # near chance at T = 1
assert acc_vs_T[-1] > acc_vs_T[3] + 0.2                          # far better at T_max than T = 4
assert acc_vs_T[-1] >= ann_accuracy - 0.05                       # close to the ANN in the end
assert T_close is not None and T_close >= 8                      # ... but only after many steps

fig, ax = plt.subplots(figsize=(7.5, 4.2))
ax.plot(T_axis, acc_vs_T, "-", color="C0", lw=2, label="converted SNN (scale 1)")
ax.axhline(ann_accuracy, color="k", ls="--", label=f"ANN ({ann_accuracy:.3f})")
ax.axhline(0.1, color="0.6", ls=":", label="chance (0.10)")
if T_close:
    ax.axvline(T_close, color="C3", lw=1, alpha=0.7)
    ax.annotate(f"within 3 points of the ANN\nfrom T = {T_close}", (T_close, 0.2),
                xytext=(6, 0), textcoords="offset points", color="C3", fontsize=9)
accuracy_vs_T_axes(ax, T_max)
ax.set_title("The latency problem: a converted SNN needs many timesteps")
ax.legend(loc="upper left")
save(fig, "07_accuracy_vs_T")

# %% [markdown]
# ## 5. The threshold scaling factor
#
# Step 3 of the conversion multiplies every threshold by a factor (the authors use
# 0.2–0.7, smaller for fewer timesteps). Lower thresholds make every neuron fire sooner
# and more often, and since each layer's input is the previous layer's spikes, the extra
# firing compounds with depth. That shortens the latency, but a neuron cannot fire more
# than once per step, so the largest activations are clipped, and the spike counts no
# longer follow the ANN's activations as faithfully: the accuracy rises sooner and then
# levels off lower, or falls. `scale_thresholds(params, s)` (what `convert` applies)
# does the scaling in place, so we scale copies.

# %%
scales = [1.0, 0.7, 0.5, 0.3]
T_scale = pick(32, 128)
acc_by_scale, spikes_by_scale = {1.0: acc_vs_T[:T_scale]}, {1.0: spikes_vs_T[:T_scale]}
with timer(f"{len(scales) - 1} more scales, {T_scale} steps each"):
    for s in scales[1:]:
        scaled = {k: v.copy() for k, v in snn_params.items()}
        scale_thresholds(scaled, s)
        acc_by_scale[s], spikes_by_scale[s] = accuracy_at_every_T(scaled, x_test, y_test, T_scale)
print("scale  " + "  ".join(f"T={T:<4d}" for T in (1, 2, 4, 8, 16, 32, 64, 128) if T <= T_scale)
      + "  spikes per neuron and step")
for s in scales:
    row = "  ".join(f"{acc_by_scale[s][T - 1]:.3f} " for T in (1, 2, 4, 8, 16, 32, 64, 128)
                    if T <= T_scale)
    print(f"{s:4.1f}   {row}  {spikes_by_scale[s][-1] / T_scale:.3f}")

# %% [markdown]
# The table and the figure below show the trade-off: at few timesteps a smaller factor
# is better, at many timesteps it is worse. The first rows of the next cell are the
# lesson's claims, checked on these measurements.

# %%
assert acc_by_scale[0.5][3] > acc_by_scale[1.0][3] + 0.1                  # T = 4: lower is better
assert acc_by_scale[0.3][-1] < acc_by_scale[1.0][-1] - 0.1                # T_scale: lowest is worst
network_rate = {s: float(spikes_by_scale[s][-1] / T_scale) for s in scales}   # per neuron and step
assert all(network_rate[a] < network_rate[b] for a, b in zip(scales, scales[1:]))  # more spikes

fig, ax = plt.subplots(figsize=(7.5, 4.2))
T_s = np.arange(1, T_scale + 1)
for i, s in enumerate(scales):
    ax.plot(T_s, acc_by_scale[s], "-", lw=2, color=f"C{i}", label=f"scale {s}")
ax.axhline(ann_accuracy, color="k", ls="--", label="ANN")
accuracy_vs_T_axes(ax, T_scale)
ax.set_title("Scaling every threshold: faster but less faithful")
ax.legend(loc="lower right")
save(fig, "07_scale")

# %% [markdown]
# ## Summary
#
# * Conversion copies the ANN's weights, sets every leak to 1 and picks each layer's
#   threshold as the largest per-step 99.7th percentile of its input current, measured
#   with the earlier layers' thresholds in place (`diet_np.conversion.convert`).
# * The converted SNN reaches the ANN's accuracy only after tens of timesteps: the
#   rate code needs time to build up, layer after layer.
# * Scaling the thresholds down buys speed at the cost of fidelity; no single factor
#   is good at both few and many timesteps.
#
# ## Exercises
#
# 1. Use the maximum of each layer's current instead of its 99.7th percentile
#    (`convert(..., q=1.0)`). Which thresholds must rise, and what happens to the
#    accuracy at few and at many steps? *Answer:* the code below. The first layer's
#    threshold cannot fall (its current does not depend on any threshold); a later
#    layer's may even fall, since it receives fewer spikes from above-threshold layers
#    below it. With higher thresholds the neurons fire less, and the SNN needs more steps.
# 2. Why does the search run layer by layer, with the earlier layers already converted,
#    instead of reading every layer's threshold off the ANN's activations? *Hint:* the
#    input of layer 2 in the SNN is spikes, not the ANN's ReLU outputs; its current
#    depends on layer 1's threshold.
# 3. Lower `T_find` to 5. Do the thresholds change? *Hint:* the per-step percentiles
#    printed in section 1 show at which step each layer's largest one occurs.
#
# ### Answer to 1

# %%
max_params, max_thresholds = convert(net, ann_params, x_search, T_find=T_find, scale=1.0,
                                     q=1.0, show_progress=False)
acc_max, _ = accuracy_at_every_T(max_params, x_test, y_test, T_max)
first = net.compute_layers()[0][0]
for layer in thresholds:
    print(f"v_{layer}: 99.7th percentile {thresholds[layer]:.3f}, "
          f"maximum {max_thresholds[layer]:.3f}")
for T in (5, 16, T_max):
    print(f"T = {T:3d}: accuracy with percentile thresholds {acc_vs_T[T - 1]:.3f}, "
          f"with maximum thresholds {acc_max[T - 1]:.3f}")
exercise_first_threshold_rise = max_thresholds[first] / thresholds[first]
assert exercise_first_threshold_rise >= 1.0

# %% [markdown]
# **Next:** lesson 8 starts from this converted SNN at $T = 5$ and trains weights,
# leaks and thresholds by BPTT (DIET fine-tuning).
