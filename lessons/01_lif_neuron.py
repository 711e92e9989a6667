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
# # Lesson 1: one leaky integrate-and-fire neuron (Eq. 1–5)
#
# Every hidden layer of a DIET-SNN is made of *leaky integrate-and-fire* (LIF) neurons.
# This lesson takes one of them apart:
#
# 1. from the continuous membrane equation (Eq. 1) to the discrete update the network
#    uses (Eq. 2), and where the leak $\lambda = e^{-\Delta t/\tau_m}$ comes from;
# 2. a membrane trace with threshold, spikes and the soft reset (Eq. 3–5);
# 3. what the leak does;
# 4. soft reset (subtract the threshold) against reset to zero;
# 5. the firing rate as a function of the input current, the leak and the threshold.
#
# The neuron is simulated with `diet_np.lif.lif_step`, the library's one-step LIF update.
# Only the firing-free recursion of section 1 and the two variants the library does not
# implement (reset to zero and the paper's one-line form) are written here in a few
# lines.
#
# **Assumes:** NumPy. **Runs in:** a few seconds.

# %%
import numpy as np
from scipy.integrate import solve_ivp

from diet_np.lessons.common import QUICK, plt, save  # quick mode, saving figures
from diet_np.lessons.figures import lines, membrane_trace
from diet_np.lif import lif_step

print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. From the membrane equation to a discrete update (Eq. 1 → Eq. 2)
#
# A neuron's membrane potential $u$ relaxes towards its resting value `u_rest` with
# time constant $\tau_m$, and is pushed by an input current $I$ through a resistance $R$
# (Eq. 1):
#
# $$\tau_m \frac{du}{dt} = -(u - u_\text{rest}) + R\, I(t) \qquad \text{(Eq. 1)}$$
#
# Take $u_{rest} = 0$ and hold $I$ constant over one step of length $\Delta t$. The equation
# is then linear with the exact solution
#
# $$u(t + \Delta t) = e^{-\Delta t/\tau_m}\, u(t) + \left(1 - e^{-\Delta t/\tau_m}\right) R\, I$$
#
# i.e. one step multiplies the old potential by the **leak** $\lambda = e^{-\Delta t/\tau_m}$
# and adds a scaled input. (Forward Euler gives the first-order approximation
# $\lambda = 1 - \Delta t/\tau_m$.) A network never needs $R$ or $(1 - \lambda)$ separately:
# they are absorbed into the synaptic weights that make the current, so the discrete
# neuron of the paper is simply (Eq. 2, before any firing)
#
# $$u^t = \lambda\, u^{t-1} + I^t$$
#
# and DIET-SNN learns $\lambda$ directly, one scalar per layer. $\lambda = 1$ is the
# non-leaky integrate-and-fire (IF) neuron used right after ANN-to-SNN conversion.
#
# The cell below integrates Eq. 1 exactly and checks that the discrete update with
# $\lambda = e^{-\Delta t/\tau_m}$ lands exactly on the continuous curve at every step, while
# Euler's $\lambda = 1 - \Delta t/\tau_m$ is only close.

# %%
tau_m, dt, R, I_const = 10.0, 2.0, 1.0, 1.5        # ms, ms, arbitrary units
steps = 15
t_fine = np.linspace(0.0, steps * dt, 600)
u_continuous = R * I_const * (1.0 - np.exp(-t_fine / tau_m))   # solution of Eq. 1, u(0) = 0

leak_exact = np.exp(-dt / tau_m)
leak_euler = 1.0 - dt / tau_m
u_exact, u_euler = [0.0], [0.0]
for _ in range(steps):                                          # Eq. 2 without firing
    u_exact.append(leak_exact * u_exact[-1] + (1.0 - leak_exact) * R * I_const)
    u_euler.append(leak_euler * u_euler[-1] + (1.0 - leak_euler) * R * I_const)
t_steps = dt * np.arange(steps + 1)

