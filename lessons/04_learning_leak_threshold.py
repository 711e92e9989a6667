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
# # Lesson 4: learning the leak and the threshold (Eq. 12–15)
#
# The "LT" in DIET stands for leakage and threshold optimisation: every spiking layer
# $l$ has one learnable leak $\lambda_l$ and one learnable threshold $v_l$, trained by
# BPTT together with the weights. This lesson trains a single spiking layer, a linear
# layer without bias followed by LIF neurons, to produce given spike counts:
#
# 1. with the weights frozen, only $\lambda$ and $v$ learn, and they find the values
#    that generated the targets; we watch their path across the loss landscape;
# 2. a weight scale and the threshold can stand in for each other, which we check;
# 3. with everything learnable, the counts approach the targets, and Eq. 15's clamp
#    $\lambda \le 1$ is seen at work.
#
# The gradient flows through `diet_np.lif.lif_backward` (Eq. 10–14) and
# `diet_np.ops.linear_backward` (Eq. 12); the updates use `diet_np.optim.Adam` followed
# by `diet_np.optim.clamp_neuron_params`, i.e. Eq. 15.
#
# **Assumes:** lessons 1–3. **Runs in:** a few seconds.

# %%
import numpy as np

from diet_np.lessons.common import QUICK, pick, plt, save
from diet_np.lessons.figures import count_histograms, lines, loss_landscape
from diet_np.lif import lif_backward, lif_forward
from diet_np.ops import linear_backward, linear_forward
from diet_np.optim import Adam, clamp_neuron_params

print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## The layer and the task
#
# $B = 64$ fixed random input vectors `x_b` (20 values in `[0, 1]`) drive $N = 16$ LIF
# neurons for $T = 10$ steps. As under direct input encoding, the input, and hence the
# current $I = x W^T$, is the same at every step; `lif_forward` accepts such a current
# with a leading axis of length 1 and `lif_backward` then returns its gradient summed
# over the steps.
#
# The targets are the spike counts of a *teacher* layer: weights `W*`, leak
# $\lambda^* = 0.75$, threshold $v^* = 0.5$. The loss is the mean squared error of the
# counts,
#
# $$L = \frac{1}{B N} \sum_{b,n} \left(\text{count}_{b,n} - \text{target}_{b,n}\right)^2,
#   \qquad \text{count} = \sum_t o^t$$
#
# so every step receives the same $dL/do^t = 2 (count - target) / (B N)$. Parameters
# live in a dict keyed like a network's (`fc.weight`, `fc.leak`, `fc.threshold`), which
# is what the optimiser and the clamp expect.

# %%
B, n_in, N, T = 64, 20, 16, 10
rng = np.random.default_rng(0)
x = rng.uniform(0.0, 1.0, (B, n_in))
teacher = {"fc.weight": rng.normal(0.02, 0.1, (N, n_in)),
           "fc.leak": np.array(0.75), "fc.threshold": np.array(0.5)}


def layer_counts(params):
    """Spike counts (B, N) of the layer over T steps."""
    current, _ = linear_forward(x, params["fc.weight"])
    out, _ = lif_forward(current[None], params["fc.leak"], params["fc.threshold"], T)
    return out.sum(axis=0)


def loss_and_grads(params):
    """Forward, loss and BPTT for the whole layer. Returns (loss, grads, counts)."""
    current, linear_cache = linear_forward(x, params["fc.weight"])          # I = x W^T
    out, lif_cache = lif_forward(current[None], params["fc.leak"],
                                 params["fc.threshold"], T)                 # Eq. 2-5
    counts = out.sum(axis=0)
    error = counts - target
    loss = float(np.mean(error ** 2))
    dout = np.broadcast_to(2.0 * error / error.size, out.shape)             # dL/do^t
    dcurrent, dleak, dthreshold = lif_backward(dout, lif_cache)             # Eq. 10-14
    _, dweight = linear_backward(dcurrent[0], linear_cache, need_dx=False)  # Eq. 12
    return loss, {"fc.weight": dweight, "fc.leak": dleak, "fc.threshold": dthreshold}, counts


