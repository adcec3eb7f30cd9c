#!/bin/sh
# GPU check (under 5 minutes on one GPU): recovery step time vs a plain GAN step per --amp mode,
# channels-last and torch.compile, for a pix2pix ResNet-9 at 256 px. Needs a CUDA GPU.
set -e
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3 || command -v python)}  # python3 where no plain python is installed
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check.sh: no CUDA GPU visible to torch here; run it on a machine with one" >&2
    exit 2
fi
exec env PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" benchmarks/gpu_check.py "$@"
