#!/usr/bin/env bash
# Set up every environment the tests need (first run: a few minutes) and run the suite in tiers.
# Each tier is one pytest process in its own environment; independent tiers run in parallel.
#
#   bash tools/test.sh                       every tier
#   bash tools/test.sh comfyui-latest a1111  only these tiers
#   FLOW_JOBS=2 bash tools/test.sh           at most 2 tiers at a time (default: all at once)
#   FLOW_PYTEST_ARGS="-x" bash tools/test.sh extra pytest arguments for every tier
#
# Host tiers run against ../shared/hosts/<Host> (or FLOW_HOSTS_DIR, or COMFYUI_DIR, A1111_DIR,
# REFORGE_DIR, FORGE_DIR, and COMFYUI_LATEST_DIR for the newest ComfyUI); a tier whose host is
# absent still runs, and its tests skip with the reason.
# Each tier's output is streamed with its name in front; per-tier durations are printed at the end.
# Exit status: 0 only when every tier passed and collected at least one test.
source "$(dirname "$0")/env.sh"
ensure_project_env
cd "$ROOT"

HOSTS="${FLOW_HOSTS_DIR:-$ROOT/../shared/hosts}"
HOST_VENVS="${FLOW_HOST_VENVS:-$ROOT}"
LOGS="${FLOW_TEST_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/flow-test-logs.XXXXXX")}"
mkdir -p "$LOGS"
TIER_TIMEOUT="${FLOW_TIER_TIMEOUT:-4800}"   # seconds; the slowest tier took ~25 min on a loaded machine
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}" PYTHONUNBUFFERED=1
export PYTHONDONTWRITEBYTECODE=1            # never write caches into host snapshots

# host_dir VARIABLE FOLDER: the host's directory from VARIABLE or ../shared/hosts/FOLDER, or empty
host_dir() {
    local value="${!1:-}"
    [ -z "$value" ] && [ -d "$HOSTS/$2" ] && value="$(cd "$HOSTS/$2" && pwd)"
    echo "$value"
}

# venv_for DIR INSTALLER "ARGS" [FILES...]: runs `INSTALLER DIR ARGS` when the venv is missing or older
# than its installer or the requirement FILES; prints its python
venv_for() {
    local venv="$1" installer="$2" arguments="$3"; shift 3
    local stamp="$venv/.flow-env-ok" file stale=0
    mkdir -p "$(dirname "$venv")"
    (   # two tiers may need the same venv (a webui's tier and the server tier): one builds it
        flock 9
        [ -f "$stamp" ] || stale=1
        for file in "$installer" "$@"; do [ "$file" -nt "$stamp" ] && stale=1; done
        if [ "$stale" = 1 ]; then
            # shellcheck disable=SC2086
            bash "$installer" "$venv" $arguments >&2 && touch "$stamp"
        fi
    ) 9>"$venv.lock"
    echo "$venv/bin/python"
}

# ---- the tiers ----------------------------------------------------------------------------------
# A tier runs one pytest process (extra arguments "$@") in its environment and prints nothing else.
tier_host_free() { "$VENV/bin/python" -m pytest -m "not host" "$@"; }

# tier_comfyui DIR_VARIABLE HOST_FOLDER VENV_KIND: ComfyUI is imported in the pytest process, so the
# tier's pytest runs in that ComfyUI version's venv (tests/hosts/comfyui/comfyui_venv.sh VENV VENV_KIND)
tier_comfyui() {
    local python="$VENV/bin/python" dir kind="$3" venv="$HOST_VENVS/.venv-comfyui"
    dir="$(host_dir "$1" "$2")"; shift 3
    [ "$kind" = latest ] && venv="$venv-latest"
    if [ -n "$dir" ]; then
        python="$(venv_for "$venv" "$ROOT/tests/hosts/comfyui/comfyui_venv.sh" "$kind" \
            "$ROOT"/tests/hosts/comfyui/*.txt "$ROOT/tests/hosts/requirements-nodeps.txt")"
    fi
    COMFYUI_DIR="$dir" "$python" -m pytest -m comfyui "$@"
}

# tier_webui MARKER HOST_FOLDER DIR_VARIABLE PYTHON_VARIABLE INSTALLER: pytest in the project venv drives
# the webui in its own venv (PYTHON_VARIABLE, else .venv-MARKER built by INSTALLER) as a subprocess
tier_webui() {
    local marker="$1" folder="$2" dir_var="$3" python_var="$4" installer="$ROOT/$5"; shift 5
    local dir; dir="$(host_dir "$dir_var" "$folder")"
    if [ -n "$dir" ]; then
        export "$dir_var=$dir"
        [ -z "${!python_var:-}" ] && export "$python_var=$(venv_for "$HOST_VENVS/.venv-$marker" "$installer" "")"
    fi
    "$VENV/bin/python" -m pytest -m "$marker" "$@"
}

