"""Fixture helpers for the A1111 host tests (run from the project's pytest, in its own venv).

The webui runs in its own Python (A1111_PYTHON) as a subprocess, in a temporary copy of A1111_DIR
(it writes next to itself), with this repository installed the way users install it: a copy of
the repository directory under the webui's extensions folder.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from flow_test_support.files import copy_host

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
EXTENSION_NAME = "model-sampling-flow"
PROBE_NAME = "flow-test-probe"
IGNORED = shutil.ignore_patterns(".git", ".venv*", "__pycache__", ".pytest_cache", "out", "build", "dist",
                                 "*.egg-info", "*.log")


def host_paths():
    """(A1111_DIR, A1111_PYTHON), or pytest.skip with the reason."""
    a1111_dir, python = os.environ.get("A1111_DIR"), os.environ.get("A1111_PYTHON")
    if not a1111_dir:
        pytest.skip("A1111_DIR is not set: the A1111 host tests need an A1111 v1.10.1 checkout")
    if not python:
        pytest.skip("A1111_PYTHON is not set: the A1111 host tests need the Python of an A1111 venv "
                    "(tests/hosts/a1111/a1111_venv.sh creates one)")
    if not os.path.isfile(os.path.join(a1111_dir, "modules", "sd_samplers_kdiffusion.py")):
        pytest.skip(f"A1111_DIR={a1111_dir!r} does not hold A1111 (no modules/sd_samplers_kdiffusion.py)")
    if not os.access(python, os.X_OK):
        pytest.skip(f"A1111_PYTHON={python!r} is not an executable")
    return a1111_dir, python


def make_host_copy(source, destination, with_extension):
    """A writable copy of the webui with the probe (always) and this repository (when asked) installed."""
    copy_host(source, destination)     # writable even when the snapshot is read-only
    probe_dir = os.path.join(destination, "extensions", PROBE_NAME, "scripts")
    os.makedirs(probe_dir)
    shutil.copyfile(os.path.join(HERE, "a1111_probe.py"), os.path.join(probe_dir, "flow_test_probe.py"))
    if with_extension:
        shutil.copytree(ROOT, os.path.join(destination, "extensions", EXTENSION_NAME), ignore=IGNORED)
    return destination


def run_suite(host_copy, python, suite, tmp_dir, env=None, timeout=3600):
    """Run one suite of a1111_runner.py inside the webui's Python; its JSON payload."""
    out_path = os.path.join(tmp_dir, f"{suite}-{os.getpid()}-{len(os.listdir(tmp_dir))}.json")
    full_env = dict(os.environ, A1111_DIR=host_copy, FLOW_EXTENSION_NAME=EXTENSION_NAME,
                    PYTHONPYCACHEPREFIX=os.path.join(tmp_dir, "pycache"), PYTHONPATH="")
    full_env.update(env or {})
    proc = subprocess.run([python, os.path.join(HERE, "a1111_runner.py"), suite, out_path],
                          capture_output=True, text=True, env=full_env, cwd=host_copy, timeout=timeout)
    if not os.path.isfile(out_path):
        raise AssertionError(f"A1111 runner wrote no result (exit {proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    with open(out_path) as handle:
        payload = json.load(handle)
    payload["stdout"], payload["stderr"] = proc.stdout, proc.stderr
    if payload["error"]:
        raise AssertionError(f"A1111 runner failed in suite {suite}:\n{payload['error']}\n{proc.stderr[-4000:]}")
    return payload


def start_suite(host_copy, python, suite, tmp_dir, env=None):
    """Start a suite in the background (the matrix is long); finish with finish_suite."""
    out_path = os.path.join(tmp_dir, f"{suite}-bg.json")
    full_env = dict(os.environ, A1111_DIR=host_copy, FLOW_EXTENSION_NAME=EXTENSION_NAME,
                    PYTHONPYCACHEPREFIX=os.path.join(tmp_dir, "pycache"), PYTHONPATH="")
    full_env.update(env or {})
    log = open(os.path.join(tmp_dir, f"{suite}-bg.log"), "w")
    proc = subprocess.Popen([python, os.path.join(HERE, "a1111_runner.py"), suite, out_path],
                            stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=host_copy)
    return proc, out_path, log


def finish_suite(handle, timeout=3600):
    proc, out_path, log = handle
    proc.wait(timeout=timeout)
    log.close()
    if not os.path.isfile(out_path):
        with open(log.name) as f:
            raise AssertionError(f"A1111 runner wrote no result (exit {proc.returncode}):\n{f.read()[-6000:]}")
    with open(out_path) as f:
        payload = json.load(f)
    if payload["error"]:
        raise AssertionError(f"A1111 runner failed:\n{payload['error']}")
    return payload


__all__ = ["host_paths", "make_host_copy", "run_suite", "start_suite", "finish_suite", "sys"]
