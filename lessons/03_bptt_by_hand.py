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
# # Lesson 3: backpropagation through time by hand, for one neuron (Eq. 9–14)
#
# A LIF neuron is a tiny recurrent network: its state (the membrane potential) is
# carried from step to step. Training it means *backpropagation through time* (BPTT):
# unroll the $T$ steps into one long feed-forward graph and apply the chain rule
# backwards from $t = T$ to $t = 1$. This lesson
#
# 1. unrolls one neuron and derives every term of its backward pass (Eq. 10–14);
# 2. computes them with plain Python loops written here, and compares the result with
#    the library's reference functions, step by step (`diet_np.lif.lif_step`,
#    `lif_step_backward`) and for the whole layer (`lif_forward` / `lif_backward`);
# 3. checks the gradients against finite differences in *smooth mode*
#    (`diet_np.gradcheck`);
# 4. isolates the reset path into the threshold (the second term of Eq. 14) and shows
#    that without it the finite-difference check fails;
# 5. explains why the spike inside the reset is *detached* (gets no surrogate), and
#    measures what changes when it is not.
#
# **Assumes:** lessons 1–2. **Runs in:** a second or two.

# %%
import numpy as np

from diet_np.lessons.common import QUICK, plt, save
from diet_np.lessons.figures import step_bars, tangent_check, unrolled_neuron_graph
from diet_np.gradcheck import DEFAULT_TOL, numerical_gradient, relative_error
from diet_np import fast
from diet_np.lif import lif_backward, lif_forward, lif_step, lif_step_backward
from diet_np.surrogates import Triangle

print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. The neuron, unrolled
#
# One neuron receives $n_{in} = 3$ input spike trains $x_j^t$ (as if from a previous
# spiking layer) through weights $w_j$, has leak $\lambda$ and threshold $v$, and runs
# for $T = 6$ steps. For $t = 1, \dots, T$, with $m^0 = 0$:
#
# $$\begin{aligned}
# I^t &= \textstyle\sum_j w_j\, x_j^t && \text{(input current)}\\
# u^t &= \lambda\, m^{t-1} + I^t && \text{(Eq. 2)}\\
# z^t &= u^t / v - 1 && \text{(Eq. 3)}\\
# o^t &= H(z^t) && \text{(Eq. 4)}\\
# m^t &= u^t - v\, o^t && \text{(Eq. 5)}
# \end{aligned}$$
#
# The spikes go on to the rest of the network, which we stand in for by a fixed linear
# loss $L = \sum_t c_t\, o^t$, so that $do^t = \partial L/\partial o^t = c_t$ (in a real
# network $do^t$ comes back from layer $l + 1$ at the same step $t$, through Eq. 9 from
# the output layer: lesson 5 writes that out). We write $dX$ for $\partial L/\partial X$.

# %%
T, n_in = 6, 3
rng = np.random.default_rng(2)
x = (rng.random((T, n_in)) < 0.6).astype(float)       # input spikes x_j^t
w0 = rng.uniform(0.2, 0.7, n_in)                       # weights
lam0, v0 = 0.9, 0.8                                    # leak and threshold
c = rng.normal(0.0, 1.0, T)                            # dL/do^t
sg = Triangle()                                        # Eq. 8, gamma = 0.3
print("input spikes x^t (rows t = 1..T):\n", x.astype(int))
print("weights w =", np.round(w0, 3), " leak =", lam0, " threshold =", v0)
print("loss weights c_t =", np.round(c, 3))

