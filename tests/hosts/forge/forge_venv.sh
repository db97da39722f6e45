#!/bin/sh
# The Forge host venv for tests/hosts/forge/test_forge_*.py: forge_venv.sh VENV_DIR
# CPU torch 2.13 and Forge's (lllyasviel/stable-diffusion-webui-forge dfdcbab6) pinned packages that its
# webui layer and built-in extensions import on CPU (the set of ../shared/hosts/recipes/forge/install.sh).
# setuptools >= 77 because torch 2.13 needs it (Forge pins 69.5.1); huggingface-guess is the wheel of the
# commit Forge's launcher clones; sentencepiece and joblib are imported by Forge but not pinned by it.
set -e
VENV="${1:?usage: forge_venv.sh VENV_DIR}"
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/pip"
"$PIP" install \
  torch==2.13.0 setuptools==80.9.0 numpy==1.26.2 Pillow==9.5.0 gradio==4.40.0 gradio_rangeslider==0.0.6 \
  gradio_imageslider==0.0.20 fastapi==0.104.1 pydantic==2.8.2 httpx==0.24.1 httpcore==0.15.0 \
  huggingface-hub==0.26.2 transformers==4.46.1 diffusers==0.31.0 safetensors==0.4.2 einops==0.4.1 \
  omegaconf==2.2.3 pytorch_lightning==1.9.4 kornia==0.6.7 torchsde==0.2.6 torchdiffeq==0.2.3 \
  scikit-image==0.21.0 tqdm==4.66.1 lark==1.1.2 piexif==1.1.3 pillow-avif-plugin==1.4.3 blendmodes==2022 \
  psutil==5.9.5 inflection==0.5.1 jsonmerge==1.8.0 diskcache==5.6.3 GitPython==3.1.32 resize-right==0.0.2 \
  protobuf==3.20.0 opencv-python-headless==4.10.0.84 sentencepiece==0.2.0 joblib==1.4.2 huggingface-guess==0.1.0
# facexlib declares torchvision: --no-deps keeps a CUDA torch out (Forge's face restorers import it at start)
"$PIP" install --no-deps facexlib==0.3.0
"$VENV/bin/python" -c "import torch, gradio; assert torch.__version__.startswith('2.13.0'), torch.__version__"
echo "Forge venv ready: $VENV"