webui_host_env() {   # host folder, DIR variable, PYTHON variable, venv name, installer: export both if found
    local dir; dir="$(host_dir "$2" "$1")"
    if [ -n "$dir" ]; then
        export "$2=$dir"
        [ -z "${!3:-}" ] && export "$3=$(venv_for "$HOST_VENVS/.venv-$4" "$5" "")"
    fi
    return 0
}
tier_webui_server() {   # every webui's real server (launch.py), checked over HTTP
    webui_host_env A1111 A1111_DIR A1111_PYTHON a1111 "$ROOT/tests/hosts/a1111/a1111_venv.sh"
    webui_host_env reForge REFORGE_DIR REFORGE_PYTHON reforge "$ROOT/tests/hosts/reforge/reforge_venv.sh"
    webui_host_env Forge FORGE_DIR FORGE_PYTHON forge "$ROOT/tests/hosts/forge/forge_venv.sh"
    "$VENV/bin/python" -m pytest -m webui_server "$@"
}

# One line per tier, in start order (quick feedback first, then the longest host tiers):
#   name  command [arguments]    (a new tier's marker goes in pyproject.toml and tests/conftest.py)
TIERS=(
    "host-free       tier_host_free"
    "a1111           tier_webui a1111 A1111 A1111_DIR A1111_PYTHON tests/hosts/a1111/a1111_venv.sh"
    "reforge         tier_webui reforge reForge REFORGE_DIR REFORGE_PYTHON tests/hosts/reforge/reforge_venv.sh"
    "forge           tier_webui forge Forge FORGE_DIR FORGE_PYTHON tests/hosts/forge/forge_venv.sh"
    "webui-server    tier_webui_server"
    "comfyui         tier_comfyui COMFYUI_DIR ComfyUI pinned"
    "comfyui-latest  tier_comfyui COMFYUI_LATEST_DIR ComfyUI-latest latest"
)

# ---- runner -------------------------------------------------------------------------------------
selected=("$@")
run_tier() {   # name command...: runs in the background, writes LOGS/name.{log,status,seconds}
    local name="$1" start=$SECONDS status; shift
    local command="$*"
    set +e
    # shellcheck disable=SC2086
    timeout --kill-after=60 "$TIER_TIMEOUT" bash -c "$command -p no:cacheprovider ${FLOW_PYTEST_ARGS:-}" 2>&1 \
        | while IFS= read -r line; do printf '[%s] %s\n' "$name" "$line"; done | tee "$LOGS/$name.log"
    status=${PIPESTATUS[0]}
    echo "$status" > "$LOGS/$name.status"
    echo $((SECONDS - start)) > "$LOGS/$name.seconds"
    local verdict="passed"
    [ "$status" -eq 5 ] && verdict="FAILED: no tests collected"
    [ "$status" -eq 124 ] && verdict="FAILED: timed out after ${TIER_TIMEOUT}s"
    [ "$status" -ne 0 ] && [ "$verdict" = passed ] && verdict="FAILED (exit $status)"
    printf '== tier %s %s in %dm%02ds ==\n' "$name" "$verdict" $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60))
}

export -f host_dir venv_for tier_host_free tier_comfyui tier_webui webui_host_env tier_webui_server
export ROOT VENV HOSTS HOST_VENVS
echo "test tiers, logs in $LOGS (FLOW_JOBS=${FLOW_JOBS:-all})"
names=()
for entry in "${TIERS[@]}"; do
    read -r name command <<< "$entry"
    if [ ${#selected[@]} -gt 0 ] && [[ ! " ${selected[*]} " == *" $name "* ]]; then continue; fi
    while [ -n "${FLOW_JOBS:-}" ] && [ "$(jobs -rp | wc -l)" -ge "$FLOW_JOBS" ]; do sleep 2; done
    names+=("$name")
    run_tier "$name" $command &
done
if [ ${#names[@]} -eq 0 ]; then
    echo "no such tier: ${selected[*]} (tiers: $(printf '%s ' "${TIERS[@]%% *}"))" >&2
    exit 2
fi
wait

failed=0
echo "== summary =="
for name in "${names[@]}"; do
    status="$(cat "$LOGS/$name.status" 2>/dev/null || echo 1)"
    seconds="$(cat "$LOGS/$name.seconds" 2>/dev/null || echo 0)"
    result="$(grep -E '^\[[^]]*\] =*.*( passed| failed| error| skipped| deselected| no tests ran).* in [0-9.]+s' "$LOGS/$name.log" | tail -1 | sed 's/^\[[^]]*\] //; s/=//g')"
    printf '%-16s %3dm%02ds  exit %-3s %s\n' "$name" $((seconds / 60)) $((seconds % 60)) "$status" "$result"
    [ "$status" -ne 0 ] && failed=1
done
exit "$failed"
