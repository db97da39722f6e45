"""pytest side of the reForge host tests: one writable copy of reForge per session with this
repository installed as an extension, and one runner subprocess per suite (results cached).

REFORGE_DIR (reForge source) and REFORGE_PYTHON (its venv's python, tests/hosts/reforge/reforge_venv.sh)
must both be set; otherwise the tests skip and say which is missing.
"""
import atexit
import os
import shutil
import tempfile

import pytest

from flow_test_support import bar, suites
from flow_test_support.files import copy_host

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reforge_runner.py")
EXTENSION_NAME = "model-sampling-flow"
SUITE_TIMEOUT = 3600   # the slowest suite took ~15 min on a loaded 2-core machine
SUITE_TIMEOUTS = {"practical": 3600}     # every sampler x schedules x 20/28 steps x 2 fields
_results = {}
_copy = []


def require_host():
    """(reforge_dir, python) or skip with the reason."""
    return suites.require_webui("reForge", "REFORGE", "modules/processing.py", "docs/reforge.md",
                                "tests/hosts/reforge/reforge_venv.sh")


def _ignore_repo(directory, names):
    return [n for n in names if n == ".git" or n.startswith(".venv") or n == "__pycache__"
            or n == ".pytest_cache"]


def host_copy():
    """A temporary copy of reForge (it writes next to itself) with this repository installed
    the way users install it: the repository folder under extensions/."""
    reforge_dir, _ = require_host()
    if not _copy:
        root = tempfile.mkdtemp(prefix="flow_reforge_host_")
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        target = os.path.join(root, "reForge")
        copy_host(reforge_dir, target, ignore=shutil.ignore_patterns(".git"))   # snapshots may be read-only
        shutil.copytree(REPO, os.path.join(target, "extensions", EXTENSION_NAME), ignore=_ignore_repo)
        k_diffusion = k_diffusion_checkout()
        if k_diffusion and not os.path.isdir(os.path.join(target, "repositories", "k-diffusion")):
            # reForge's launcher clones crowsonkb/k-diffusion ab527a9 here (launch_utils); with it, the
            # extension's A1111-layout samplers (the Flow samplers) are listed, so the sweep covers them
            shutil.copytree(k_diffusion, os.path.join(target, "repositories", "k-diffusion"),
                            ignore=shutil.ignore_patterns(".git", "__pycache__"))
        _copy.append(target)
    return _copy[0]


def k_diffusion_checkout():
    """crowsonkb/k-diffusion at the commit reForge pins (ab527a9, the one A1111 1.10 pins too), or None."""
    candidates = [os.environ.get("K_DIFFUSION_DIR")]
    for a1111 in (os.environ.get("A1111_DIR"), os.path.join(os.path.dirname(os.environ.get("REFORGE_DIR", "")), "A1111")):
        if a1111:
            candidates.append(os.path.join(a1111, "repositories", "k-diffusion"))
    return next((c for c in candidates if c and os.path.isfile(os.path.join(c, "k_diffusion", "sampling.py"))), None)


# started together on first use; the runner's "practical" suite (every sampler x schedule at 20/28
# steps) is run by benchmarks/bench_practical_steps.py, the tier runs its "practical_tier" share
SUITES = ("samplers", "schedulers", "img2img", "lifecycle", "eps_control", "process_images", "practical_tier",
          "practical_cfg_tier")
_running = {}


def _start(suite):
    _, python = require_host()
    target = host_copy()
    out = os.path.join(os.path.dirname(target), f"{suite}.json")
    log_path = os.path.join(os.path.dirname(target), f"{suite}.log")
    # one thread each: the suites run side by side (2 cores measured), not fighting over threads
    environment = dict(os.environ, REFORGE_DIR=target, FLOW_EXTENSION=EXTENSION_NAME, TQDM_DISABLE="1",
                       PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    suites.start_suite(_running, suite, [python, RUNNER, suite, out], target, environment, out, log_path)


def run_suite(suite):
    """The runner's JSON for `suite`; the first call starts every suite in parallel."""
    if suite not in _results:
        if not _running:
            for name in SUITES:
                _start(name)
        if suite not in _running:
            _start(suite)
        _results[suite] = suites.finish_suite("reForge", suite, _running, SUITE_TIMEOUTS.get(suite, SUITE_TIMEOUT))
    return _results[suite]


atexit.register(suites.stop_suites, _running)
within = bar.stats_within        # the shared acceptance bar (flow_test_support/bar.py)