# %% [markdown]
# ## 2. The backward pass, term by term
#
# Walk the unrolled graph backwards (it is drawn after the code below, with this
# example's numbers on it). The potential $u^t$ influences the loss along two paths:
# directly through its spike $o^t$, and through the membrane it leaves behind, $m^t$,
# which becomes part of $u^{t+1}$. So
#
# $$du^t = dm^t\, \frac{\partial m^t}{\partial u^t} + do^t\, \frac{\partial o^t}{\partial u^t}
#   = dm^t + do^t\, \frac{\sigma'(z^t)}{v} \qquad \text{(Eq. 10)}$$
#
# ($dm^t/du^t = 1$ because the spike in the reset is detached; $do^t/du^t$ is the
# surrogate of Eq. 8 divided by $v$). $m^{t-1}$ reaches the loss only through $u^t$:
#
# $$dm^{t-1} = \lambda\, du^t, \qquad dm^T = 0 \qquad \text{(Eq. 11)}$$
#
# The parameters collect one term per step:
#
# $$\begin{aligned}
# dI^t &= du^t, \qquad dw_j = \textstyle\sum_t du^t\, x_j^t && \text{(Eq. 12)}\\
# d\lambda &= \textstyle\sum_t du^t\, m^{t-1} \quad (m^0 = 0) && \text{(Eq. 13)}\\
# dv &= \textstyle\sum_t \left[ do^t\, \sigma'(z^t) \left(-\frac{u^t}{v^2}\right) - dm^t\, o^t
# \right]
#   && \text{(Eq. 14)}
# \end{aligned}$$
#
# The first term of Eq. 14 is the threshold's effect through $z^t = u^t / v - 1$; the
# second is its effect through the reset $m^t = u^t - v o^t$ ($dm^t/dv = -o^t$). The
# paper prints only the first; the library (following the authors' code) has both.
#
# The same backward loop serves real spikes and smooth mode. Here it is, written with
# plain Python floats and loops.

# %%
def forward_by_hand(w, lam, v, smooth=False):
    """Eq. 2-5 for one neuron; returns the loss and everything the backward needs.

    smooth=False: the loss sees the spikes o^t = H(z^t).
    smooth=True:  the loss sees sg.primitive(z^t) instead (the reset still uses H).
    """
    u, z, o, m, out = [], [], [], [], []
    m_prev = 0.0
    for t in range(T):
        I_t = sum(w[j] * x[t, j] for j in range(n_in))
        u_t = lam * m_prev + I_t                       # Eq. 2
        z_t = u_t / v - 1.0                            # Eq. 3
        o_t = 1.0 if z_t > 0 else 0.0                  # Eq. 4
        m_t = u_t - v * o_t                            # Eq. 5
        out_t = float(sg.primitive(np.array(z_t))) if smooth else o_t
        u.append(u_t), z.append(z_t), o.append(o_t), m.append(m_t), out.append(out_t)
        m_prev = m_t
    loss = sum(c[t] * out[t] for t in range(T))
    return loss, dict(u=u, z=z, o=o, m=m, out=out)


def backward_by_hand(w, lam, v, state, reset_term=True, attached=False):
    """Eq. 10-14, t = T..1. Returns (dw, dlambda, dv, per-step record).

    attached=True keeps the surrogate in the reset (section 6): do^t gets -v dm^t."""
    u, z, o, m = state["u"], state["z"], state["o"], state["m"]
    dw, dlam, dv = [0.0] * n_in, 0.0, 0.0
    dm = 0.0                                           # dm^T = 0
    record = []
    for t in reversed(range(T)):
        do = c[t] - (v * dm if attached else 0.0)      # attached: the reset uses o^t too
        surrogate = float(sg.grad(np.array(z[t])))     # Eq. 8
        du = dm + do * surrogate / v                   # Eq. 10
        dv_z = do * surrogate * (-u[t] / v ** 2)       # Eq. 14, first term
        dv_reset = -dm if o[t] else 0.0                # Eq. 14, second term: -dm^t o^t
        dv += dv_z + (dv_reset if reset_term else 0.0)
        if t > 0:
            dlam += du * m[t - 1]                      # Eq. 13 (m^0 = 0 adds nothing)
        for j in range(n_in):
            dw[j] += du * x[t, j]                      # Eq. 12
        record.append(dict(t=t + 1, du=du, dm=dm, do=do, dv_z=dv_z, dv_reset=dv_reset))
        dm = lam * du                                  # Eq. 11: this is dm^{t-1}
    return np.array(dw), dlam, dv, record[::-1]


loss_spk, state_spk = forward_by_hand(w0, lam0, v0)
dw_spk, dlam_spk, dv_spk, record_spk = backward_by_hand(w0, lam0, v0, state_spk)
print("t :", list(range(1, T + 1)))
print("u :", np.round(state_spk["u"], 3))
print("z :", np.round(state_spk["z"], 3))
print("o :", [int(o) for o in state_spk["o"]])
print(f"loss = {loss_spk:.4f}")
print(f"by hand: dw = {np.round(dw_spk, 6)}, dlambda = {dlam_spk:.6f}, dv = {dv_spk:.6f}")

