"""Call-by-call times of one convolution (forward + backward) after an idle pause.

Why ``bench_train_step.py`` settles before it times the steady state: on the
project's virtual machine, after the process has slept for a while, the first
tens of milliseconds of work with two workers run at about one worker's speed;
with one worker they do not slow down.  This script shows it: for each pause
length, the times of the calls that follow, for one worker and for two.

    python3 benchmarks/pause_probe.py [--calls 8] [--pauses 0.2,0.05,0.01]

The convolution is the small VGG's second (160 images of 32 x 16 x 16 -> 64
channels: batch 32, T=5), with the benchmark's default BLAS kernels.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_step import configure_environment, parse_args  # noqa: E402

ROUNDS = 5


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0; got {text!r}")
        return value
    return parse


def _pauses(text):
    """'0.2,0.05' -> [0.2, 0.05]: positive seconds."""
    return [_positive(float)(part) for part in text.split(",")]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=_positive(int), default=8, help="calls timed after each pause")
    p.add_argument("--pauses", type=_pauses, default="0.2,0.05,0.01",
                   help="seconds, comma-separated")
    args = p.parse_args()
    configure_environment(parse_args([]))      # the benchmark's BLAS kernels, kept memory

    import numpy as np

    from diet_np import fast, settings
    from diet_np.fast import parallel

    rng = np.random.default_rng(0)
    x = (rng.random((160, 32, 16, 16)) > 0.8).astype(np.float32)
    w = rng.normal(size=(64, 32, 3, 3)).astype(np.float32)
    dout = rng.normal(size=(160, 64, 16, 16)).astype(np.float32)

    def call():
        with parallel.single_threaded_blas():
            _, cache = fast.conv2d_forward(x, w, 1, 1)
            fast.conv2d_backward(dout, cache)

    print(f"conv 160x32x16x16 -> 64, forward + backward; ms per call after a pause "
          f"(median of {ROUNDS} rounds)\n")
    print("| workers | pause s | " + " | ".join(f"call {i + 1}" for i in range(args.calls)) + " |")
    print("|---|---|" + "---|" * args.calls)
    for workers in (1, 2):
        os.environ[settings.THREADS] = str(workers)
        for _ in range(3):
            call()
        for pause in args.pauses:
            rounds = []
            for _ in range(ROUNDS):
                time.sleep(pause)
                times = []
                for _ in range(args.calls):
                    tic = time.perf_counter()
                    call()
                    times.append((time.perf_counter() - tic) * 1e3)
                rounds.append(times)
            medians = [statistics.median(r[i] for r in rounds) for i in range(args.calls)]
            print(f"| {workers} | {pause} | " + " | ".join(f"{t:.1f}" for t in medians) + " |")


if __name__ == "__main__":
    main()
