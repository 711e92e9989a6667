"""Time one Adam (AMSGrad) step over VGG16's parameters (40M floats), CPU time.

    python3 benchmarks/bench_optimizer.py [--arch vgg16] [--repeats 7]
"""
import argparse
import time

import numpy as np

from diet_np.architectures import build_network
from diet_np.optim import Adam


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="vgg16")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    net = build_network(args.arch)
    params = net.init_params(0)
    grads = {k: np.full_like(v, 1e-3) for k, v in params.items()}
    opt = Adam(1e-4, amsgrad=True)
    opt.step(params, grads)                                  # allocate the state
    times = []
    for _ in range(args.repeats):
        tic = time.process_time()
        opt.step(params, grads)
        times.append(time.process_time() - tic)
    n = sum(v.size for v in params.values())
    print(f"{args.arch}: {n:,} parameters, Adam step median {np.median(times) * 1e3:.0f} ms CPU")


if __name__ == "__main__":
    main()
