#!/usr/bin/env bash
# The synthetic demo build as one ~9-minute call on a single GPU (H100/H200, 16 cores).
# Data is drawn while the VAE trains; stages 1 and 2 train on encodings cached once; each stage has a wall-clock
# budget. A small model is launch-bound on such a GPU (benchmarks/results/h200_small_train_step.txt: 240 ms per
# step at batch 64 of which 45 ms on the GPU), so the batch is large and AdamW fused.
# Usage: bash stableviton/synthetic/build_demo_gpu.sh OUT_DIR EXPORT_DIR [packed vae.safetensors to continue]
set -eu -o pipefail
if [ -d .whl ]; then  # the device image lacks diffusers: wheels carried from the dev machine
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TQDM_DISABLE=1
nvidia-smi -L || true
# A fresh VAE with 4 channels per GroupNorm group and the colour read-out, so that its latent carries the garment's
# colour and its decoder can draw it (session 7, benchmarks/results/vae_colour.md; the shipped one can do neither).
VAE=(--vae-norm-groups 8 --vae-colour-weight 1 --vae-probe-weight 1)
[ -n "${3:-}" ] && VAE=(--vae-from "$3")
# EMA weights for the export, Min-SNR-gamma 5 and truncated-SNR weighting at high noise (continue_demo.sh's recipe)
RECIPE=(--set train.ema_decay=0.999 --set train.ema_warmup=true --set train.min_snr_gamma=5.0 --set train.snr_floor=1.0)
python3 -m stableviton.synthetic.build_demo --out "$1" --export "$2" --train-pairs 6000 --test-pairs 64 \
  --vae-steps 100000 --vae-minutes "${VAE_MINUTES:-1.5}" --vae-lr 5e-4 --vae-crops 2 "${VAE[@]}" \
  --stage1-steps 100000 --stage1-minutes "${STAGE1_MINUTES:-4.5}" --stage2-steps 100000 \
  --stage2-minutes "${STAGE2_MINUTES:-1.5}" --batch "${BATCH:-256}" --workers 16 "${RECIPE[@]}"
