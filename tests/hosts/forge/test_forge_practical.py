"""Practical step counts on Forge (dfdcbab6), the practical-step bar, through Forge's own process_images with this
repository installed under extensions/ and Flow sampling On (shift 3, CFG 1, default configuration), on
Forge's SDXL engine whose UNet returns the exact velocity of the Gaussian N(0.5, 0.3^2) or of the
two-component mixture field (model_sampling_flow/oracles.py), 20 and 28 steps:

* deterministic samplers: RMSE to the exact ODE endpoint of the pass's own noise <= 1.1 x + 1e-3 that of
  the same Forge sampler function on the same-named Forge schedule type computed by Forge's own flow
  predictor (PredictionDiscreteFlow, native flow coordinates);
* stochastic samplers: mean and std within 0.01 of the same sampler in the VE view on that schedule
  mapped to VE, drawing the same noise;
* or refused with a message that names the sampler or schedule type.

The forge tier runs every listed sampler (the Flow samplers included) on Automatic, Karras and
Exponential, and every listed schedule type for Euler, DPM++ 2M, Euler a and DPM++ 2M SDE
(tests/hosts/forge/forge_harness.py PRACTICAL_TIER); benchmarks/bench_practical_steps.py runs the full
product (docs/practical_steps.txt).

CFG case (suite_practical_cfg_tier): a few samplers (the shared ones, DDIM CFG++, Flow ones) at CFG 5 on the guided
field pairs, the network answering the negative prompt's rows with the uncond field (Forge's own CFG combines
them), on the same bar against the exact guided field.
"""
import forge_harness as harness  # noqa: E402
from flow_test_support.practical import element_failure, reference_failure  # noqa: E402

from webui_extension.forge import REFUSED_AT_CFG_1, REFUSED_SAMPLERS, REFUSED_SCHEDULERS  # noqa: E402

FLOW_SAMPLERS = {"Flow Euler", "Flow Heun", "Flow Euler a", "Flow SDE", "Flow Multistep"}


def _practical():
    harness.start_all()
    return harness.run_suite("practical")


def _split(key):
    field, steps, sampler, scheduler = key.split(" | ")
    return field, int(steps), sampler, scheduler


def test_the_sweep_covers_every_listed_sampler_at_20_and_28_steps_on_both_fields():
    result = _practical()
    rows = result["rows"]
    assert FLOW_SAMPLERS <= set(result["listed"]), result["listed"]
    covered = {(field, steps, sampler) for field, steps, sampler, _ in map(_split, rows)}
    for field in ("gaussian", "mixture"):
        for steps in (20, 28):
            missing = [s for s in result["listed"] if (field, steps, s) not in covered]
            assert not missing, (field, steps, missing)
    for sampler in harness.PRACTICAL_TIER["samplers_for_all_schedulers"]:
        schedules = {scheduler for _, _, s, scheduler in map(_split, rows) if s == sampler}
        assert schedules == set(result["schedulers"]), (sampler, set(result["schedulers"]) - schedules)
    assert {"Karras", "Exponential", "Turbo", "Flow shift", "KL Optimal"} <= set(result["schedulers"])


def practical_failures(rows):
    """Rows that miss the bar (see the module docstring); timestep samplers are listed apart."""
    failures = []
    for key, row in rows.items():
        _, _, sampler, scheduler = _split(key)
        if row["error"]:
            refused = sampler in REFUSED_SAMPLERS or sampler in REFUSED_AT_CFG_1 or scheduler in REFUSED_SCHEDULERS
            if not refused or "Flow sampling" not in row["error"] or \
                    f"'{sampler}'" not in row["error"] and f"'{scheduler}'" not in row["error"]:
                failures.append(f"{key}: error that is not a refusal: {row['error']}")
            continue
        if not row.get("finite"):
            failures.append(f"{key}: non-finite samples")
            continue
        if row["kind"] == "timestep":
            continue
        if row.get("reference_error") or "ref_mean" not in row:
            failures.append(f"{key}: no reference ({row.get('reference_error')})")
        elif not row.get("same_noise"):
            failures.append(f"{key}: the reference did not draw the pass's noise")
        elif reference_failure(key, row):
            failures.append(reference_failure(key, row))
    return failures


def test_every_pair_meets_the_practical_step_bar_or_is_refused():
    failures = practical_failures(_practical()["rows"])
    assert not failures, "\n".join(failures)


