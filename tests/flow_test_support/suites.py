"""The pytest side of a webui host's runner suites (reForge, Forge): one runner subprocess per suite,
its output in a log file, its result a JSON file read once the process ends.

Stdlib only (pytest imported where a failure is reported), like the rest of the toolkit.
"""
import json
import os
import subprocess


def start_suite(running, suite, command, cwd, environment, out, log_path):
    """Start `command` (a list: python, runner, suite, out) for `suite` in `cwd` with `environment`,
    its stdout and stderr to `log_path`; recorded in `running` (suite -> process, out, log path, log)."""
    log = open(log_path, "w")
    process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=log, stderr=subprocess.STDOUT)
    running[suite] = (process, out, log_path, log)


def finish_suite(host, suite, running, timeout):
    """The JSON `suite` (started by start_suite) wrote, once its process ends (killed after `timeout`
    seconds); a failed suite fails the test with the host name, the exit code and the log's tail."""
    process, out, log_path, log = running[suite]
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
    if process.returncode != 0 or not os.path.exists(out):
        import pytest
        with open(log_path) as f:
            tail = f.read()[-4000:]
        pytest.fail(f"{host} runner suite {suite!r} failed (exit {process.returncode}):\n{tail}")
    with open(out) as f:
        return json.load(f)


def stop_suites(running):
    """Kill every process in `running` still alive (registered with atexit by the harnesses)."""
    for process, *_ in running.values():
        if process.poll() is None:
            process.kill()


def require_webui(host, prefix, marker, doc, venv_script):
    """(host dir, python) from the environment variables `prefix`_DIR and `prefix`_PYTHON, or skip the
    test saying which is missing or wrong: the dir must hold `marker` (a relative path), the python
    must be executable. `doc` and `venv_script` name where the reader finds how to get each."""
    import pytest
    host_dir, python = os.environ.get(f"{prefix}_DIR"), os.environ.get(f"{prefix}_PYTHON")
    if not host_dir:
        pytest.skip(f"{prefix}_DIR is not set (path to a {host} checkout; see {doc})")
    if not python:
        pytest.skip(f"{prefix}_PYTHON is not set (python of the venv from {venv_script})")
    if not os.path.isfile(os.path.join(host_dir, marker)):
        pytest.skip(f"{prefix}_DIR={host_dir} does not look like {host} (no {marker})")
    if not os.access(python, os.X_OK):
        pytest.skip(f"{prefix}_PYTHON={python} is not an executable")
    return host_dir, python
