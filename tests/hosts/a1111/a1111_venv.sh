#!/usr/bin/env bash
# Creates the Python environment the A1111 v1.10.1 host tests run the webui in: a1111_venv.sh VENV_DIR
# CPU torch 2.13.0 goes in the same pip command as every torch-dependent package (so pip never swaps
# in a CUDA build); packages that declare torchvision go in with --no-deps (the runner stands in for
# torchvision and timm at import; nothing on the sampling path calls them). The package set is the
# one shared/hosts/recipes/a1111 verified on a 2-core CPU machine with Python 3.11 (about 70 s).
set -euo pipefail
VENV="${1:?usage: a1111_venv.sh VENV_DIR}"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check)
"${PIP[@]}" torch==2.13.0 setuptools==80.9.0 \
    gradio==3.41.2 fastapi==0.94.0 httpx==0.24.1 httpcore==0.15.0 \
    numpy==1.26.2 Pillow==9.5.0 pytorch_lightning==1.9.4 omegaconf==2.2.3 einops==0.4.1 \
    transformers==4.30.2 safetensors==0.4.2 kornia==0.6.7 torchsde==0.2.6 torchdiffeq==0.2.3 \
    scikit-image==0.21.0 blendmodes==2022 piexif==1.1.3 pillow-avif-plugin==1.4.3 psutil==5.9.5 \
    tomesd==0.1.3 lark==1.1.2 jsonmerge==1.8.0 inflection==0.5.1 resize-right==0.0.2 protobuf==3.20.0 \
    opencv-python-headless==4.10.0.84 diskcache==5.6.3 GitPython==3.1.32 ftfy==6.3.1 regex==2026.11.15 \
    sentencepiece==0.2.3
"${PIP[@]}" --no-deps open-clip-torch==2.20.0 clean-fid==0.1.35 openai-clip==1.0.1
