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
# # Lesson 10: VGG16 on CIFAR-10, the paper's whole pipeline
#
# The paper's headline CIFAR-10 result is a VGG16 DIET-SNN at five timesteps. Getting
# there is the pipeline of lessons 7 and 8 at full size: train the ANN, convert it with
# 99.7th-percentile thresholds, fine-tune at $T = 5$ with BPTT (Eq. 9–15), and report
# spike rates and compute energy. This lesson
#
# 1. builds the real VGG16 (`build_network("vgg16")`) and counts its FLOPs;
# 2. loads CIFAR-10 from the library's data directory (`$DIET_NP_DATA`), or falls back to
#    the embedded shapes data set and says so;
# 3. sets out the authors' configuration and, in one box, the recipe this project uses
#    and why it departs from theirs;
# 4. runs and times training steps of the full-size VGG16 on this machine;
# 5. runs that recipe end to end, stage by stage, on VGG16 at 1/8 width and a few thousand
#    images: ANN, conversion, the factor picked at $T = 5$, DIET, spike rates and energy;
# 6. quotes the longer measured CPU run at 1/4 width, and prints the commands of the full
#    run on a GPU (the same recipe as the box).
#
# Every number this lesson prints is measured by the run itself, on the machine and data
# it names, except the measured CPU runs that section 6 quotes and draws, whose commands
# it gives.
#
# **Assumes:** lessons 7–9. **Runs in:** quick mode about 2–5 minutes; full mode about
# 10 minutes on a CPU (times on two busy CPU cores).

# %%
import io
import os
import platform
import shlex
import time
from contextlib import redirect_stdout

import numpy as np

from diet_np.architectures import VGG_CONFIGS, build_network
from diet_np.backend import default_rng, get_xp, gpu_available
from diet_np.cli import build_parser, main as diet_np_cli
from diet_np.conversion import scale_thresholds
from diet_np.data import DataError, Dataset, data_dir, iterate_batches, load_dataset, make_shapes
from diet_np.lessons.common import HERE, QUICK, figure_dir, pick, plt, save, timer
from diet_np.lessons.figures import grouped_bars
from diet_np.metrics import energy_table, energy_totals, network_spike_rate
from diet_np.pipeline import convert_model
from diet_np.recipes import ann_init, ann_recipe
from diet_np.records import RunLog
from diet_np.training import (ann_config, diet_config, evaluate, fit, run_optimizer,
                              train_step)

print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. VGG16 for 32x32 images
#
# Thirteen 3x3 convolutions (64, 64, pool, 128, 128, pool, 256 x3, pool, 512 x3, pool,
# 512 x3), 2x2 average pooling, then $512 \times 2 \times 2 = 2048 \to 4096 \to 4096 \to 10$:
# fifteen spiking layers and the accumulating output layer (Eq. 6). The FLOPs (MACs per
# image) are those of the energy model: $k^2\, C_{in} C_{out} H_{out} W_{out}$ per convolution and
# $\mathrm{in} \times \mathrm{out}$ per linear layer. The CLI prints them with
# `diet-np energy --arch vgg16`:

# %%
vgg16 = build_network("vgg16", num_classes=10)
n_weights = sum(int(np.prod(shape)) for key, shape in vgg16.param_shapes().items()
                if key.endswith(".weight"))
print(f"VGG16: {len(vgg16.neurons)} spiking layers, {sum(vgg16.neurons.values()):,} spiking "
      f"neurons per image, {n_weights:,} weights")
buffer = io.StringIO()
with redirect_stdout(buffer):
    exit_code = diet_np_cli(["energy", "--arch", "vgg16"])
cli_text = buffer.getvalue()
print("$ diet-np energy --arch vgg16\n" + cli_text)
flops = {name: f for name, f, _ in vgg16.compute_layers()}
vgg16_flops = sum(flops.values())
assert exit_code == 0 and "338,403,328" in cli_text and vgg16_flops == 338_403_328
assert len(vgg16.neurons) == 15
print(f"the first layer (analog input) is {flops['conv1'] / vgg16_flops:.2%} of the FLOPs")

