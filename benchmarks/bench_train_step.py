"""Time one DIET-SNN training step in diet_np and in the same network in PyTorch.

A training step is the forward pass over T steps, BPTT, an Adam (AMSGrad) update
and the clamp of Eq. 15.  The PyTorch network (``torch_reference.py``) is written
with autograd; both run the same architecture, batch, T, float32 dtype, dropout
rates and triangle surrogate (Eq. 8, gamma = 0.3).

Sections of the report (markdown tables):

1. machine, libraries, BLAS kernel and threads, load average;
2. sgemm GFLOP/s of NumPy's BLAS on conv-shaped products (the ceiling);
3. training step: diet_np and PyTorch alternated in one process, each run
   after a pause; medians of steady-state steps (the first step after the
   pause apart, see :func:`alternate`), the ratio diet_np / PyTorch,
   and each one's peak memory measured
   from outside (the max RSS of a child process that runs only that
   implementation, read by the parent with ``os.wait4``);
4. evaluation throughput (images/s, forward only, no dropout);
5. conv forward+backward GFLOP/s per layer of the small VGG, against the ceiling
   (effective rates: the direct convolution's multiply-adds over the time taken,
   so a Winograd layer, which does 2.25x fewer, can pass the ceiling);
6. step time against T and against batch, with the exponent fitted by least
   squares on log-log axes (1.0 = linear).

Every timing is taken on two clocks: wall time, and the CPU time of the process
(all its threads).  On a machine shared with other work the wall time of a
single-threaded run grows with the load while its CPU time does not, so with
``--threads 1`` the CPU time is the steadier measure of the work done; with more
threads it also counts threads spinning while they wait.  ``--clock`` picks the
clock of the ratios and of sections 4-6.

Run ``python3 benchmarks/bench_train_step.py --help`` for the options;
``--quick`` runs every section at small sizes in under a minute, ``--check`` first
verifies in float64 that PyTorch's gradients equal diet_np's.

The threads of both libraries are set before they are imported (``--threads``).
The report names OpenBLAS's kernel.  Some environments pin it: the project's
machines set ``OPENBLAS_CORETYPE=Haswell`` and ``OPENBLAS_L2_SIZE`` (older
OpenBLAS builds fail on some processors), which on their AVX-512 CPU (AMD Zen 5)
runs AVX2 kernels, half the width that NumPy's OpenBLAS picks there by itself
(SkylakeX) and that PyTorch's oneDNN uses.  By default (``--blas-core native``)
the benchmark unsets both variables for its own run, so that OpenBLAS chooses its
kernels as on a machine that sets neither (PyTorch does not read them);
``--blas-core env`` keeps the environment's settings, ``--blas-core NAME`` sets
``OPENBLAS_CORETYPE=NAME``.

The process keeps freed memory (``--malloc keep``, the default: see
:mod:`diet_np.host_memory`, which diet_np's training loop calls): it applies to
both libraries, and takes most of the step-to-step variation out of the timings.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {   # name: (architecture, batch, T); 32x32 inputs, 10 classes
    "small": ("vgg5", 32, 5),
    "vgg16": ("vgg16", 16, 5),
}
GPU_CONFIGS = {"small": ("vgg5", 64, 5), "vgg16": ("vgg16", 64, 5)}
QUICK = {"small": ("vgg5", 8, 2), "vgg16": ("vgg16", 2, 2)}
PAUSE_S = 0.2   # between alternated runs, so that one library's idle spinning
                # threads do not slow the other down
SETTLE_S = 0.2  # after the first call of a run, untimed calls until this long after
                # the pause: after an idle pause two workers ran at one's speed for
                # tens of milliseconds on the project's machine (pause_probe.py)
STEADY = 2      # timed calls per run after settling: a training loop's steady
                # state (the medians reported)


# ---------------------------------------------------------------------------
# environment (before NumPy and PyTorch are imported)
# ---------------------------------------------------------------------------
def configure_environment(args):
    """Thread counts (BLAS, PyTorch's OpenMP, diet_np's CPU pool) and the OpenBLAS
    kernel, set before any BLAS is loaded."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "DIET_NP_THREADS"):
        os.environ[var] = str(args.threads)
    if args.blas_core == "native":
        for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
            os.environ.pop(var, None)
    elif args.blas_core != "env":
        os.environ["OPENBLAS_CORETYPE"] = args.blas_core
    if args.conv:
        os.environ["DIET_NP_CONV"] = args.conv
    os.environ["DIET_NP_KEEP_MEMORY"] = "1" if args.malloc == "keep" else "0"
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from diet_np.host_memory import keep_freed_memory

    keep_freed_memory()         # process-wide: the same for both libraries


