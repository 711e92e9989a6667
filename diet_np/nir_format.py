"""A diet-np SNN as a NIR graph (the Neuromorphic Intermediate Representation,
PyPI ``nir``), and back.

NIR describes neurons in continuous time; diet-np steps them.  One diet-np
step is one forward-Euler step of length ``dt`` of NIR's equations, and the
parameters are chosen so that the step is exactly Eq. 2:

* a spiking layer with leak lambda < 1 is ``LIF(tau = dt / (1 - lambda),
  r = 1 / (1 - lambda), v_leak = 0, v_threshold = v)``: Euler gives
  ``v += (dt / tau) (v_leak - v + r I) = -(1 - lambda) v + I``, i.e.
  ``v <- lambda v + I``;
* lambda = 1 is ``IF(r = 1 / dt, v_threshold = v)``: ``v += dt r I = I``;
* the output layer (Eq. 6) is ``Linear`` into an integrator ``I(r = 1 / dt)``,
  whose state after T steps is the logits U^T.

Every parameter is an array of the layer's shape (NIR has no per-layer
scalars), convolutions are ``Conv2d`` with a zero bias, hidden and output
layers ``Linear`` (NIR's no-bias affine map), pools ``AvgPool2d``.  NIR's
spiking nodes reset to ``v_reset``; diet-np resets by subtraction (Eq. 5).
The graph says so in metadata only: every spiking node's ``metadata`` holds
``reset = "subtract"`` (with its ``leak``, ``threshold`` and ``dt``), the
graph's holds ``reset``, ``dt``, ``T``, ``encoding`` and ``arch``.  A consumer
that ignores metadata runs reset-to-zero neurons.  Dropout is not in the
graph (it is off at inference).  ``dt`` defaults to 1e-4, the step snnTorch's
importer assumes; the mapping is exact for any dt.

Node names are diet-np's layer names with ``.`` written ``_`` (``conv1``,
``conv1_lif``, ``pool1``, ``flatten``, ``fc1``, ``out``, ``out_sum``;
``block3_conv1``, ``block3_shortcut``, ...).  Import takes a graph with these
names and edges, and refuses anything else (another reset, a bias, per-neuron
parameters that differ) rather than guess.
"""
from __future__ import annotations

import io
import json
import os

import numpy as np

from .architectures import arch_name, build_network
from .backend import TRAIN_DTYPE
from .errors import DietError
from .layers import (AvgPool, Conv, Dropout, Flatten, Linear, MaxPool, Neuron, Readout,
                     ResidualBlock)

DT = 1e-4
RESET = "subtract"


class NIRError(DietError, ValueError):
    """A NIR file that diet-np cannot read as one of its networks, or no ``nir`` package."""


def _nir():
    try:
        import nir
    except ImportError:
        raise NIRError("--format nir needs the nir package: pip install nir "
                       "(or pip install 'diet-np[nir]')") from None
    return nir


def _node(name):
    return name.replace(".", "_")


def plan(net):
    """The graph of ``net`` without parameters: ``(nodes, edges)``, nodes a list of
    ``(node name, kind, layer)`` in order (kind: input, conv, neuron, avgpool,
    flatten, linear, integrator, output)."""
    nodes, edges, pools = [("input", "input", None)], [], 0

    def add(name, kind, layer, sources):
        nodes.append((name, kind, layer))
        edges.extend((s, name) for s in sources)
        return name

    prev = "input"
    for layer in net.body.layers:
        if isinstance(layer, ResidualBlock):
            conv1, neuron1, _, conv2 = layer.layers
            c1 = add(_node(conv1.name), "conv", conv1, [prev])
            o1 = add(_node(neuron1.name) + "_lif", "neuron", neuron1, [c1])
            sources = [add(_node(conv2.name), "conv", conv2, [o1])]
            sources.append(add(_node(layer.shortcut.name), "conv", layer.shortcut, [prev])
                           if layer.shortcut else prev)
            prev = add(_node(layer.neuron.name) + "_lif", "neuron", layer.neuron, sources)
        elif isinstance(layer, Conv):
            prev = add(_node(layer.name), "conv", layer, [prev])
        elif isinstance(layer, Neuron):
            prev = add(_node(layer.name) + "_lif", "neuron", layer, [prev])
        elif isinstance(layer, MaxPool):
            raise NIRError("NIR has no max pooling node; only networks with average pools "
                           "are exported")
        elif isinstance(layer, AvgPool):
            pools += 1
            prev = add(f"pool{pools}", "avgpool", layer, [prev])
        elif isinstance(layer, Flatten):
            prev = add("flatten", "flatten", layer, [prev])
        elif isinstance(layer, Readout):
            prev = add(_node(layer.name) + "_sum", "integrator", layer,
                       [add(_node(layer.name), "linear", layer, [prev])])
        elif isinstance(layer, Linear):
            prev = add(_node(layer.name), "linear", layer, [prev])
        elif not isinstance(layer, Dropout):
            raise NIRError(f"no NIR node for the layer {type(layer).__name__}")
    add("output", "output", None, [prev])
    return nodes, edges