# %% [markdown]
# The graph of the first three steps, with these numbers on it: each node shows its
# forward value (green, above) and the gradient $\partial L/\partial X$ the backward pass
# computed for it (red, below); each arrow is a forward dependency labelled with its
# local derivative (for the spike, the surrogate of Eq. 8). A node's gradient is the sum,
# over its outgoing arrows, of the gradient at the arrow's head times the arrow's label:
# for instance $du^1 = dm^1 \cdot 1 + do^1\, \sigma'(z^1)/v$. The spike feeds the reset
# $m^t = u^t - v\, o^t$, but there it is treated as a constant (**detached**, dashed grey):
# no gradient flows along that arrow (section 6 says why). The threshold $v$ (red) is one
# number used at every step, so its gradient is the sum of the per-step terms shown.

# %%
current_spk = [float(x[t] @ w0) for t in range(T)]
graph_values = {"I": current_spk, "u": state_spk["u"], "o": state_spk["o"], "m": state_spk["m"],
                "L": [c[t] * state_spk["o"][t] for t in range(T)], "v": v0}
graph_grads = {"I": [r["du"] for r in record_spk], "u": [r["du"] for r in record_spk],
               "o": [r["do"] for r in record_spk], "m": [r["dm"] for r in record_spk],
               "L": [1.0] * T, "v": [r["dv_z"] + r["dv_reset"] for r in record_spk]}
save(unrolled_neuron_graph(graph_values, graph_grads, steps=3), "03_unrolled_graph")

# %% [markdown]
# ## 3. The same numbers from the library's reference functions
#
# The library's reference path, `diet_np/lif.py`, is written the same way: `lif_step` is
# one step of Eq. 2–5 and `lif_step_backward` one step back (Eq. 10, 11, 13, 14, returning
# $du^t$, $dm^{t-1}$ and the step's terms of `dlambda` and $dv$). First, step by step
# against the loops above (Python's index $t$ holds step `t + 1`):

# %%
loss_h, state_h = forward_by_hand(w0, lam0, v0)
_, _, _, record_h = backward_by_hand(w0, lam0, v0, state_h)
step_match, m_prev = 0.0, np.zeros(1)
for t in range(T):                                                   # forward, t = 1..T
    spike, m_prev, u_t = lif_step(np.array([x[t] @ w0]), m_prev, lam0, v0)
    step_match = max(step_match, abs(u_t[0] - state_h["u"][t]),
                     abs(float(spike[0]) - state_h["o"][t]))
dm = np.zeros(1)                                                     # dm^T = 0
for t in reversed(range(T)):                                         # backward, t = T..1
    m_before = np.array([state_h["m"][t - 1] if t > 0 else 0.0])     # m^{t-1}, m^0 = 0
    du, dm, _, dv_t = lif_step_backward(np.array([c[t]]), dm, np.array([state_h["u"][t]]),
                                        np.array([state_h["o"][t] > 0]), m_before, lam0, v0, sg)
    hand = record_h[t]
    step_match = max(step_match, abs(du[0] - hand["du"]),
                     abs(float(dv_t) - (hand["dv_z"] + hand["dv_reset"])))
print(f"lif_step / lif_step_backward and the hand-written steps differ by at most {step_match:.1e}")

# %% [markdown]
# `lif_forward(current, leak, threshold, T)` is the loop over `lif_step` for a whole layer:
# it takes the currents of all steps at once, shaped `(T, B, ...)` (here $B = 1$ neuron),
# and returns the layer's output and a cache (the potentials $u^t$ and the spikes;
# $m^{t-1}$ is recomputed from them). `lif_backward(dout, cache)` is the loop over
# `lif_step_backward`, t = T..1, and returns `(dcurrent, dleak, dthreshold)`; the weight
# gradient of Eq. 12 is then `x^T dcurrent` (in a network, the linear or convolution
# layer's backward does that product). The network trains by default with the fast
# engine's `diet_np.fast.lif_forward` / `lif_backward` (neuron blocks on all cores, fused
# kernels on a GPU), which the tests hold to these; it gives the same numbers here too.

# %%
def library_gradients(w, lam, v, smooth, forward=lif_forward, backward=lif_backward):
    current = (x @ w)[:, None]                                       # (T, 1)
    out, cache = forward(current, np.array(lam), np.array(v), T, smooth=smooth, surrogate=sg)
    loss = float((c[:, None] * out).sum())
    dcurrent, dleak, dthreshold = backward(c[:, None].copy(), cache)
    return loss, x.T @ dcurrent[:, 0], float(dleak), float(dthreshold), cache