exact_at_steps = R * I_const * (1.0 - np.exp(-t_steps / tau_m))
err_exact = np.abs(np.array(u_exact) - exact_at_steps).max()
err_euler = np.abs(np.array(u_euler) - exact_at_steps).max()
print(f"leak exp(-dt/tau) = {leak_exact:.4f}: largest error {err_exact:.1e}")
print(f"leak 1 - dt/tau   = {leak_euler:.4f}: largest error {err_euler:.1e}")
assert err_exact < 1e-12, "the exponential leak must reproduce Eq. 1 exactly at the steps"
assert err_euler > 1e-3, "Euler's leak is only an approximation"

fig, ax = plt.subplots(figsize=(7, 3.6))
ax.plot(t_fine, u_continuous, "k-", lw=1.5, label="Eq. 1, continuous")
ax.plot(t_steps, u_exact, "o",
        label=rf"Eq. 2, $\lambda = e^{{-\Delta t/\tau_m}}$ = {leak_exact:.3f}")
ax.plot(t_steps, u_euler, "s", mfc="none",
        label=rf"Eq. 2, $\lambda = 1 - \Delta t/\tau_m$ = {leak_euler:.3f}")
ax.set(xlabel="time (ms)", ylabel="membrane potential $u$",
       title=rf"Discretising Eq. 1 ($\tau_m$ = {tau_m:g} ms, $\Delta t$ = {dt:g} ms, no firing)")
ax.legend(loc="lower right")
save(fig, "01_discretisation")

# %% [markdown]
# The closed form above holds for a current that stays constant. A network's current
# changes from step to step; the update is still exact as long as the current is held
# constant *within* each step. An independent check: SciPy's general-purpose ODE solver
# (`scipy.integrate.solve_ivp`, an adaptive Runge-Kutta method, run to a relative
# tolerance of $10^{-10}$) integrates Eq. 1 through each step with a random current,
# and the one-line update $u^t = \lambda u^{t-1} + (1 - \lambda) R I^t$ with
# $\lambda = e^{-\Delta t/\tau_m}$ lands on its result at every step.

# %%
I_random = np.random.default_rng(0).uniform(0.0, 2.0, steps)   # one current per step
u_ivp, u_update = [0.0], [0.0]
for I_k in I_random:
    t0 = dt * (len(u_ivp) - 1)
    sol = solve_ivp(lambda t, u: (-u + R * I_k) / tau_m, (t0, t0 + dt), [u_ivp[-1]],
                    method="RK45", rtol=1e-10, atol=1e-12)
    u_ivp.append(float(sol.y[0, -1]))
    u_update.append(leak_exact * u_update[-1] + (1.0 - leak_exact) * R * I_k)
err_ivp = np.abs(np.array(u_update) - np.array(u_ivp)).max()
print(f"exact update vs solve_ivp, random current: largest difference {err_ivp:.1e}")
assert err_ivp < 1e-8, "the exponential leak must match the ODE solver at every step"

# %% [markdown]
# ## 2. Threshold, spike and soft reset (Eq. 2–5)
#
# Per time step $t$ the DIET neuron does four things ($m^0 = 0$):
#
# $$\begin{aligned}
# u^t &= \lambda\, m^{t-1} + I^t && \text{(Eq. 2, integrate)}\\
# z^t &= u^t / v - 1 && \text{(Eq. 3, normalised potential)}\\
# o^t &= H(z^t) = \begin{cases} 1 & z^t > 0 \\ 0 & \text{otherwise} \end{cases}
#   && \text{(Eq. 4, fire: } u = v \text{ does not)}\\
# m^t &= u^t - v\, o^t && \text{(Eq. 5, soft reset: subtract the threshold)}
# \end{aligned}$$
#
# $u^t$ is the potential after integration and before the reset; $m^t$ the one after.
# The spike $o^t$ is sent to the next layer **in the same step** $t$. The library's
# `lif_step(current, m_prev, leak, threshold)` performs exactly these lines and returns
# `(spike, m, u)`.
#
# First, the strictly-greater rule: a potential exactly at threshold does not fire.

