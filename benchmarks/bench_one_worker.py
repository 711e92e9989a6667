"""One pool worker on a busy machine: DIET steps of a trained, converted SNN.

    python benchmarks/bench_one_worker.py RUN/converted.npz --steps 4 --busy 2

Times ``--steps`` DIET steps (batch 64, T = 5, Adam 1e-4) of the checkpoint's network
on its own training images, in three cases, beside ``--busy`` processes that keep
the cores busy (as other jobs do on a shared machine):

* one worker, OpenBLAS held to one thread in every pass (the fast engine as it is);
* one worker with OpenBLAS's threads left as NumPy started them (the engine before
  this was fixed: ``single_threaded_blas`` made a no-op);
* two workers.

The second case is the one-worker slowdown seen on trained CIFAR fine-tuning
(an epoch of 5,000 images unfinished after 20 min where two workers took 44 s):
OpenBLAS's own threads spin-wait for work on cores that the busy processes and
the worker need.  The script also counts the subnormal floats in the Winograd
backward's output gradients (the first suspect) and times a matrix product of
subnormal against normal inputs on this CPU, so a CPU that pays for subnormals
shows it here too.  Medians of the steps after the first.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time

import numpy as np

SUBNORMAL = np.finfo(np.float32).tiny
CASES = {"fixed": ("1", "one worker, OpenBLAS one thread per pass (the engine)"),
         "unfixed": ("1", "one worker, OpenBLAS threads left as they were (before the fix)"),
         "two": ("2", "two workers")}


def child(args):
    """Run in a fresh process (its DIET_NP_THREADS set by the parent): time the steps."""
    from diet_np.backend import default_rng
    from diet_np.engine import apply_process_settings
    from diet_np.fast import parallel, winograd
    from diet_np.pipeline import load_model, model_dataset
    from diet_np.recipes import training_batches
    from diet_np.training import diet_config, run_optimizer, train_step

    if args.child == "unfixed":
        parallel.single_threaded_blas = contextlib.nullcontext
    apply_process_settings()
    net, params, model = load_model(args.checkpoint, np, expect_kind=("snn",))
    dataset = model_dataset(model)
    cfg = diet_config(T=5, batch_size=64)
    opt, rng = run_optimizer(cfg), default_rng(np, 0)
    counts = [0, 0]
    backward = winograd.backward_chunk

    def counting(x, dy, u, dx):
        d = np.asarray(dy, dtype=np.float32)
        counts[0] += int(np.count_nonzero((d != 0) & (np.abs(d) < SUBNORMAL)))
        counts[1] += d.size
        return backward(x, dy, u, dx)

    winograd.backward_chunk = counting
    batches, times = training_batches(dataset, cfg), []
    for _ in range(args.steps):
        xb, yb = next(batches)
        tic = time.perf_counter()
        train_step(net, params, opt, xb.astype(np.float32), yb, cfg=cfg, rng=rng, lr=cfg.lr)
        times.append(time.perf_counter() - tic)
    print(f"{statistics.median(times[1:] or times):.3f} {counts[0]} {counts[1]}")


def subnormal_product_ratio() -> float:
    """Seconds of a product with subnormal inputs over the same with normal ones."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((512, 2048), np.float32), rng.standard_normal((2048, 256), np.float32)
    tiny = a * np.float32(1e-39)

    def seconds(m):
        m @ b
        tic = time.perf_counter()
        for _ in range(3):
            m @ b
        return time.perf_counter() - tic

    return seconds(tiny) / seconds(a)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a converted (or DIET-trained) SNN of a trained ANN")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--busy", type=int, default=2, help="busy processes beside the steps")
    p.add_argument("--child", choices=tuple(CASES), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.busy)]
    try:
        rows = []
        for case, (threads, label) in CASES.items():
            env = {**os.environ, "DIET_NP_THREADS": threads}
            out = subprocess.run([sys.executable, __file__, args.checkpoint, "--steps",
                                  str(args.steps), "--child", case], env=env, check=True,
                                 capture_output=True, text=True).stdout.split()
            rows.append((label, float(out[0]), int(out[1]), int(out[2])))
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    print(f"DIET steps of {args.checkpoint} (batch 64, T = 5) beside {args.busy} busy processes")
    print("| case | s/step | subnormal output gradients in the Winograd backward |")
    print("| --- | --- | --- |")
    for label, seconds, sub, total in rows:
        print(f"| {label} | {seconds:.2f} | {sub} of {total} |")
    print(f"a product with subnormal inputs takes {subnormal_product_ratio():.2f}x the time of "
          "one with normal inputs on this CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
