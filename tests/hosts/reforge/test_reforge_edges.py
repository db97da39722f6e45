"""Edges of reForge's per-pass flow views (reforge_edge_runner.py), found by a hostile pass: Karras churn,
the core's schedule types with reForge's own samplers, hires, refusals, Off after an interrupted On."""
import json
import os
import subprocess

import pytest

from reforge_harness import host_copy, require_host, EXTENSION_NAME

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reforge_edge_runner.py")
_cache = {}


def run_checks(names):
    key = ",".join(names)
    if key not in _cache:
        _, python = require_host()
        target = host_copy()
        out = os.path.join(os.path.dirname(target), f"edges_{key.replace(',', '_')}.json")
        env = dict(os.environ, REFORGE_DIR=target, FLOW_EXTENSION=EXTENSION_NAME, TQDM_DISABLE="1",
                   PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        done = subprocess.run([python, RUNNER, key, out], cwd=target, env=env, capture_output=True, text=True,
                              timeout=1800)
        if done.returncode != 0 or not os.path.exists(out):
            pytest.fail(f"edge runner failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        with open(out) as f:
            _cache[key] = json.load(f)
    return _cache[key]


@pytest.mark.parametrize("sampler", ["Euler", "Heun", "DPM2"])
def test_sigma_churn_keeps_the_data_mean(sampler):
    """Settings 'sigma churn' = 10 (A1111 sampling backend), flow On, txt2img: Karras churn is a VE-view
    noise injection (x + eps * sqrt(sigma_hat^2 - sigma^2)); run in flow coordinates it rescales the data
    component, so the mean drifts from 0.5. The VE view (the control) keeps it."""
    rows = run_checks(["churn", "comfy_churn"])["churn"]
    row = rows[f"{sampler} churn=10.0"]
    assert abs(row["ve_view"]["mean"] - 0.5) < 0.02, row      # the control is right
    assert abs(row["flow_coordinates"]["mean"] - 0.5) < 0.02, row


@pytest.mark.parametrize("sampler", ["Euler Comfy", "Heun Comfy", "HeunPP2"])
def test_reforge_own_churn_samplers_keep_the_data_mean(sampler):
    """Settings 'Euler - s_churn' / 'Heun - s_churn' / 'HeunPP2 s_churn' = 1 (read inside ldm_patched's
    sampler functions), flow On, txt2img: the flow-coordinates pass drifts the mean; the VE view keeps it."""
    rows = run_checks(["churn", "comfy_churn"])["comfy_churn"]
    assert abs(rows[f"{sampler} churn=1.0 ve_view"]["mean"] - 0.5) < 0.02, rows     # the control is right
    assert abs(rows[f"{sampler} churn=1.0"]["mean"] - 0.5) < 0.02, rows[f"{sampler} churn=1.0"]


@pytest.mark.parametrize("sampler", ["Euler Comfy", "DPM++ 2M CFG++"])
def test_reforge_own_samplers_use_the_flow_pc_schedule_type(sampler):
    """Schedule type 'Flow PC' (listed by the extension for every sampler) with one of reForge's own
    samplers, flow On: the pass uses the Flow PC schedule (as 'Euler' / 'Flow Euler' do); reForge's own
    AlterSampler.get_sigmas does not know the name and would fall back to Normal."""
    rows = run_checks(["schedules"])["schedules"]
    flow_pc = rows["Euler / Flow PC"]["sigmas"]
    normal = rows[f"{sampler} / Normal"]["sigmas"]
    row = rows[f"{sampler} / Flow PC"]
    assert "error" not in row["stats"] or "Flow PC" in row["stats"]["error"], row   # a clear refusal is fine
    if "error" not in row["stats"]:
        assert row["sigmas"] != normal, f"'Flow PC' silently ran the Normal schedule: {row['sigmas']}"
        assert row["sigmas"] == pytest.approx(flow_pc, rel=1e-3), row


def test_sigma_churn_through_process_images():
    """End to end (process_images, the extension's script, Flow sampling On, Settings sigma churn 10,
    sampler Euler, 20 steps): the infotext says 'Sigma churn: 10.0' and the data mean must stay 0.5."""
    rows = run_checks(["process_images"])["process_images"]
    assert abs(rows["no churn Euler"]["mean"] - 0.5) < 0.02, rows["no churn Euler"]
    row = rows["churn Euler"]
    assert "Sigma churn: 10.0" in row["infotext"], row
    assert abs(row["mean"] - 0.5) < 0.02, row


def test_hires_and_refusals_hold():
    """What held: hires fix after a flow-coordinates first pass (same / other hires sampler and schedule
    type, resolution-dependent shift) stays on the data mean; a refused hires sampler is a clear refusal."""
    rows = run_checks(["process_images"])["process_images"]
    for key, row in rows.items():
        if key.startswith("hires res="):
            assert "error" not in row and abs(row["mean"] - 0.5) < 0.02, (key, row)
    assert rows["hires refused LCM"]["error"].startswith("FlowSamplingRefused: Flow sampling: sampler 'LCM'")


def test_lifecycle_holds():
    """What held: Off after On (and after an exception mid-sampling) is bit-identical to never On; a shift
    change equals a fresh On at the new shift; refused schedule types refuse for reForge's own samplers."""
    rows = run_checks(["lifecycle"])["lifecycle"]
    assert all(rows["off_identical_after_interrupt"].values()), rows
    assert all(rows["shift_change_identical_to_fresh"].values()), rows
    assert all(rows["on_repeatable_after_interrupt"].values()), rows
    assert rows["override Euler"] == [80.0, 10.0, 3.0, 1.0, 0.3, 0.05, 0.0]
    for key, value in rows.items():
        if key.startswith("refuse "):
            assert value.startswith("refused: Flow sampling:"), (key, value)