# %%
edge_spikes, _, edge_u = lif_step(np.array([1.0, 1.0 + 1e-9]), np.zeros(2), 1.0, 1.0)
print(f"u = {edge_u[0]:.12f} -> spike {int(edge_spikes[0])};  "
      f"u = {edge_u[1]:.12f} (above by {edge_u[1] - 1.0:.0e}) -> spike {int(edge_spikes[1])}")
assert edge_spikes.tolist() == [False, True]

# %% [markdown]
# Now a trace: a neuron with $\lambda = 0.95$, $v = 1$, driven by a current that is off,
# then weak, then stronger. Weak input charges the membrane slowly and the leak fights
# it; stronger input makes it fire regularly. After each spike the threshold is
# subtracted, so whatever the potential had *above* the threshold is kept.

# %%
T_trace = 80
leak, threshold = 0.95, 1.0
current = np.zeros(T_trace)
current[10:45] = 0.08
current[45:] = 0.22

m = np.zeros(1)
u_trace, m_trace, spikes_trace = [], [], []
for t in range(T_trace):
    spike, m, u = lif_step(current[t:t + 1], m, leak, threshold)
    u_trace.append(u[0]), m_trace.append(m[0]), spikes_trace.append(bool(spike[0]))
u_trace, m_trace, spikes_trace = map(np.array, (u_trace, m_trace, spikes_trace))

# The claims of Eq. 3-5, checked on the trace:
assert np.all(spikes_trace == (u_trace > threshold))                      # fire iff u > v
np.testing.assert_allclose(m_trace, u_trace - threshold * spikes_trace)    # soft reset
n_trace_spikes = int(spikes_trace.sum())
print(f"{n_trace_spikes} spikes at steps t = {(np.flatnonzero(spikes_trace) + 1).tolist()}")

fig = membrane_trace(current, u_trace, m_trace, spikes_trace, threshold,
                     f"One LIF neuron, leak {leak}, threshold {threshold}")
save(fig, "01_membrane_trace")

# %% [markdown]
# Each vertical drop is a soft reset: the potential falls by exactly $v$, from $u^t$ to
# $m^t$ (red triangles), and the next step starts from $\lambda m^t$. Where no spike
# occurs, $m^t = u^t$.
#
# ## 3. What the leak does
#
# Feed the same constant current $I = 0.1$ to three neurons that differ only in their
# leak. Without leak ($\lambda = 1$) the potential grows by $I$ every step and the neuron
# fires every `v / I` steps on average. With a leak, the potential can only climb to the
# fixed point of $u = \lambda u + I$, i.e. $I / (1 - \lambda)$: for $\lambda = 0.95$ that
# is 2 (above threshold: it fires, but less often), for $\lambda = 0.85$ it is 0.67, below
# the threshold, so that neuron never fires at all.

# %%
T_leak = 60
leaks = [1.0, 0.95, 0.85]
I_leak = 0.1
u_leak = np.zeros((len(leaks), T_leak))
o_leak = np.zeros((len(leaks), T_leak), dtype=bool)
m = np.zeros(len(leaks))
for t in range(T_leak):
    # lif_step works element-wise, so one call runs all three neurons; the leak is an
    # array here only to compare the three side by side (in a network it is one scalar).
    o_leak[:, t], m, u_leak[:, t] = lif_step(np.full(len(leaks), I_leak), m, np.array(leaks), 1.0)
counts_leak = o_leak.sum(axis=1)
for lam, c in zip(leaks, counts_leak):
    print(f"leak {lam:4}: fixed point I/(1-lambda) = "
          f"{'inf' if lam == 1 else f'{I_leak / (1 - lam):.2f}'}, {c} spikes in {T_leak} steps")
assert counts_leak[0] > counts_leak[1] > counts_leak[2] == 0

fig, ax = plt.subplots(figsize=(8, 3.6))
lines(ax, np.arange(1, T_leak + 1),
      {rf"$\lambda$ = {lam} ({counts_leak[k]} spikes)": u_leak[k] for k, lam in enumerate(leaks)},
      "time step $t$", "$u^t$", f"Same input current $I$ = {I_leak}, three leaks", legend=False)