library_match, fast_match = {}, {}
for smooth in (False, True):
    loss_h, state_h = forward_by_hand(w0, lam0, v0, smooth)
    dw_h, dlam_h, dv_h, _ = backward_by_hand(w0, lam0, v0, state_h)
    for match, forward, backward in ((library_match, lif_forward, lif_backward),
                                     (fast_match, fast.lif_forward, fast.lif_backward)):
        loss_l, dw_l, dlam_l, dv_l, cache = library_gradients(w0, lam0, v0, smooth,
                                                              forward, backward)
        np.testing.assert_allclose(cache.u[:, 0], state_h["u"], rtol=1e-12)
        np.testing.assert_allclose(loss_l, loss_h, rtol=1e-12)
        np.testing.assert_allclose(dw_l, dw_h, rtol=1e-12)
        np.testing.assert_allclose([dlam_l, dv_l], [dlam_h, dv_h], rtol=1e-12)
        match[smooth] = max(np.abs(dw_l - dw_h).max(), abs(dlam_l - dlam_h), abs(dv_l - dv_h))
    print(f"{'smooth' if smooth else 'spikes'}: the hand-written BPTT and lif_forward/"
          f"lif_backward differ by at most {library_match[smooth]:.1e} (the fast engine's: "
          f"{fast_match[smooth]:.1e})")

# %% [markdown]
# ## 4. Checking against finite differences: smooth mode
#
# With real spikes the loss is piecewise constant in $w$, $\lambda$ and $v$ (lesson 2),
# so finite differences return exactly zero while BPTT returns the surrogate gradient:
# they are not supposed to agree.

# %%
w_arr, lam_arr, v_arr = w0.copy(), np.array(lam0), np.array(v0)


def loss_fn(smooth):
    return lambda: library_gradients(w_arr, float(lam_arr), float(v_arr), smooth)[0]


numeric_spk = numerical_gradient(loss_fn(False), w_arr)
print("spikes: finite differences dw =", numeric_spk, " BPTT (surrogate) dw =", np.round(dw_spk, 4))
assert np.all(numeric_spk == 0.0)

# %% [markdown]
# *Smooth mode* makes the check possible: the spike sent to the loss is replaced by the
# surrogate's primitive $P(z^t)$, whose derivative is exactly $\sigma'(z^t)$. The reset
# keeps the true step $H(z^t)$, whose derivative really is zero away from $z = 0$, so
# detaching it is now *exact*, not an approximation. The backward loop above is then
# the true gradient of the smooth forward, and central differences (float64, step
# $h = 10^{-5}$) must agree to within `DEFAULT_TOL = 1e-6`, as long as no $z^t$ lies within
# a step of a kink: $z = 0$ (where the reset's $H$ jumps) or $z = \pm 1$ (the triangle's
# corners). The margin is printed first.

# %%
loss_s, state_s = forward_by_hand(w0, lam0, v0, smooth=True)
dw_s, dlam_s, dv_s, record = backward_by_hand(w0, lam0, v0, state_s)
kink_margin = min(abs(zt - k) for zt in state_s["z"] for k in (-1.0, 0.0, 1.0))
print(f"smallest distance of any z^t from a kink: {kink_margin:.3f}")
assert kink_margin > 1e-3

smooth_loss = loss_fn(True)
numeric = {"w": numerical_gradient(smooth_loss, w_arr),
           "lambda": numerical_gradient(smooth_loss, lam_arr),
           "v": numerical_gradient(smooth_loss, v_arr)}
smooth_errors = {"w": relative_error(dw_s, numeric["w"]),
                 "lambda": relative_error(dlam_s, numeric["lambda"]),
                 "v": relative_error(dv_s, numeric["v"])}
for key, value in (("w", dw_s), ("lambda", dlam_s), ("v", dv_s)):
    print(f"d{key:7s} BPTT {np.round(value, 6)}  finite diff. {np.round(numeric[key], 6)}  "
          f"relative error {smooth_errors[key]:.1e}")
assert max(smooth_errors.values()) < DEFAULT_TOL

# %% [markdown]
# ## 5. The reset path into the threshold
#
# Every step with a spike ($o^t = 1$) and a non-zero $dm^t$ adds $-dm^t$ to $dv$. The
# intuition: a higher threshold takes more charge away at each reset, which lowers the
# potential of all later steps. Drop that term, as the paper's printed equation does,
# and the gradient is wrong. The table shows each step's two contributions; then the
# finite-difference check is repeated without the reset term.

