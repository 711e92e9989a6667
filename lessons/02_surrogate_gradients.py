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
# # Lesson 2: why spikes stop gradients, and surrogate gradients (Eq. 8)
#
# A spiking neuron fires $o = H(z)$ with $z = u / v - 1$ (Eq. 3–4), where $H$ is the
# Heaviside step. Its derivative is zero everywhere except at $z = 0$, where it does
# not exist. Backpropagation multiplies by this derivative, so every gradient that has
# to pass through a spike is zero. This lesson
#
# 1. shows the problem on a neuron's spike count;
# 2. plots the surrogates in `diet_np.surrogates` (the triangle of Eq. 8, the fast
#    sigmoid and the arc-tangent) and their primitives;
# 3. checks each surrogate against finite differences of its primitive, and checks the
#    chain rule $do/du$, $do/dv$ given below Eq. 8;
# 4. shows the *dead-neuron problem*: with the triangle, a neuron whose potential stays
#    outside `(0, 2v)` gets exactly zero gradient and can never learn to fire.
#
# **Assumes:** lesson 1 (the LIF neuron). **Runs in:** a few seconds.

# %%
import numpy as np

from diet_np.lessons.common import QUICK, plt, save
from diet_np.lessons.figures import lines
from diet_np.gradcheck import numerical_gradient, relative_error
from diet_np.lif import lif_backward, lif_forward
from diet_np.optim import Adam
from diet_np.surrogates import ArcTan, FastSigmoid, Triangle, get_surrogate

print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. The spike count is a staircase
#
# Take many copies of one non-leaky neuron ($\lambda = 1$, $v = 1$), give each a
# different constant current $I$ and count its spikes over $T = 10$ steps with
# `lif_forward` (a `(1, B)` current means "the same at every step", which is how the
# first layer sees its image under direct input encoding). The count is a staircase in
# $I$. A finite difference `(count(I + h) - count(I - h)) / 2h` is exactly zero
# almost everywhere and enormous (`1 / 2h`) at the few points where a step falls
# between `I - h` and `I + h`. Neither tells gradient descent which way to move $I$.

# %%
T = 10
leak, threshold = np.array(1.0), np.array(1.0)
I_grid = np.linspace(-0.5, 1.5, 2001)


def spike_count(currents, surrogate=Triangle()):
    out, _ = lif_forward(currents[None, :], leak, threshold, T, surrogate=surrogate)
    return out.sum(axis=0)


h = 1e-5
counts = spike_count(I_grid)
fd_slope = (spike_count(I_grid + h) - spike_count(I_grid - h)) / (2 * h)
zero_fraction = float(np.mean(fd_slope == 0.0))
print(f"finite-difference slope of the count: exactly 0 at {100 * zero_fraction:.2f}% of "
      f"{I_grid.size} points, max {fd_slope.max():.0f}")
assert zero_fraction > 0.95

# %% [markdown]
# The surrogate-gradient method keeps the forward pass exactly as it is (real spikes)
# and, in the backward pass only, replaces `dH/dz` by a smooth bump $\sigma'(z)$. The
# library's BPTT (`lif_backward`, lesson 3) does this; with $dL/do^t = 1$ at every step
# it returns the surrogate derivative of the spike count with respect to the current.

# %%
def surrogate_slope(currents, surrogate):
    """d(count)/dI through lif_backward: dL/do^t = 1 at every step t."""
    out, cache = lif_forward(currents[None, :], leak, threshold, T, surrogate=surrogate)
    dcurrent, _, _ = lif_backward(np.ones_like(out), cache)
    return dcurrent[0]          # (1, B): a constant current's gradient is summed over t


tri_slope = surrogate_slope(I_grid, Triangle())

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
ax1.plot(I_grid, counts, color="C0")
ax1.set_xlabel("constant input current $I$ ($v = 1$, leak 1)")
ax1.set_ylabel(f"spike count over $T$ = {T}")
ax1.set_title("Forward: the spike count is a staircase")
top = 1.1 * float(tri_slope.max())
ax2.plot(I_grid, np.clip(fd_slope, 0, top), color="0.5", lw=1,
         label=f"finite difference, $h$ = {h:g} (peaks of $1/2h$ cut off)")
ax2.plot(I_grid, tri_slope, color="C3", lw=2, label="surrogate gradient (triangle, Eq. 8)")
ax2.set_xlabel("constant input current $I$")
ax2.set_ylabel(r"$\partial\,\mathrm{count} / \partial I$")
ax2.set_title("Backward: true slope is 0 (or infinite)")
ax2.legend(fontsize=8, loc="upper right")
ax2.set_ylim(-0.3, 1.25 * top)
save(fig, "02_staircase")