ax.axhline(1.0, color="k", ls="--", lw=1, label="threshold $v = 1$")
ax.axhline(I_leak / (1 - 0.85), color="C2", ls=":", lw=1,
           label=r"fixed point $I/(1-\lambda)$ for $\lambda = 0.85$")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
save(fig, "01_leak")

# %% [markdown]
# ## 4. Soft reset against reset to zero
#
# Many SNN models reset the membrane to zero after a spike: $m^t = u^t (1 - o^t)$.
# DIET-SNN subtracts the threshold instead (Eq. 5), which keeps the part of the
# potential that overshot the threshold. For a non-leaky neuron and a constant current
# this makes the spike count almost exactly proportional to the input: after $T$ steps
# the total charge `T I` equals $v$ times the spike count plus what is left on the
# membrane (which lies between 0 and $v$, as long as $I < v$), so
#
# $$\text{count} = \frac{T I}{v} - \frac{m^T}{v}, \quad 0 \le m^T \le v
#   \quad\Longrightarrow\quad \left|\text{count} - \frac{T I}{v}\right| \le 1.$$
#
# With reset to zero the overshoot is thrown away at every spike, so a neuron needs
# `floor(v/I) + 1` steps per spike, whatever the fractional part of `v/I` was: its rate
# is a staircase that lies below the soft-reset line. With few timesteps (DIET-SNN
# uses T = 5) every lost fraction of a spike counts, and ANN-to-SNN conversion (lesson
# 7) relies on the rate being proportional to the input.
#
# Reset to zero is not in the library; it is one line different from Eq. 5.

# %%
def lif_step_reset_to_zero(current, m_prev, leak, threshold):
    """Eq. 2-4 as in lif_step, but the reset sets the potential to zero."""
    u = leak * m_prev + current
    spike = (u / threshold - 1.0) > 0
    m = np.where(spike, 0.0, u)
    return spike, m, u


def spike_counts(step_fn, currents, leak, threshold, T):
    """Spike count over T steps of one neuron per entry of ``currents`` (constant input)."""
    m = np.zeros_like(currents)
    count = np.zeros(currents.shape, dtype=int)
    for _ in range(T):
        spike, m, _ = step_fn(currents, m, leak, threshold)
        count += spike
    return count


T_rate = 50 if QUICK else 200
currents = np.linspace(0.0, 1.3, 521)
count_soft = spike_counts(lif_step, currents, 1.0, 1.0, T_rate)
count_zero = spike_counts(lif_step_reset_to_zero, currents, 1.0, 1.0, T_rate)
below = currents < 1.0
soft_error = np.abs(count_soft[below] - T_rate * currents[below]).max()
gap = (count_soft - count_zero) / T_rate
print(f"T = {T_rate}: soft reset |count - T I / v| <= {soft_error:.3f} for I < v")
print(f"reset to zero loses up to {gap.max():.3f} spikes per step "
      f"(at I = {currents[gap.argmax()]:.3f})")
assert soft_error <= 1.0 + 1e-9   # (floating-point slack)
assert np.all(count_zero <= count_soft) and gap.max() > 0.2

fig, ax = plt.subplots(figsize=(7, 4))
lines(ax, currents, {"soft reset (Eq. 5): $m = u - v\\,o$": count_soft / T_rate,
                     "reset to zero: $m = u\\,(1 - o)$": count_zero / T_rate,
                     "$I / v$ (capped at 1)": np.minimum(currents, 1.0)},
      "constant input current $I$ (threshold $v = 1$, leak 1)",
      f"spikes per step (over $T$ = {T_rate})",
      "Soft reset keeps the rate proportional to the input",
      styles={"soft reset (Eq. 5): $m = u - v\\,o$": {"color": "C0"},
              "reset to zero: $m = u\\,(1 - o)$": {"color": "C3"},
              "$I / v$ (capped at 1)": {"color": "k", "ls": ":", "lw": 1}})
