"""A1111 1.10, Flow sampling On, Settings 'sigma churn' = 10 with Euler / Heun / DPM2 (20 steps): these
would run on the flow-view denoiser, where k-diffusion's Karras churn (a VE-view noise injection) rescales
the data component (mean 0.61 / 0.70 / 0.80 for 0.5); with churn the pass runs in the VE view (the control)."""
import json
import os
import subprocess
import tempfile

import pytest

from a1111_host import EXTENSION_NAME, host_paths, make_host_copy

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "a1111_churn_probe.py")
_rows = {}


def rows():
    if not _rows:
        a1111_dir, python = host_paths()
        base = tempfile.mkdtemp(prefix="flow_a1111_churn_")
        webui = make_host_copy(a1111_dir, os.path.join(base, "webui"), with_extension=True)
        out = os.path.join(base, "churn.json")
        env = dict(os.environ, A1111_DIR=webui, FLOW_EXTENSION_NAME=EXTENSION_NAME, PYTHONPATH="",
                   OMP_NUM_THREADS="1", PYTHONPYCACHEPREFIX=os.path.join(base, "pycache"))
        done = subprocess.run([python, SCRIPT, out], cwd=webui, env=env, capture_output=True, text=True, timeout=1800)
        if not os.path.isfile(out):
            pytest.fail(f"A1111 churn probe wrote nothing ({done.returncode}):\n{done.stderr[-4000:]}")
        with open(out) as handle:
            _rows.update(json.load(handle))
    return _rows


@pytest.mark.parametrize("sampler", ["Euler", "Heun", "DPM2"])
def test_a1111_sigma_churn_keeps_the_data_mean(sampler):
    data = rows()
    control, row = data[f"{sampler} churn=10.0 ve_view"], data[f"{sampler} churn=10.0"]
    assert control["error"] is None and abs(control["mean"] - 0.5) < 0.02, control
    assert row["error"] is None and abs(row["mean"] - 0.5) < 0.02, row
