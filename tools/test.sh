#!/usr/bin/env bash
# Set up every environment the tests need (first run: a few minutes) and run the whole suite.
# Host tests run against ../shared/hosts/{ComfyUI,A1111,reForge} when present (or COMFYUI_DIR,
# A1111_DIR, REFORGE_DIR), and skip with the reason when a host is absent.
source "$(dirname "$0")/env.sh"
ensure_project_env

HOSTS="${FLOW_HOSTS_DIR:-$ROOT/../shared/hosts}"
[ -d "$HOSTS/ComfyUI" ] && export COMFYUI_DIR="${COMFYUI_DIR:-$HOSTS/ComfyUI}"
[ -d "$HOSTS/A1111" ] && export A1111_DIR="${A1111_DIR:-$HOSTS/A1111}"
[ -d "$HOSTS/reForge" ] && export REFORGE_DIR="${REFORGE_DIR:-$HOSTS/reForge}"
[ -d "$HOSTS/Forge" ] && export FORGE_DIR="${FORGE_DIR:-$HOSTS/Forge}"
for host in a1111 reforge forge; do
    [ "$host" = a1111 ] && dir_var=A1111_DIR
    [ "$host" = reforge ] && dir_var=REFORGE_DIR
    [ "$host" = forge ] && dir_var=FORGE_DIR
    installer="$ROOT/tests/hosts/${host}_venv.sh"
    if [ -n "${!dir_var:-}" ] && [ -f "$installer" ]; then
        venv="${FLOW_HOST_VENVS:-$ROOT}/.venv-$host"
        if [ ! -f "$venv/.flow-env-ok" ] || [ "$installer" -nt "$venv/.flow-env-ok" ]; then
            bash "$installer" "$venv" && touch "$venv/.flow-env-ok"
        fi
        export "$(echo "$host" | tr a-z A-Z)_PYTHON=$venv/bin/python"
    fi
done

# real-server tier (marker webui_server: each webui's launch.py over HTTP, minutes per webui);
# FLOW_SERVER_TIER=0 leaves it out
[ "${FLOW_SERVER_TIER:-1}" = 0 ] && set -- -m "not webui_server" "$@"

set +e
"$VENV/bin/python" -m pytest "$@"
status=$?
# pytest exits 5 when it collected no tests: that is a failure here, never a pass.
[ "$status" -eq 5 ] && echo "no tests were collected" >&2
exit "$status"
