#!/bin/sh
# The paper's pipeline for full-width VGG16 on CIFAR-10 on one GPU, inside a time budget.
# From the repository root, on a GPU machine:
#     OUT=gpu-results sh benchmarks/gpu_vgg16_cifar10.sh
# CIFAR-10 comes compressed in .gpu_data (made once, on a machine holding the data:
# DIET_NP_DATA=DIR PYTHONPATH=. python3 benchmarks/pack_cifar.py pack); it is
# unpacked and checked by SHA-256, a few ANN and DIET steps are timed, and the epoch counts
# are chosen from those timings to fit BUDGET_S seconds (default 480; see
# benchmarks/gpu_vgg16_cifar10.py).  Then the stages of benchmarks/cpu_cifar10.sh with
# --device gpu: train-ann (the short-budget recipe of diet_np/recipes.py: SGD Nesterov,
# warm-up and cosine, LSUV), evaluate, convert (T_find 100 on 512 images,
# unscaled, tested at T = 100), benchmarks/pick_scale.py (the threshold factor of SCALES,
# default pick_scale's 0.7 to 0.3 in steps of 0.05, best at T = 5 on PICK_IMAGES training
# images, default 2000), evaluate (T = 5), finetune (T = 5, lr DIET_LR, default 1e-4),
# evaluate, energy.  A stage that stops (a network at chance level, say) ends the
# pipeline, and the summary names it.  $OUT gets summary.md (the table), summary.json, both
# runs' log.jsonl and curves.png, and output.txt (7 files);
# checkpoints stay in RUN_DIR (default: a new folder in /tmp), too big to return.
# TINY=1: the same on the CPU in a few minutes (vgg16_w8, 1,000 training images).
# GPU_DATA: the pack (default .gpu_data); COMMIT: the commit to record where git is missing.
# Needs numpy, matplotlib and (on the GPU) CuPy;
# nothing is installed (PYTHONPATH=.).
set -u
OUT=${OUT:-gpu-results}
GPU_DATA=${GPU_DATA:-.gpu_data}
# the settings of each mode: images of the threshold search and of the factor's choice, and
# the image counts the plan may use at most (training, test, each epoch's test, the T = 100
# test).  The factor is measured, not fixed: at x0.7 the little vgg16_w8 (24 epochs on 1,000
# images) left conv13-fc2 silent at T = 5, and the CPU's vgg16_w4 gave one class to every
# image; DIET cannot start from a silent layer.
scales=${SCALES:+--scales $SCALES}
diet_lr=${DIET_LR:-1e-4}
if [ "${TINY:-0}" = 1 ]; then
    arch=vgg16_w8 device=cpu budget=${BUDGET_S:-150} images=16 pick_images=${PICK_IMAGES:-500}
    limits="--n-train 1000 --n-test 500 --epoch-test-images 500 --long-test-images 100"
else
    arch=vgg16 device=gpu budget=${BUDGET_S:-480} images=512 pick_images=${PICK_IMAGES:-2000}
    limits="--epoch-test-images 2000 --long-test-images 2000"
fi
run=${RUN_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/diet_np_vgg16.XXXXXX")}
data="$run/data"
mkdir -p "$OUT" "$run"
export PYTHONPATH=. PYTHONUNBUFFERED=1 MPLBACKEND=Agg DIET_NP_DATA="$data"
started=$(date +%s)

# stage NAME COMMAND...: run COMMAND, its output on stdout and in $run/NAME.txt, its
# command line in commands.txt and its wall time and exit status in stages.tsv.
stage() {
    name=$1; shift
    echo "== $(date -u +%T) $name: $*"
    echo "$*" >> "$run/commands.txt"
    t0=$(date +%s)
    { "$@"; echo $? > "$run/.rc"; } 2>&1 | tee "$run/$name.txt"
    rc=$(cat "$run/.rc")
    printf '%s\t%s\t%s\n' "$name" "$(($(date +%s) - t0))" "$rc" >> "$run/stages.tsv"
    return "$rc"
}
dn="python3 -m diet_np"
on="--quiet --device $device"

machine() {
    date -u +%FT%TZ
    if [ "$device" = gpu ]; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    else
        echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
    fi
    python3 -c "import numpy; print('numpy', numpy.__version__, end='')
try:
    import cupy; print(' | cupy', cupy.__version__)
except ImportError:
    print(' | no cupy')"
    echo "commit ${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
}

# shellcheck disable=SC2086
pipeline() {
    echo "# PYTHONPATH=. DIET_NP_DATA=$data, from the repository root" > "$run/commands.txt"
    stage unpack python3 benchmarks/pack_cifar.py unpack --pack "$GPU_DATA" --data "$data" &&
    stage plan python3 benchmarks/gpu_vgg16_cifar10.py plan --arch "$arch" --device "$device" \
        --budget $((budget - ($(date +%s) - started))) --images "$images" $limits \
        $scales --pick-images "$pick_images" \
        --write "$run/plan.sh" --json "$run/plan.json" &&
    . "$run/plan.sh" &&
    stage ann $dn train-ann $on --dataset cifar10 --arch "$arch" --n-train "$n_train" \
        --epochs "$ann_epochs" --test-images "$epoch_test_images" --out "$run/ann" &&
    stage ann-test $dn evaluate $on --checkpoint "$run/ann/checkpoint.npz" --n-test "$n_test" &&
    stage convert-T100 $dn convert $on --checkpoint "$run/ann/checkpoint.npz" --n-test "$n_test" \
        --find-steps 100 --images "$images" --scale 1.0 --timesteps 100 \
        --test-images "$long_images" --out "$run/converted_T100.npz" &&
    stage pick python3 benchmarks/pick_scale.py "$run/converted_T100.npz" "$run/converted.npz" \
        --device "$device" $scales --timesteps 5 --images "$pick_images" &&
    stage convert-test $dn evaluate $on --checkpoint "$run/converted.npz" --n-test "$n_test" \
        --timesteps 5 &&
    stage diet $dn finetune $on --checkpoint "$run/converted.npz" --timesteps 5 \
        --epochs "$diet_epochs" --lr "$diet_lr" --test-images "$epoch_test_images" --out "$run/diet" &&
    stage diet-test $dn evaluate $on --checkpoint "$run/diet/checkpoint.npz" --n-test "$n_test" \
        --timesteps 5 &&
    stage energy $dn energy $on --checkpoint "$run/diet/checkpoint.npz" --n-test "$n_test" \
        --timesteps 5
}

main() {
    machine | tee "$run/machine.txt"
    echo "run folder $run; results into $OUT; budget $budget s"
    pipeline
    status=$?
    for part in ann diet; do
        [ -f "$run/$part/log.jsonl" ] && cp "$run/$part/log.jsonl" "$OUT/${part}_log.jsonl"
        [ -f "$run/$part/curves.png" ] && cp "$run/$part/curves.png" "$OUT/${part}_curves.png"
    done
    [ -f "$run/plan.json" ] && python3 benchmarks/gpu_vgg16_cifar10.py report --run "$run" --out "$OUT"
    echo "== $(date -u +%T) done in $(($(date +%s) - started)) s, exit status $status"
    return "$status"
}

{ main; echo $? > "$run/.status"; } 2>&1 | tee "$OUT/output.txt"
exit "$(cat "$run/.status")"
