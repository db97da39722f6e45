"""A webui's real server for the server tier (tests/hosts/webui_server/test_webui_server.py): a writable copy of the
host with this repository installed under extensions/, started by its own launch.py with no model
(--ui-debug-mode), the API on, on a port the OS picked; queried over HTTP, stopped, restarted.

Hosts come from environment variables, as in the other host tiers:
    A1111_DIR + A1111_PYTHON, REFORGE_DIR + REFORGE_PYTHON, FORGE_DIR + FORGE_PYTHON
(the Python of each host's venv, tests/hosts/<host>/<host>_venv.sh). A missing one skips with the reason.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
EXTENSION_NAME = "model-sampling-flow"
LAUNCHER = os.path.join(HERE, "webui_server_launch.py")
START_TIMEOUT = 900     # seconds; a loaded 2-core machine takes 1-3 minutes to import a webui

# what marks each host's source tree, and the launch.py arguments that start it on CPU with no model
HOSTS = {
    "a1111": {"env": ("A1111_DIR", "A1111_PYTHON"), "marker": "modules/sd_samplers_kdiffusion.py",
              "args": ["--use-cpu", "all", "--no-half", "--precision", "full", "--skip-torch-cuda-test"]},
    "reforge": {"env": ("REFORGE_DIR", "REFORGE_PYTHON"), "marker": "ldm_patched/modules/model_sampling.py",
                "args": ["--always-cpu"]},
    "forge": {"env": ("FORGE_DIR", "FORGE_PYTHON"), "marker": "backend/modules/k_prediction.py",
              "args": ["--always-cpu", "--all-in-fp32"]},
}
COMMON_ARGS = ["--ui-debug-mode", "--api", "--skip-prepare-environment", "--skip-install", "--skip-version-check",
               "--no-download-sd-model", "--do-not-download-clip"]
IGNORED = shutil.ignore_patterns(".git", ".venv*", "__pycache__", ".pytest_cache", "out", "build", "dist",
                                 "*.egg-info", "*.log")


def host_paths(kind):
    """(host dir, python) for `kind`, or pytest.skip with the reason."""
    dir_var, python_var = HOSTS[kind]["env"]
    host_dir, python = os.environ.get(dir_var), os.environ.get(python_var)
    if not host_dir:
        pytest.skip(f"{dir_var} is not set: the {kind} server tests need that webui's source tree")
    if not python:
        pytest.skip(f"{python_var} is not set: the {kind} server tests need the Python of its venv "
                    f"(tests/hosts/{kind}_venv.sh)")
    if not os.path.isfile(os.path.join(host_dir, HOSTS[kind]["marker"])):
        pytest.skip(f"{dir_var}={host_dir!r} does not hold {kind} (no {HOSTS[kind]['marker']})")
    if not os.access(python, os.X_OK):
        pytest.skip(f"{python_var}={python!r} is not an executable")
    return host_dir, python


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebuiServer:
    """One host copy; `start()` / `stop()` may be repeated (a restart keeps config.json)."""

    def __init__(self, kind, base):
        self.kind = kind
        source, self.python = host_paths(kind)
        self.dir = os.path.join(base, kind)
        shutil.copytree(source, self.dir, ignore=shutil.ignore_patterns("__pycache__", ".git"))
        for path, dirs, files in os.walk(self.dir):     # host snapshots may be read-only
            os.chmod(path, 0o755)
            for name in files:
                os.chmod(os.path.join(path, name), 0o644)
        shutil.copytree(ROOT, os.path.join(self.dir, "extensions", EXTENSION_NAME), ignore=IGNORED)
        # launch.py would clone the UI's static assets here; the server only needs the folder
        os.makedirs(os.path.join(self.dir, "repositories", "stable-diffusion-webui-assets"), exist_ok=True)
        if kind == "reforge":
            self._add_stability_repositories()
        self.process = None
        self.port = None
        self.logs = []

    def _add_stability_repositories(self):
        """What reForge's launch.py clones into repositories/, from the A1111 snapshot: generative-models
        (`sgm`, 45c443b3) and k-diffusion (ab527a9a) at reForge's own pins, and Stability's
        stablediffusion (`ldm`) at cf1d67a6 (reForge pins f16630a9 of a fork; the server only imports
        it). The server then imports the real packages, as a user's reForge does."""
        candidates = [os.environ.get("A1111_DIR"), os.path.join(os.path.dirname(host_paths("reforge")[0]), "A1111")]
        for a1111 in filter(None, candidates):
            source = os.path.join(a1111, "repositories")
            if os.path.isfile(os.path.join(source, "stable-diffusion-stability-ai", "ldm", "util.py")):
                for name in ("stable-diffusion-stability-ai", "generative-models", "k-diffusion"):
                    shutil.copytree(os.path.join(source, name), os.path.join(self.dir, "repositories", name),
                                    dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
                return

    def start(self):
        self.port = free_port()
        log_path = os.path.join(os.path.dirname(self.dir), f"{self.kind}-server-{len(self.logs)}.log")
        self.logs.append(log_path)
        args = COMMON_ARGS + HOSTS[self.kind]["args"] + ["--port", str(self.port)]
        env = dict(os.environ, PYTHONPATH="", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
                   TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", IGNORE_CMD_ARGS_ERRORS="1", COMMANDLINE_ARGS="",
                   PYTHONPYCACHEPREFIX=os.path.join(os.path.dirname(self.dir), "pycache"))
        with open(log_path, "w") as log:
            self.process = subprocess.Popen([self.python, LAUNCHER, self.kind, self.dir, "--"] + args,
                                            cwd=self.dir, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.wait_until_started(1, START_TIMEOUT)
        return self

    def started_count(self):
        """How often the current log says the UI is up. webui.py prints "Startup time" after the
        API and the app_started callbacks; a request before that would make the web app build its
        middleware early, and the webui's own API setup then fails (a race no user meets)."""
        with open(self.logs[-1], errors="replace") as handle:
            return handle.read().count("Startup time:")

    def wait_until_started(self, count, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.kind} server exited with {self.process.returncode}:\n{self.log()[-6000:]}")
            if self.started_count() >= count:
                try:
                    self.get("/sdapi/v1/options", timeout=30)
                    return
                except (OSError, urllib.error.URLError):
                    pass
            time.sleep(1)
        self.stop()
        raise AssertionError(f"{self.kind} server did not start within {timeout} s:\n{self.log()[-6000:]}")

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)     # webui.py: KeyboardInterrupt -> "stop" -> demo.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def reload_ui(self, timeout=START_TIMEOUT):
        """Settings -> "Reload UI", as the button does it (its Gradio event), then wait for the new UI.

        webui.py then closes the UI, reloads the scripts and builds the UI again in the same process.
        """
        config = self.get("/config")
        button = next(c["id"] for c in config["components"]
                      if c.get("props", {}).get("elem_id") == "settings_restart_gradio")
        fn_index = next(index for index, dependency in enumerate(config["dependencies"])
                        if button in [t[0] if isinstance(t, (list, tuple)) else t for t in dependency["targets"]])
        started = self.started_count()
        self.post("/run/predict", {"fn_index": fn_index, "data": [], "session_hash": "flowservertest"})
        self.wait_until_started(started + 1, timeout)
        return self

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path, timeout=60):
        with urllib.request.urlopen(self.url(path), timeout=timeout) as response:
            return json.loads(response.read())

    def post(self, path, payload, timeout=60):
        request = urllib.request.Request(self.url(path), data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")

    def log(self, index=None):
        paths = self.logs if index is None else [self.logs[index]]
        text = []
        for path in paths:
            with open(path, errors="replace") as handle:
                text.append(handle.read())
        return "\n".join(text)

    def ui_config(self):
        """The webui's ui-config.json (written at the first launch), or {}."""
        path = os.path.join(self.dir, "ui-config.json")
        if not os.path.isfile(path):
            return {}
        with open(path) as handle:
            return json.load(handle)


def components_by_elem_id(config):
    """{elem_id: props} of the Gradio /config's components."""
    return {c["props"]["elem_id"]: dict(c["props"], type=c.get("type"))
            for c in config.get("components", []) if c.get("props", {}).get("elem_id")}


def dependencies_on(config, component_id):
    """The /config event handlers triggered by the component with this id."""
    out = []
    for dependency in config.get("dependencies", []):
        targets = dependency.get("targets", [])
        ids = [t[0] if isinstance(t, (list, tuple)) else t for t in targets]
        if component_id in ids:
            out.append(dependency)
    return out


__all__ = ["WebuiServer", "HOSTS", "host_paths", "components_by_elem_id", "dependencies_on"]
