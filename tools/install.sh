#!/usr/bin/env bash
# Install occwm and everything it needs on a Debian machine (apt + pip).
# torch is pinned and installed first: on a CPU machine this takes the local CPU
# build; a plain `pip install torch` would pull several GB of CUDA wheels.
#   bash tools/install.sh          # CPU: torch, spconv (CPU) and the rest of requirements.txt
#   bash tools/install.sh --cuda   # GPU: the CUDA builds of docker/requirements-cuda.txt
#                                  # (torch 2.13.0 CUDA 13.0, spconv-cu126) in their place
set -euo pipefail
cd "$(dirname "$0")/.."
CUDA=0
for arg in "$@"; do
  case "$arg" in
    --cuda) CUDA=1 ;;
    *) echo "usage: bash tools/install.sh [--cuda]" >&2; exit 2 ;;
  esac
done
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if command -v apt-get >/dev/null; then
  # open3d-cpu needs libusb; headless rendering uses EGL (Mesa) or Vulkan (lavapipe).
  pkgs="libusb-1.0-0 libegl1 libgl1 libvulkan1 mesa-vulkan-drivers"
  if ! dpkg -s $pkgs >/dev/null 2>&1; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $pkgs >/dev/null
  fi
fi
if [ "$CUDA" = 1 ]; then
  # The CPU builds, if there, make way (spconv and spconv-cu126 are the same package).
  python -m pip uninstall -q -y spconv 2>/dev/null || true
  if python -c 'import torch, sys; sys.exit(0 if torch.version.cuda is None else 1)' 2>/dev/null; then
    python -m pip uninstall -q -y torch
  fi
  python -m pip install -q -r docker/requirements-cuda.txt
  other=$(mktemp)
  grep -v -E '^(torch|spconv)==' requirements.txt > "$other"
  python -m pip install -q -r "$other" -r requirements-test.txt
  rm -f "$other"
  python -c 'import torch; assert torch.version.cuda, "a CPU build of torch was installed"; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}")'
else
  python -m pip install -q torch==2.13.0
  python -m pip install -q -r requirements.txt -r requirements-test.txt
fi
python -m pip install -q --no-deps -e .
echo "occwm installed: $(python -c 'import occwm; print(occwm.__file__)')"