# %%
print(" t  o^t     du^t      dm^t   do*sg'*(-u/v^2)   -dm^t*o^t")
for r, o_t in zip(record, state_s["o"]):
    print(f"{r['t']:2d}  {int(o_t)}  {r['du']:+.5f}  {r['dm']:+.5f}      {r['dv_z']:+.5f}"
          f"        {r['dv_reset']:+.5f}")
dv_reset_total = sum(r["dv_reset"] for r in record)
_, _, dv_without_reset, _ = backward_by_hand(w0, lam0, v0, state_s, reset_term=False)
error_without_reset = relative_error(dv_without_reset, numeric["v"])
print(f"\ndv with the reset term:    {dv_s:+.6f}  relative error {smooth_errors['v']:.1e}")
print(f"dv without the reset term: {dv_without_reset:+.6f}  relative error "
      f"{error_without_reset:.1e}")
print(f"finite differences:        {float(numeric['v']):+.6f}")
assert abs(dv_reset_total) > 0.01
assert error_without_reset > 1e-2 > DEFAULT_TOL > smooth_errors["v"]

# %% [markdown]
# The gradients for $w$ and $\lambda$ do not change when the term is dropped (it only
# enters $dv$), so a check on the weights alone would not catch the mistake.
#
# A picture of the same fact: the smooth-mode loss as a function of the threshold
# alone, with the tangent lines that the two versions of $dv$ predict at $v = 0.8$.
# Only the full Eq. 14 is tangent to the curve.

# %%
v_scan = np.linspace(v0 - 0.06, v0 + 0.06, 121)
loss_scan = np.array([forward_by_hand(w0, lam0, vs, smooth=True)[0] for vs in v_scan])

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
tangent_check(v_scan, loss_scan, v0, loss_s, {"full Eq. 14": dv_s,
                                              "without the reset term": dv_without_reset}, ax1)
ax1.set_title("Which slope is right?")
step_bars({r"$do^t\,\sigma'(z^t)\,(-u^t/v^2)$ (Eq. 14, 1st term)": [r["dv_z"] for r in record],
           r"$-dm^t\, o^t$ (Eq. 14, reset term)": [r["dv_reset"] for r in record]},
          state_s["o"], ax2, r"contribution to $\partial L/\partial v$")
ax2.set_title("Per-step terms of Eq. 14")
save(fig, "03_reset_term")

# %% [markdown]
# ## 6. Why the spike inside the reset is detached
#
# The spike $o^t = H(z^t)$ is used twice: it goes to the rest of the network (here, the
# loss) and it resets the membrane, $m^t = u^t - v\, o^t$. The backward pass above puts
# the surrogate on the first use only. Why not on both?
#
# * In the network that actually runs, $H$ has derivative zero everywhere except at the
#   jump, so the true gradient along *every* path through a spike is zero. The surrogate
#   is a deliberate approximation, made only where we need a learning signal: on the path
#   that carries the spike to the layers above and to the loss. The reset is the neuron's
#   own bookkeeping; nothing requires a signal there.
# * In smooth mode the spike sent on is $P(z^t)$ while the reset keeps $H(z^t)$; with the
#   reset detached the backward is then the *exact* gradient of that forward, which is
#   why sections 4–5 could check it against finite differences.
#
# Keeping the surrogate in the reset makes it a second consumer of the spike. By the
# chain rule the spike's gradient becomes
#
# $$do^t \;\to\; do^t + dm^t\, \frac{\partial m^t}{\partial o^t} = do^t - v\, dm^t ,$$
#
# and so, through Eq. 10,
#
# $$du^t = dm^t \big(1 - \sigma'(z^t)\big) + do^t\, \frac{\sigma'(z^t)}{v},$$
#
# with a matching extra term $+dm^t\, \sigma'(z^t)\, u^t/v$ in Eq. 14. The factor
# $1 - \sigma'(z^t)$ shrinks the gradient carried back through time at every step near
# threshold (by up to $\gamma = 0.3$ with the triangle); for a neuron that fires
# regularly, that is most steps. `backward_by_hand(..., attached=True)` makes that one
# change (`do = c[t] - v * dm`). Below: the gradients of this lesson's example both ways,
# in spiking mode, and the smooth-mode finite-difference check of the attached version.

