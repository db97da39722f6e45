# Sourced by tools/demo.sh and tools/test.sh: creates (once) and fills the project's virtual environments.
#   .venv          the project, its tests, ComfyUI's CPU imports and k-diffusion 0.1.1.post1
#   .venv-a1111    A1111 v1.10.1's pinned packages     (only when an A1111 snapshot is found)
#   .venv-reforge  reForge's packages                   (only when a reForge snapshot is found)
# CPU torch 2.13.0 is installed in the same pip command as every torch-dependent package, and
# packages that would pull a CUDA torch/torchvision go in with --no-deps.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="${FLOW_VENV:-$ROOT/.venv}"

ensure_project_env() {
    local stamp="$VENV/.flow-env-ok"
    if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
        "$PY" -m venv "$VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check torch==2.13.0 -e "$ROOT[test,plot,comfyui-host]"
        "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -r "$ROOT/tests/hosts/requirements-nodeps.txt"
        touch "$stamp"
    fi
}