# %% [markdown]
# The surrogate slope is not the derivative of anything the forward pass computes. It
# collects, through all $T$ steps, how close each potential came to the threshold: it
# is jagged, it jumps at $I = v$ (just below, the potential sits near `2v` where the
# triangle is small; just above, it sits near $v$ at every step), and between the
# steps of the staircase it is of the same order as the staircase's average slope
# `T / v` (the mean is printed below). It points gradient descent in the right
# direction, which is all training needs. Note that it is exactly zero for $I \le 0$:
# section 4 comes back to this.

# %%
inside = (I_grid > 0.05) & (I_grid < 0.95)
print(f"mean surrogate slope for 0.05 < I < 0.95: {tri_slope[inside].mean():.2f} "
      f"(staircase: T / v = {T}); largest {tri_slope.max():.2f} at I = "
      f"{I_grid[tri_slope.argmax()]:.3f}")
assert np.all(tri_slope[inside] > 0)

# %% [markdown]
# ## 2. The surrogates and their primitives
#
# Eq. 8 is the paper's choice, a triangle of height $\gamma = 0.3$ (the "damping
# factor") and half-width 1 in $z$:
#
# $$\frac{\partial o}{\partial z} \approx \sigma'(z) = \gamma \max(0,\, 1 - |z|)
#   \qquad \text{(Eq. 8)}$$
#
# The library also offers SuperSpike's fast sigmoid $\gamma / (1 + k|z|)^2$ ($k = 5$)
# and the arc-tangent surrogate $\gamma / (1 + (\alpha z)^2)$ ($\alpha = \pi$), both with
# the same height $\gamma = 0.3$ at $z = 0$. Each comes with its `primitive(z)`, a smooth
# function whose derivative is exactly `grad(z)`. The primitive is never used to
# classify anything; it exists for lesson 3's *smooth mode*, where it replaces the spike
# so that finite differences can check the backward pass.
#
# A primitive is only defined up to a constant: the library's triangle primitive starts
# at 0, the other two are centred on 0. Below they are shifted to start at 0, so each
# can be compared with the step `gamma * H(z)`. The total rise of a primitive is the
# area under its surrogate: $\gamma$ for the triangle and the arc-tangent, `2 gamma / k`
# for the fast sigmoid.

# %%
surrogates = {"triangle (Eq. 8)": get_surrogate("triangle"),
              "fast sigmoid": get_surrogate("fast_sigmoid"),
              "atan": get_surrogate("atan")}
gamma = Triangle().gamma
assert gamma == 0.3 and isinstance(surrogates["triangle (Eq. 8)"], Triangle)

z = np.linspace(-3, 3, 1201)
rises = {name: float(sg.primitive(np.array(1e6)) - sg.primitive(np.array(-1e6)))
         for name, sg in surrogates.items()}
for name, sg in surrogates.items():
    print(f"{name:17s}: peak grad {float(sg.grad(np.array(0.0))):.2f}, total rise of the "
          f"primitive {rises[name]:.3f}")
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
zlabel = "normalised potential $z = u/v - 1$"
lines(ax1, z, {name: sg.grad(z) for name, sg in surrogates.items()}, zlabel,
      r"$\sigma'(z)$, the surrogate for $dH/dz$", "Surrogate gradients")
lines(ax2, z, {name: sg.primitive(z) - sg.primitive(np.array(-1e6))
               for name, sg in surrogates.items()}, zlabel,
      r"primitive $P(z) - P(-\infty)$", "Their primitives (smooth stand-ins for the step)",
      legend=False)
ax2.step(z, gamma * (z > 0), where="post", color="k", ls="--", lw=1, label=r"$\gamma\, H(z)$")
ax2.legend(fontsize=8)
save(fig, "02_surrogates")

# %% [markdown]
# ## 3. Each surrogate is the derivative of its primitive
#
# `diet_np.gradcheck.numerical_gradient(f, x)` perturbs each element of $x$ by $\pm h$
# ($h = 10^{-5}$, float64) and returns the central differences of the scalar `f()`.
# Because the primitive acts element-wise, the gradient of `sum(primitive(z))` with
# respect to $z$ is `grad(z)` element by element. The grid is shifted slightly so that
# no point lies within $h$ of the triangle's corners ($z = -1, 0, 1$), where its
# primitive is only once differentiable. `relative_error` is the largest absolute
# difference divided by the largest entry, and must stay below `1e-6`.

