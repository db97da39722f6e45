#!/usr/bin/env bash
# The Python environment one ComfyUI version's host tests run in: comfyui_venv.sh VENV_DIR [pinned|latest]
#   pinned  ComfyUI a125cd8 (shared/hosts/ComfyUI):        comfyui-requirements.txt
#   latest  ComfyUI v0.33.0 (shared/hosts/ComfyUI-latest): comfyui-latest-requirements.txt + -nodeps
# CPU torch 2.13.0 goes in the same pip command as every torch-dependent package; kornia, spandrel
# and k-diffusion (and comfy-aimdo / comfy-kitchen) go in with --no-deps so pip never swaps in a CUDA
# torch. torchvision and torchaudio have no wheel that loads against CPU torch 2.13: the tests stand in
# for them (tests/flow_test_support/standins.py). The project itself is not installed: pytest's
# `pythonpath` (pyproject.toml) puts the checkout on sys.path.
set -euo pipefail
VENV="${1:?usage: comfyui_venv.sh VENV_DIR [pinned|latest]}"
KIND="${2:-pinned}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
case "$KIND" in
    pinned) REQUIREMENTS=("$HERE/comfyui-requirements.txt"); NODEPS=("$HERE/../requirements-nodeps.txt") ;;
    latest) REQUIREMENTS=("$HERE/comfyui-latest-requirements.txt")
            NODEPS=("$HERE/../requirements-nodeps.txt" "$HERE/comfyui-latest-nodeps.txt") ;;
    *) echo "comfyui_venv.sh: unknown kind $KIND (pinned or latest)" >&2; exit 2 ;;
esac
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check)
"${PIP[@]}" torch==2.13.0 -r "${REQUIREMENTS[0]}"
for file in "${NODEPS[@]}"; do "${PIP[@]}" --no-deps -r "$file"; done
"$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
