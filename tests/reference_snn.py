"""An independent, deliberately plain implementation of the spec (Eq. 2-14), for tests.

It shares no code with diet_np: convolution by explicit loops over output
positions, and BPTT in the textbook order - time outer (t = T..1), layers
inner - with every state kept per step.  Supports a chain of
("conv", key, stride, pad) / ("avgpool",) / ("flatten",) / ("fc", key) /
("out", key) layers, each conv and fc followed by a LIF neuron named like it.
"""
import numpy as np


def conv_loops(x, w, s, p):
    """out[n, o, i, j] = sum over c, a, b of xpad[n, c, i*s + a, j*s + b] w[o, c, a, b]."""
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ho, wo = (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = np.einsum("ncab,ocab->no", xp[:, :, i * s:i * s + k, j * s:j * s + k], w)
    return out


def _conv_grads(x, w, s, p, dout):
    n, c, h, wd = x.shape
    k = w.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            patch = xp[:, :, i * s:i * s + k, j * s:j * s + k]
            dw += np.einsum("no,ncab->ocab", dout[:, :, i, j], patch)
            dxp[:, :, i * s:i * s + k, j * s:j * s + k] += np.einsum("no,ocab->ncab", dout[:, :, i, j], w)
    return dxp[:, :, p:p + h, p:p + wd], dw


def _avgpool(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def _avgpool_grad(dout):
    return np.repeat(np.repeat(dout, 2, axis=2), 2, axis=3) / 4


def reference_grads(layers, params, x, labels, T, gamma=0.3):
    """Loss (Eq. 7) and gradients of every parameter, true spiking mode."""
    sg = lambda z: gamma * np.maximum(0.0, 1.0 - np.abs(z))
    # ---- forward, one step at a time, storing everything ----
    m = {}
    rec = [dict() for _ in range(T)]     # rec[t][i] = (input to layer i, extra)
    U = 0.0
    for t in range(T):
        h = x
        for i, layer in enumerate(layers):
            kind = layer[0]
            rec[t][i] = h
            if kind == "conv":
                cur = conv_loops(h, params[layer[1] + ".weight"], layer[2], layer[3])
            elif kind == "fc":
                cur = h @ params[layer[1] + ".weight"].T
            elif kind == "avgpool":
                h = _avgpool(h)
                continue
            elif kind == "flatten":
                h = h.reshape(h.shape[0], -1)
                continue
            else:                        # "out": Eq. 6
                U = U + h @ params[layer[1] + ".weight"].T
                continue
            name = layer[1]
            lam, v = float(params[name + ".leak"]), float(params[name + ".threshold"])
            u = lam * m.get(name, 0.0) + cur                     # Eq. 2
            o = (u / v - 1 > 0).astype(float)                    # Eq. 3-4
            m_prev = m.get(name, np.zeros_like(u))
            m[name] = u - v * o                                  # Eq. 5
            rec[t][(i, "u")], rec[t][(i, "o")], rec[t][(i, "m_prev")] = u, o, m_prev
            h = o
    # ---- loss, Eq. 7, and dU, Eq. 9 ----
    p = np.exp(U - U.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    B = x.shape[0]
    loss = -np.mean(np.log(p[np.arange(B), labels]))
    dU = p.copy()
    dU[np.arange(B), labels] -= 1
    dU /= B
    # ---- backward, time outer ----
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dm_next = {}                         # dm^t, carried from step t+1
    for t in reversed(range(T)):
        dh = None
        for i in reversed(range(len(layers))):
            layer, h_in = layers[i], rec[t][i]
            kind = layer[0]
            if kind == "out":
                w = params[layer[1] + ".weight"]
                grads[layer[1] + ".weight"] += dU.T @ h_in
                dh = dU @ w
                continue
            if kind == "flatten":
                dh = dh.reshape(h_in.shape)
                continue
            if kind == "avgpool":
                dh = _avgpool_grad(dh)
                continue
            name = layer[1]
            lam, v = float(params[name + ".leak"]), float(params[name + ".threshold"])
            u, o, m_prev = rec[t][(i, "u")], rec[t][(i, "o")], rec[t][(i, "m_prev")]
            dm = dm_next.get(name, np.zeros_like(u))
            s = sg(u / v - 1)
            du = dm + dh * s / v                                   # Eq. 10
            grads[name + ".threshold"] += np.sum(dh * s * (-u / v**2)) - np.sum(dm * o)  # Eq. 14
            grads[name + ".leak"] += np.sum(du * m_prev)           # Eq. 13
            dm_next[name] = lam * du                               # Eq. 11
            w = params[name + ".weight"]
            if kind == "conv":                                     # Eq. 12
                dh, dw = _conv_grads(h_in, w, layer[2], layer[3], du)
            else:
                dw, dh = du.T @ h_in, du @ w
            grads[name + ".weight"] += dw
    return loss, grads
