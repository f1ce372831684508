#!/usr/bin/env bash
# The stabilisers study on the ground-truth tone task (docs/results.md "What the field adds"):
# plain CycleGAN, each stabiliser alone, all four, CUT, FastCUT and the paired upper bound,
# 3 seeds each, 3,000 iterations of batch 1, two runs at a time, then every run scored.
# Needs: pip install -e ".[metrics]" -e examples/cgfw-cut, and the data:
#   pip install scikit-image && python benchmarks/study_ground_truth.py build datasets/tone
set -euo pipefail
out=${1:-runs/tone_field}
iters=${ITERS:-3000}
common=(--seeds "${SEEDS:-0,1,2}" --jobs 2 --set "run.output_dir='$out'" --set "train.max_iters=$iters")
r1='regularizer={name="r1", gamma=1.0}'
diffaug='augment={name="diffaugment"}'

# plain, then each stabiliser alone
cgfw ablate tone_study "${common[@]}" --vary "$r1" --vary discriminator.norm=spectral \
  --vary train.ema=0.999 --vary "$diffaug"
# all four (what recipes/emoji_stabilised.toml turns on)
cgfw ablate tone_study "${common[@]}" --set run.name=tone_stabilised --set "$r1" \
  --set discriminator.norm=spectral --set train.ema=0.999 --set "$diffaug"
# CUT and FastCUT with the emoji study's networks (cut_emoji) on the tone data
for model in cut fastcut; do
  cgfw ablate tone_study "${common[@]}" --set run.name=tone_$model --set model.name=$model \
    --set "model.nce_layers=[0, 4, 8, 12, 13]" --set generator.name=resnet_aa \
    --set generator.n_blocks=2 --set generator.ngf=16 --set discriminator.name=patchgan_aa \
    --set discriminator.n_layers=2 --set discriminator.ndf=16 --set init.name=xavier \
    --set init.gain=0.02
done
# the paired upper bound: L1 on aligned pairs, a -> b from the A crops, b -> a from the B crops
cgfw ablate tone_study "${common[@]}" --set run.name=tone_paired --set data.pairs=true \
  --set data.root=datasets/tone-paired-a --vary data.root=datasets/tone-paired-b \
  --set losses.gan.weight=0.0 --set losses.cycle.forward=false --set losses.cycle.backward=false \
  --set losses.identity.weight=0.0 --set losses.paired.weight=10.0

# all four scored with their trained weights too (kept as metrics_raw.json), then every run
metrics=psnr,ssim,l1,kid,swd
cgfw eval "$out"/ablate-tone_stabilised-*/ --metrics $metrics --raw
for f in "$out"/ablate-tone_stabilised-*/*/metrics.json; do mv "$f" "${f%.json}_raw.json"; done
cgfw eval "$out"/*/ --metrics $metrics
