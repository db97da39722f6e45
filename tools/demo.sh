#!/usr/bin/env bash
# Run the CPU demo in its own small environment, .venv-demo: CPU torch, numpy and this package,
# nothing else (about 190 MB to download, 0.9 GB installed, 1-3 minutes the first time).
# Arguments go to `python -m model_sampling_flow demo` (e.g. --out DIR, --steps 4,8,16).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="${FLOW_DEMO_VENV:-$ROOT/.venv-demo}"
# PyPI's Linux torch wheels are CUDA builds (several GB); the PyTorch CPU index serves the CPU
# build. Used when reachable; set FLOW_TORCH_INDEX= (empty) to use only your own package index.
TORCH_INDEX="${FLOW_TORCH_INDEX-https://download.pytorch.org/whl/cpu}"
if [ ! -f "$VENV/.flow-demo-ok" ] || [ "$ROOT/pyproject.toml" -nt "$VENV/.flow-demo-ok" ]; then
    "$PY" -m venv "$VENV"
    extra=()
    if [ -n "$TORCH_INDEX" ] && "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)" \
            "$TORCH_INDEX/" >/dev/null 2>&1; then
        extra=(--extra-index-url "$TORCH_INDEX")
    fi
    echo "setting up $VENV (CPU torch; first run only)" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check "${extra[@]}" "torch==2.13.0+cpu" numpy
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e "$ROOT"
    touch "$VENV/.flow-demo-ok"
fi
exec "$VENV/bin/python" -m model_sampling_flow demo "$@"