def _full(shape, value, dtype=np.float64):
    return np.full(tuple(shape), value, dtype)


def _neuron_node(nir, layer, leak, threshold, dt):
    """Eq. 2-5 as a NIR LIF (leak < 1) or IF (leak 1); module docstring."""
    shape, lam, v = layer.in_shape, float(leak), float(threshold)
    meta = {"reset": RESET, "leak": lam, "threshold": v, "dt": dt, "diet_np_layer": layer.name}
    v_threshold = _full(shape, v, np.float32)
    if lam == 1.0:
        return nir.IF(r=_full(shape, 1.0 / dt), v_threshold=v_threshold,
                      v_reset=_full(shape, 0.0, np.float32), metadata=meta)
    return nir.LIF(tau=_full(shape, dt / (1.0 - lam)), r=_full(shape, 1.0 / (1.0 - lam)),
                   v_leak=_full(shape, 0.0), v_threshold=v_threshold,
                   v_reset=_full(shape, 0.0, np.float32), metadata=meta)


def to_nir(net, params, *, arch, T, encoding="direct", dt=DT):
    """The NIR graph of an SNN (``params``: host arrays under diet-np's keys)."""
    nir = _nir()
    nodes, (layout, edges) = {}, plan(net)
    weight = lambda layer: np.asarray(params[f"{layer.name}.weight"], np.float32)
    for name, kind, layer in layout:
        if kind == "input":
            nodes[name] = nir.Input(input_type={"input": np.array(net.input_shape)})
        elif kind == "conv":
            w = weight(layer)
            nodes[name] = nir.Conv2d(input_shape=np.array(layer.in_shape[1:]), weight=w,
                                     stride=np.array([layer.stride] * 2),
                                     padding=np.array([layer.pad] * 2),
                                     dilation=np.array([1, 1]), groups=1,
                                     bias=np.zeros(w.shape[0], np.float32))
        elif kind == "neuron":
            nodes[name] = _neuron_node(nir, layer, params[f"{layer.name}.leak"],
                                       params[f"{layer.name}.threshold"], dt)
        elif kind == "avgpool":
            nodes[name] = nir.AvgPool2d(kernel_size=np.array([layer.k] * 2),
                                        stride=np.array([layer.k] * 2), padding=np.array([0, 0]))
        elif kind == "flatten":
            nodes[name] = nir.Flatten(input_type={"input": np.array(layer.in_shape)},
                                      start_dim=0, end_dim=-1)
        elif kind == "linear":
            nodes[name] = nir.Linear(weight=weight(layer))
        elif kind == "integrator":
            nodes[name] = nir.I(r=_full((layer.classes,), 1.0 / dt),
                                metadata={"readout": "sum over steps (Eq. 6)", "dt": dt})
        else:
            nodes[name] = nir.Output(output_type={"output": np.array([net.num_classes])})
    meta = {"source": "diet-np", "arch": json.dumps(arch), "T": int(T), "dt": dt,
            "reset": RESET, "encoding": encoding,
            "semantics": "one step = one forward-Euler step of length dt; spiking nodes "
                         "reset by subtracting v_threshold (metadata reset), not to v_reset"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def export_nir(path, net, params, model, dt=DT) -> None:
    """``export --format nir``: an SNN checkpoint's graph to ``path``, atomically."""
    if model.kind != "snn":
        raise NIRError(f"export --format nir takes an SNN checkpoint; this one is an "
                       f"{model.kind.upper()} (convert it first)")
    from .checkpoint import atomic_write
    nir = _nir()
    graph = to_nir(net, params, arch=model.arch, T=model.T, encoding=model.encoding, dt=dt)
    buffer = io.BytesIO()                  # h5py writes to a seekable, readable file
    nir.write(buffer, graph)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


# -- import -----------------------------------------------------------------------------------
def _value(node, name, path, field, shape=None):
    a = getattr(node, field, None)
    if not isinstance(a, np.ndarray) or (shape is not None and tuple(a.shape) != tuple(shape)):
        got = getattr(a, "shape", type(a).__name__)
        raise NIRError(f"{path}: node {name!r} has {field} {got}; expected shape {shape}")
    return a


def _uniform(node, name, path, field, shape):
    a = _value(node, name, path, field, shape)
    if a.size and not np.all(a == a.flat[0]):
        raise NIRError(f"{path}: node {name!r} has different {field} per neuron; diet-np has "
                       "one per layer")
    return float(a.flat[0])


def _neuron_params(nir, node, name, path, layer, dt):
    """``(leak, threshold)`` of a LIF/IF node written as :func:`_neuron_node` writes it."""
    shape = layer.in_shape
    reset = (node.metadata or {}).get("reset")
    if isinstance(reset, bytes):
        reset = reset.decode()
    if reset != RESET:
        raise NIRError(f"{path}: node {name!r} has metadata reset {reset!r}; diet-np's neurons "
                       f"reset by subtraction and read only nodes marked reset = {RESET!r}")
    v = _uniform(node, name, path, "v_threshold", shape)
    if isinstance(node, nir.IF):
        r, leak = _uniform(node, name, path, "r", shape), 1.0
        if not np.isclose(r * dt, 1.0, rtol=1e-9):
            raise NIRError(f"{path}: IF node {name!r} has r = {r:g}; one step adds the input "
                           f"only when r = 1/dt = {1 / dt:g}")
    elif isinstance(node, nir.LIF):
        tau, r = (_uniform(node, name, path, f, shape) for f in ("tau", "r"))
        if _uniform(node, name, path, "v_leak", shape) != 0.0:
            raise NIRError(f"{path}: LIF node {name!r} has v_leak != 0")
        leak = 1.0 - dt / tau
        if not np.isclose(r * (1.0 - leak), 1.0, rtol=1e-6):
            raise NIRError(f"{path}: LIF node {name!r} has r = {r:g}; with tau = {tau:g} and "
                           f"dt = {dt:g} one step adds the input only when r = tau/dt")
    else:
        raise NIRError(f"{path}: node {name!r} is {type(node).__name__}, not LIF or IF")
    if not 0.0 <= leak <= 1.0 or not v > 0.0:
        raise NIRError(f"{path}: node {name!r} gives leak {leak:g} and threshold {v:g}; "
                       "diet-np needs 0 <= leak <= 1 and threshold > 0")
    return np.asarray(leak, TRAIN_DTYPE), np.asarray(v, TRAIN_DTYPE)


def _check_layer(nir, node, name, path, kind, layer, dt):
    """Node type and hyper-parameters of a conv, pool or flatten node."""
    want = {"conv": nir.Conv2d, "avgpool": nir.AvgPool2d, "flatten": nir.Flatten,
            "linear": nir.Linear, "integrator": nir.I, "input": nir.Input,
            "output": nir.Output}[kind]
    if type(node) is not want:
        raise NIRError(f"{path}: node {name!r} is {type(node).__name__}; expected "
                       f"{want.__name__}")
    if kind == "conv":
        fields = {"stride": layer.stride, "padding": layer.pad, "dilation": 1}
        for field, value in fields.items():
            if not np.all(np.asarray(getattr(node, field)) == value) or node.groups != 1:
                raise NIRError(f"{path}: Conv2d node {name!r} has {field} "
                               f"{getattr(node, field)} (groups {node.groups}); the network's "
                               f"is {value} (groups 1)")
        if np.any(_value(node, name, path, "bias", (layer.channels,)) != 0):
            raise NIRError(f"{path}: Conv2d node {name!r} has a non-zero bias; diet-np's "
                           "convolutions have none")
    elif kind == "avgpool":
        for field, value in (("kernel_size", layer.k), ("stride", layer.k), ("padding", 0)):
            if not np.all(np.asarray(getattr(node, field)) == value):
                raise NIRError(f"{path}: AvgPool2d node {name!r} has {field} "
                               f"{getattr(node, field)}; the network's is {value}")
    elif kind == "integrator":
        r = _uniform(node, name, path, "r", (layer.classes,))
        if not np.isclose(r * dt, 1.0, rtol=1e-9):
            raise NIRError(f"{path}: integrator {name!r} has r = {r:g}, not 1/dt = {1 / dt:g}")


def from_nir(graph, arch, num_classes, path="graph"):
    """``(net, params, "snn")`` of a graph written by :func:`to_nir` for ``arch``."""
    nir = _nir()
    meta = dict(graph.metadata or {})
    recorded = _record(meta, path).get("arch", arch)
    if recorded != arch:
        raise NIRError(f"{path} was exported from a {arch_name(recorded)} network, "
                       f"not {arch_name(arch)}")
    try:
        dt = float(meta.get("dt", DT))
    except (TypeError, ValueError):
        dt = float("nan")
    if not 0 < dt < float("inf"):
        raise NIRError(f"{path}: its metadata dt = {meta.get('dt')!r:.40} is not a positive "
                       "number")
    net = build_network(arch, num_classes)
    nodes, edges = plan(net)
    want = {n for n, _, _ in nodes}
    if set(graph.nodes) != want:
        extra = sorted(set(graph.nodes) - want)[:3]
        absent = sorted(want - set(graph.nodes))[:3]
        raise NIRError(f"{path}: its nodes are not those of {arch_name(arch)} as diet-np "
                       f"exports it (unexpected {extra}, missing {absent})")
    if sorted(map(tuple, graph.edges)) != sorted(edges):
        odd = sorted(set(map(tuple, graph.edges)) ^ set(edges))[:2]
        raise NIRError(f"{path}: its edges are not those of {arch_name(arch)} (differ at {odd})")
    params = {}
    for name, kind, layer in nodes:
        node = graph.nodes[name]
        if kind == "neuron":
            params[f"{layer.name}.leak"], params[f"{layer.name}.threshold"] = \
                _neuron_params(nir, node, name, path, layer, dt)
            continue
        _check_layer(nir, node, name, path, kind, layer, dt)
        if kind in ("conv", "linear"):
            key = f"{layer.name}.weight"
            w = _value(node, name, path, "weight", net.specs[key].shape)
            if w.dtype.kind != "f" or not np.isfinite(w).all():
                raise NIRError(f"{path}: node {name!r} has {w.dtype} weights"
                               + ("" if w.dtype.kind != "f" else " with NaN or infinite values"))
            params[key] = np.asarray(w, TRAIN_DTYPE)
    params = {k: params[k] for k in net.specs}
    net.validate(params, mode="snn")
    return net, params, "snn"


def _record(meta, path):
    """What the graph's metadata says of the model: ``arch``, ``T``, ``kind``."""
    record = {"kind": "snn"}
    try:
        if "arch" in meta:
            record["arch"] = json.loads(meta["arch"])
        if "T" in meta:
            record["T"] = int(meta["T"])
    except (TypeError, ValueError) as exc:
        raise NIRError(f"{path}: its metadata arch {meta.get('arch')!r:.60} or T "
                       f"{meta.get('T')!r:.20} is not readable") from exc
    if record.get("T", 1) < 1:
        raise NIRError(f"{path}: its metadata T = {record['T']} is not a positive integer")
    return record


def read_nir(path):
    """``(graph, record)`` of a ``.nir`` file: the graph (``nir.read``) and what its
    metadata says of the model (``arch``, ``T``, ``kind``)."""
    nir = _nir()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise NIRError(f"{path}: no such file")
    try:
        graph = nir.read(path)
    except Exception as exc:      # h5py and nir raise many kinds for a damaged file
        raise NIRError(f"{path}: not a readable NIR file ({type(exc).__name__}: "
                       f"{str(exc)[:120]})") from exc
    return graph, _record(dict(graph.metadata or {}), path)
