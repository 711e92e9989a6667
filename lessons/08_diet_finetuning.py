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
# # Lesson 8: DIET fine-tuning at five timesteps (Eq. 7–15)
#
# Lesson 7 converted an ANN into an SNN that matches the ANN only after tens of
# timesteps. DIET-SNN's answer is to keep the converted network as an *initialisation*
# and train it further, at the small $T$ it will run at, with BPTT: the weights, and one
# leak $\lambda_l$ and one threshold $v_l$ per layer. This lesson
#
# 1. loads lesson 7's ANN, converts it, and picks the threshold scaling factor that
#    does best at $T = 5$ on training images;
# 2. fine-tunes that SNN at $T = 5$ three times from the same start: the weights only
#    (a control), DIET (weights, leaks and thresholds), and DIET with a ten times larger
#    learning rate for the leaks and thresholds;
# 3. follows each layer's leak and threshold through training, and measures why the
#    leak hardly moves;
# 4. compares per-layer spike rates before and after;
# 5. estimates compute energy against the ANN with the paper's 45 nm model;
# 6. trains the same convolutional SNN from scratch at $T = 5$ for the same epochs, and
#    compares it with conversion + DIET.
#
# Section 2 also gives the answer of the project's ablation: what learning the leak and
# threshold adds over fine-tuning the weights alone.
#
# Every number that depends on the run is printed by the code below; the prose states
# only what the code asserts.
#
# **Assumes:** lesson 7 (and lessons 3–5 for the gradients). It reuses the ANN that
# lesson 7 leaves in the output folder and runs lesson 7 first when that ANN is not
# there. **Runs in:** quick mode about 30–60 s after lesson 7; full mode about 7 minutes
# after lesson 7 (times on two busy CPU cores, one BLAS thread).

# %%
import dataclasses
import runpy

import numpy as np
from matplotlib.lines import Line2D

from diet_np.architectures import build_network
from diet_np.lessons.common import HERE, QUICK, figure_dir, pick, plt, save, timer
from diet_np.lessons.figures import grouped_bars
from diet_np.checkpoint import load_checkpoint
from diet_np.conversion import convert, scale_thresholds
from diet_np.data import make_shapes, num_batches
from diet_np.metrics import energy_table, energy_totals, format_energy_table, network_spike_rate
from diet_np.pipeline import conversion_batch, load_model
from diet_np.training import diet_config, evaluate, fit

print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. Start from lesson 7: the ANN, converted
#
# Lesson 7 saved its ANN as a checkpoint whose metadata holds the recipe (data set,
# architecture, training settings). `load_model` rebuilds the network from it. The data
# set is rebuilt from the recipe, and its normalisation (per-channel mean and standard
# deviation of all its training images) is the one the ANN was trained with, which
# the checkpoint records: the code checks the two agree.

# %%
ann_ckpt = figure_dir() / f"07_ann_{'quick' if QUICK else 'full'}" / "checkpoint.npz"
if not ann_ckpt.exists() or "recipe" not in load_checkpoint(ann_ckpt).meta.get("origin", {}):
    print(f"{ann_ckpt} not found: running lesson 7 first")
    runpy.run_path(str(HERE / "07_conversion.py"), run_name="__main__")
net, ann_params, ann_model = load_model(ann_ckpt, np, expect_kind=("ann",))
RECIPE = ann_model.origin["recipe"]
data = make_shapes(**RECIPE["data"])
assert np.array_equal(data.mean, np.float32(ann_model.data["mean"]))
assert np.array_equal(data.std, np.float32(ann_model.data["std"]))
x_test, y_test = data.x_test, data.y_test
ann_accuracy = evaluate(net, ann_params, x_test, y_test, data, T=1, mode="ann", xp=np,
                        show_progress=False).accuracy
print(f"ANN from lesson 7: test accuracy {ann_accuracy:.3f}")

# %% [markdown]
# The conversion is lesson 7's: same search batch, same `T_find`. Lesson 7 showed that
# at few timesteps a smaller threshold scaling factor helps. To give conversion its best
# chance, we try a few factors at $T = 5$ and start fine-tuning from the best one: the
# baseline that DIET has to beat is the best converted SNN at $T = 5$, not a poor one.
# The factor is chosen on training images, never on the test images whose accuracy is
# the result (lesson 10 does the same).

