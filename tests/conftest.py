"""Shared helpers: small networks whose every layer spikes; running and checking lessons;
killing a training run and resuming it; a learnable CIFAR-10 copy in the official layout."""
import hashlib
import importlib
import os
import pickle
import re
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from diet_np.backend import gpu_available


def lively_params(net, seed, threshold=(0.2, 0.5), leak=(0.6, 0.95), gain=3.0):
    """float64 parameters scaled so that every layer is active: weights
    N(0, gain/sqrt(fan_in)), leaks and thresholds drawn uniformly."""
    rng = np.random.default_rng(seed)
    params = {}
    for key, spec in net.specs.items():
        if spec.kind == "weight":
            fan_in = int(np.prod(spec.shape[1:]))
            params[key] = rng.normal(0.0, gain / np.sqrt(fan_in), spec.shape)
        elif spec.kind == "leak":
            params[key] = np.array(rng.uniform(*leak))
        else:
            params[key] = np.array(rng.uniform(*threshold))
    return params


def with_thresholds(params, value):
    """Set every layer's threshold to ``value`` in place (low enough that the default
    init spikes); returns ``params``."""
    for key in params:
        if key.endswith(".threshold"):
            params[key][...] = value
    return params


CONV_CHOICES = ["im2col", "winograd", "winograd-4x4"]
"""The fast engine's convolution paths to test: im2col, Winograd with the layer's own
tile size (F(2x2, 3x3) for the small layers of the tests), and Winograd forced to
F(4x4, 3x3) wherever the maps divide by 4."""

ENGINE_CHOICES = ["reference"] + [f"fast-{conv}" for conv in CONV_CHOICES]
"""Whole-network paths to test: the reference engine, and the fast one under each
convolution path."""


def engine_named(choice, threads=None):
    """The :class:`~diet_np.engine.Engine` of one of ENGINE_CHOICES."""
    from diet_np.engine import Engine

    if choice == "reference":
        return Engine("reference")
    return Engine("fast", conv=choice[len("fast-"):], threads=threads)


def check_percent_notebook(path):
    """A lesson is a jupytext percent notebook with markdown cells that cites equations."""
    text = path.read_text()
    assert "format_name: percent" in text
    assert text.count("# %% [markdown]") >= 3 and re.search(r"^# %%$", text, re.M)
    assert re.search(r"Eq\. \d+", text), "a lesson cites the equations it covers"
    return text


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):   # not "gpu" in item.keywords: that also matches
            item.add_marker(skip)            # a folder named gpu on the test's path


LESSONS = Path(__file__).resolve().parent.parent / "lessons"


def _fresh_common(monkeypatch):
    """Import diet_np.lessons.common anew (it reads the environment when imported)."""
    monkeypatch.delitem(sys.modules, "diet_np.lessons.common", raising=False)
    return importlib.import_module("diet_np.lessons.common")


def lesson_runner(monkeypatch, out_dir, files, figures):
    """Generator for a fixture: yields ``run(number)``, which runs a lesson in quick
    mode (``runpy``, as ``__main__``) with its figures in ``out_dir``, checks that
    they were written and returns the lesson's globals; afterwards restores
    OpenBLAS's thread count (quick mode sets it to 1)."""
    monkeypatch.delenv("DIET_NP_QUICK", raising=False)
    monkeypatch.delenv("DIET_NP_SHOW", raising=False)
    threads_before = _fresh_common(monkeypatch).blas_threads()
    monkeypatch.setenv("DIET_NP_QUICK", "1")
    monkeypatch.setenv("DIET_NP_LESSON_OUT", str(out_dir))
    state = {}

    def run(number):
        state["common"] = _fresh_common(monkeypatch)
        assert state["common"].QUICK
        g = runpy.run_path(str(LESSONS / files[number]), run_name="__main__")
        for name in figures[number]:
            figure = Path(out_dir) / f"{name}.png"
            assert figure.is_file() and figure.stat().st_size > 5000, f"missing figure {name}"
        return g

    yield run
    if threads_before is not None and "common" in state:
        state["common"].blas_threads(threads_before)