# %%
n_check = 301 if QUICK else 1201
z_check = np.linspace(-3, 3, n_check) + 0.00371        # keep away from the kinks
surrogate_errors = {}
for name, s in surrogates.items():
    numeric = numerical_gradient(lambda: s.primitive(z_check).sum(), z_check)
    surrogate_errors[name] = relative_error(s.grad(z_check), numeric)
    print(f"{name:17s}: relative error {surrogate_errors[name]:.1e} on {n_check} points")
assert max(surrogate_errors.values()) < 1e-6

# %% [markdown]
# Below Eq. 8 the chain rule through $z = u / v - 1$ gives the two derivatives BPTT
# needs:
#
# $$\frac{\partial o}{\partial u} = \frac{\sigma'(z)}{v}, \qquad
#   \frac{\partial o}{\partial v} = \sigma'(z) \left(-\frac{u}{v^2}\right)$$
#
# The threshold appears in both: raising $v$ lowers $z$, which is how the threshold
# can learn (lessons 3 and 4). Checked here with the triangle at a few `(u, v)`.

# %%
tri = Triangle()
chain_errors = []
for u0, v0 in [(0.7, 1.0), (1.3, 0.8), (0.25, 0.4), (1.9, 1.5)]:
    u_, v_ = np.array(u0), np.array(v0)
    f = lambda: tri.primitive(u_ / v_ - 1.0)
    z0 = u0 / v0 - 1.0
    d_du = float(tri.grad(np.array(z0))) / v0
    d_dv = float(tri.grad(np.array(z0))) * (-u0 / v0 ** 2)
    err_u = relative_error(d_du, numerical_gradient(f, u_))
    err_v = relative_error(d_dv, numerical_gradient(f, v_))
    chain_errors += [err_u, err_v]
    print(f"u = {u0}, v = {v0}: do/du = {d_du:+.4f} (error {err_u:.1e}), "
          f"do/dv = {d_dv:+.4f} (error {err_v:.1e})")
assert max(chain_errors) < 1e-6

# %% [markdown]
# ## 4. The dead-neuron problem
#
# The triangle is zero outside $|z| < 1$, i.e. outside $0 < u < 2v$. A neuron whose
# potential never enters that band during the $T$ steps receives *exactly* zero
# gradient, for its current, its weights and its threshold. Two cases:
#
# * far **below** threshold: with a negative current the potential never becomes
#   positive ($z \le -1$);
# * far **above** it: with $I \ge 2v$ and $\lambda = 1$ the potential starts at $z \ge 1$
#   and only grows (the soft reset removes $v$ per step, the input adds more).
#
# The fast sigmoid and the arc-tangent have long tails, so their gradient there is
# small but not zero.

# %%
I_wide = np.linspace(-1.0, 3.0, 801)
slopes = {name: surrogate_slope(I_wide, s) for name, s in surrogates.items()}
for name, sl in slopes.items():
    at = lambda value: float(sl[np.argmin(np.abs(I_wide - value))])
    print(f"{name:17s}: d count/dI = {at(-0.5):.2e} at I = -0.5, {at(2.5):.2e} at I = 2.5")
assert np.all(slopes["triangle (Eq. 8)"][I_wide <= 0] == 0.0)
assert np.all(slopes["triangle (Eq. 8)"][I_wide >= 2.0] == 0.0)
assert np.all(slopes["atan"] > 0) and np.all(slopes["fast sigmoid"] > 0)

# %% [markdown]
# Zero is zero: no optimiser can rescale it. Below, one neuron ($\lambda = 0.9$,
# $v = 1$) starts with current $I = -0.5$ and should learn to fire 3 spikes in
# $T = 10$ steps. The loss is $(\mathrm{count} - 3)^2$, so $dL/do^t = 2 (\mathrm{count} - 3)$
# at every
# step, and `lif_backward` turns that into `dL/dI`. Adam (`diet_np.optim.Adam`), which
# normalises the gradient's size, is given every chance: with the arc-tangent it
# follows the tiny tail gradient up to the firing regime; with the triangle the
# gradient is exactly 0, Adam's step is exactly 0, and the neuron stays silent.

# %%
target_count = 3
dead_leak, dead_threshold = np.array(0.9), np.array(1.0)
n_iter = 150


def train_current(surrogate, I0=-0.5, iterations=n_iter):
    params = {"I": np.array(I0)}
    opt = Adam(0.05)
    history = []
    for _ in range(iterations):
        out, cache = lif_forward(params["I"].reshape(1, 1), dead_leak, dead_threshold, T,
                                 surrogate=surrogate)
        count = float(out.sum())
        dout = np.full_like(out, 2.0 * (count - target_count))
        dcurrent, _, _ = lif_backward(dout, cache)
        history.append((float(params["I"]), count, float(dcurrent[0, 0])))
        opt.step(params, {"I": dcurrent.reshape(())})
    return np.array(history)