def _cpu_has(flag):
    try:
        return any(line.startswith("flags") and flag in line.split()
                   for line in Path("/proc/cpuinfo").read_text().splitlines())
    except OSError:
        return False


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def rss_kib():
    """Current resident set size of this process in KiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


# ---------------------------------------------------------------------------
# the two implementations of one training step
# ---------------------------------------------------------------------------
class Case:
    """One configuration on one device: a network, its parameters and a batch,
    with a diet_np and a PyTorch training step (and evaluation forward)."""

    def __init__(self, arch, batch, T, device="cpu", seed=0):
        import numpy as np

        from diet_np.architectures import build_network
        from diet_np.backend import get_xp, to_device

        self.arch, self.batch, self.T, self.device = arch, batch, T, device
        self.xp = get_xp(device)
        self.net = build_network(arch, num_classes=10)
        self.host_params = self.net.init_params(seed)
        rng = np.random.default_rng(seed)
        self.x_host = rng.normal(size=(batch, 3, 32, 32)).astype(np.float32)
        self.y_host = rng.integers(0, 10, size=batch)
        self.params = to_device(self.host_params, self.xp)
        self.x, self.y = to_device(self.x_host, self.xp), to_device(self.y_host, self.xp)
        self._diet_opt = self._torch = None

    # -- diet_np: the training step of the issue, verbatim ------------------
    def diet_step(self):
        import diet_np.ops
        import diet_np.optim
        from diet_np.backend import default_rng

        if self._diet_opt is None:
            self._diet_opt = diet_np.optim.Adam(1e-4, amsgrad=True)
            self._rng = default_rng(self.xp, 1)
        params, opt, net = self.params, self._diet_opt, self.net
        logits, trace = net.forward(params, self.x, train=True, T=self.T, mode="snn",
                                    rng=self._rng, check=False)
        loss, dlogits = diet_np.ops.softmax_cross_entropy(logits, self.y)
        grads = net.backward(params, dlogits, trace)
        opt.step(params, grads)
        diet_np.optim.clamp_neuron_params(params)
        return loss

    def diet_eval(self):
        return self.net.forward(self.params, self.x, train=False, T=self.T, mode="snn",
                                check=False)[0]

    # -- PyTorch -----------------------------------------------------------
    def torch_model(self):
        if self._torch is None:
            import torch
            import torch_reference

            dev = "cuda" if self.device == "gpu" else "cpu"
            model = torch_reference.TorchSNN(self.net, self.host_params, device=dev)
            opt = torch.optim.Adam(model.params.values(), lr=1e-4, amsgrad=True)
            x = torch.from_numpy(self.x_host).to(dev)
            y = torch.from_numpy(self.y_host).to(dev)
            self._torch = (model, opt, x, y)
        return self._torch

    def torch_step(self, layout):
        import torch_reference

        model, opt, x, y = self.torch_model()
        return torch_reference.training_step(model, opt, x, y, self.T, layout)

    def torch_eval(self, layout):
        import torch

        model, _, x, _ = self.torch_model()
        with torch.no_grad():
            return model.forward(x, self.T, train=False, layout=layout)

    def sync(self):
        """Wait for the device (GPU only): timings include all queued work."""
        if self.device == "gpu":
            import torch

            self.xp.cuda.Device().synchronize()
            torch.cuda.synchronize()


def implementations(case, layouts, kind="step"):
    """name -> callable for every implementation of a training step (or eval):
    ``diet_np`` and ``torch-<layout>`` for each PyTorch loop order.  On the GPU
    ``diet_np`` runs the array-module LIF and ``diet_np-fused`` the fused CUDA
    kernels (:mod:`diet_np.fast.kernels`)."""
    diet = case.diet_step if kind == "step" else case.diet_eval
    if case.device == "gpu":
        fns = {"diet_np": _fused_switch(case, diet, False),
               "diet_np-fused": _fused_switch(case, diet, True)}
    else:
        fns = {"diet_np": diet}
    for layout in layouts:
        fn = case.torch_step if kind == "step" else case.torch_eval
        fns[f"torch-{layout}"] = (lambda fn=fn, layout=layout: fn(layout))
    return fns


def _fused_switch(case, fn, fused):
    """``fn`` run with the network's fast engine using the fused LIF kernels or not."""
    from diet_np.engine import Engine

    def run():
        case.net.engine = Engine("fast", fused_lif=fused)
        return fn()
    return run