# %%
T = 5
T_find, search_images = pick(30, 100), pick(128, 512)
snn_unscaled, thresholds = convert(net, ann_params, conversion_batch(data, search_images, np),
                                   T_find=T_find, scale=1.0, show_progress=False)
pick_images = pick(500, 2000)
converted, pick_accuracy = {}, {}
for s in (1.0, 0.7, 0.5, 0.3):
    candidate = {k: v.copy() for k, v in snn_unscaled.items()}
    scale_thresholds(candidate, s)
    pick_accuracy[s] = evaluate(net, candidate, data.x_train[:pick_images],
                                data.y_train[:pick_images], data, T=T, mode="snn", xp=np,
                                show_progress=False).accuracy
    converted[s] = (candidate, evaluate(net, candidate, x_test, y_test, data, T=T, mode="snn",
                                        xp=np, show_progress=False))
    print(f"converted, scale {s}: accuracy at T = {T}: {pick_accuracy[s]:.3f} on "
          f"{pick_images} training images, {converted[s][1].accuracy:.3f} on the test images")
scale = max(pick_accuracy, key=pick_accuracy.get)
snn_params, before = converted[scale]
print(f"starting point: scale {scale} (picked on training images), test accuracy "
      f"{before.accuracy:.3f} at T = {T}")

# %% [markdown]
# ## 2. DIET fine-tuning, and a weights-only control
#
# One training step (`diet_np.training.train_step`, called by `fit` for every batch):
#
# * forward over $T = 5$ steps with direct input encoding (Eq. 2–6), dropout masks drawn
#   once per batch and kept for all five steps;
# * the loss, softmax cross-entropy of $U^T$ (Eq. 7);
# * BPTT (Eq. 9–14): gradients for every weight, and for every layer's leak (Eq. 13)
#   and threshold (Eq. 14);
# * an optimiser step for the parameters being trained and then the clamp of Eq. 15:
#   $\lambda_l \le 1$ (and, as a documented safety, $\lambda_l \ge 0$ and $v_l > 0$).
#
# `diet_config` holds the authors' fine-tuning settings: Adam with AMSGrad, **no weight
# decay**, learning rate divided by 10 at 60%, 80% and 90% of the epochs, dropout 0.1,
# $T = 5$. (An optimiser's weight decay usually applies to every parameter, and would
# pull the thresholds and leaks towards zero along with the weights; `diet_np`'s
# optimisers decay only `.weight` entries, and DIET uses none anyway.) The authors run
# 100–150 epochs at learning rate 1e-4 with batch 64; a lesson has time for a few
# epochs, so we raise the rate to 1e-3 (as `diet-np demo` does), use batch 32 and
# fine-tune on part of the training set. The leaks start at 1 and the thresholds at the
# converted values: both are ordinary entries of the parameter dictionary, so the
# optimiser trains them like the weights.
#
# Fine-tuning also trains the weights for more epochs, which by itself could raise the
# accuracy. To see what learning the leaks and thresholds adds, we run three fine-tunings
# from copies of the same converted SNN, with the same seed (so the same batches and
# dropout masks), epochs and learning rate:
#
# * **weights only**: `learn=("weight",)`, the leaks and thresholds stay as converted;
# * **DIET**: weights, leaks and thresholds, one learning rate for all (the paper's);
# * **DIET, neuron lr x10**: the same, with `neuron_lr_factor=10`: leaks and thresholds
#   step at ten times the weights' learning rate (an option of ours, not the paper's;
#   section 3 says why it is there).
#
# The subset we fine-tune on keeps the full training set's normalisation, so that
# fine-tuning, the per-epoch test in `fit`'s log and the final evaluation below all see
# the images exactly as the conversion did.

# %%
diet_images, diet_epochs, lr, batch = pick(800, 3000), pick(2, 10), 1e-3, 32
# dataclasses.replace keeps data.mean/std (from all training images): from_arrays would
# recompute them from the subset, and fine-tuning would see other inputs than conversion
diet_data = dataclasses.replace(data, x_train=data.x_train[:diet_images],
                                y_train=data.y_train[:diet_images])
steps_per_epoch = num_batches(diet_images, batch)
VARIANTS = {"weights only": dict(learn=("weight",)),
            "DIET": dict(),
            "DIET, neuron lr x10": dict(neuron_lr_factor=10.0)}
start = {k: v.copy() for k, v in snn_params.items()}