def test_the_refused_pairs_are_exactly_the_refusals():
    """Nothing else stops: the refused samplers (LCM; DDIM CFG++ at CFG 1) and schedule types (the Align
    Your Steps family) stop with their message, every other pair samples (Beta included)."""
    rows = _practical()["rows"]
    for key, row in rows.items():
        _, _, sampler, scheduler = _split(key)
        refused = sampler in REFUSED_SAMPLERS or sampler in REFUSED_AT_CFG_1 or scheduler in REFUSED_SCHEDULERS
        assert bool(row["error"]) == refused, (key, row)


def test_karras_is_as_accurate_as_natively_where_the_ve_table_lost_it():
    """The issue's first row: DPM++ 2M on its default (Karras) schedule at 28 steps. On the VE table
    Karras puts most steps at pure noise (RMSE 0.02-0.04); over the flow range it is the native figure."""
    rows = _practical()["rows"]
    for field in ("gaussian", "mixture"):
        row = rows[f"{field} | 28 | DPM++ 2M | Automatic"]
        assert row["error"] is None and row["rmse"] <= 1.1 * row["ref_rmse"] + 1e-3, row
        assert row["rmse"] < 0.01, row


def test_ddim_is_as_accurate_as_euler_natively_on_the_same_points():
    """DDIM steps through `alphas_cumprod` (no k-diffusion schedule, so no same-named reference): its
    update is Euler's in flow coordinates, on the table points Forge's "DDIM" schedule type also takes.
    Held to the deterministic bar against Euler on that schedule type in native flow coordinates."""
    rows = _practical()["rows"]
    for field in ("gaussian", "mixture"):
        for steps in (20, 28):
            ddim = rows[f"{field} | {steps} | DDIM | Automatic"]
            euler = rows[f"{field} | {steps} | Euler | DDIM"]
            assert ddim["error"] is None and ddim["finite"], ddim
            assert ddim["rmse"] <= 1.1 * euler["ref_rmse"] + 1e-3, (field, steps, ddim["rmse"], euler["ref_rmse"])


def _practical_cfg():
    harness.start_all()
    return harness.run_suite("practical_cfg_tier")


def test_cfg_5_rows_meet_the_bar_with_the_negative_prompt_answered():
    """CFG 5 (forge_runner.TIER_PRACTICAL_CFG): the guided pairs, the empty negative prompt (Forge's SDXL engine
    zeroes its conditioning) answered by the uncond field through Forge's own CFG (cond / uncond of the batch of
    2 in one call: exactly two negative rows per network call, so the positive prompt's conditioning is not
    zero); every row on the practical bar against the same sampler at CFG 5 on the exact guided field
    (oracles.GuidedField). DDIM CFG++ (refused at CFG 1 only) is judged as deterministic against Forge's own
    ddim_cfgpp on the same timesteps (forge_runner.ddim_cfgpp_reference)."""
    result = _practical_cfg()
    assert result["cfg"] == 5.0
    rows = result["rows"]
    measured = {_split(key)[2] for key in rows}
    assert measured == set(result["samplers"]) and len(rows) == 2 * 2 * 2 * len(measured), sorted(rows)
    assert {"DDIM CFG++", "Flow Euler", "Flow Multistep"} <= measured
    failures = []
    for key, row in rows.items():
        if row["error"] or row.get("reference_error") or "ref_mean" not in row or not row.get("finite"):
            failures.append(f"{key}: {row['error'] or row.get('reference_error') or 'no reference / non-finite'}")
        elif not row.get("same_noise"):
            failures.append(f"{key}: the reference did not draw the pass's noise")
        elif not 0 < row.get("negative_rows", 0) == 2 * row.get("network_calls", 0):
            failures.append(f"{key}: {row['negative_rows']} negative rows in {row['network_calls']} network calls")
        else:
            kind = "deterministic" if row["kind"] == "timestep" else row["kind"]      # DDIM CFG++
            failure = reference_failure(key, dict(row, kind=kind))
            if not failure and kind == "deterministic":
                failure = element_failure(key, row)
            if failure:
                failures.append(failure)
    assert not failures, "\n".join(failures)


def test_cfg_5_is_not_cfg_1():
    """The guidance shows in the result: on the two-mode pair CFG 5 pushes Euler's samples towards the positive
    prompt's main mode (-1, weight 0.7), past where the unguided positive field puts the mean (-0.4)."""
    row = _practical_cfg()["rows"]["two_modes | 28 | Euler | Karras"]
    assert row["mean"] < -0.6, row
