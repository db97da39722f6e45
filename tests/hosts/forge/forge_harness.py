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
import tempfile

import pytest

from flow_test_support import bar, suites

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "forge_runner.py")
EXTENSION_NAME = "model-sampling-flow"
SUITE_TIMEOUT = 1800
SUITES = ("reference", "process_images", "samplers", "schedulers", "practical", "practical_cfg_tier")
# The forge tier's practical sweep (the practical-step bar): every listed sampler on the schedule types that differ
# most between the views, and every listed schedule type for the samplers the schedule matters most to,
# at 20 and 28 steps on both fields (benchmarks/bench_practical_steps.py runs the full product;
# FLOW_PRACTICAL_FULL=1 here does too).
PRACTICAL_TIER = {
    "schedulers_for_all": ["Automatic", "Karras", "Exponential"],
    "samplers_for_all_schedulers": ["Euler", "DPM++ 2M", "Euler a", "DPM++ 2M SDE"],
}
_results, _running, _copy = {}, {}, []


def require_host():
    """(forge_dir, python) or skip with the reason."""
    return suites.require_webui("Forge", "FORGE", "backend/modules/k_model.py", "docs/forge.md",
                                "tests/hosts/forge/forge_venv.sh")


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
        # the tier's share at CFG 1 (its CFG case is the practical_cfg_tier suite)
        environment.update(FLOW_PRACTICAL_TIER=json.dumps(PRACTICAL_TIER), FLOW_PRACTICAL_CFG="1")
    suites.start_suite(_running, suite, [python, RUNNER, suite, out], target, environment, out, log_path)


def run_suite(suite):
    """The runner's JSON for `suite`; the first call starts the suites two at a time (2 cores)."""
    if suite not in _results:
        if suite not in _running:
            _start(suite)
        _results[suite] = suites.finish_suite("Forge", suite, _running, SUITE_TIMEOUT)
    return _results[suite]


def start_all():
    """Start every suite not started yet (they run side by side; each is one thread)."""
    for suite in SUITES:
        if suite not in _running and suite not in _results:
            _start(suite)


atexit.register(suites.stop_suites, _running)
within = bar.stats_within