def finetune(name, overrides):
    """Fine-tune a copy of the converted SNN; return its config, parameters, log and
    the final evaluation on the test set."""
    cfg = diet_config(T=T, epochs=diet_epochs, lr=lr, batch_size=batch, augment=False, seed=0,
                      **overrides)
    params = {k: v.copy() for k, v in start.items()}
    slug = name.lower().replace(",", "").replace(" ", "_")
    folder = figure_dir() / f"08_{slug}_{pick('quick', 'full')}"
    with timer(f"{name}: {diet_epochs} epochs of {diet_images} images at T = {T}"):
        log = fit(net, params, diet_data, cfg, folder, arch=RECIPE["arch"], xp=np,
                  overwrite=True, show_progress=False)
    final = evaluate(net, params, x_test, y_test, data, T=T, mode="snn", xp=np,
                     show_progress=False)
    return {"cfg": cfg, "params": params, "log": log, "eval": final}


runs = {name: finetune(name, overrides) for name, overrides in VARIANTS.items()}
diet_cfg, after = runs["DIET"]["cfg"], runs["DIET"]["eval"]
print(diet_cfg)
assert diet_cfg.optimizer == "adam" and diet_cfg.amsgrad and diet_cfg.weight_decay == 0.0
for name, run in runs.items():
    print(f"T = {T}: converted {before.accuracy:.3f} -> {name} {run['eval'].accuracy:.3f}")
print(f"(ANN {ann_accuracy:.3f}; {len(x_test)} test images)")

# %% [markdown]
# Two checks. The last epoch `fit` logged was tested on the same images with the same
# normalisation as the final evaluation, so the two accuracies (and network spike
# rates) are the same number. And the claim of this lesson: at the same five timesteps,
# DIET fine-tuning beats the converted SNN at the factor picked on training images.

# %%
for name, run in runs.items():
    assert run["log"][-1]["epoch"] == diet_epochs
    assert run["log"][-1]["test_acc"] == run["eval"].accuracy
    assert run["log"][-1]["spike_rate"] == network_spike_rate(net, run["eval"].spike_rates)[0]
    assert all(0.0 <= float(run["params"][f"{n}.leak"]) <= 1.0 for n in net.neurons)  # Eq. 15
assert after.accuracy > before.accuracy

# %% [markdown]
# The three runs side by side. The spike rate is the network's (neuron-weighted)
# average of spikes per neuron over the five steps; the energy ratio is `E_ANN / E_SNN`
# (section 5); the leak column is the largest change of any layer's leak, the threshold
# column the largest change of any layer's threshold relative to its converted value.
# Which of the three runs ends highest in *this* run is what the printed table shows;
# one short run on one seed cannot separate differences of a point or two. The
# ablation below can.

# %%
def neuron_trajectories(run):
    """Per layer: leak and threshold after each epoch, epoch 0 being the converted SNN."""
    leaks = {n: [float(start[f"{n}.leak"])] + [r["leaks"][n] for r in run["log"]]
             for n in net.neurons}
    thresh = {n: [float(start[f"{n}.threshold"])] + [r["thresholds"][n] for r in run["log"]]
              for n in net.neurons}
    return leaks, thresh


def measured(evaluation):
    """Test accuracy, network spike rate and E_ANN / E_SNN of one evaluation."""
    rates = evaluation.spike_rates
    return (evaluation.accuracy, network_spike_rate(net, rates)[0],
            energy_totals(energy_table(net, rates))["ratio"])


for run in runs.values():
    run["leaks"], run["thresholds"] = neuron_trajectories(run)
    run["leak_change"] = max(abs(v[-1] - v[0]) for v in run["leaks"].values())
    run["threshold_change"] = max(abs(v[-1] / v[0] - 1) for v in run["thresholds"].values())
table = {f"converted (scale {scale})": (*measured(before), 0.0, 0.0),
         **{name: (*measured(run["eval"]), run["leak_change"], run["threshold_change"])
            for name, run in runs.items()}}
