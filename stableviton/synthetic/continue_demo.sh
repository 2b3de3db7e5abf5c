#!/usr/bin/env bash
# Continue the shipped demo model (issue 15): both stage-2 runs (with and without ATV) start from the shipped
# no-ATV weights, with EMA weights for sampling and Min-SNR-gamma + truncated-SNR loss weighting, side by side, one
# thread each.
# Run it again with the same OUT to continue where the last run stopped (checkpoint.resume=latest; the data and
# the encodings cache are kept).
#   MINUTES=100 bash stableviton/synthetic/continue_demo.sh outputs/c15
#   MINUTES=110 STEPS=16500 DECAY_FROM=7500 bash stableviton/synthetic/continue_demo.sh outputs/c15   (cooldown)
# VAE=FOLDER_OR_PACK: train (and cache the encodings) on another VAE, e.g. one fine-tuned with latent anchoring
# (train_vae anchor_weight): the U-Net then adapts to its latent space. ATV_FROM=PIPELINE_FOLDER: start the ATV run
# from its own earlier weights instead of the shipped no-ATV ones (each run continues its own lineage).
# Then: python -m stableviton.synthetic.demo ... (evaluate, pack) - see the README's "Demo model" section.
set -eu
OUT=${1:-outputs/continue}
MINUTES=${MINUTES:-100}
PAIRS=${PAIRS:-3000}
LR=${LR:-2e-4}
SNR_FLOOR=${SNR_FLOOR:-1.0}
# STEPS unset: constant rate for MINUTES. STEPS set: stop at that step, annealing the rate linearly to 0 from
# DECAY_FROM (a cooldown; set it to the step the run resumes from) - pick STEPS so that it fits in MINUTES.
STEPS=${STEPS:-1000000}
VAE=${VAE:-}
ATV_FROM=${ATV_FROM:-}
DECAY_FROM=${DECAY_FROM:-}
SCHEDULE="train.lr_schedule=constant"
[ -n "$DECAY_FROM" ] && SCHEDULE="train.lr_schedule=linear train.lr_decay_start=$DECAY_FROM train.lr_min_ratio=0"
export PYTHONPATH=. HF_HUB_OFFLINE=1
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
[ -d "$OUT/shipped_pipe" ] || $PY -c "from stableviton.synthetic.build_demo import load_packed as l; \
  l('assets/demo_model', 'no_atv').save_pretrained('$OUT/shipped_pipe')"
[ -d "$OUT/data/train" ] || OMP_NUM_THREADS=1 $PY -m stableviton.synthetic "$OUT/data" --train "$PAIRS" --test 64 \
  --height 128 --width 96 --workers 2 --no-train-correspondence
# Min-SNR-gamma (Hang et al., ICCV 2023: gamma 5, ~3x faster convergence) with truncated-SNR weighting at the
# high-noise end (Salimans & Ho, ICLR 2022: x0-weight max(SNR, 1)), where an epsilon loss barely asks for the right
# colour; EMA (decay 0.999 with warm-up) for the samples and the export, as in DDPM/LDM practice.
C="data.root=$OUT/data data.num_workers=1 train.batch_size=16 train.learning_rate=$LR train.mixed_precision=no
   data.cache_latents=true data.cache_file=$OUT/encodings.safetensors augment.hflip_p=0 augment.color=false
   train.ema_decay=0.999 train.ema_warmup=true train.min_snr_gamma=5.0 train.snr_floor=$SNR_FLOOR model.pretrained=$OUT/shipped_pipe
   checkpoint.every=500 checkpoint.keep=1 checkpoint.resume=latest log.every=50 log.sample_every=0 $SCHEDULE"
[ -n "$VAE" ] && C="$C model.vae=$VAE"
[ -f "$OUT/encodings.safetensors" ] || OMP_NUM_THREADS=2 $PY -m stableviton.training.train \
  --config stableviton/synthetic/configs/stage2_atv.yaml $C output_dir=$OUT/cache train.max_steps=0
for run in atv no_atv; do
  FROM=""
  [ "$run" = atv ] && [ -n "$ATV_FROM" ] && FROM="model.pretrained=$ATV_FROM"
  OMP_NUM_THREADS=1 $PY -m stableviton.training.train --config stableviton/synthetic/configs/stage2_$run.yaml $C $FROM \
    output_dir=$OUT/$run train.max_steps=$STEPS train.max_minutes=$MINUTES >> "$OUT/$run.log" 2>&1 &
done
wait