target = layer_counts(teacher)
print("target counts: mean %.2f, histogram over 0..T:" % target.mean(),
      np.bincount(target.astype(int).ravel(), minlength=T + 1))

# %% [markdown]
# ## 1. Only the leak and the threshold learn
#
# The student starts with the teacher's weights but with $\lambda = 1$ and $v = 1$:
# non-leaky neurons with a unit threshold, which is how a network looks right after
# ANN-to-SNN conversion before the thresholds are set. It fires too little. The
# weights' gradient is simply not applied. Each iteration is Eq. 15: an Adam step,
# then `clamp_neuron_params` keeps $0 \le \lambda \le 1$ and $v > 0$.

# %%
def train(params, iterations, lr, learn_weights, clamp=True):
    opt = Adam(lr)
    history = {"loss": [], "leak": [], "threshold": [], "exact": []}
    for _ in range(iterations):
        loss, grads, counts = loss_and_grads(params)
        history["loss"].append(loss)
        history["leak"].append(float(params["fc.leak"]))
        history["threshold"].append(float(params["fc.threshold"]))
        history["exact"].append(float(np.mean(counts == target)))
        if not learn_weights:
            grads["fc.weight"] = np.zeros_like(grads["fc.weight"])
        opt.step(params, grads)                   # Eq. 15: optimiser step ...
        if clamp:
            clamp_neuron_params(params)           # ... then 0 <= lambda <= 1, v > 0
    return {k: np.array(v) for k, v in history.items()}


iterations = pick(500, 800)
student = {"fc.weight": teacher["fc.weight"].copy(),
           "fc.leak": np.array(1.0), "fc.threshold": np.array(1.0)}
counts_before = layer_counts(student)
print(f"mean spike count: student {counts_before.mean():.2f}, target {target.mean():.2f}")
assert counts_before.mean() < target.mean()
hist_a = train(student, iterations, lr=0.01, learn_weights=False)
counts_after = layer_counts(student)
final_leak, final_threshold = float(student["fc.leak"]), float(student["fc.threshold"])
final_loss_a = float(np.mean((counts_after - target) ** 2))
print(f"loss {hist_a['loss'][0]:.3f} -> {final_loss_a:.4f}; exact counts "
      f"{100 * np.mean(counts_before == target):.1f}% -> {100 * np.mean(counts_after == target):.1f}%")
print(f"leak 1.0 -> {final_leak:.4f} (teacher 0.75), threshold 1.0 -> {final_threshold:.4f} "
      f"(teacher 0.5)")
assert final_loss_a < 0.01 * hist_a["loss"][0]
assert abs(final_leak - 0.75) < 0.02 and abs(final_threshold - 0.5) < 0.02

# %% [markdown]
# The loss is piecewise constant in $(\lambda, v)$ (lesson 2): below it is computed on
# a grid of leaks and thresholds, with the path Adam took drawn on top. The surrogate
# gradients point across the flat terraces towards the teacher's values, although the
# true gradient is zero on every terrace.

# %%
grid_n = pick(31, 81)
leak_grid = np.linspace(0.5, 1.0, grid_n)
threshold_grid = np.linspace(0.3, 1.1, grid_n)
landscape = np.zeros((grid_n, grid_n))
for i, v in enumerate(threshold_grid):
    for j, lam in enumerate(leak_grid):
        trial = {"fc.weight": teacher["fc.weight"], "fc.leak": np.array(lam),
                 "fc.threshold": np.array(v)}
        landscape[i, j] = np.mean((layer_counts(trial) - target) ** 2)

fig, axes = plt.subplots(2, 2, figsize=(11, 8))
loss_landscape(axes[0, 0], leak_grid, threshold_grid, landscape,
               (hist_a["leak"], hist_a["threshold"]), (1.0, 1.0), (0.75, 0.5),
               r"leak $\lambda$", "threshold $v$", r"Loss over $(\lambda, v)$, weights fixed")