print("| run | test accuracy | spike rate | E_ANN / E_SNN | largest leak change | "
      "largest threshold change |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for name, (acc, rate, ratio, dleak, dthresh) in table.items():
    print(f"| {name} | {acc:.3f} | {rate:.3f} | {ratio:.2f}x | {dleak:.4f} | {dthresh:.1%} |")

# %% [markdown]
# ### What learning the leak and threshold buys: the ablation's answer
#
# `benchmarks/ablations.py learn` repeats this comparison with three seeds, on lesson 7's
# full-mode network (6,000 training images) and on a VGG5 trained on CIFAR-10, and adds
# the two halves of DIET separately (thresholds only, leaks only, with the weights).
# Every run starts from one converted SNN and fine-tunes it for 2 epochs at $T = 5$
# (Adam with AMSGrad, lr $10^{-3}$), on a 2-core CPU. Test accuracy in %, mean $\pm$ sd
# over seeds 0, 1, 2 (the README's section "What each part of DIET buys" has the
# commands and the full tables):
#
# | trained at $T = 5$ | shapes (lesson 7's CNN) | CIFAR-10 (VGG5) |
# | --- | ---: | ---: |
# | nothing: converted SNN | 74.2 | 66.0 |
# | weights only | 79.6 $\pm$ 0.6 | 71.3 $\pm$ 0.4 |
# | weights + thresholds | 79.5 $\pm$ 0.2 | 71.8 $\pm$ 0.3 |
# | weights + leaks | 79.6 $\pm$ 0.6 | 71.5 $\pm$ 0.3 |
# | weights + leaks + thresholds (DIET) | 80.1 $\pm$ 0.6 | 71.3 $\pm$ 0.1 |
# | DIET, leak and threshold lr $\times 10$ | 79.6 $\pm$ 0.2 | 71.9 $\pm$ 0.7 |
# | the ANN | 81.4 | 73.3 |
#
# **The finding.** Fine-tuning at $T = 5$ is what helps: it adds 5–6 points over the
# converted SNN on both data sets, and nearly closes the gap to the ANN. *What* is
# learned during that fine-tuning does not measurably matter at these schedules: every
# row with learned leaks or thresholds lies within about one seed spread (0.6 points)
# of weights-only fine-tuning. Section 3 below shows why the leak in particular hardly
# can move.
#
# **What it means for the paper's claim.** The paper attributes its low-latency
# accuracy to training the leak and threshold along with the weights. On these two
# networks and at two epochs, that part of the gain is not separable from simply
# training the converted network's weights at the timestep count it will run at. The
# paper fine-tunes for 100–150 epochs on deeper networks, which these measurements do
# not cover; what they do show is that the baseline for any claim about DIET must be
# weights-only fine-tuning at the same $T$, not the converted network.

# %% [markdown]
# ## 3. Leaks and thresholds during training
#
# `fit` logs, after every epoch, the test accuracy and every layer's leak and threshold
# (`log[i]["leaks"]`, `log[i]["thresholds"]`); epoch 0 below is the converted network.
# Thresholds are drawn relative to their starting values, since they differ by layer.
# The weights-only run is left out of the leak and threshold panels: its leaks and
# thresholds do not change (checked below).

# %%
weights_only = runs["weights only"]
assert all(np.array_equal(weights_only["params"][k], start[k]) for k in start
           if k.endswith((".leak", ".threshold")))
assert weights_only["leak_change"] == weights_only["threshold_change"] == 0.0
assert runs["DIET"]["threshold_change"] > 0                      # thresholds are trained
print("run                  layer   leak: start -> end    threshold: start -> end")
for name in ("DIET", "DIET, neuron lr x10"):
    leaks, thresh = runs[name]["leaks"], runs[name]["thresholds"]
    for n in net.neurons:
        print(f"{name:20s} {n:6s}  {leaks[n][0]:.4f} -> {leaks[n][-1]:.4f}      "
              f"{thresh[n][0]:.4f} -> {thresh[n][-1]:.4f}  "
              f"({thresh[n][-1] / thresh[n][0] - 1:+.1%})")

epochs_axis = np.arange(0, diet_epochs + 1)
styles = {"weights only": ("0.55", ":"), "DIET": ("k", "-"), "DIET, neuron lr x10": ("k", "--")}
fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
for name, run in runs.items():
    colour, ls = styles[name]
    axes[0].plot(epochs_axis, [before.accuracy] + [r["test_acc"] for r in run["log"]], "o",
                 ls=ls, color=colour, label=name)
axes[0].axhline(ann_accuracy, color="C3", lw=1, label="ANN")
axes[0].set_ylabel("test accuracy")
axes[0].set_title(f"Accuracy at $T = {T}$ (epoch 0 = converted)")
axes[0].legend(fontsize=9)
for name in ("DIET", "DIET, neuron lr x10"):
    ls = styles[name][1]
    for i, n in enumerate(net.neurons):
        thresh = runs[name]["thresholds"][n]
        axes[1].plot(epochs_axis, runs[name]["leaks"][n], "o", ls=ls, color=f"C{i}")
        axes[2].plot(epochs_axis, np.array(thresh) / thresh[0], "o", ls=ls, color=f"C{i}")
axes[1].set_ylabel(r"leak $\lambda_l$")
axes[1].set_title(r"Leaks (clamped at $\leq 1$, Eq. 15)")
axes[2].set_ylabel("threshold $v_l$ / its converted value")
axes[2].set_title("Thresholds, relative to the converted ones")
for ax in axes:
    ax.set_xlabel("epoch of fine-tuning")
    ax.set_xticks(epochs_axis)
layer_keys = [Line2D([], [], color=f"C{i}", marker="o", label=n)
              for i, n in enumerate(net.neurons)]
run_keys = [Line2D([], [], color="k", ls=styles[name][1], label=name)
            for name in ("DIET", "DIET, neuron lr x10")]
fig.legend(handles=layer_keys + run_keys, loc="outside lower center", ncol=6,
           title="leak and threshold panels")
save(fig, "08_training")

# %% [markdown]
# ### Why the leak hardly moves
#
# Three facts, none of them about this particular run:
#
# 1. A converted network is made of integrate-and-fire neurons: every leak starts at
#    exactly 1.
# 2. The clamp of Eq. 15 holds $\lambda_l \le 1$ after every step. A leak at 1 whose
#    gradient asks for a larger leak (less forgetting) takes the step and is put back at
#    1: such steps are undone. A leak can only leave 1 downwards, in steps where the
#    optimiser's update points down.
# 3. Adam scales each parameter's step by its own gradient history: the step is
#    $\mathrm{lr} \cdot \hat m / \sqrt{\hat v}$ (running mean of the gradient over the root of
#    the running mean
#    of its square), which is about $\mathrm{lr}$ when the gradient keeps its sign and size and
#    less when it does not, however large or small the gradient itself is. (Kingma and Ba bound it
#    by $\mathrm{lr}$ except in the most severe case of sparsity, a gradient that was zero at
#    every step but the current one; AMSGrad's running maximum of the square only makes
#    steps smaller.) A leak is one scalar per layer, so over $N$ steps it moves by at most
#    about $N \cdot \mathrm{lr}$, summed over the schedule's rates.
#
# A threshold obeys the same Adam bound, but starts away from any clamp, so it can move
# either way from the first step. The cell below measures both sides of the argument:
# the fraction of layers whose leak is exactly 1 at the end, and the bound $N \cdot \mathrm{lr}$
# (times the neuron learning-rate factor) against the largest change of a leak and of a
# threshold.

# %%
for name in ("DIET", "DIET, neuron lr x10"):
    run = runs[name]
    bound = sum(r["lr"] for r in run["log"]) * steps_per_epoch * run["cfg"].neuron_lr_factor
    at_one = [n for n in net.neurons if run["leaks"][n][-1] == 1.0]
    threshold_step = max(abs(v[-1] - v[0]) for v in run["thresholds"].values())
    run["bound"], run["at_one"] = bound, len(at_one) / len(net.neurons)
    print(f"{name}: {diet_epochs * steps_per_epoch} steps, bound = sum of lr x factor = "
          f"{bound:.4f}; largest leak change {run['leak_change']:.4f} "
          f"({run['leak_change'] / bound:.0%} of the bound), largest threshold change "
          f"{threshold_step:.4f} ({threshold_step / bound:.0%}); leak exactly 1 at the end in "
          f"{len(at_one)} of {len(net.neurons)} layers {at_one}")
    assert run["leak_change"] <= bound and threshold_step <= bound
smallest_leak = min(run["leaks"][n][-1] for run in runs.values() for n in net.neurons)
print(f"smallest leak at the end of any run: {smallest_leak:.4f}: input that arrived at the "
      f"first of the {T} steps counts {smallest_leak ** (T - 1):.1%} of itself at the last")
assert runs["DIET, neuron lr x10"]["leak_change"] >= runs["DIET"]["leak_change"]

# %% [markdown]
# So a leak can leave 1 only downwards, and by at most about $N \cdot \mathrm{lr}$. The printed
# fractions of the bound tell the two limits apart. A change near the bound means the
# leak's updates kept pointing down, and the bound is what held it. A change far below
# the bound means they did not: some pointed up, back towards 1, and at 1 the clamp
# undoes them (a leak that ends at exactly 1 was put back there by the clamp). A larger learning
# rate for the neuron parameters (`neuron_lr_factor`) raises the bound tenfold; the
# assertion above checks that the leak then ends at least as far from 1 as at the shared
# rate, and the table of section 2 shows what that does to accuracy and spike rate in
# this run.
#
# ## 4. Spike rates before and after
#
# `evaluate(...).spike_rates` gives, per layer, the spikes per neuron summed over the
# five steps, averaged over neurons and test images. The network average weights the
# layers by their neuron counts; the plain mean over layers is printed beside it.

# %%
print(f"{'layer':6s}  {'neurons':>7s}  {'converted':>10s}"
      + "".join(f"  {name:>19s}" for name in runs))
for n in net.neurons:
    print(f"{n:6s}  {net.neurons[n]:7d}  {before.spike_rates[n]:10.3f}" + "".join(
        f"  {run['eval'].spike_rates[n]:19.3f}" for run in runs.values()))
net_before, mean_before = network_spike_rate(net, before.spike_rates)
net_after, mean_after = network_spike_rate(net, after.spike_rates)
print(f"DIET: network average (neuron-weighted): {net_before:.3f} -> {net_after:.3f}; "
      f"mean over layers: {mean_before:.3f} -> {mean_after:.3f}")
rate_change = net_after / net_before - 1
print(f"DIET fine-tuning changed the network's spike rate by {rate_change:+.1%}")

# %% [markdown]
# DIET's loss is the cross-entropy alone: nothing in it asks for fewer spikes, so
# fine-tuning moves the spike rate wherever accuracy takes it, up or down (the printed
# line above is this run's change). What *does* keep the rate low is the small $T$
# itself: each neuron has at most five chances to fire, which the code checks.

# %%
assert all(rate <= T for run in runs.values() for rate in run["eval"].spike_rates.values())

# %% [markdown]
# ## 5. Compute energy (45 nm model)
#
# The paper counts one multiply-accumulate (4.6 pJ) per connection for the ANN, and for
# the SNN one accumulate (0.9 pJ) per *spike* arriving at a connection: a layer fed by
# spikes costs $0.9\,\mathrm{pJ} \times \mathrm{FLOPs}_l \times \zeta_{l-1}$, where
# $\zeta_{l-1}$ is the spike rate
# (over all $T$ steps) of the layer feeding it. The first layer sees the analog image
# and is charged as MACs, once. `energy_table` computes this per layer from measured
# spike rates. For comparison we also price the converted SNN at a number of
# timesteps where it approaches the ANN (lesson 7): more steps, more spikes.

# %%
T_long = pick(32, 64)
long_eval = evaluate(net, converted[1.0][0], x_test, y_test, data, T=T_long, mode="snn", xp=np,
                     show_progress=False)
long_key = f"converted (scale 1), T = {T_long}"
energy = {"converted, T = 5": energy_table(net, before.spike_rates),
          "DIET, T = 5": energy_table(net, after.spike_rates),
          long_key: energy_table(net, long_eval.spike_rates)}
accuracy = {"converted, T = 5": before.accuracy, "DIET, T = 5": after.accuracy,
            long_key: long_eval.accuracy}
print(format_energy_table(energy["DIET, T = 5"]))
print()
totals = {k: energy_totals(rows) for k, rows in energy.items()}
print(f"ANN: {totals['DIET, T = 5']['ann_joules'] * 1e6:.3f} uJ per image, accuracy "
      f"{ann_accuracy:.3f}")
for k, tot in totals.items():
    print(f"{k}: {tot['snn_joules'] * 1e6:.3f} uJ per image, E_ANN / E_SNN = "
          f"{tot['ratio']:.2f}x, accuracy {accuracy[k]:.3f}")
energy_ratio = totals["DIET, T = 5"]["ratio"]
assert energy_ratio == table["DIET"][2]
first = energy["DIET, T = 5"][0]
ceiling = totals["DIET, T = 5"]["ann_joules"] / (first.snn_pj * 1e-12)
first_share = first.flops / totals["DIET, T = 5"]["flops"]
vgg16_flops = [flops for _, flops, _ in build_network("vgg16", 10).compute_layers()]
print(f"the first layer ({first.layer}, analog input, charged as MACs) is {first_share:.1%} of "
      f"the FLOPs and alone costs {first.snn_pj * 1e-6:.3f} uJ: no spike rate could push "
      f"E_ANN / E_SNN above {ceiling:.1f}x in this network; in VGG16 the first layer is "
      f"{vgg16_flops[0] / sum(vgg16_flops):.1%} of the FLOPs")
assert 1.0 < energy_ratio < ceiling
assert totals[long_key]["snn_joules"] > totals["DIET, T = 5"]["snn_joules"]

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.2))
layers = list(net.neurons)
rates = {f"converted (scale {scale})": before.spike_rates,
         **{name: run["eval"].spike_rates for name, run in runs.items()}}
