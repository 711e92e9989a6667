#!/bin/sh
# One visit to a GPU machine: the CuPy test suite, then the GPU benchmark.
# Results go under $OUT (default: ./gpu-results).  Needs numpy, scipy, matplotlib,
# pytest, CuPy and PyTorch with CUDA; run from the repository root:
#     sh benchmarks/gpu_session.sh
set -u
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH=. MPLBACKEND=Agg
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    python3 -c "import numpy, cupy, torch; print('numpy', numpy.__version__, '| cupy', cupy.__version__, '| torch', torch.__version__, '| CUDA', torch.version.cuda)"
} > "$OUT/machine.txt" 2>&1

echo "tests start $(date -u +%T)" >> "$OUT/machine.txt"
timeout "${TEST_TIMEOUT:-150}" python3 -m pytest -m gpu -q -rs -p no:cacheprovider \
    > "$OUT/pytest_gpu.txt" 2>&1
echo "pytest exit status: $?" >> "$OUT/pytest_gpu.txt"

echo "benchmark start $(date -u +%T)" >> "$OUT/machine.txt"
timeout "${BENCH_TIMEOUT:-200}" python3 benchmarks/bench_train_step.py --device gpu \
    --sections sgemm,step,eval,conv --reps 5 --skip-memory \
    > "$OUT/bench_gpu.md" 2>&1
echo "benchmark exit status: $?" >> "$OUT/bench_gpu.md"

echo "memory start $(date -u +%T)" >> "$OUT/machine.txt"
timeout "${MEMORY_TIMEOUT:-90}" python3 benchmarks/bench_train_step.py --device gpu \
    --config vgg16 --sections step --reps 3 \
    > "$OUT/bench_gpu_memory.md" 2>&1
echo "benchmark exit status: $?" >> "$OUT/bench_gpu_memory.md"
# Winograd on CuPy (not the default there): is im2col still the right choice?
echo "winograd start $(date -u +%T)" >> "$OUT/machine.txt"
timeout "${WINOGRAD_TIMEOUT:-80}" python3 benchmarks/bench_train_step.py --device gpu \
    --conv winograd --sections step --reps 3 --skip-memory \
    > "$OUT/bench_gpu_winograd.md" 2>&1
echo "benchmark exit status: $?" >> "$OUT/bench_gpu_winograd.md"
echo "end $(date -u +%T)" >> "$OUT/machine.txt"
tail -n 3 "$OUT"/*.txt "$OUT"/*.md
