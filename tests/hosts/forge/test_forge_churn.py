"""Forge (dfdcbab6), Flow sampling On, Settings 'sigma churn' = 10 with Euler / Heun / DPM2 (20 steps):
without churn these integrate in flow coordinates, where k-diffusion's Karras churn (a VE-view noise
injection) would rescale the data component (mean ~0.6-0.8 for 0.5); with churn the pass runs in the VE
view: forge.py's before_sampling does not integrate in flow coordinates when sampler_views.pass_churn is
non-zero, and the flow-coordinates wrapper itself hands a call with s_churn to the sampler as it was (each
alone keeps the mean; with both removed the means are 0.62 / 0.71 / 0.79). Churn 0 is the control; the
infotext names the churn."""
import json
import os
import subprocess

import pytest

import forge_harness as harness

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "forge_churn_probe.py")
SAMPLERS = ("Euler", "Heun", "DPM2")
_rows = {}


def rows():
    if not _rows:
        _, python = harness.require_host()
        target, _ = harness.host_copy()
        base = os.path.dirname(target)
        out = os.path.join(base, "churn.json")
        env = dict(os.environ, FORGE_DIR=target, FORGE_DATA=target, FLOW_EXTENSION=harness.EXTENSION_NAME,
                   TQDM_DISABLE="1", PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        done = subprocess.run([python, SCRIPT, out], cwd=target, env=env, capture_output=True, text=True,
                              timeout=harness.SUITE_TIMEOUT)
        if not os.path.isfile(out):
            pytest.fail(f"Forge churn probe wrote nothing (exit {done.returncode}):\n{done.stderr[-4000:]}")
        with open(out) as handle:
            _rows.update(json.load(handle))
    return _rows


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_forge_sigma_churn_keeps_the_data_mean(sampler):
    row = rows()[f"{sampler} churn=10.0"]
    assert row["error"] is None and row["finite"] and abs(row["mean"] - 0.5) < 0.02, row
    assert row["sigma_churn"] == 10.0 and "Sigma churn: 10.0" in row["infotext"], row


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_forge_without_churn_is_unchanged(sampler):
    row = rows()[f"{sampler} churn=0.0"]
    assert row["error"] is None and row["finite"] and abs(row["mean"] - 0.5) < 0.02, row
    assert row["sigma_churn"] is None and "Sigma churn" not in row["infotext"], row
