#!/usr/bin/env bash
# Install what the test suite needs on a bare Debian/Ubuntu machine: a virtual X server,
# the libraries Qt 6 loads, and the package with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        xvfb xauth libglib2.0-0 libdbus-1-3 libfontconfig1 libxkbcommon-x11-0 \
        libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 libxcb-shape0 \
        libxcb-xinerama0 libegl1 libxcb-cursor0 libgl1 libgl1-mesa-dri >/dev/null
fi
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[testing]"
