#!/usr/bin/env bash
# Set up the project environment (first run: a few minutes) and run the CPU demo.
# Arguments go to `python -m model_sampling_flow demo` (e.g. --out DIR, --steps 4,8,16).
source "$(dirname "$0")/env.sh"
ensure_project_env
"$VENV/bin/python" -m model_sampling_flow demo "$@"
