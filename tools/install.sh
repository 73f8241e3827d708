#!/usr/bin/env bash
# Install occwm and everything it needs on a Debian machine (apt + pip).
# torch is pinned and installed first: on a CPU machine this takes the local CPU
# build; a plain `pip install torch` would pull several GB of CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if command -v apt-get >/dev/null; then
  # open3d-cpu needs libusb; headless rendering uses EGL (Mesa) or Vulkan (lavapipe).
  pkgs="libusb-1.0-0 libegl1 libgl1 libvulkan1 mesa-vulkan-drivers"
  if ! dpkg -s $pkgs >/dev/null 2>&1; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $pkgs >/dev/null
  fi
fi
python -m pip install -q torch==2.13.0
python -m pip install -q -r requirements.txt -r requirements-test.txt
python -m pip install -q --no-deps -e .
echo "occwm installed: $(python -c 'import occwm; print(occwm.__file__)')"
