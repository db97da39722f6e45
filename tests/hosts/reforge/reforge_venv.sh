#!/bin/sh
# The reForge host venv for tests/hosts/reforge/test_reforge_*.py: reforge_venv.sh VENV_DIR
# CPU torch 2.13 and the pinned packages reForge's webui layer imports on the SDXL sampling path
# (the same set as the verified recipe in ../shared/hosts/recipes/reforge/install.sh).
set -e
VENV="${1:?usage: reforge_venv.sh VENV_DIR}"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/pip"
"$PIP" install \
  torch==2.13.0 "setuptools<81" numpy==1.26.4 gradio==3.41.2 fastapi==0.94.0 pydantic==1.10.15 \
  pillow==10.4.0 safetensors==0.5.2 einops==0.8.0 psutil==5.9.5 omegaconf==2.2.3 \
  transformers==4.48.1 torchsde==0.2.6 torchdiffeq==0.2.5 lark==1.2.2 piexif==1.1.3 \
  jsonmerge==1.9.2 diskcache==5.6.3 GitPython==3.1.32 httpx==0.24.1 httpcore==0.15.0 \
  blendmodes==2024.1.1 pillow-avif-plugin==1.4.6 opencv-python-headless==4.10.0.84 \
  scikit-image==0.25.1 ftfy==6.3.1 regex
# each of these declares torchvision (and timm): without --no-deps pip would pull a CUDA torch
"$PIP" install --no-deps spandrel==0.4.1 open-clip-torch==2.30.0 clean-fid==0.1.35 \
  clip-anytorch==2.6.0 resize-right==0.0.2
# the real server (tests/hosts/webui_server/test_webui_server.py) also imports Stability's ldm/sgm and the webui's startup
# modules, which the sampling-path tests stand in for or never reach
"$PIP" install torch==2.13.0 "setuptools<81" pytorch_lightning==1.9.4 kornia==0.8.0 inflection==0.5.1 \
  tomesd==0.1.3 protobuf==3.20.0
"$VENV/bin/python" -c "import torch, gradio; assert torch.__version__.startswith('2.13.0'), torch.__version__"
echo "reForge venv ready: $VENV"
