"""Softmax cross-entropy on the accumulated output potential (Eq. 7 and Eq. 9)."""
from __future__ import annotations

from ..backend import array_module, require_array


def softmax(logits):
    """Row-wise softmax, shifted by the row maximum for stability."""
    xp = array_module(logits)
    e = xp.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits, labels, check=True):
    """Eq. 7: L = -(1/B) sum_b log p[b, y_b] with p = softmax(U^T).

    logits: (B, classes) float; labels: (B,) integers in [0, classes).
    Returns ``(loss, dlogits)`` where Eq. 9 gives dlogits = (p - onehot(y)) / B.
    The loss is a 0-d device array.  ``check=True`` also verifies that every label
    lies in [0, classes): one reduction whose result is read on the host, hence one
    device synchronisation.  A loop whose labels were checked once for the whole
    data set (:func:`diet_np.data.check_labeled_images`) passes ``check=False`` and
    stays free of synchronisation; an out-of-range label would otherwise match no
    class and silently add nothing to the loss.
    """
    for name, a in (("logits", logits), ("labels", labels)):
        require_array(name, a)
    if logits.ndim != 2:
        raise ValueError(f"logits must be (batch, classes); got shape {tuple(logits.shape)}")
    if labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},) to match the logits; "
                         f"got {tuple(labels.shape)}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers; got dtype {labels.dtype}")
    xp = array_module(logits, labels)
    b, classes = logits.shape
    if check and bool(((labels < 0) | (labels >= classes)).any()):
        raise ValueError(f"labels must lie in [0, {classes}) for logits with {classes} classes; "
                         f"got range [{int(labels.min())}, {int(labels.max())}]")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_z = xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_z
    onehot = labels[:, None] == xp.arange(classes)
    loss = -(log_p * onehot).sum() / b
    dlogits = (xp.exp(log_p) - onehot) / b
    return loss, dlogits