# %% [markdown]
# ## 2. The data
#
# `load_dataset("cifar10")` reads the official "python version" folder
# `cifar-10-batches-py/` from the data directory: the `root` argument, else the
# environment variable `DIET_NP_DATA`, else a per-user cache folder; with
# `download=True` (the CLI's default) it fetches and checks the official archive when
# the folder is missing. The lesson never downloads: it uses what is there, and
# otherwise falls back to the embedded shapes data set (same image size, ten classes)
# and says so. To use a copy you have, start the lesson with
# `DIET_NP_DATA=/path/to/folder/holding/cifar-10-batches-py`. Read the data set's note:
# a partial or re-encoded copy of CIFAR-10 gives accuracies close to, but not the same
# as, the official files.

# %%
n_train, n_test = pick(4000, 8000), pick(500, 1000)
print(f"data directory: {data_dir()}")
try:
    source = load_dataset("cifar10", download=False)
    data_name = "cifar10"
    print(source.note)
except DataError as exc:
    print(f"CIFAR-10 is not available here ({str(exc).splitlines()[0][:150]}).")
    print("Falling back to the embedded shapes data set: the numbers below are NOT CIFAR-10.")
    source = make_shapes(n_train=n_train, n_test=n_test, seed=0)
    data_name = "shapes"
data = Dataset.from_arrays(data_name, source.x_train[:n_train], source.y_train[:n_train],
                           source.x_test[:n_test], source.y_test[:n_test], source.class_names,
                           note=f"first {n_train} training and {n_test} test images of: "
                                f"{source.note}")
print(f"using {data_name}: {len(data.x_train)} training and {len(data.x_test)} test images")

# %% [markdown]
# ## 3. The authors' configuration, and the recipe we use
#
# The authors' settings, as [the equations page](../docs/equations.md) records them:
#
# * ANN: their `ann.py` defaults are SGD, momentum 0.9, weight decay $5 \cdot 10^{-4}$,
#   learning rate $10^{-2}$ divided by 10 at 45%, 70% and 90% of 300 epochs (`ann_config()`);
#   their released CIFAR-10 VGG16 script uses Adam with AMSGrad at $10^{-4}$ instead
#   (`ann_recipe("vgg16", "authors")`), with dropout 0.2 after convolutions and 0.5 in the
#   classifier;
# * conversion: leak 1, thresholds from the 99.7th percentile of the per-step input
#   current, layer by layer, $T_{\mathrm{find}} = 100$ steps on 512 training images, then a
#   scaling factor (0.2–0.7 in their scripts);
# * DIET (`diet_config()`): Adam with AMSGrad, learning rate $10^{-4}$ divided at 60%, 80%
#   and 90% of 100–150 epochs, no weight decay, dropout 0.1, $T = 5$.
#
# > **The recipe we use, and why**
# >
# > * **ANN: the short-budget recipe** (`ann_recipe("vgg16")`, the CLI's default): SGD
# >   with Nesterov momentum 0.9 at 0.05, a 2-epoch linear warm-up then cosine decay, weight
# >   decay $5 \cdot 10^{-4}$, gradients' norm clipped at 2, Kaiming fan-in initialisation
# >   rescaled by LSUV on 256 training images, no dropout, batch 64, crop and flip, for
# >   40 epochs (made for tens of epochs, not the authors' 300).
# >   *Why:* a 16-layer VGG without batch normalisation stays at chance with `ann.py`'s SGD
# >   at $10^{-2}$, and with the authors' Adam recipe it stalls once the step schedule
# >   divides the rate, at a budget of tens of epochs instead of their 300; a warm-up and a
# >   data-dependent initialisation are the usual answers for deep plain networks
# >   (`diet_np/recipes.py` says why; `benchmarks/compare_recipes.py` measures both recipes
# >   on the same network and batches).
# > * **Conversion: the authors' search at factor 1, then the factor picked at $T = 5$ on
# >   training images** (`--scale 1.0`, then `benchmarks/pick_scale.py`). *Why:* the best
# >   factor differs by network, and a wrong one is costly: the measured 1/4-width run gave
# >   every image one class at x0.7 and 31% at x0.6. Never chosen on test images.
# > * **DIET: Adam with AMSGrad, $T = 5$, dropout 0.1, no weight decay, at a rate measured
# >   for the network** (`benchmarks/pick_lr.py`: one epoch per candidate rate on training
# >   images, scored on held-out training images). *Why:* the best rate differs by network:
# >   the measured CPU runs of section 6 picked $3 \cdot 10^{-4}$ for `vgg16_w4` and
# >   $10^{-3}$ for `resnet20_w4`, where the paper uses $10^{-4}$. This lesson's own run and
# >   the GPU commands keep the paper's $10^{-4}$ at a constant rate (`--schedule
# >   constant`: with the earlier ANN the accuracy stalled each time the step schedule
# >   divided the rate, and rose from 41.8% to 54.65% over 42 epochs at a constant one).
# > * **This lesson's own run (section 5)** keeps all of this and changes only the size
# >   (1/8 width, a few thousand images, a few epochs; in quick mode a shorter
# >   $T_{\mathrm{find}}$ and fewer images to pick the factor on).

