#!/usr/bin/env bash
# The run that made the shipped demo weights: one ~9-minute call on a single GPU (H100/H200, 16 cores).
# Data is drawn while the VAE trains; stages 1 and 2 train on encodings cached once; each stage has a wall-clock
# budget. Usage: bash stableviton/synthetic/build_demo_gpu.sh OUT_DIR EXPORT_DIR
set -eu -o pipefail
if [ -d .whl ]; then  # the device image lacks diffusers: wheels carried from the dev machine
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TQDM_DISABLE=1
nvidia-smi -L || true
python3 -m stableviton.synthetic.build_demo --out "$1" --export "$2" --train-pairs 6000 --test-pairs 64 \
  --vae-steps 100000 --vae-minutes 2.5 --vae-lr 5e-4 --vae-crops 2 \
  --stage1-steps 100000 --stage1-minutes 3.5 --stage2-steps 100000 --stage2-minutes 1.5 --batch 64 --workers 16