def diet_impls(device):
    return ["diet_np", "diet_np-fused"] if device == "gpu" else ["diet_np"]


def alternate(fns, reps, warmup, sync=lambda: None):
    """Run the callables in turn, ``warmup`` rounds untimed, then ``reps`` timed
    rounds.  In a round each one, after a pause of :data:`PAUSE_S`, is timed once
    (the first call after the pause), called untimed until :data:`SETTLE_S` has
    passed since the pause, and timed :data:`STEADY` times more (a training
    loop's steady state).  Returns ``{name: {"wall": [s, ...], "cpu": [...],
    "first_wall": [...], "first_cpu": [...]}}``."""
    times = {name: {"wall": [], "cpu": [], "first_wall": [], "first_cpu": []} for name in fns}

    def timed(name, prefix, record):
        fn = fns[name]
        sync()
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        if record:
            times[name][prefix + "wall"].append(time.perf_counter() - wall)
            times[name][prefix + "cpu"].append(time.process_time() - cpu)

    for r in range(warmup + reps):
        for name, fn in fns.items():
            time.sleep(PAUSE_S)
            start = time.perf_counter()
            timed(name, "first_", r >= warmup)
            while time.perf_counter() - start < SETTLE_S:
                fn()
                sync()
            for _ in range(STEADY):
                timed(name, "", r >= warmup)
    return times


def median(values):
    return statistics.median(values)


# ---------------------------------------------------------------------------
# peak memory, from outside: one child process per implementation
# ---------------------------------------------------------------------------
def child_main(args):
    """Run two training steps of one implementation; print the RSS before them."""
    arch, batch, T = args.child_case.split(",")
    case = Case(arch, int(batch), int(T), args.device)
    layouts = [] if args.child.startswith("diet_np") else [args.child[len("torch-"):]]
    step = implementations(case, layouts)[args.child]
    if layouts:
        import torch

        torch.set_num_threads(args.threads)
        case.torch_model()
    before = rss_kib()
    for _ in range(2):
        step()
        case.sync()
    report = {"rss_before_kib": before}
    if args.device == "gpu":
        report["gpu_bytes"] = _gpu_pool_bytes(args.child)
    print(json.dumps(report))


def _gpu_pool_bytes(impl):
    """Device memory held by the library's caching allocator (its high-water mark)."""
    if impl.startswith("diet_np"):
        import cupy

        return cupy.get_default_memory_pool().total_bytes()
    import torch

    return torch.cuda.max_memory_reserved()