# %%
_, _, _, rec_detached = backward_by_hand(w0, lam0, v0, state_spk)
dw_att, dlam_att, dv_att, rec_attached = backward_by_hand(w0, lam0, v0, state_spk, attached=True)
print(" t  o^t   du^t detached   du^t attached")
for r_d, r_a, o_t in zip(rec_detached, rec_attached, state_spk["o"]):
    print(f"{r_d['t']:2d}  {int(o_t)}    {r_d['du']:+.5f}        {r_a['du']:+.5f}")
attached_change = {"w": relative_error(dw_att, dw_spk),
                   "lambda": relative_error(dlam_att, dlam_spk),
                   "v": relative_error(dv_att, dv_spk)}
print("relative change of each gradient when the reset is attached:",
      {k: f"{v:.2f}" for k, v in attached_change.items()})
dw_att_s, dlam_att_s, dv_att_s, _ = backward_by_hand(w0, lam0, v0, state_s, attached=True)
attached_errors = {"w": relative_error(dw_att_s, numeric["w"]),
                   "lambda": relative_error(dlam_att_s, numeric["lambda"]),
                   "v": relative_error(dv_att_s, numeric["v"])}
print("smooth mode, attached reset against finite differences:",
      {k: f"{v:.1e}" for k, v in attached_errors.items()})
assert min(attached_change.values()) > 1e-2
assert min(attached_errors.values()) > 1e-2 > DEFAULT_TOL

# %% [markdown]
# The attached version changes every gradient by the printed fractions, and it is no
# longer the gradient of the smooth forward (its check fails). Whether it helps or
# hurts *training* is an empirical question: lesson 5 trains the same network both ways
# from the same start and prints the result. The library, like the authors' code,
# detaches the reset.
#
# ## Summary
#
# * BPTT through a LIF neuron runs backwards over the steps with one carried quantity,
#   $dm$: $du^t = dm^t + do^t\, \sigma'(z^t)/v$ (Eq. 10), then
#   $dm^{t-1} = \lambda\, du^t$ (Eq. 11).
# * The parameters collect one term per step: $dw$ from $du^t x^t$ (Eq. 12),
#   $d\lambda$ from $du^t m^{t-1}$ (Eq. 13), $dv$ from both the normalised potential and
#   the reset (Eq. 14).
# * The hand-written loops equal the library's reference functions to rounding error,
#   step by step (`lif_step`, `lif_step_backward`) and for the whole layer
#   (`lif_forward`/`lif_backward`), in both modes; so does the fast engine.
# * In smooth mode the backward is the exact gradient and passes the finite-difference
#   check; dropping the reset term of Eq. 14 fails it (the printed relative errors).
# * The spike inside the reset is detached: the surrogate is used only where a learning
#   signal is needed. Attaching it adds $-v\, dm^t$ to each spike's gradient and is no
#   longer the gradient of the smooth forward.
#
# ## Exercises
#
# 1. Remove $\lambda$ from Eq. 11 (carry $dm^{t-1} = du^t$) and run the smooth-mode
#    check on $dw$. *Hint:* only one line of `backward_by_hand` changes; the answer below
#    writes the loop out for $dw$ alone.
# 2. Which gradient does not change when the reset term of Eq. 14 is dropped, and why
#    can a check on the weights alone not catch that mistake? *Answer:* $dw$ and
#    $d\lambda$; the term enters $dv$ only (section 5).
# 3. With real spikes, finite differences of the loss give exactly zero. Give a change of
#    $v_0$ that flips one spike and estimate the size of the jump in $L$. *Hint:* the step
#    whose $z^t$ is closest to 0 flips first; the loss changes by $c_t$ there, and the
#    later steps change too, since the reset now subtracts $v$ at a different step.
#
# ### Answer to 1

# %%
dm, dw_no_leak = 0.0, np.zeros(n_in)
for t in reversed(range(T)):
    du = dm + c[t] * float(sg.grad(np.array(state_s["z"][t]))) / v0     # Eq. 10
    dw_no_leak += du * x[t]                                             # Eq. 12
    dm = du                                                             # Eq. 11 without lambda
exercise_no_leak_error = relative_error(dw_no_leak, numeric["w"])
print(f"dw without lambda in Eq. 11: relative error {exercise_no_leak_error:.2f}")
assert exercise_no_leak_error > 1e-2

# %% [markdown]
# **Next:** lesson 4 uses these gradients to learn a layer's leak and threshold.
