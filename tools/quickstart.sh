#!/usr/bin/env bash
# From a fresh clone to a trained model and forecasts, on the embedded SYNTHETIC
# default data (and on the real nuScenes sequence when ../shared/data is present):
#   1. install (apt + pip)            4. train the forecaster (configs/occ.py)
#   2. write the synthetic data set   5. evaluate on held-out synthetic scenes
#   3. train the tokenizer            6. build occupancy from real LiDAR and forecast it
# Sizes: VAE_ITERS, OCC_ITERS, NUM_TRAIN, NUM_VAL environment variables.
set -euo pipefail
cd "$(dirname "$0")/.."
VAE_ITERS=${VAE_ITERS:-1500}
OCC_ITERS=${OCC_ITERS:-1800}
NUM_TRAIN=${NUM_TRAIN:-24}
NUM_VAL=${NUM_VAL:-6}
SHARED_DATA=${OCCWM_SHARED_DATA:-../shared/data}

bash tools/install.sh
python tools/make_synthetic.py data/synthetic --num-train "$NUM_TRAIN" --num-val "$NUM_VAL" \
  --frames 20 --seed 0 --overwrite
python tools/train.py configs/vae.py --cfg-options train_cfg.max_iters="$VAE_ITERS"
python tools/train.py configs/occ.py --cfg-options train_cfg.max_iters="$OCC_ITERS"
VAE_CKPT=$(cat work_dirs/vae/last_checkpoint)
OCC_CKPT=$(cat work_dirs/occ/last_checkpoint)
python tools/test.py configs/vae.py "$VAE_CKPT" --out-json outputs/synthetic_vae_metrics.json
# Held-out synthetic scenes, occworld protocol (every window): model vs copy-last vs warp
python tools/test.py configs/occ.py "$OCC_CKPT" --out-json outputs/metrics/synthetic_val.json
python tools/forecast.py configs/occ.py "$OCC_CKPT" --windows 0 --out outputs/synthetic_forecast

if [ -d "$SHARED_DATA/nuscenes_seq11" ]; then
  # Real nuScenes LiDAR -> Occ3D-layout occupancy; frames 0-4 -> forecast 5-10 with the
  # model trained above on SYNTHETIC scenes only.
  python tools/build_occupancy.py "$SHARED_DATA/nuscenes_seq11" data/nuscenes_seq11 --report
  python tools/forecast.py configs/occ.py "$OCC_CKPT" --data-root data/nuscenes_seq11 \
    --infos data/nuscenes_seq11/nuscenes_seq11_infos.pkl --protocol i2world \
    --out outputs/real_forecast --out-json outputs/metrics/nuscenes_seq11.json
else
  echo "no real data at $SHARED_DATA/nuscenes_seq11: skipping the real-sequence forecast"
fi
echo "quickstart done: checkpoints in work_dirs/, forecasts in outputs/, reports (model beside"
echo "copy-last and warp) in outputs/metrics/<set>.json"