grouped_bars(ax1, layers, {name: [r[n] for n in layers] for name, r in rates.items()},
             f"spikes per neuron over $T = {T}$ steps", "Spike rate per layer, $T = 5$",
             colours=dict(zip(rates, ("C0", "C2", "C1", "C3"))))
rows = energy["DIET, T = 5"]
grouped_bars(ax2, [r.layer for r in rows],
             {"ANN (MAC)": [r.ann_pj * 1e-6 for r in rows],
              **{f"SNN, {k}": [r.snn_pj * 1e-6 for r in energy[k]]
                 for k in ("converted, T = 5", "DIET, T = 5")}},
             r"energy per image ($\mu$J, log scale)",
             f"Compute energy per layer; $E_{{ANN}}/E_{{SNN}}$ = {energy_ratio:.1f}x after DIET",
             colours={"ANN (MAC)": "0.4", "SNN, converted, T = 5": "C0",
                      "SNN, DIET, T = 5": "C1"})
ax2.set_yscale("log")
save(fig, "08_spikes_energy")

# %% [markdown]
# The fine-tuned SNN at $T = 5$ costs less compute energy than the ANN, and less than the
# converted SNN at the longer $T$ (both asserted above). The first convolution, which sees
# the analog image, is charged at the full MAC price, so its share of the FLOPs bounds
# the ratio in this small network (both printed above); in VGG16 that share is far
# smaller (printed too, and lesson 10), and the ratio is set by the spike rates.

