#!/usr/bin/env bash
# One device-machine run: install the carried wheels (diffusers is not on the GPU image), then the CUDA
# parity/half-precision checks and the full-size speed tables.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site || exit 1
export STABLEVITON_SHARED=.gpu/shared PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 benchmarks/cuda_check.py 2>&1 | grep -v "should be kept in float32" | tee "$OUT/cuda_check.txt"
speed() { python3 benchmarks/model_speed.py --device cuda --steps 30 --warmup 5 "$@" 2>&1 \
  | grep -v "should be kept in float32" | tee -a "$OUT/speed.txt"; }
speed --dtype float16
speed --dtype float16 --batch 2
speed --dtype bfloat16
speed --dtype float32
speed --dtype float16 --height 1024 --width 768