def kill_and_resume(command, out, timeout=300):
    """Run the training command ``command + ["--out", out]`` (3 epochs or more) in a
    subprocess, SIGKILL it at a random time within two epochs of its first checkpoint
    (so before it ends), then run it again with ``--resume`` to the end.  Returns
    ``(epochs checkpointed when killed, seconds after the first checkpoint)``."""
    from diet_np.model_file import read_model

    out = Path(out)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    with open(out.parent / f"{out.name}.stderr", "w") as err:
        proc = subprocess.Popen([*command, "--out", str(out)], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.time() + timeout
        while not (out / "checkpoint.npz").exists():
            assert proc.poll() is None, f"the run failed: {(out.parent / f'{out.name}.stderr').read_text()}"
            assert time.time() < deadline, "no checkpoint in time"
            time.sleep(0.02)
        epoch = read_model(out / "checkpoint.npz").history[0]["train_seconds"]
        delay = float(np.random.default_rng().uniform(0, 2 * epoch))
        time.sleep(delay)
        assert proc.poll() is None, f"the run ended before the kill, {delay:.2f} s after epoch 1"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = read_model(out / "checkpoint.npz").epoch
    subprocess.run([*command, "--out", str(out), "--resume"], check=True, env=env,
                   capture_output=True)
    return done, delay


def colour_batch(rng, n, tag):
    """A batch dict in the official layout whose class is the images' colour (learnable)."""
    colours = np.random.default_rng(0).integers(40, 216, size=(10, 3))
    y = rng.integers(0, 10, size=n)
    x = colours[y][:, :, None, None] + rng.normal(0, 25, size=(n, 3, 32, 32))
    return {b"batch_label": tag, b"labels": [int(v) for v in y],
            b"data": np.clip(x, 0, 255).astype(np.uint8).reshape(n, 3072),
            b"filenames": [b"%d.png" % i for i in range(n)]}


def write_cifar(root, files):
    """Pickle ``files`` ({name: (dict, protocol)}) into ``root/cifar-10-batches-py`` and
    list them in ``root/SHA256SUMS``; return {name: the bytes written}."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {name: pickle.dumps(obj, protocol=protocol) for name, (obj, protocol) in files.items()}
    for name, raw in written.items():
        (folder / name).write_bytes(raw)
    (root / "SHA256SUMS").write_text("".join(
        f"{hashlib.sha256(raw).hexdigest()}  cifar-10-batches-py/{name}\n"
        for name, raw in written.items()))
    return written


def colour_cifar(root, n, seed=0):
    """``root`` as a CIFAR-10 copy of two training batches and a test batch of ``n``
    colour-coded images each (learnable in an epoch or two); returns the bytes written."""
    rng = np.random.default_rng(seed)
    return write_cifar(root, {
        "data_batch_1": (colour_batch(rng, n, b"training batch 1 of 5"), 4),
        "data_batch_2": (colour_batch(rng, n, b"training batch 2 of 5"), 4),
        "test_batch": (colour_batch(rng, n, b"testing batch 1 of 1"), 4),
        "batches.meta": ({b"label_names": [b"c%d" % i for i in range(10)]}, 2)})


def vgg5_files(folder):
    """vgg5 checkpoints on 20 / 10 shapes images in ``folder`` (weights seeded 1, every
    leak 0.9 and threshold 0.5): ``ann.npz``, ``snn.npz`` (T=3) and ``rate.npz`` (the
    SNN with rate-coded input).  Returns the parameters."""
    from diet_np.architectures import build_network
    from diet_np.model_file import data_record
    from diet_np.pipeline import load_data, save_model

    data = load_data("shapes", n_train=20, n_test=10, seed=0)
    net = build_network("vgg5", data.num_classes)
    params = net.init_params(1)
    for name in net.neurons:
        params[f"{name}.leak"][...], params[f"{name}.threshold"][...] = 0.9, 0.5
    for name, kind, T, origin in (("ann", "ann", 1, {}), ("snn", "snn", 3, {}),
                                  ("rate", "snn", 3, {"encoding": "rate"})):
        save_model(Path(folder) / f"{name}.npz", params, arch="vgg5", kind=kind, T=T,
                   data=data_record(data), origin=origin)
    return params