# %% [markdown]
# ## 6. Against a convolutional SNN trained from scratch
#
# Why convert at all? One could train the same spiking network directly, from random
# weights, with the surrogate gradient and BPTT at $T = 5$: the same `fit`, the same
# data, epochs, batch size and learning rate as the DIET run, only the start differs.
# The weights are drawn with Kaiming's initialisation (`init="kaiming-in"`, which keeps
# the currents of every layer of order 1), every leak and threshold starts at 1, and
# the leaks and thresholds learn along with the weights. `chance_epochs=0` lets the run
# go on even if it stays at chance.

# %%
scratch_params = net.init_params(seed=0, init="kaiming-in")
scratch_cfg = dataclasses.replace(diet_cfg, chance_epochs=0)
scratch_start = evaluate(net, scratch_params, x_test, y_test, data, T=T, mode="snn", xp=np,
                         show_progress=False)
with timer(f"from scratch: {diet_epochs} epochs of {diet_images} images at T = {T}"):
    scratch_log = fit(net, scratch_params, diet_data, scratch_cfg,
                      figure_dir() / f"08_from_scratch_{pick('quick', 'full')}",
                      arch=RECIPE["arch"], xp=np, overwrite=True, show_progress=False)
scratch = evaluate(net, scratch_params, x_test, y_test, data, T=T, mode="snn", xp=np,
                   show_progress=False)