lines(axes[0, 1], np.arange(iterations), {r"leak $\lambda$": hist_a["leak"],
                                          "threshold $v$": hist_a["threshold"]},
      "iteration", "value (dashed: teacher)", "Leak and threshold during training")
axes[0, 1].axhline(0.75, color="C0", ls="--", lw=1)
axes[0, 1].axhline(0.5, color="C1", ls="--", lw=1)
lines(axes[1, 0], np.arange(iterations), {"loss": np.maximum(hist_a["loss"], 1e-4)},
      "iteration", "loss (mean squared count error)", r"Loss (zero is drawn at $10^{-4}$)",
      {"loss": {"color": "k"}}, legend=False)
axes[1, 0].set_yscale("log")
count_histograms(axes[1, 1], {"target": target, "before": counts_before, "after": counts_after},
                 T, f"spike count over $T$ = {T}")
save(fig, "04_leak_threshold_only")

# %% [markdown]
# ## 2. Weights and threshold can stand in for each other
#
# Multiply all of a layer's weights and its threshold by the same $s > 0$: every
# current, potential and reset scales by $s$, so $z = u / v - 1$ and every spike stay
# the same. (This is why ANN-to-SNN conversion can set a layer's threshold from the
# scale of its currents, lesson 7.) When the weights learn as well, the threshold is
# therefore not pinned to one value: the weights can absorb part of its job.

# %%
for s in (0.5, 2.0, 3.7):
    scaled = {"fc.weight": s * teacher["fc.weight"], "fc.leak": teacher["fc.leak"],
              "fc.threshold": s * teacher["fc.threshold"]}
    assert np.array_equal(layer_counts(scaled), target)
print("scaling W and v together by 0.5, 2 and 3.7 leaves every spike count unchanged")

# %% [markdown]
# ## 3. Everything learns, and the clamp of Eq. 15
#
# Now the student starts from perturbed teacher weights (as DIET fine-tuning starts from
# a converted ANN's weights) with $\lambda = 1$, $v = 1$, and all parameters learn. The
# run is done twice, with and without `clamp_neuron_params`. Early on the layer fires
# far too little, and the leak's gradient asks for *more* than 1: a leak above 1 would
# make the membrane amplify itself. The clamp stops it at 1 (Eq. 15); without the clamp
# the leak goes above 1. Either way the weights and the threshold take up the work, and
# the counts approach the targets.

# %%
perturbed = teacher["fc.weight"] + np.random.default_rng(5).normal(0.0, 0.05, (N, n_in))
runs = {}
for clamp in (True, False):
    params = {"fc.weight": perturbed.copy(), "fc.leak": np.array(1.0),
              "fc.threshold": np.array(1.0)}
    runs[clamp] = train(params, iterations, lr=0.01, learn_weights=True, clamp=clamp)
    if clamp:
        counts_joint = layer_counts(params)
hist_b, hist_free = runs[True], runs[False]
final_loss_b = float(np.mean((counts_joint - target) ** 2))
exact_b = float(np.mean(counts_joint == target))
print(f"all parameters, clamped: loss {hist_b['loss'][0]:.3f} -> {final_loss_b:.3f}, "
      f"{100 * exact_b:.1f}% of counts exact, within one spike: "
      f"{100 * np.mean(np.abs(counts_joint - target) <= 1):.1f}%")
print(f"  leak stays in [{hist_b['leak'].min():.3f}, {hist_b['leak'].max():.3f}], "
      f"threshold 1.0 -> {hist_b['threshold'][-1]:.3f}")
print(f"without the clamp the leak reaches {hist_free['leak'].max():.3f}")
assert final_loss_b < 0.05 * hist_b["loss"][0]
assert np.mean(np.abs(counts_joint - target) <= 1) > 0.95
assert hist_b["leak"].max() <= 1.0 < hist_free["leak"].max()

fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.8))
steps = np.arange(iterations)
lines(ax1, steps, {"with clamp": hist_b["loss"], "without clamp": hist_free["loss"]},
      "iteration", "loss", "Weights, leak and threshold together",
      {"with clamp": {"color": "k"}, "without clamp": {"color": "0.6", "ls": "--"}})
