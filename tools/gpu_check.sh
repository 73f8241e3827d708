#!/usr/bin/env bash
# A fresh GPU machine, in under 8 minutes: install the CUDA wheels, run the GPU tests,
# then the forecast and training benchmarks of the nuScenes config in bf16 at batch
# 1 / 8 / 32, each result line with the device's name.
#   bash tools/gpu_check.sh                    # everything (pip needs the network)
#   bash tools/gpu_check.sh --no-install       # torch with CUDA and occwm already there
#   bash tools/gpu_check.sh --device cpu --tiny --no-install   # try the script on a CPU
# --tiny: a 32x32x8 grid and batches 1 / 2 (the models of the config unchanged).
# --config C: another config (default configs/occ_nuscenes.py; random weights).
# Output: the terminal, and the same in outputs/gpu_check.log (or --log FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda; INSTALL=1; TINY=0; CONFIG=configs/occ_nuscenes.py; LOG=outputs/gpu_check.log
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --tiny) TINY=1; shift ;;
    --config) CONFIG="$2"; shift 2 ;;
    --log) LOG="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$(dirname "$LOG")"
exec > >(tee "$LOG") 2>&1
START=$(date +%s)
stage() { echo; echo "== [$(( $(date +%s) - START )) s] $*"; }
SIZES="1 8 32"; OPTS=()
if [ "$TINY" = 1 ]; then
  SIZES="1 2"
  OPTS=(model.tokenizer.grid.point_cloud_range="[-6.4,-6.4,-1.0,6.4,6.4,2.2]" model.tokenizer.grid.z_offset=0.0)
fi
export PYTHONUNBUFFERED=1

if [ "$INSTALL" = 1 ]; then
  stage "install: bash tools/install.sh --cuda (torch 2.13.0 CUDA build, spconv-cu126; about 4 GB of wheels)"
  bash tools/install.sh --cuda
fi

stage "device"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
python -c "
import torch, occwm.compat
from occwm.runtime import device_name
cuda = torch.cuda.is_available()
print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, GPU available: {cuda}')
if '$DEVICE'.startswith('cuda') and not cuda:
    raise SystemExit('no CUDA device: install the CUDA build (bash tools/install.sh --cuda) or use --device cpu')
print('device:', device_name('$DEVICE'))
"

stage "GPU tests (pytest -m gpu; skipped without CUDA)"
timeout 240 python -m pytest -q -m gpu tests/test_gpu.py || echo "GPU tests FAILED (status $?)"

stage "forecast benchmark, bf16, batch ${SIZES// / / }: the config as it is (agent tracking on the CPU, numpy)"
for B in $SIZES; do
  timeout 120 python tools/benchmark_forecast.py "$CONFIG" --device "$DEVICE" --dtype bfloat16 \
    --batch "$B" --repeats 5 ${OPTS:+--cfg-options "${OPTS[@]}"} || echo "batch $B FAILED (status $?)"
done
stage "forecast benchmark, bf16, without agent tracking (model.agent_motion=False: the GPU part alone)"
for B in $SIZES; do
  timeout 120 python tools/benchmark_forecast.py "$CONFIG" --device "$DEVICE" --dtype bfloat16 \
    --batch "$B" --repeats 5 --cfg-options model.agent_motion=False "${OPTS[@]}" || echo "batch $B FAILED (status $?)"
done

stage "training benchmark, bf16, batch per GPU ${SIZES// / / } (steps/s, samples/s, peak memory)"
timeout 240 python tools/benchmark_train.py "$CONFIG" --device "$DEVICE" --dtype bfloat16 \
  --batch-sizes $SIZES --steps 10 ${OPTS:+--cfg-options "${OPTS[@]}"} || echo "training benchmark FAILED (status $?)"

stage "done in $(( $(date +%s) - START )) s; log: $LOG"