scratch_curve = [scratch_start.accuracy] + [r["test_acc"] for r in scratch_log]
diet_curve = [before.accuracy] + [r["test_acc"] for r in runs["DIET"]["log"]]
print("after epoch    " + "  ".join(f"{e:5d}" for e in range(diet_epochs + 1)))
print("from scratch   " + "  ".join(f"{a:5.3f}" for a in scratch_curve))
print("convert + DIET " + "  ".join(f"{a:5.3f}" for a in diet_curve))
print(f"T = {T}, {diet_epochs} epochs of {diet_images} images: from scratch "
      f"{scratch.accuracy:.3f}, converted + DIET {after.accuracy:.3f} "
      f"(the ANN behind the conversion: {RECIPE['ann']['epochs']} epochs of "
      f"{len(data.x_train)} images, {ann_accuracy:.3f})")
assert scratch_log[-1]["test_acc"] == scratch.accuracy
assert after.accuracy > scratch.accuracy

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(range(diet_epochs + 1), scratch_curve, "o-", color="C0", label="SNN from scratch")
ax.plot(range(diet_epochs + 1), diet_curve, "s-", color="C1", label="converted SNN + DIET")
ax.axhline(ann_accuracy, color="C3", lw=1, label="the ANN")
ax.axhline(1 / net.num_classes, color="0.5", ls=":", lw=1, label="chance")
ax.set_xlabel("epoch of training at $T = 5$")
ax.set_ylabel("test accuracy")
ax.set_xticks(range(diet_epochs + 1))
ax.set_title("Same network, same epochs at $T = 5$")
ax.legend(fontsize=9)
save(fig, "08_from_scratch")