# %%
ANN_RECIPE = ann_recipe("vgg16")                      # the short-budget recipe
SCALES = (0.7, 0.6, 0.5, 0.4, 0.3)                    # candidate factors, picked at T = 5
DIET_RECIPE = {"lr": 1e-4, "schedule": "constant"}    # with diet_config()'s Adam AMSGrad
paper_ann, paper_diet = ann_config(), diet_config()
print("ANN recipe:", ANN_RECIPE)
print("DIET: diet_config with", DIET_RECIPE)
assert (ANN_RECIPE["optimizer"], ANN_RECIPE["nesterov"], ANN_RECIPE["lr"],
        ANN_RECIPE["schedule"], ANN_RECIPE["warmup_epochs"]) == ("sgd", True, 0.05, "cosine", 2)
assert ANN_RECIPE["lsuv_images"] == 256 and ANN_RECIPE["clip_norm"] == 2.0
assert (paper_ann.optimizer, paper_ann.lr, tuple(paper_ann.milestones)) == ("sgd", 1e-2,
                                                                           (0.45, 0.7, 0.9))
assert (paper_diet.optimizer, paper_diet.amsgrad, paper_diet.lr, paper_diet.weight_decay,
        paper_diet.T) == ("adam", True, 1e-4, 0.0, 5)

# %% [markdown]
# ## 4. The full-size VGG16 on this machine
#
# One ANN training step (the recipe's SGD) and one DIET training step ($T = 5$) of the
# real VGG16, on a small batch of real images. The weights are untrained (and every
# threshold 1), so this measures cost, not accuracy: the forward and backward do the same
# work whether or not neurons spike. Each step is run twice and the second is timed (the
# first pays one-off costs). The times are this machine's.

# %%
step_batch = pick(4, 16)
device_name = "gpu" if gpu_available() else "cpu"
xp = get_xp(device_name)                                  # lesson 9
with timer("initialising VGG16's parameters"):
    params16 = vgg16.init_params(seed=0, xp=xp)
x_step, y_step = next(iterate_batches(data.x_train, data.y_train, step_batch, xp, shuffle=False,
                                      mean=data.mean, std=data.std))
step_seconds = {}
for mode, cfg in (("ann", ann_config(**ANN_RECIPE)), ("snn", diet_config(**DIET_RECIPE))):
    opt, rng = run_optimizer(cfg), default_rng(xp, 0)
    for repeat in range(2):
        start = time.perf_counter()
        loss, _ = train_step(vgg16, params16, opt, x_step, y_step, cfg=cfg, rng=rng, lr=cfg.lr)
        float(loss)                                        # waits for the device
        step_seconds[mode] = time.perf_counter() - start   # the second one is kept
where = (f"{platform.machine()} CPU, {os.cpu_count()} logical cores" if device_name == "cpu"
         else "GPU " + xp.cuda.runtime.getDeviceProperties(0)["name"].decode())
print(f"measured here ({where}), batch {step_batch} of {data_name} images:")
for mode, seconds in step_seconds.items():
    label = "ANN step" if mode == "ann" else "DIET step, T = 5"
    print(f"  {label:17s}: {seconds:6.2f} s, {seconds / step_batch:.3f} s per image")