ax1.set_yscale("log")
lines(ax2, steps, {"leak, with clamp (Eq. 15)": hist_b["leak"],
                   "leak, without clamp": hist_free["leak"],
                   "threshold, with clamp": hist_b["threshold"],
                   "threshold, without clamp": hist_free["threshold"]},
      "iteration", "value", r"Leak pushed against $\lambda \leq 1$",
      {"leak, with clamp (Eq. 15)": {"color": "C0"},
       "leak, without clamp": {"color": "C0", "ls": "--"},
       "threshold, with clamp": {"color": "C1"},
       "threshold, without clamp": {"color": "C1", "ls": "--"}})
ax2.axhline(1.0, color="k", lw=0.8)
jitter = np.random.default_rng(0).uniform(-0.2, 0.2, target.size)
ax3.plot(target.ravel() + jitter, counts_joint.ravel() + jitter[::-1], ".", ms=3, alpha=0.5)
ax3.plot([0, T], [0, T], "k--", lw=1)
ax3.set(xlabel="target count (jittered)", ylabel="student count after training (jittered)",
        title=f"{100 * exact_b:.0f}% of counts exact")
save(fig, "04_joint_training")

# %% [markdown]
# ## Summary
#
# * `lif_backward` gives the gradients of a spike-count loss with respect to the leak
#   (Eq. 13) and the threshold (Eq. 14); with frozen weights they alone recover the
#   teacher's $\lambda = 0.75$ and $v = 0.5$, walking across a loss landscape whose true
#   gradient is zero almost everywhere.
# * Scaling a layer's weights and threshold together changes no spike, so with
#   learnable weights the threshold is not unique.
# * Eq. 15 = an optimiser step, then `clamp_neuron_params` ($\lambda \le 1$, plus the
#   library's safety bounds $\lambda \ge 0$, $v > 0$); the clamp matters as soon as the
#   leak's gradient asks for more than 1.
#
# ## Exercises
#
# 1. Freeze the threshold at 1 and let only the leak learn (weights frozen too). Can the
#    loss reach zero? *Answer:* no. The student fires too little, and all a leak can
#    offer is less forgetting: its gradient asks for a leak above 1, which the clamp
#    undoes. The code below trains it and prints where the loss and the leak end.
# 2. Section 2 showed that scaling $W$ and $v$ together changes no spike. Why does the
#    leak not share this symmetry? *Answer:* $\lambda$ multiplies the potential, which
#    scales with $W$ and $v$ alike, so $\lambda$ is dimensionless; it sets how long the
#    neuron remembers, which no rescaling can replace.
# 3. Remove the clamp and use a learning rate of 0.05: what does a leak above 1 do to the
#    potential of a neuron that never fires? *Hint:* $u^t = \lambda u^{t-1} + I$ grows
#    geometrically when $\lambda > 1$.
#
# ### Answer to 1

# %%
def train_leak_only(iterations, lr=0.01):
    """Adam on the leak alone (weights the teacher's, threshold fixed at 1), with the clamp."""
    params = {"fc.weight": teacher["fc.weight"].copy(), "fc.leak": np.array(1.0),
              "fc.threshold": np.array(1.0)}
    opt = Adam(lr)
    for _ in range(iterations):
        loss, grads, _ = loss_and_grads(params)
        opt.step({"fc.leak": params["fc.leak"]}, {"fc.leak": grads["fc.leak"]})
        clamp_neuron_params(params)
    return loss_and_grads(params)[0], float(params["fc.leak"])


exercise_leak_only_loss, exercise_leak_only_leak = train_leak_only(iterations)
print(f"leak only: loss {hist_a['loss'][0]:.3f} -> {exercise_leak_only_loss:.3f} "
      f"(leak and threshold together: {final_loss_a:.4f}); leak ends at "
      f"{exercise_leak_only_leak:.3f}")
assert exercise_leak_only_loss > 10 * final_loss_a and exercise_leak_only_leak == 1.0

# %% [markdown]
# **Next:** lesson 5 stacks a spiking layer and the output accumulator into a
# classifier and trains it on images.