# %% [markdown]
# For the same epochs at $T = 5$, the converted network fine-tuned with DIET ends above
# the one trained from scratch (asserted), and it starts where the other can only
# arrive after training: epoch 0 of the DIET curve is the converted SNN, epoch 0 of the
# other a random network. That head start was paid for with the ANN's training (its
# epochs are printed), which is cheaper per epoch: one pass per image instead of $T$, and
# no state to carry through time. This is DIET-SNN's motivation: conversion gives a deep
# SNN a good starting point cheaply, and a few epochs of BPTT at small $T$ then recover
# the accuracy that conversion loses at that $T$.

# %% [markdown]
# ## Summary
#
# * DIET fine-tuning trains the converted SNN at the timestep count it will run at:
#   weights, leaks and thresholds by BPTT (Eq. 9–14), Adam with AMSGrad, no weight
#   decay, clamp after every step (Eq. 15).
# * At $T = 5$ it beats the converted SNN at the threshold scaling factor picked on
#   training images (asserted). A weights-only fine-tuning from the same start, with the same
#   batches, is the control. Over three seeds (the ablation table) learning the leak and
#   threshold is not a measurable gain over it at these schedules: training at $T = 5$
#   is what helps.
# * The leaks start at exactly 1, on the clamp of Eq. 15, and Adam moves a scalar by
#   about $\mathrm{lr}$ per step: the run's leaks stay within the printed bound
#   $N \cdot \mathrm{lr}$, and a
#   larger learning rate for the neuron parameters moves them further.
# * Spike rates and energy are measured, not assumed: the printed tables give the
#   per-layer rates before and after, and the energy ratio to the ANN under the
#   paper's 45 nm model.
# * Trained from scratch with surrogate gradients for the same epochs at $T = 5$, the
#   same convolutional SNN ends below the converted and fine-tuned one (asserted): the
#   ANN's cheap training is the better start.
#
# ## Exercises
#
# 1. By section 3's argument, how far could a leak move in the DIET run had its neuron
#    learning rate been 100 times the weights'? *Answer:* at most 100 times the bound
#    printed for the DIET run (the code below computes it); whether it would is the
#    clamp's business.
# 2. Fine-tune at $T = 10$ instead of 5 (`diet_config(T=10, ...)`). What do you expect of
#    the accuracy, the spike rate and $E_{ANN}/E_{SNN}$? *Hint:* the README's encoding
#    table measured it on lesson 7's full-mode network: 81.5% instead of 80.7%, spike rate
#    0.646 instead of 0.301, energy ratio 3.95x instead of 5.02x.
# 3. Give the from-scratch SNN as many epochs as the ANN and DIET had together. Is the
#    comparison then fair in compute? *Hint:* an SNN epoch at $T = 5$ costs several ANN
#    epochs (time both with `timer`).
#
# ### Answer to 1

# %%
exercise_leak_bound = runs["DIET"]["bound"] * 100
print(f"a leak could move by at most {exercise_leak_bound:.3f} at 100x the neuron rate")
assert exercise_leak_bound == sum(r["lr"] for r in runs["DIET"]["log"]) * steps_per_epoch * 100

# %% [markdown]
# **Next:** lesson 9 runs the same code on a GPU; lesson 10 puts the whole pipeline
# together for VGG16 on CIFAR-10.