def measure_memory(impl, arch, batch, T, args):
    """Peak RSS (KiB) of a child running ``impl``, read with os.wait4, and the
    child's own report (RSS before the steps; GPU pool size on the GPU).

    Linux keeps a process's max RSS across exec, so a child started by a process
    that already holds NumPy or PyTorch would inherit that as its maximum: call
    this before importing them.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", impl,
           "--child-case", f"{arch},{batch},{T}", "--device", args.device,
           "--threads", str(args.threads), "--malloc", args.malloc,
           "--blas-core", args.blas_core]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"memory child {impl} failed:\n{err.read()}")
        report = json.loads(out.read().strip().splitlines()[-1])
    report["peak_kib"] = usage.ru_maxrss
    return report


# ---------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------
def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    print("\n".join(lines) + "\n", flush=True)


def fit_exponent(xs, ys):
    """Slope of log y against log x by least squares (1.0 = linear)."""
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def load_average():
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def section_machine(args):
    import numpy as np

    print("## Machine\n")
    rows = [("CPU", f"{cpu_name()}, {os.cpu_count()} logical cores"),
            ("load average (1, 5, 15 min)", load_average()),
            ("Python", platform.python_version()), ("NumPy", np.__version__)]
    from diet_np.fast.parallel import num_workers, openblas

    blas = openblas()
    if blas:
        pinned = ", ".join(f"{var}={os.environ[var]}" for var in
                           ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if var in os.environ)
        rows.append(("OpenBLAS kernel, threads",
                     f"{blas.corename}, {blas.threads}"
                     + (f" (pinned: {pinned})" if pinned else " (OpenBLAS's own choice)")))
        if _cpu_has("avx512f") and blas.corename.lower() in ("haswell", "zen"):
            rows.append(("note", "AVX-512 CPU but AVX2 BLAS kernels (pinned by the environment; "
                                 "--blas-core native lets OpenBLAS choose)"))
    rows.append(("diet_np CPU pool", f"{num_workers()} worker(s) (DIET_NP_THREADS); OpenBLAS "
                 "single-threaded inside a pass when more than one"))
    from diet_np.host_memory import keep_freed_memory

    rows.append(("host malloc", "glibc keeps freed memory, for the whole process "
                 "(diet_np.fast.host_memory, as diet_np's training sets it)"
                 if keep_freed_memory() else "as the environment has it (--malloc default)"))
    from diet_np.fast import winograd

    rows.append(("diet_np convolutions", f"DIET_NP_CONV={os.environ.get('DIET_NP_CONV', 'auto')} "
                 "(auto: Winograd F(2x2,3x3) for 3x3 layers with >= 32 input channels on the "
                 f"CPU, F(4x4,3x3) from {winograd.WIDE_CHANNELS} channels on maps of at least "
                 f"{winograd.WIDE_MAP}x{winograd.WIDE_MAP}, im2col otherwise)"))
    try:
        import torch

        torch.set_num_threads(args.threads)
        rows.append(("PyTorch", f"{torch.__version__}, {torch.get_num_threads()} threads"))
    except ImportError:
        rows.append(("PyTorch", "not installed"))
    if args.device == "gpu":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        rows.append(("GPU", f"{props['name'].decode()}, CuPy {cupy.__version__}"))
        rows.append(("fused LIF kernels", "timed both ways: diet_np (Engine(fused_lif=False)) "
                     "and diet_np-fused (fused_lif=True)"))
        rows.append(("precision", "full float32 on both sides: CuPy's matmul and PyTorch's "
                     "cuBLAS/cuDNN with TF32 off"))
    table(["", ""], rows)
    print("The machine may be shared with other work (see the load average): timings are "
          f"medians of alternated runs, on the {args.clock} clock unless both are shown.\n")


def section_check():
    import torch_reference

    print("## Parity check (float64, tiny VGG, dropout off)\n")
    rows, worst = [], 0.0
    for layout in torch_reference.LAYOUTS:
        errors = torch_reference.parity_check(layout=layout)
        key = max(errors, key=errors.get)
        worst = max(worst, errors[key])
        rows.append((layout, f"{errors[key]:.1e} ({key})", len(errors)))
    table(["PyTorch layout", "largest relative error", "quantities compared"], rows)
    if not worst < 1e-10:
        raise SystemExit(f"parity check failed: relative error {worst:.1e}")


def sgemm_shapes(case):
    """(M, K, N) of the forward products of the small VGG's convs (C_out, C_in*9,
    T*B*H*W), the sizes diet_np's conv layers multiply, and a square one."""
    shapes = []
    for layer in case.net.body.layers:
        if type(layer).__name__ == "Conv" and not layer.first:
            c_out, h, w = layer.out_shape
            shapes.append((c_out, layer.in_shape[0] * 9, case.batch * case.T * h * w))
    return shapes + [(1024, 1024, 1024)]