dead_runs = {name: train_current(surrogates[name]) for name in ("triangle (Eq. 8)", "atan")}
for name, hist in dead_runs.items():
    print(f"{name:17s}: I {hist[0, 0]:+.3f} -> {hist[-1, 0]:+.3f}, count {hist[0, 1]:.0f} -> "
          f"{hist[-1, 1]:.0f}, largest |dL/dI| seen {np.abs(hist[:, 2]).max():.2e}")
triangle_hist, atan_hist = dead_runs["triangle (Eq. 8)"], dead_runs["atan"]
assert np.all(triangle_hist[:, 2] == 0.0) and np.all(triangle_hist[:, 0] == -0.5)
assert atan_hist[-1, 1] == target_count

fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.6))
lines(ax1, I_wide, slopes, "constant input current $I$ ($v = 1$, leak 1)",
      rf"surrogate $\partial\,\mathrm{{count}}/\partial I$ ($T$ = {T}, symlog)",
      "Grey: the triangle's gradient is exactly 0")
ax1.axvspan(-1, 0, color="0.85", zorder=0)
ax1.axvspan(2, 3, color="0.85", zorder=0)
ax1.set_yscale("symlog", linthresh=1e-3)
colours = {"triangle (Eq. 8)": {"color": "C0"}, "atan": {"color": "C2"}}
lines(ax2, np.arange(n_iter), {name: h[:, 0] for name, h in dead_runs.items()},
      "Adam iteration", "input current $I$", "A silent neuron learning to fire", colours)
lines(ax3, np.arange(n_iter), {name: h[:, 1] for name, h in dead_runs.items()},
      "Adam iteration", f"spike count over $T$ = {T}", "Triangle: stuck at 0 spikes", colours,
      legend=False)
ax3.axhline(target_count, color="k", ls="--", lw=1, label="target")
ax3.legend(fontsize=8)
save(fig, "02_dead_neuron")

# %% [markdown]
# In a network this matters when a neuron sits outside the band for every input: its
# weights stop learning. DIET-SNN keeps the triangle nonetheless. It starts from a
# converted ANN whose thresholds are set from the scale of each layer's input currents
# (lesson 7), so the potentials start on the same scale as the band, and the learnable
# thresholds (lesson 4) move the band with training.
#
# ## Summary
#
# * The spike count is piecewise constant in every input, so its true derivative is
#   zero almost everywhere: plain backpropagation gets no signal.
# * A surrogate $\sigma'(z)$ replaces `dH/dz` in the backward pass only; Eq. 8 is a
#   triangle with $\gamma = 0.3$. $do/du = \sigma'(z)/v$ and $do/dv = -\sigma'(z) u/v^2$.
# * Each surrogate in `diet_np.surrogates` is exactly the derivative of its
#   `primitive` (checked by finite differences); the primitive serves the smooth mode
#   of lesson 3.
# * With the triangle, a neuron whose potential stays outside `(0, 2v)` gets exactly
#   zero gradient (a dead neuron); heavy-tailed surrogates leave a small signal.
#
# ## Exercises
#
# 1. Make the triangle three times taller ($\gamma = 0.9$, `Triangle(gamma=0.9)`). What
#    happens to the surrogate slope of section 1? *Answer:* it is multiplied by exactly 3:
#    $\gamma$ is a factor of every term (the code below checks it). With Adam, which
#    normalises each step by the gradient's size, that factor hardly changes training.
# 2. Can a lower threshold revive the dead neuron of section 4 (input current $-0.5$)?
#    *Answer:* no: its potential is negative, so $z = u/v - 1 < -1$ for every $v > 0$, and
#    the triangle is zero there.
# 3. Which surrogate would you pick for a network whose neurons start silent, and what do
#    you give up? *Hint:* compare the tails in section 2's figure with the band of the
#    triangle; a heavy tail also sends gradient to neurons far from firing.
#
# ### Answer to 1

# %%
exercise_gamma_ratio = surrogate_slope(I_grid, Triangle(gamma=0.9))[inside] / tri_slope[inside]
print(f"slope with gamma = 0.9 / slope with gamma = 0.3: {exercise_gamma_ratio.min():.6f} to "
      f"{exercise_gamma_ratio.max():.6f}")
np.testing.assert_allclose(exercise_gamma_ratio, 3.0, rtol=1e-12)

# %% [markdown]
# **Next:** lesson 3 unrolls one neuron over time and derives all of BPTT by hand.
