#!/usr/bin/env bash
# From a fresh clone to trained models, forecasts and a summary, on a CPU machine:
#   1. install (apt + pip): bash tools/install.sh
#   2. python tools/quickstart.py: synthetic LiDAR-simulated data, tokenizer, forecaster,
#      held-out evaluation, the real sequences (when ../shared/data holds them), a summary.
# Minutes by default; --full (or OCCWM_QUICKSTART=full) trains longer and better.
# Re-running continues where it stopped (--restart starts over).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f outputs/quickstart/installed ]; then
  start=$(date +%s)
  echo "=== install: expected about 4 min ==="
  bash tools/install.sh
  mkdir -p outputs/quickstart && echo $(( $(date +%s) - start )) > outputs/quickstart/installed
  echo "=== install: done in $(( $(date +%s) - start )) s ==="
else
  echo "=== install: already done, skipped (delete outputs/quickstart/installed to redo) ==="
fi
python tools/quickstart.py "$@"