def section_sgemm(args, case, reps):
    """The ceiling: NumPy (or CuPy) float32 matmul on conv-shaped operands (the
    products an im2col convolution cannot beat); a square product for reference.
    Returns ``(conv-shaped best, square)`` GFLOP/s."""
    import numpy as np

    xp = case.xp
    lib = "CuPy" if args.device == "gpu" else "NumPy"
    print(f"## sgemm ceiling ({lib} matmul, float32, {args.clock} clock)\n")
    rows, rates = [], []
    for m, k, n in sgemm_shapes(case):
        a = xp.asarray(np.random.default_rng(0).random((m, k), dtype=np.float32))
        b = xp.asarray(np.random.default_rng(1).random((k, n), dtype=np.float32))
        t = median(alternate({"mm": lambda: a @ b}, reps, 1, case.sync)["mm"][args.clock])
        rates.append(2 * m * k * n / t / 1e9)
        rows.append((f"({m} x {k}) @ ({k} x {n})", f"{t * 1e3:.1f}", f"{rates[-1]:.0f}"))
    table(["product", "median ms", "GFLOP/s"], rows)
    ceiling = max(rates[:-1])
    print(f"Ceiling: **{ceiling:.0f} GFLOP/s**, the best conv-shaped product "
          f"(square: {rates[-1]:.0f}).\n")
    return ceiling, rates[-1]


def section_train_step(args, configs, layouts, reps, warmup, memory):
    print("## Training step (forward over T, BPTT, Adam, clamp)\n")
    rows = []
    for name, (arch, batch, T) in configs.items():
        case = Case(arch, batch, T, args.device)
        times = alternate(implementations(case, layouts), reps, warmup, case.sync)
        med = {k: {c: median(v[c]) for c in v} for k, v in times.items()}
        best = min((k for k in med if not k.startswith("diet_np")), key=lambda k: med[k][args.clock])
        for impl, t in med.items():
            ratio = "baseline" if impl == best else \
                " / ".join(f"{t[c] / med[best][c]:.2f}" for c in ("wall", "cpu"))
            first = f"{t['first_wall'] * 1e3:.0f}" + \
                ("" if impl == best else f" ({t['first_wall'] / med[best]['first_wall']:.2f})")
            row = [f"{name} ({arch}, B={batch}, T={T})", impl,
                   f"{t['wall'] * 1e3:.0f}", f"{t['cpu'] * 1e3:.0f}", ratio, first]
            if impl in memory.get(name, {}):
                m = memory[name][impl]
                row += [f"{m['peak_kib'] / 1024:.0f}",
                        f"{(m['peak_kib'] - m['rss_before_kib']) / 1024:.0f}"]
                if "gpu_bytes" in m:
                    row.append(f"{m['gpu_bytes'] / 2**20:.0f}")
            rows.append(row)
    header = ["config", "implementation", "wall ms", "CPU ms", "ratio to PyTorch (wall / CPU)",
              "first step after the pause, wall ms (ratio)"]
    if memory:
        header += ["peak RSS MiB", "peak - RSS before the step MiB"]
        if args.device == "gpu":
            header.append("GPU pool MiB")
    table(header, rows)
    print(f"{reps} timed rounds after {warmup} warm-up round(s), the implementations "
          f"alternated; in each round an implementation runs after a {PAUSE_S} s pause: one "
          f"step timed apart (the first after the pause), untimed steps until {SETTLE_S} s "
          f"have passed, then {STEADY} timed steps, a training loop's steady state, whose "
          "medians are the wall and CPU ms.  "
          f"The baseline is the faster PyTorch loop order on the {args.clock} clock.  "
          "Peak RSS: the max resident set of a child process that runs two steps of one "
          "implementation only, read by this process with os.wait4; the last column "
          "subtracts the RSS the child had before its first step (libraries, parameters, "
          "data).\n")