epoch_hours = step_seconds["snn"] / step_batch * 50_000 / 3600
print(f"at that rate one DIET epoch over CIFAR-10's 50,000 training images would take about "
      f"{epoch_hours:.1f} hours here (arithmetic on the one-step measurement above)")

# %% [markdown]
# That is why the full run belongs on a GPU (lesson 9), and why the CPU part of this
# lesson shrinks the network.
#
# ## 5. The recipe end to end, at 1/8 width
#
# The stages of the box, one call each, on the VGG16 *architecture* with every layer's
# width divided by 8 (built by the same `vgg()` function as `build_network("vgg16")`: the
# same 15 spiking layers, pools and dropout placement), on the images chosen in
# section 2:
#
# 1. `fit` trains the ANN with the recipe (LSUV first);
# 2. `convert_model` searches the thresholds at factor 1 (lesson 7);
# 3. each candidate factor is tested at $T = 5$ on training images, and the best kept;
# 4. `fit` fine-tunes the converted SNN at $T = 5$ (DIET, lesson 8);
# 5. `evaluate` measures the test accuracy and spike rates, `energy_table` prices them.

# %%
WIDTH = 8
features, classifier = VGG_CONFIGS["vgg16"]
small_arch = {"features": [f if isinstance(f, str) else f // WIDTH for f in features],
              "classifier": [w // WIDTH for w in classifier], "name": f"vgg16_w{WIDTH}"}
small_net = build_network(small_arch, data.num_classes)
assert len(small_net.neurons) == len(vgg16.neurons) == 15
small_flops = sum(f for _, f, _ in small_net.compute_layers())
print(f"{small_arch['name']}: {small_flops:,} FLOPs per image "
      f"({vgg16_flops / small_flops:.0f}x fewer than VGG16)")
run_dir = figure_dir() / f"10_pipeline_{'quick' if QUICK else 'full'}"
test = (data.x_test, data.y_test, data)

ann_cfg = ann_config(**ANN_RECIPE, epochs=pick(6, 20))
ann_params = small_net.init_params(seed=0, xp=xp, init=ann_init("vgg16"))
with timer(f"ANN: {ann_cfg.epochs} epochs of {len(data.x_train)} images"):
    ann_log = fit(small_net, ann_params, data, ann_cfg, run_dir / "ann", arch=small_arch, xp=xp,
                  overwrite=True, show_progress=False)
ann_eval = evaluate(small_net, ann_params, *test, T=1, mode="ann", xp=xp, show_progress=False)
print(f"ANN test accuracy {ann_eval.accuracy:.3f} (chance 0.100)")
assert ann_eval.accuracy > 0.2                               # the ANN learned

# %%
T_find, search_images = pick(20, 100), pick(128, 512)
with timer(f"threshold search: T_find = {T_find} on {search_images} training images"):
    unscaled, thresholds = convert_model(small_net, ann_params, data, xp, T_find=T_find,
                                         scale=1.0, images=search_images, show_progress=False)
pick_images = pick(500, 2000)
x_pick, y_pick = data.x_train[:pick_images], data.y_train[:pick_images]
by_scale = {}
for factor in SCALES:
    candidate = {k: v.copy() for k, v in unscaled.items()}
    scale_thresholds(candidate, factor)
    by_scale[factor] = (candidate, evaluate(small_net, candidate, x_pick, y_pick, data, T=5,
                                            mode="snn", xp=xp, show_progress=False).accuracy)
    print(f"factor {factor}: accuracy at T = 5 on {pick_images} training images "
          f"{by_scale[factor][1]:.3f}")
scale = max(by_scale, key=lambda f: by_scale[f][1])
snn_params = by_scale[scale][0]
converted = evaluate(small_net, snn_params, *test, T=5, mode="snn", xp=xp, show_progress=False)
print(f"picked x{scale}; converted SNN, T = 5: test accuracy {converted.accuracy:.3f}")

# %%
diet_cfg = diet_config(**DIET_RECIPE, epochs=pick(1, 5))
with timer(f"DIET: {diet_cfg.epochs} epochs at T = 5"):
    diet_log = fit(small_net, snn_params, data, diet_cfg, run_dir / "diet", arch=small_arch, xp=xp,
                   overwrite=True, show_progress=False)
diet = evaluate(small_net, snn_params, *test, T=5, mode="snn", xp=xp, show_progress=False)
energy = energy_totals(energy_table(small_net, diet.spike_rates))
results = {"ANN": (ann_eval.accuracy, 1), f"converted, x{scale}": (converted.accuracy, 5),
           f"DIET, {diet_cfg.epochs} epoch{'s' if diet_cfg.epochs > 1 else ''}": (diet.accuracy, 5)}
print(f"| {small_arch['name']}, {data_name}, {len(data.x_train)} training images | T | "
      f"test accuracy ({len(data.x_test)} images) |")
print("| --- | ---: | ---: |")
for stage, (accuracy, steps) in results.items():
    print(f"| {stage} | {steps} | {accuracy:.3f} |")
print(f"DIET: network spike rate {network_spike_rate(small_net, diet.spike_rates)[0]:.3f} "
      f"spikes per neuron over 5 steps; E_ANN / E_SNN = {energy['ratio']:.2f}x")
assert diet_log[-1]["test_acc"] == diet.accuracy and energy["ratio"] > 0
assert min(converted.accuracy, diet.accuracy) > 0.15               # both SNNs above chance

# %% [markdown]
# The table above is this run's: the ANN it trained, the converted SNN at the factor it
# picked, and DIET at $T = 5$ after a few epochs, all above chance (asserted). At this
# size and budget, how much of the ANN's accuracy the SNN keeps at five steps is what
# the table shows; a few epochs of DIET at $10^{-4}$ are a small part of the 100–150 the
# authors run, and section 6 shows what 76 of them did at 1/4 width. One full-mode run
# on CIFAR-10 (two busy CPU cores, 9.7 minutes) measured ANN 55.7%, converted 42.1% and
# DIET 41.7% after 5 epochs: at this size the paper's $10^{-4}$ barely moves the SNN in
# five epochs (it dips in the first, as dropout starts, and climbs back). The measured
# runs of section 6 probe the rate first: `python benchmarks/pick_lr.py` fine-tunes a
# converted checkpoint for one epoch at each candidate rate and scores each on held-out
# training images.
#
# The figure: the test accuracy through every epoch of the run (the ANN's, then DIET's,
# with the converted SNN between them), the spike rate of each layer before and after
# DIET, and the full VGG16's FLOPs per layer.

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
ann_curve = [r["test_acc"] for r in ann_log]
diet_curve = [converted.accuracy] + [r["test_acc"] for r in diet_log]
axes[0].plot(range(1, len(ann_curve) + 1), ann_curve, "o-", color="C0", label="ANN")
axes[0].plot(range(len(ann_curve), len(ann_curve) + len(diet_curve)), diet_curve, "s-",
             color="C1", label=f"converted (x{scale}), then DIET at $T = 5$")
axes[0].axhline(0.1, color="0.5", ls=":", lw=1, label="chance")
axes[0].set(xlabel="epoch", ylabel="test accuracy",
            title=f"{small_arch['name']} on {data_name} ({len(data.x_train)} training images)")
axes[0].legend(fontsize=8)
names = list(small_net.neurons)
grouped_bars(axes[1], names,
             {f"converted (x{scale})": [converted.spike_rates[n] for n in names],
              "after DIET": [diet.spike_rates[n] for n in names]},
             "spikes per neuron over $T = 5$", "Spike rate per layer", rotation=60)
layer_names = [name for name, _, _ in vgg16.compute_layers()]
axes[2].bar(range(len(layer_names)), [flops[n] / 1e6 for n in layer_names], color="0.4")
axes[2].set_xticks(range(len(layer_names)))
axes[2].set_xticklabels(layer_names, rotation=60)
axes[2].set(ylabel="million MACs per image", title=f"Full VGG16: FLOPs per layer ({vgg16_flops:,})")
save(fig, "10_vgg16")

# %% [markdown]
# ## 6. The measured CPU run at 1/4 width, and the full run on a GPU
#
# The longer CPU run of the project's README was made by
# `sh benchmarks/cpu_cifar10.sh RUN_DIR vgg16_w4` before the short-budget ANN recipe
# existed: its ANN used the authors' Adam recipe (`--recipe authors`, 20 epochs); the
# conversion and DIET stages were those of the box: `vgg16_w4` (all 15 spiking layers,
# widths / 4) on 20,000 CIFAR-10 training images, $T_{\mathrm{find}} = 100$ on 512 images,
# the factor picked at $T = 5$ on 2,000 training images (x0.6), DIET at $10^{-4}$ (24 epochs
# with the step schedule, 10 more, then 42 at a constant rate), on a 2-core CPU, tested on
# the 10,000 test images:
#
# | stage | $T$ | test accuracy |
# | --- | ---: | ---: |
# | ANN | 1 | 0.5207 |
# | converted, thresholds x0.6 | 5 | 0.3203 |
# | converted, unscaled (first 2,000 test images) | 100 | 0.5200 |
# | DIET-SNN, 24 epochs | 5 | 0.4267 |
# | DIET-SNN, 10 more epochs from it | 5 | 0.4543 |
# | DIET-SNN, 42 more at a constant $10^{-4}$ (76 in all) | 5 | 0.5440 |
#
# Network spike rate 0.629 (converted) and 0.581 (after 76 DIET epochs) spikes per neuron
# over five steps, $E_{ANN}/E_{SNN} = 8.83$. Conversion is faithful at $T = 100$; at
# $T = 5$ it loses 20 points, and DIET won all of them back and 2.3 more. Those 2.3 points
# above the ANN say that its 20 epochs were short (DIET went on training the same weights
# for 76 epochs), not that spiking beats it.
#
# The ANN recipe of the box came after that run. Its own measured CPU runs, with
# `sh benchmarks/cpu_cifar10.sh RUNS/ARCH ARCH` for `vgg5`, `vgg16_w4` and `resnet20_w4`
# (the authors' ResNet20 at 1/4 width) on the same 20,000 training images, wrote one
# `log.jsonl` per training run; the repository keeps them in `docs/logs/`
# (`docs/recipe.md` describes the runs, with every command). The cell below reads every
# log that is there and draws each run's test accuracy per epoch (the first 2,000 test
# images), and, on the right, the comparison that chose the recipe: both ANN recipes on
# `vgg16_w4` from the same weights and batches, scored on 2,000 held-out *training*
# images (`benchmarks/compare_recipes.py`).

# %%
LOGS = HERE.parent / "docs" / "logs"                  # in a checkout of the repository
DIET_RUNS = {"vgg5": {"DIET": ("diet", "diet2")},      # each DIET run: its logs in order
             "vgg16_w4": {"DIET at 1e-4": ("diet", "diet2"), "DIET at 3e-4": ("diet_lr3e-4",)},
             "resnet20_w4": {"DIET": ("diet", "diet2")}}


def read_stages(*paths):
    """The records of several logs one after another, renumbered from 1: a DIET run
    continued from another's checkpoint (``diet2``) goes on where the first ended."""
    records = []
    for path in paths:
        log = LOGS / path / "log.jsonl"
        if log.is_file():
            for record in RunLog(log).read():
                records.append(dict(record, epoch=len(records) + 1))
    return records


measured = {arch: {"ANN": read_stages(f"{arch}/ann"),
                   **{label: read_stages(*(f"{arch}/{stage}" for stage in stages))
                      for label, stages in runs.items()}}
            for arch, runs in DIET_RUNS.items()}
compared = {name: read_stages(f"compare/vgg16_w4/{name}") for name in ("authors", "short")}
if not any(runs["ANN"] for runs in measured.values()):
    print(f"no logs in {LOGS}: they are in the repository's docs/logs/ folder")
gaps = {}                                             # DIET's points under its ANN
for arch, runs in measured.items():
    for label, records in runs.items():
        if records and runs["ANN"]:
            gaps[arch, label] = runs["ANN"][-1]["test_acc"] - records[-1]["test_acc"]
            print(f"{arch} {label}: {len(records)} epochs, test accuracy after the last "
                  f"{records[-1]['test_acc']:.4f} (first 2,000 test images)"
                  + (f", {100 * gaps[arch, label]:.2f} points under the ANN"
                     if label != "ANN" else ""))
if ("vgg5", "DIET") in gaps:
    assert abs(gaps["vgg5", "DIET"]) < 0.02
if measured["vgg16_w4"]["ANN"]:
    assert measured["vgg16_w4"]["ANN"][-1]["test_acc"] > 0.7
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.5))
    for k, (arch, runs) in enumerate(measured.items()):
        n_ann = len(runs["ANN"])
        for j, (label, records) in enumerate(runs.items()):
            if not records:
                continue
            axes[0].plot([r["epoch"] + (n_ann if j else 0) for r in records],
                         [r["test_acc"] for r in records], ["-", "o--", "s:"][j], ms=3,
                         color=f"C{k}", label=f"{arch}: {label}" + (" at $T = 5$" if j else ""))
    axes[0].axhline(0.5207, color="0.5", ls=":", lw=1,
                    label="vgg16_w4's earlier ANN, authors' recipe, 20 epochs")
    axes[0].set(xlabel="epoch (DIET's after the ANN's)", ylabel="test accuracy",
                title="Measured CPU runs on 20,000 CIFAR-10 images (logs in docs/logs)")
    axes[0].legend(fontsize=7)
    for k, (name, records) in enumerate(compared.items()):
        axes[1].plot([r["epoch"] for r in records], [r["test_acc"] for r in records], "o-",
                     color=f"C{k + 3}", label=f"{name} recipe")
    axes[1].set(xlabel="epoch (10-epoch schedules)", ylabel="held-out training accuracy",
                title="vgg16_w4: both ANN recipes, same weights and batches")
    axes[1].legend(fontsize=8)
    save(fig, "10_measured_runs")

# %% [markdown]
# With the box's recipe, `vgg16_w4`'s ANN ends above 70% on the first 2,000 test images
# (asserted; the printed number is the log's) after 30 epochs, where the authors' recipe
# had reached 52.07% on all 10,000 after 20 (the dotted line; the two test sets differ,
# so compare them to a point or two); on the right, the same gap appears in ten epochs
# as soon as the authors' schedule first divides its rate. `vgg5`'s DIET run (5 epochs
# on the step schedule from $10^{-3}$, then 5 at $10^{-4}$) ends within 2 points of its
# ANN on these 2,000 images (asserted). On all 10,000 test images `docs/recipe.md`
# records, at $T = 5$:
#
# | network | ANN | converted | DIET | DIET under the ANN | $E_{ANN}/E_{SNN}$ |
# | --- | ---: | ---: | ---: | ---: | ---: |
# | `vgg5` | 77.01% | 71.93% | 76.61% (10 epochs) | 0.4 points | 7.31 |
# | `vgg16_w4` | 75.94% | 63.27% | 69.91% (12 epochs at $3 \cdot 10^{-4}$) | 6.0 points | 12.70 |
# | `resnet20_w4` | 73.98% | 45.42% | 66.02% (13 epochs) | 8.0 points | 11.06 |
#
# The shallow network gets back all but 0.4 points at five steps. The deep ones do not
# in a dozen epochs: their DIET runs under-fit (training accuracy near test accuracy,
# rising by tenths of a point per epoch), and the paper's 100-150 epochs are what they
# would need. `vgg16_w4`'s two DIET curves are runs at the paper's $10^{-4}$ (dashed)
# and at the probe's $3 \cdot 10^{-4}$ (dotted): the second reached in 7 epochs what the
# first reached in 14.
#
# The full run on a GPU is the same recipe at full width and on all 50,000 training
# images (`pip install -e '.[gpu]'` brings CuPy). Each stage writes a checkpoint every
# epoch and continues with `--resume`; the lesson checks that every `diet-np` command
# parses and that it says what the box says.

# %%
run = "runs/c10_vgg16"
commands = [
    ["diet-np", "train-ann", "--dataset", "cifar10", "--arch", "vgg16", "--epochs", "40",
     "--device", "gpu", "--out", f"{run}/ann"],
    ["diet-np", "convert", "--dataset", "cifar10", "--checkpoint", f"{run}/ann/checkpoint.npz",
     "--find-steps", "100", "--images", "512", "--scale", "1.0", "--timesteps", "100",
     "--device", "gpu", "--out", f"{run}/converted_T100.npz"],
    ["python", "benchmarks/pick_scale.py", f"{run}/converted_T100.npz", f"{run}/converted.npz",
     "--timesteps", "5", "--images", "2000", "--device", "gpu"],
    ["diet-np", "finetune", "--dataset", "cifar10", "--checkpoint", f"{run}/converted.npz",
     "--timesteps", "5", "--epochs", "100", "--lr", "1e-4", "--schedule", "constant",
     "--device", "gpu", "--out", f"{run}/diet"],
    ["diet-np", "evaluate", "--dataset", "cifar10", "--checkpoint", f"{run}/diet/checkpoint.npz",
     "--timesteps", "5", "--device", "gpu"],
    ["diet-np", "energy", "--dataset", "cifar10", "--checkpoint", f"{run}/diet/checkpoint.npz",
     "--timesteps", "5", "--device", "gpu"],
]
parser = build_parser()
for command in commands:
    if command[0] == "diet-np":
        args = parser.parse_args(command[1:])             # raises on a bad option
        if args.command == "convert":
            assert args.scale == 1.0 and args.find_steps == 100 and args.images == 512
        if args.command == "finetune":
            assert (args.lr, args.schedule, args.timesteps) == (DIET_RECIPE["lr"],
                                                                DIET_RECIPE["schedule"], 5)
    print(shlex.join(command))
assert [float(c[c.index("--timesteps") + 1]) for c in commands if "pick_scale" in c[1]] == [5.0]

# %% [markdown]
# What to compare the result with: the authors' numbers, as
# [the equations page](../docs/equations.md#what-the-authors-report) records them
# (their measurements, not this project's). VGG16 on CIFAR-10: ANN
# 93.72% in the authors' results sheet; DIET-SNN about 92.7% at $T = 5$ as the final
# paper is commonly cited; an average spike rate of 1.65 per neuron over the five steps;
# and, across the final paper's networks, 6–18x less compute energy than the ANN. This
# project has no GPU measurement of its own yet; when the commands above are run, their
# printed numbers, with the GPU model and the data copy named, are the ones to record.
#
# ## Summary
#
# * VGG16 for CIFAR-10 has 15 spiking layers and 338,403,328 MACs per image; its first
#   layer, the only one charged at the full MAC price in the SNN, is about 0.5% of them.
# * The recipe: the short-budget ANN recipe (warm-up, cosine, LSUV), the authors' threshold
#   search with the factor picked at $T = 5$ on training images, DIET with Adam AMSGrad at a
#   constant $10^{-4}$. Section 5 ran it end to end at 1/8 width and printed its table.
# * The measured 1/4-width CPU run: conversion loses 20 points at $T = 5$, and 76 epochs of
#   DIET win them back.
# * The full run is a handful of commands on a GPU, printed above.
#
# ## Exercises
#
# 1. Pick the factor on *test* images instead of training images. Why is the number you
#    would then report optimistic? *Answer:* the factor becomes a parameter fitted to the
#    test set; the report then measures the choice, not the network.
# 2. Run section 5 with the authors' ANN recipe (`ann_recipe("vgg16", "authors")`,
#    `init=ann_init("vgg16", "authors")`) for the same epochs. *Hint:* compare the ANN's
#    test accuracy after each epoch with this run's; `benchmarks/compare_recipes.py` does
#    the same comparison on held-out training images.
# 3. The energy ratio of the 1/8-width run is lower than VGG16's would be at the same
#    spike rates. Why? *Hint:* the first layer is charged as MACs; compare its share of the
#    FLOPs in both networks (`compute_layers()`).
#
# ### Answer to 3

# %%
first_share = {name: flops_list[0] / sum(flops_list) for name, flops_list in
               (("vgg16", [f for _, f, _ in vgg16.compute_layers()]),
                (small_arch["name"], [f for _, f, _ in small_net.compute_layers()]))}
print("share of the first layer in the FLOPs:", {k: f"{v:.2%}" for k, v in first_share.items()})
assert first_share[small_arch["name"]] > first_share["vgg16"]
