"""Practical step counts inside reForge (the practical-step bar): every listed sampler (the Flow samplers included)
at practical step counts on the exact RF fields, with flow on (shift 3, cfg 1), through reForge's own
webui sampler path (tests/hosts/reforge/reforge_runner.py suite_practical_tier; the full sweep, every schedule
type at 20 and 28 steps on both fields, is benchmarks/bench_practical_steps.py).

Bar, per row: deterministic samplers: RMSE to the exact ODE endpoint <= 1.1 x + 1e-3 that of the same
sampler on the same-named schedule in native flow coordinates; stochastic samplers: mean and std
within 0.01 of the same sampler in the VE view on that schedule computed over the flow range and
mapped to VE (same seeds); or refused with a message that says why and what to pick instead.

CFG case (suite_practical_cfg_tier): a few samplers (the shared ones, CFG++ and Flow ones) at CFG 5 on the guided
field pairs, the network answering the negative prompt's rows with the uncond field (reForge's own
sampling_function / cfg_function combine them), on the same bar against the exact guided field.
"""
import reforge_harness as harness  # noqa: E402
from flow_test_support.practical import element_failure, reference_failure

# Every row is judged: the references draw the pass's noise (k-diffusion's TorchHijack over the pass's
# ImageRNG, Brownian trees on its seeds, and the global generator seeded the same for the samplers
# that draw from it: Restart, the SMEA / Dy family, ldm_patched's own).


def _practical():
    return harness.run_suite("practical_tier")


def test_every_listed_sampler_was_measured():
    result = _practical()
    measured = {key.split(" | ")[2] for key in result["rows"]}
    assert measured == set(result["listed"])
    assert {f"Flow {name}" for name in ("Euler", "Heun", "Euler a", "SDE", "Multistep")} <= measured


def test_every_listed_sampler_has_a_known_kind():
    from webui_extension.sampler_views import sampler_kind
    unknown = [name for name in _practical()["listed"] if sampler_kind(name) is None]
    assert not unknown, unknown


def test_practical_rows_meet_the_bar_or_are_refused():
    failures, judged = [], 0
    for key, row in _practical()["rows"].items():
        if row["error"]:
            if "Flow sampling" not in row["error"] or "Pick another" not in row["error"]:
                failures.append(f"{key}: error without a refusal message: {row['error'][:300]}")
            continue
        if row["kind"] == "timestep":
            continue        # DDIM / PLMS / UniPC read alphas_cumprod: test_reforge_samplers judges them
        if row.get("reference_error") or "ref_mean" not in row:
            failures.append(f"{key}: no reference ({row.get('reference_error')})")
        elif not row["finite"]:
            failures.append(f"{key}: non-finite samples")
        else:
            judged += 1
            if reference_failure(key, row):
                failures.append(reference_failure(key, row))
    assert not failures, "\n".join(failures[:40])
    assert judged > 100


def test_deterministic_samplers_are_judged_against_native_flow():
    """The deterministic rows compare with a reference that ran (no sampler of that kind is
    silently left out), and the sigma-spaced schedule that was 25x off before is now native."""
    rows = _practical()["rows"]
    row = rows["gaussian | 20 | DPM++ 2M | Karras"]
    assert row["rmse"] <= 1.1 * row["ref_rmse"] + 1e-3 and row["ref_rmse"] < 0.01


def _practical_cfg():
    return harness.run_suite("practical_cfg_tier")


def test_cfg_5_rows_meet_the_bar_with_the_negative_prompt_answered():
    """CFG 5 (reforge_runner.TIER_PRACTICAL_CFG): the guided pairs, the empty negative prompt's rows answered by
    the uncond field through reForge's own CFG (cond / uncond batched in one call: exactly one negative row per
    network call, so the positive prompt's conditioning is not zero), every row on the practical bar against
    the same sampler at CFG 5 on the exact guided field (oracles.GuidedField), CFG++ and Flow samplers included."""
    result = _practical_cfg()
    assert result["cfg"] == 5.0
    rows = result["rows"]
    measured = {key.split(" | ")[2] for key in rows}
    assert measured == set(result["samplers"]) and len(rows) == 2 * 2 * 2 * len(measured), sorted(rows)
    assert {"Euler CFG++", "Euler Ancestral CFG++", "Flow Euler", "Flow Multistep"} <= measured
    failures = []
    for key, row in rows.items():
        if row["error"] or row.get("reference_error") or "ref_mean" not in row or not row["finite"]:
            failures.append(f"{key}: {row['error'] or row.get('reference_error') or 'no reference / non-finite'}")
        elif not 0 < row.get("negative_rows", 0) == row.get("network_calls"):
            failures.append(f"{key}: {row['negative_rows']} negative rows in {row['network_calls']} network calls")
        elif reference_failure(key, row):
            failures.append(reference_failure(key, row))
        elif row["kind"] == "deterministic" and element_failure(key, row):
            failures.append(element_failure(key, row))
    assert not failures, "\n".join(failures)


def test_cfg_5_is_not_cfg_1():
    """The guidance shows in the result: on the two-mode pair CFG 5 pushes Euler's samples towards the positive
    prompt's main mode (-1, weight 0.7), past where the unguided positive field puts the mean (-0.4)."""
    row = _practical_cfg()["rows"]["two_modes | 28 | Euler | Karras"]
    assert row["mean"] < -0.6, row
