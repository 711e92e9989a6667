#!/usr/bin/env bash
# The paper's pipeline on CIFAR-10 on the CPU, as docs/recipe.md's tables were made:
#   sh benchmarks/cpu_cifar10.sh RUN_DIR ARCH
# ANN: the short-budget recipe (diet_np/recipes.py: SGD Nesterov 0.05, 2-epoch warm-up then
#      cosine, weight decay 5e-4, gradient-norm clip 2.0, LSUV on 256 training images);
#      ARCH vgg16_w4 (VGG16's 16 layers at 1/4 width), resnet20_w4 (the authors' ResNet20
#      at 1/4 width: pre-process convs, 8 basic blocks, shortcuts) and vgg5: 30 epochs.
# Conversion: thresholds searched at T_find 100 on 512 training images, the factor chosen
#      from 0.7 to 0.3 in steps of 0.05 at T = 5 on 2,000 training images
#      (benchmarks/pick_scale.py).
# DIET at T = 5: vgg16_w4 12 epochs at a constant 3e-4, resnet20_w4 8 epochs from 1e-3 on
#      the paper's step schedule (the rates benchmarks/pick_lr.py measured best for each
#      converted SNN); vgg5 5 epochs from 1e-3 on the step schedule; vgg5 and resnet20_w4
#      then 5 more at a constant 1e-4 (RUN_DIR/diet2).  Extend a run with a larger DIET_EPOCHS after
#      removing RUN_DIR/.diet.done and .energy.done: the run resumes.
# Every stage is resumable: run the script again after a stop and finished stages are
# skipped, an interrupted training run continues from its last epoch (--resume).
# Keep RUN_DIR outside the checkout.  Data: $DIET_NP_DATA (the shared 20,000-image copy).
set -eu
out=${1:?usage: cpu_cifar10.sh RUN_DIR ARCH}
arch=${2:?usage: cpu_cifar10.sh RUN_DIR ARCH}
# more_epochs: DIET epochs at a constant 1e-4 from the DIET run's checkpoint (0: none).
case "$arch" in
  vgg5)     ann="--epochs 30"; diet_lr=1e-3; diet_epochs=${DIET_EPOCHS:-5}; diet_schedule=step
            more_epochs=5 ;;
  vgg16_w4)
        ann="--epochs 30"; diet_lr=3e-4; diet_epochs=${DIET_EPOCHS:-12}; diet_schedule=constant
        more_epochs=0 ;;
  resnet20_w4)
        ann="--epochs 30"; diet_lr=1e-3; diet_epochs=${DIET_EPOCHS:-8}; diet_schedule=step
        more_epochs=5 ;;
  *)        echo "cpu_cifar10.sh: no settings for --arch $arch (vgg5, vgg16_w4 or resnet20_w4)" >&2
            exit 2 ;;
esac
mkdir -p "$out"
# stage NAME COMMAND...: run COMMAND unless NAME finished before (a marker in RUN_DIR).
stage() {
  local name=$1; shift
  if [ -f "$out/.$name.done" ]; then echo "== $name: done before"; return; fi
  echo "== $(date -u +%FT%TZ) $name"
  "$@"
  touch "$out/.$name.done"
}
resume() { [ -f "$1/checkpoint.npz" ] && echo --resume || true; }

# shellcheck disable=SC2086
stage ann diet-np train-ann --quiet --dataset cifar10 --arch "$arch" $ann --test-images 2000 \
  --out "$out/ann" \
  $(resume "$out/ann")
stage ann-test diet-np evaluate --quiet --checkpoint "$out/ann/checkpoint.npz" --n-test 10000
# Training runs test on the first 2,000 test images each epoch (the deep net at T = 5 would
# spend a third of its time there); every figure of the table comes from the stages that
# test on all 10,000, except converted T = 100 (first 2,000).
# The threshold search: T_find 100 on 512 training images.  Unscaled thresholds, tested at
# T = 100 on the first 2,000 test images; then the factor for T = 5 picked on training images.
stage convert-T100 diet-np convert --quiet --checkpoint "$out/ann/checkpoint.npz" \
  --find-steps 100 --images 512 --scale 1.0 --timesteps 100 --test-images 2000 \
  --out "$out/converted_T100.npz" --overwrite
stage convert python benchmarks/pick_scale.py "$out/converted_T100.npz" "$out/converted.npz" \
  --timesteps 5 --images 2000
stage convert-test diet-np evaluate --quiet --checkpoint "$out/converted.npz" --timesteps 5 \
  --n-test 10000
# diet NAME ENERGY FROM ARGS...: fine-tune FROM at T = 5 into RUN_DIR/NAME (resumable), then
# its accuracy, spike rates and energy on all 10,000 test images (stage ENERGY).
diet() {
  local name=$1 energy=$2 from=$3; shift 3
  stage "$name" diet-np finetune --quiet --checkpoint "$from" --timesteps 5 --lr "$diet_lr" \
    --test-images 2000 --out "$out/$name" "$@" $(resume "$out/$name")
  stage "$energy" diet-np energy --quiet --checkpoint "$out/$name/checkpoint.npz" \
    --timesteps 5 --n-test 10000
}
diet diet energy "$out/converted.npz" --epochs "$diet_epochs" --schedule "$diet_schedule"
# vgg5, resnet20_w4: DIET goes on from that run at a constant 1e-4 (their step schedules
# ended at 1e-5 or below with training accuracy still rising).
if [ "$more_epochs" -gt 0 ]; then
  diet_lr=1e-4
  diet diet2 energy2 "$out/diet/checkpoint.npz" --epochs "$more_epochs" --schedule constant
fi
echo "== $(date -u +%FT%TZ) done"
