#!/usr/bin/env bash
# Install what the tests need (apt + pip; quick when already installed), then run them.
# Real-data tests read ../shared/data (or $OCCWM_SHARED_DATA); they skip without it,
# except under CI=true where they fail.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
python -m pytest -q tests "$@"