save(fig, "01_soft_vs_zero_reset")

# %% [markdown]
# Above $I = v$ both neurons fire at every step and saturate at one spike per step:
# a neuron can emit at most one spike per step. With soft reset the surplus then piles
# up on the membrane (it grows by `I - v` per step), which is why a very strong input
# does not fire "harder".
#
# ### Aside: the paper's one-line form
#
# The paper writes the neuron as one line,
# $u^t = \lambda u^{t-1} + \sum_j w_{ij} o_j^t - v o^{t-1}$, whereas the authors' code (and
# this library) does Eq. 2 + 5. Substituting Eq. 5 into Eq. 2 gives
# $u^t = \lambda u^{t-1} - \lambda v o^{t-1} + I^t$: in Eq. 2 + 5 the subtracted threshold
# is multiplied by the leak, in the one-line form it is not. With $\lambda = 1$ the two
# are identical; with a leak they differ. The check below runs both forms on the same
# random input.

# %%
def paper_form(currents, leak, threshold):
    """The paper's one-line update u^t = lambda u^{t-1} + I^t - v o^{t-1} (o fires if u > v)."""
    u_prev, o_prev, us, os_ = 0.0, 0.0, [], []
    for I_t in currents:
        u_t = leak * u_prev + I_t - threshold * o_prev
        o_t = float(u_t > threshold)
        us.append(u_t), os_.append(o_t)
        u_prev, o_prev = u_t, o_t
    return np.array(us), np.array(os_)


def library_form(currents, leak, threshold):
    m, us, os_ = np.zeros(1), [], []
    for I_t in currents:
        spike, m, u = lif_step(np.array([I_t]), m, leak, threshold)
        us.append(u[0]), os_.append(float(spike[0]))
    return np.array(us), np.array(os_)


rng = np.random.default_rng(1)
random_input = rng.uniform(0.0, 0.6, size=40)
u_paper, o_paper = paper_form(random_input, 1.0, 1.0)
u_lib, o_lib = library_form(random_input, 1.0, 1.0)
np.testing.assert_allclose(u_paper, u_lib, atol=1e-12)          # identical when lambda = 1
u_paper, o_paper = paper_form(random_input, 0.8, 1.0)
u_lib, o_lib = library_form(random_input, 0.8, 1.0)
form_difference = np.abs(u_paper - u_lib).max()
print(f"lambda = 1:   the two forms agree exactly")
print(f"lambda = 0.8: potentials differ by up to {form_difference:.3f}; "
      f"{int(o_paper.sum())} vs {int(o_lib.sum())} spikes (paper form vs Eq. 2+5)")
assert form_difference > 0.01

# %% [markdown]
# ## 5. Firing rate against input current, leak and threshold
#
# For a constant current the rate curve summarises the neuron:
#
# * **Leak** (left): with $\lambda < 1$ the neuron stays silent until the fixed point
#   $I / (1 - \lambda)$ exceeds $v$, i.e. below the current $I = v (1 - \lambda)$ (dotted
#   lines); above it the rate rises towards the IF neuron's `I / v` line. A smaller
#   leak raises this minimum current and lowers the rate.
# * **Threshold** (right): for an IF neuron the rate is `I / v` (up to one spike over
#   $T$ steps): the threshold sets the slope, i.e. the gain of the neuron.
#
# DIET-SNN learns both per layer, which lets each layer tune how many spikes it needs
# to pass on its information (lesson 4).

# %%
T_curve = 200
currents = np.linspace(0.0, 1.2, 241)
curve_leaks = [1.0, 0.97, 0.9, 0.8]
curve_thresholds = [0.5, 1.0, 2.0]
rate_by_leak = {lam: spike_counts(lif_step, currents, lam, 1.0, T_curve) / T_curve
                for lam in curve_leaks}
rate_by_threshold = {v: spike_counts(lif_step, currents, 1.0, v, T_curve) / T_curve
                     for v in curve_thresholds}