def section_eval(args, configs, layouts, reps, warmup):
    print(f"## Evaluation throughput (forward only, no dropout, {args.clock} clock)\n")
    rows = []
    for name, (arch, batch, T) in configs.items():
        case = Case(arch, batch, T, args.device)
        times = alternate(implementations(case, layouts, "eval"), reps, warmup, case.sync)
        for impl, ts in times.items():
            t = median(ts[args.clock])
            rows.append((f"{name} ({arch}, B={batch}, T={T})", impl, f"{t * 1e3:.0f}",
                         f"{batch / t:.0f}"))
    table(["config", "implementation", "ms per batch", "images/s"], rows)


def section_conv(args, case, ceilings, reps):
    """Forward + backward of every conv of the small VGG at its training shape."""
    import numpy as np

    from diet_np import fast, settings
    from diet_np.fast.parallel import pool_scope

    print(f"## Conv forward+backward, {case.arch} (B={case.batch}, T={case.T}, "
          f"{args.clock} clock)\n")
    xp, rng = case.xp, np.random.default_rng(0)
    rows, total_flop, total, total_first = [], 0, {"diet_np": 0.0, "torch": 0.0}, 0.0
    for layer in case.net.body.layers:
        if type(layer).__name__ != "Conv":
            continue
        n = case.batch if layer.first else case.batch * case.T
        c_in, h, w = layer.in_shape
        x_host = rng.random((n, c_in, h, w), dtype=np.float32)
        if not layer.first:                           # spikes
            x_host = (x_host > 0.8).astype(np.float32)
        w_host = case.host_params[f"{layer.name}.weight"]
        x, wt = xp.asarray(x_host), xp.asarray(w_host)
        choice = settings.conv_algorithm()
        out, _ = fast.conv2d_forward(x, wt, layer.stride, layer.pad, choice)
        dout_host = rng.normal(size=out.shape).astype(np.float32)
        dout = xp.asarray(dout_host)

        def diet():                  # as inside Network.forward / backward
            with pool_scope(xp):
                _, cache = fast.conv2d_forward(x, wt, layer.stride, layer.pad, choice)
                fast.conv2d_backward(dout, cache, need_dx=not layer.first)

        fns = {"diet_np": diet}
        torch_fn = _torch_conv(x_host, w_host, dout_host, layer, args.device)
        if torch_fn:
            fns["torch"] = torch_fn
        times = alternate(fns, reps, 1, case.sync)
        t = {k: median(v[args.clock]) for k, v in times.items()}
        first = median(times["diet_np"]["first_" + args.clock])
        macs = n * layer.out_shape[1] * layer.out_shape[2] * layer.channels * c_in * 9
        flop = 2 * macs * (2 if layer.first else 3)       # no dx for layer 1
        total_flop += flop
        rate = flop / t["diet_np"] / 1e9
        row = [layer.name, f"{n}x{c_in}x{h}x{w} -> {layer.channels}",
               _algorithm_name(x.shape, wt.shape, layer, xp), f"{flop / 1e9:.2f}",
               f"{t['diet_np'] * 1e3:.1f}", f"{first * 1e3:.1f}", f"{rate:.0f}",
               " / ".join(f"{100 * rate / c:.0f}%" for c in ceilings)]
        for k in t:
            total[k] += t[k]
        total_first += first
        if "torch" in t:
            row.append(f"{flop / t['torch'] / 1e9:.0f}")
        rows.append(row)
    overall = total_flop / total["diet_np"] / 1e9
    rows.append(["all convs", "", "", f"{total_flop / 1e9:.2f}", f"{total['diet_np'] * 1e3:.1f}",
                 f"{total_first * 1e3:.1f}", f"{overall:.0f}",
                 " / ".join(f"{100 * overall / c:.0f}%" for c in ceilings)] +
                ([f"{total_flop / total['torch'] / 1e9:.0f}"] if total["torch"] else []))
    table(["layer", "input -> C_out", "diet_np algorithm", "GFLOP", "diet_np ms",
           "diet_np ms, first call after the pause", "diet_np GFLOP/s",
           "of sgemm ceiling / of square sgemm"]
          + (["PyTorch GFLOP/s"] if total["torch"] else []), rows)
    print("GFLOP counts 2 per multiply-add of the direct convolution for the forward, the "
          "weight gradient and the input gradient (layer 1, fed by the image, needs no input "
          "gradient); rates are effective: Winograd layers do 2.25x fewer multiply-adds.\n")


