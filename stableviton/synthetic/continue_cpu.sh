#!/usr/bin/env bash
# Second half of the shipped demo model: stage 2 (with and without ATV) continued on a 2-core CPU from the GPU
# build's fp16 exports, equal steps for both, on encodings of 1500 training pairs cached once.
#   bash stableviton/synthetic/build_demo_gpu.sh outputs/gpu_build outputs/gpu_demo      # on a GPU: ~9 min
#   bash stableviton/synthetic/continue_cpu.sh outputs/gpu_demo                           # here: ~95 min
set -eu
GPU=${1:-outputs/gpu_demo}
MINUTES=${MINUTES:-85}
export PYTHONPATH=. HF_HUB_OFFLINE=1
PY=${PY:-.venv/bin/python}
for run in atv no_atv; do  # fp16 packs -> pipeline folders the trainer can start from
  [ -d "$GPU/${run}_pipe" ] || $PY -c "from stableviton.synthetic.build_demo import load_packed as l; \
    l('$GPU', '$run').save_pretrained('$GPU/${run}_pipe')"
done
[ -d outputs/cpu_data/train ] || $PY -m stableviton.synthetic outputs/cpu_data --train 1500 --test 0 --workers 2 \
  --no-train-correspondence
C="data.root=outputs/cpu_data data.num_workers=1 train.batch_size=16 train.learning_rate=2e-4 train.mixed_precision=no
   data.cache_latents=true data.cache_file=outputs/cpu_data/encodings.safetensors augment.hflip_p=0 augment.color=false
   checkpoint.every=250 log.every=25"
# encode once (2 threads), then both runs side by side (1 thread each)
OMP_NUM_THREADS=2 $PY -m stableviton.training.train --config stableviton/synthetic/configs/stage2_atv.yaml $C \
  model.pretrained=$GPU/atv_pipe output_dir=outputs/cpu_cache train.max_steps=0
for run in atv no_atv; do
  OMP_NUM_THREADS=1 $PY -m stableviton.training.train --config stableviton/synthetic/configs/stage2_$run.yaml $C \
    model.pretrained=$GPU/${run}_pipe output_dir=outputs/cpu_$run train.max_steps=100000 train.max_minutes=$MINUTES \
    > outputs/cpu_$run.log 2>&1 &
done
wait
for run in atv no_atv; do
  $PY -c "from stableviton.synthetic.build_demo import pack; pack('outputs/cpu_$run/final', 'outputs/cpu_pack', '$run')"
done
cp "$GPU/vae.safetensors" outputs/cpu_pack/
