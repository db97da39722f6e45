"""Adding a sampler or a scheduler is one registry entry, for every webui: a throwaway entry of each,
added to the core's registry inside the real A1111, reForge and Forge (tests/hosts/registry_probe.py),
reaches the sampler list and the schedule-type list through the extension's registration, with the
webui options derived from the entry (two model calls a step: the webui counts the steps twice; the
schedule "Automatic" gives it).

Each host skips with the reason when its *_DIR / *_PYTHON variables are unset.
"""
import json
import os
import subprocess
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE = os.path.join(HERE, "registry_probe.py")


def _copy(host):
    if host == "a1111":
        import a1111_host
        source, python = a1111_host.host_paths()
        target = a1111_host.make_host_copy(source, os.path.join(tempfile.mkdtemp(prefix="flow_registry_"), "A1111"),
                                           with_extension=True)
        return target, python
    if host == "reforge":
        import reforge_harness
        _, python = reforge_harness.require_host()
        return reforge_harness.host_copy(), python
    import forge_harness
    _, python = forge_harness.require_host()
    return forge_harness.host_copy()[0], python


@pytest.mark.parametrize("host", [pytest.param(name, marks=getattr(pytest.mark, name))
                                  for name in ("a1111", "reforge", "forge")])
def test_a_new_registry_entry_reaches_the_webui_lists(host):
    target, python = _copy(host)
    out = os.path.join(tempfile.mkdtemp(prefix="flow_registry_out_"), "probe.json")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", TQDM_DISABLE="1", PYTHONPATH="")
    proc = subprocess.run([python, PROBE, host, target, out], cwd=target, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert os.path.isfile(out), f"the probe wrote nothing (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    with open(out) as handle:
        result = json.load(handle)
    assert result["error"] is None, result["error"]
    # (reForge's starter loads no scripts, so there the real entries are added by the same call)
    assert "Flow Throwaway Probe" in result["added"]["samplers"]
    assert "Flow Throwaway Schedule" in result["added"]["schedulers"]
    assert result["samplers"].count("Flow Throwaway Probe") == 1
    assert result["schedulers"].count("Flow Throwaway Schedule") == 1
    assert result["scheduler_by_name"] == "Flow Throwaway Schedule"
    assert result["options"]["second_order"] is True and result["options"]["scheduler"] == "flow_throwaway_schedule"
    # "Automatic" gives each sampler the schedule its entry names: the Flow samplers Flow PC
    assert result["automatic"] == {"Flow Throwaway Probe": "Flow Throwaway Schedule", "Flow PC": "Flow PC",
                                   "Flow Euler": "Flow PC"}
    assert result["total_steps_of_10"] == 20
    for label in ("Flow Euler", "Flow Heun", "Flow PC"):
        assert label in result["samplers"], label
    assert {"Flow shift", "Flow PC"} <= set(result["schedulers"])
