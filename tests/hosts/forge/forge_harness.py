"""pytest side of the Forge host tests: one writable copy of Forge per session with this repository
installed under extensions/ (and an empty data dir for the no-extension reference), one runner
subprocess per suite, results cached.

FORGE_DIR (Forge source, e.g. ../shared/hosts/Forge) and FORGE_PYTHON (its venv's python,
tests/hosts/forge/forge_venv.sh) must both be set; otherwise the tests skip and say which is missing.
"""
import atexit
import json
import os
import shutil
import subprocess
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "forge_runner.py")
EXTENSION_NAME = "model-sampling-flow"
SUITE_TIMEOUT = 1800
SUITES = ("reference", "process_images", "samplers", "schedulers", "practical")
# The forge tier's practical sweep (the practical-step bar): every listed sampler on the schedule types that differ
# most between the views, and every listed schedule type for the samplers the schedule matters most to,
# at 20 and 28 steps on both fields (benchmarks/bench_practical_steps.py runs the full product;
# FLOW_PRACTICAL_FULL=1 here does too).
PRACTICAL_TIER = {
    "schedulers_for_all": ["Automatic", "Karras", "Exponential"],
    "samplers_for_all_schedulers": ["Euler", "DPM++ 2M", "Euler a", "DPM++ 2M SDE"],
}
MEAN_TOLERANCE, STD_TOLERANCE = 0.01, 0.02        # the bar at 256 steps, as for A1111 and reForge
DATA_MEAN, DATA_STD = 0.5, 0.3
_results, _running, _copy = {}, {}, []


def require_host():
    forge_dir, python = os.environ.get("FORGE_DIR"), os.environ.get("FORGE_PYTHON")
    if not forge_dir:
        pytest.skip("FORGE_DIR is not set (path to a Forge checkout; see docs/forge.md)")
    if not python:
        pytest.skip("FORGE_PYTHON is not set (python of the venv from tests/hosts/forge/forge_venv.sh)")
    if not os.path.isfile(os.path.join(forge_dir, "backend", "modules", "k_model.py")):
        pytest.skip(f"FORGE_DIR={forge_dir} does not look like Forge (no backend/modules/k_model.py)")
    if not os.access(python, os.X_OK):
        pytest.skip(f"FORGE_PYTHON={python} is not an executable")
    return forge_dir, python


def _ignore_repo(directory, names):
    return [n for n in names if n in (".git", "__pycache__", ".pytest_cache") or n.startswith(".venv")]


def host_copy():
    """(forge copy = its data dir with this repository in extensions/, an empty data dir)."""
    forge_dir, _ = require_host()
    if not _copy:
        root = tempfile.mkdtemp(prefix="flow_forge_host_")
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        target = os.path.join(root, "Forge")
        shutil.copytree(forge_dir, target, ignore=shutil.ignore_patterns(".git", "__pycache__"))
        for path, dirs, files in os.walk(target):     # host snapshots may be read-only
            os.chmod(path, 0o755)
            for name in files:
                os.chmod(os.path.join(path, name), 0o644)
        shutil.copytree(REPO, os.path.join(target, "extensions", EXTENSION_NAME), ignore=_ignore_repo)
        empty = os.path.join(root, "data-without-extension")
        os.makedirs(os.path.join(empty, "extensions"))
        _copy.extend([target, empty])
    return _copy


def _start(suite):
    _, python = require_host()
    target, empty = host_copy()
    out = os.path.join(os.path.dirname(target), f"{suite}.json")
    log_path = os.path.join(os.path.dirname(target), f"{suite}.log")
    environment = dict(os.environ, FORGE_DIR=target, FORGE_DATA=empty if suite == "reference" else target,
                       FLOW_EXTENSION=EXTENSION_NAME, TQDM_DISABLE="1", PYTHONDONTWRITEBYTECODE="1",
                       OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if suite == "practical" and not os.environ.get("FLOW_PRACTICAL_FULL"):
        environment["FLOW_PRACTICAL_TIER"] = json.dumps(PRACTICAL_TIER)
    log = open(log_path, "w")
    process = subprocess.Popen([python, RUNNER, suite, out], cwd=target, env=environment,
                               stdout=log, stderr=subprocess.STDOUT)
    _running[suite] = (process, out, log_path, log)


def run_suite(suite):
    """The runner's JSON for `suite`; the first call starts the suites two at a time (2 cores)."""
    if suite not in _results:
        if suite not in _running:
            _start(suite)
        process, out, log_path, log = _running[suite]
        try:
            process.wait(timeout=SUITE_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        if process.returncode != 0 or not os.path.exists(out):
            with open(log_path) as f:
                tail = f.read()[-4000:]
            pytest.fail(f"Forge runner suite {suite!r} failed (exit {process.returncode}):\n{tail}")
        with open(out) as f:
            _results[suite] = json.load(f)
    return _results[suite]


def start_all():
    """Start every suite not started yet (they run side by side; each is one thread)."""
    for suite in SUITES:
        if suite not in _running and suite not in _results:
            _start(suite)


def _stop_all():
    for process, *_ in _running.values():
        if process.poll() is None:
            process.kill()


atexit.register(_stop_all)


def within(stats, mean=DATA_MEAN, std=DATA_STD, mean_tol=MEAN_TOLERANCE, std_tol=STD_TOLERANCE):
    return stats is not None and stats.get("finite", False) and \
        abs(stats["mean"] - mean) <= mean_tol and abs(stats["std"] - std) <= std_tol