def _algorithm_name(x_shape, w_shape, layer, xp):
    """How diet_np computes this conv layer: im2col or Winograd F(m x m, 3x3)."""
    from diet_np import settings
    from diet_np.fast.conv import algorithm

    m = algorithm(x_shape, w_shape, layer.stride, layer.pad, xp, settings.conv_algorithm())
    return f"winograd F({m}x{m},3x3)" if m else "im2col"


def _torch_conv(x_host, w_host, dout_host, layer, device):
    try:
        import torch
        import torch.nn.functional as F
        import torch_reference  # noqa: F401  (sets full float32 on CUDA)
    except ImportError:
        return None
    dev = "cuda" if device == "gpu" else "cpu"
    x = torch.tensor(x_host, device=dev, requires_grad=not layer.first)
    w = torch.tensor(w_host, device=dev, requires_grad=True)
    g = torch.tensor(dout_host, device=dev)

    def run():
        F.conv2d(x, w, stride=layer.stride, padding=layer.pad).backward(g)

    return run


def section_scaling(args, arch, batch, T, Ts, batches, layouts, reps):
    print(f"## Scaling of the training step, {arch} ({args.clock} clock)\n")
    for axis, values in (("T", Ts), ("batch", batches)):
        per_impl = {}
        for v in values:
            b, t = (batch, v) if axis == "T" else (v, T)
            case = Case(arch, b, t, args.device)
            times = alternate(implementations(case, layouts), reps, 1, case.sync)
            for impl, ts in times.items():
                per_impl.setdefault(impl, []).append(median(ts[args.clock]))
        rows = [[impl] + [f"{s * 1e3:.0f}" for s in ts] + [f"{fit_exponent(values, ts):.2f}"]
                for impl, ts in per_impl.items()]
        fixed = f"B={batch}" if axis == "T" else f"T={T}"
        table([f"ms per step ({fixed}) at {axis} =", *map(str, values), "fitted exponent"], rows)