for lam in curve_leaks[1:]:
    onset = 1.0 * (1.0 - lam)                  # v (1 - lambda) with v = 1
    silent = rate_by_leak[lam][currents < 0.97 * onset]
    firing = rate_by_leak[lam][currents > 1.03 * onset]
    print(f"leak {lam}: silent below I = {onset:.2f}, fires above")
    assert silent.max() == 0.0 and firing.min() > 0.0
for v in curve_thresholds:
    slope_error = np.abs(rate_by_threshold[v] - np.minimum(currents / v, 1.0)).max()
    assert slope_error <= 1.0 / T_curve + 1e-12
assert all(np.all(rate_by_leak[a] >= rate_by_leak[b])
           for a, b in zip(curve_leaks, curve_leaks[1:]))

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
lines(ax1, currents, {rf"$\lambda$ = {lam}": rate_by_leak[lam] for lam in curve_leaks},
      "constant input current $I$", f"spikes per step ($T$ = {T_curve})",
      r"Leak (threshold $v = 1$); dotted: $I = v\,(1 - \lambda)$")
for k, lam in enumerate(curve_leaks[1:], 1):
    ax1.axvline(1.0 - lam, color=f"C{k}", ls=":", lw=1)
lines(ax2, currents, {f"$v$ = {v}": rate_by_threshold[v] for v in curve_thresholds},
      "constant input current $I$", "", "Threshold (leak 1): rate $= I / v$")
save(fig, "01_rate_curves")

# %% [markdown]
# ## Summary
#
# * Eq. 1 discretised exactly gives $u^t = \lambda u^{t-1} + I^t$ with
#   $\lambda = e^{-\Delta t/\tau_m}$; the input scale is absorbed into the weights.
# * Eq. 2–5: integrate, normalise by the threshold, fire if strictly above it, subtract
#   the threshold. `diet_np.lif.lif_step` does exactly this.
# * The leak caps the potential at $I / (1 - \lambda)$ and silences weak inputs.
# * The soft reset keeps the spike count within one spike of `T I / v` for an IF
#   neuron; reset to zero loses the overshoot at every spike.
# * The threshold sets the gain ($\text{rate} = I / v$), the leak the minimum current to fire.
#
# ## Exercises
#
# 1. What is the smallest constant current that ever makes a neuron with
#    $\lambda = 0.9$ and $v = 1$ fire? *Answer:* any $I > v\,(1 - \lambda) = 0.1$: the
#    fixed point $I/(1-\lambda)$ must lie strictly above $v$. The code below checks both
#    sides with `lif_step` over 500 steps.
# 2. Halve $\Delta t$ at fixed $\tau_m$. How must $\lambda$ change so that the neuron
#    forgets at the same rate in milliseconds? *Answer:* $\lambda \to \sqrt{\lambda}$,
#    since $e^{-\Delta t/(2\tau_m)} = \big(e^{-\Delta t/\tau_m}\big)^{1/2}$; Euler's
#    $1 - \Delta t/\tau_m$ has no such property.
# 3. With reset to zero, a current $I$ just below $v$ fires only every second step
#    (section 4). Explain with the overshoot $u^t - v$ what the soft reset keeps.
#    *Hint:* follow $m^t$ for $I = 0.99$ over four steps with both resets.
#
# ### Answer to 1

# %%
def fires(I, lam=0.9, v=1.0, steps=500):
    """Whether a neuron fed the constant current I fires within ``steps`` steps."""
    m = np.zeros(1)
    for _ in range(steps):
        spike, m, _ = lif_step(np.array([I]), m, lam, v)
        if spike[0]:
            return True
    return False


exercise_onset = {I: fires(I) for I in (0.099, 0.1, 0.102)}
print("fires within 500 steps:", exercise_onset)
assert exercise_onset == {0.099: False, 0.1: False, 0.102: True}

# %% [markdown]
# **Next:** lesson 2 asks how a gradient can pass through $o = H(z)$.