# ---------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=["small", "vgg16", "all"], default=None,
                   help="default all; small with --quick")
    p.add_argument("--quick", action="store_true",
                   help="small sizes, few repetitions, PyTorch folded only (under a minute)")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--check", action="store_true",
                   help="first verify PyTorch's gradients equal diet_np's (float64)")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions (default 7, quick 2)")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="threads for OpenBLAS and PyTorch (default: all cores)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="clock for ratios and sections 4-6 (cpu: steadier with --threads 1 "
                        "on a loaded machine)")
    p.add_argument("--blas-core", default="native",
                   help="native (default): unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for "
                        "this run (OpenBLAS picks its kernels); env: keep the environment's; "
                        "NAME: set OPENBLAS_CORETYPE=NAME")
    p.add_argument("--conv", choices=["auto", "im2col", "winograd"], default=None,
                   help="set DIET_NP_CONV, diet_np's convolution algorithm; default: as the "
                        "environment has it (auto)")
    p.add_argument("--torch-layout", default=None,
                   help="PyTorch loop orders to time, comma-separated (folded, stepwise); "
                        "default both, quick folded")
    p.add_argument("--malloc", choices=["keep", "default"], default="keep",
                   help="keep: glibc keeps freed memory for reuse, process-wide (both "
                        "libraries; what diet_np's training loop sets); default: as the "
                        "environment has it")
    p.add_argument("--skip-memory", action="store_true", help="no memory children")
    p.add_argument("--sections", default="sgemm,step,eval,conv,scaling",
                   help="comma-separated subset of sgemm, step, eval, conv, scaling")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-case", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.device == "gpu" and args.clock == "cpu":
        p.error("--clock cpu measures host work only; use the wall clock on the GPU")
    return args


def check_device(args):
    """A clear error when the GPU path is asked for but cannot run."""
    if args.device != "gpu":
        return
    from diet_np.backend import gpu_status

    ok, reason = gpu_status()
    if not ok:
        raise SystemExit(f"--device gpu needs CuPy and a CUDA device: {reason}")
    try:
        import torch
    except ImportError:
        raise SystemExit("--device gpu needs PyTorch with CUDA for the baseline") from None
    if not torch.cuda.is_available():
        raise SystemExit("--device gpu: PyTorch was built without CUDA or sees no GPU")


def main(argv=None):
    args = parse_args(argv)
    configure_environment(args)
    if args.child:
        return child_main(args)
    base = QUICK if args.quick else (GPU_CONFIGS if args.device == "gpu" else CONFIGS)
    wanted = args.config or ("small" if args.quick else "all")
    configs = {k: v for k, v in base.items() if wanted in (k, "all")}
    sections = set(args.sections.split(","))
    layouts = (args.torch_layout or ("folded" if args.quick else "folded,stepwise")).split(",")
    reps = args.reps or (2 if args.quick else 7)
    started = time.perf_counter()

    print("# diet_np vs PyTorch: one DIET-SNN training step\n")
    print("Command: `python3 benchmarks/" + " ".join([Path(__file__).name] + sys.argv[1:])
          + "`\n", flush=True)
    check_device(args)
    memory = {}
    if "step" in sections and not args.skip_memory:
        memory = {name: {impl: measure_memory(impl, *config, args)
                         for impl in diet_impls(args.device) + [f"torch-{l}" for l in layouts]}
                  for name, config in configs.items()}     # before NumPy is imported here
    section_machine(args)
    if args.check:
        section_check()
    small = Case(*base["small"], args.device)
    ceilings = section_sgemm(args, small, reps) if "sgemm" in sections else None
    if "step" in sections:
        section_train_step(args, configs, layouts, reps, 1, memory)
    if "eval" in sections:
        section_eval(args, configs, layouts, reps, 1)
    if "conv" in sections and ceilings:
        section_conv(args, small, ceilings, reps)
    if "scaling" in sections:
        arch, batch, T = base["small"]
        Ts, batches = ((1, 2, 4), (4, 8, 16)) if args.quick else \
            ((1, 2, 5, 10, 20), (8, 16, 32, 64))
        section_scaling(args, arch, batch, T, Ts, batches, layouts,
                        reps if args.quick else max(3, reps // 2))
    print(f"Load average at the end: {load_average()}; "
          f"{time.perf_counter() - started:.0f} s in all.")


if __name__ == "__main__":
    main()
