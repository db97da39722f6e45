"""End-to-end tests inside real A1111 v1.10.1: the extension installed in the webui's
extensions folder, the webui's own process_images on an analytic rectified-flow stand-in model.

Needs A1111_DIR (an A1111 v1.10.1 tree; it is copied, never written) and A1111_PYTHON (the Python
of a venv made by tests/hosts/a1111/a1111_venv.sh); skipped with the reason otherwise. The suites run as
subprocesses, three at a time, and each test reads its suite's JSON.

The stand-in's data is per element N(0.5, 0.3^2), so a sampler that samples the model's
distribution ends there: within 0.01 in mean and 0.02 in std (16384 values per measurement).
"""
import concurrent.futures
import os

import pytest

from a1111_host import host_paths, make_host_copy, run_suite  # noqa: E402
from flow_test_support import bar  # noqa: E402
from flow_test_support.practical import element_failure, reference_failure  # noqa: E402

MEAN, STD = bar.DATA_MEAN, bar.DATA_STD
MEAN_TOLERANCE, STD_TOLERANCE = bar.MEAN_TOLERANCE, bar.STD_TOLERANCE

REFUSED_SAMPLERS = ("LCM",)
# A1111's timestep samplers: they see the VE view as an eps model through alphas_cumprod / apply_model
TIMESTEP_SAMPLERS = ("DDIM", "DDIM CFG++", "PLMS", "UniPC")
REFUSED_SCHEDULERS = ("Align Your Steps",)
# Listed samplers that are not expected to sample the model's distribution at 256 steps, and why.
EXCLUDED_SAMPLERS = {}


# which suites each test reads (only the suites the selected tests need are run)
SUITES_OF = {"test_every_listed_sampler": ["samplers"], "test_every_schedule_type": ["schedulers"],
             "test_img2img": ["img2img"], "test_off_is_bit_identical": ["lifecycle", "baseline"],
             "test_extension_loads": ["load"], "test_install_hook": ["load"], "test_registration": ["load"],
             "test_practical_step_counts": ["practical", "load"], "test_every_listed_sampler_has": ["load"],
             "test_timestep_samplers_off": ["timesteps", "baseline"], "test_timestep_samplers": ["timesteps"],
             "test_off_removes": ["lifecycle", "baseline"], "test_cfg": ["cfg"]}


def suites_for(items):
    wanted = []
    for item in items:
        if item.module.__name__ != __name__:
            continue
        suites = next((v for k, v in SUITES_OF.items() if item.name.startswith(k)), ["lifecycle"])
        wanted += [s for s in suites if s not in wanted]
    return wanted


class Host:
    def __init__(self, base, a1111_dir, python, suites):
        self.python = python
        self.base = base
        self.webui = make_host_copy(a1111_dir, os.path.join(base, "webui"), with_extension=True)
        self.plain = make_host_copy(a1111_dir, os.path.join(base, "webui-plain"), with_extension=False)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=3)
        # the short load suite first (its tests come first and show progress early), then longest first
        order = ["load", "practical", "samplers", "schedulers", "lifecycle", "baseline", "img2img", "timesteps", "cfg"]
        # the practical suite measures CFG 1 whatever the shell's FLOW_PRACTICAL_CFG says (the cfg suite is CFG 5)
        self.futures = {suite: self.pool.submit(run_suite, self.plain if suite == "baseline" else self.webui,
                                                python, suite, base, {"FLOW_PRACTICAL_CFG": "1"})
                        for suite in order if suite in suites}

    def results(self, suite):
        return self.futures[suite].result()["results"]


@pytest.fixture(scope="session")
def host(tmp_path_factory, request):
    a1111_dir, python = host_paths()
    host = Host(str(tmp_path_factory.mktemp("a1111")), a1111_dir, python, suites_for(request.session.items))
    yield host
    host.pool.shutdown(wait=True, cancel_futures=True)


def within(result):
    return abs(result["mean"] - MEAN) <= MEAN_TOLERANCE and abs(result["std"] - STD) <= STD_TOLERANCE


def describe(name, result):
    if result.get("error"):
        return f"{name}: error {result['error']}"
    return f"{name}: mean {result.get('mean', float('nan')):.4f} std {result.get('std', float('nan')):.4f}"


# ---- 1. installed the way users install it, loads, install.py runs as the webui runs it ---------
def test_extension_loads_with_its_ui_samplers_schedulers_settings_and_axes(host):
    load = host.results("load")
    assert "model-sampling-flow" in load["extensions"]
    assert "Flow sampling" in load["txt2img_scripts"] and "Flow sampling" in load["img2img_scripts"]
    for label in ("Flow Euler", "Flow Heun", "Flow Euler a", "Flow SDE", "Flow Multistep"):
        assert load["samplers"].count(label) == 1, label
    assert load["schedulers"].count("Flow shift") == 1
    assert {"[Flow] Flow sampling", "[Flow] Flow shift", "[Flow] Flow mapping"} <= set(load["xyz_axes"])
    assert {"flow_sampling_mode", "flow_sampling_shift", "flow_sampling_timestep_mapping"} <= set(load["settings"])
    assert load["infotext_fields"] == 5 and load["args"][1] - load["args"][0] == 5


def test_install_hook_runs_quickly_and_installs_nothing(host):
    install = host.results("load")["install"]
    assert install["exists"] and install["returncode"] == 0, install
    assert install["stdout"] == "" and install["stderr"] == "", install


def test_registration_is_idempotent(host):
    load = host.results("load")
    assert load["register_again"] == [[], []] and load["counts_unchanged"]


# ---- 2. every sampler and every schedule type: right distribution or a clear refusal ------------
def test_every_listed_sampler_samples_the_flow_distribution_or_is_refused(host):
    results = host.results("samplers")
    assert len(results) >= 25
    wrong = []
    for name, result in results.items():
        sampler = name.split(" | ")[0]
        if sampler in REFUSED_SAMPLERS:
            assert result["error"] and "Flow sampling is on" in result["error"] and "LCM" in result["error"], \
                describe(name, result)
            continue
        if sampler in EXCLUDED_SAMPLERS:
            continue
        expected = "CompVisTimestepsDenoiser" if sampler in TIMESTEP_SAMPLERS else "FlowDenoiser"
        assert result["denoisers"] == [expected], describe(name, result)
        if result["error"] or not within(result):
            wrong.append(describe(name, result))
    assert wrong == []


def test_every_schedule_type_works_or_is_refused(host):
    results = host.results("schedulers")
    wrong = []
    for name, result in results.items():
        scheduler = name.split(" | ")[1]
        if scheduler in REFUSED_SCHEDULERS:
            assert result["error"] and f"'{scheduler}' schedule type" in result["error"], describe(name, result)
            continue
        if result["error"] or not within(result):
            wrong.append(describe(name, result))
    assert wrong == []


def test_timestep_samplers_reach_the_distribution_and_the_ode_endpoint(host):
    """DDIM, DDIM CFG++, PLMS, UniPC: within the bar at 256 steps; at 20 and 28 steps at least as
    close to the exact ODE endpoint of the webui's own noise as k-diffusion Euler at the same steps."""
    results = host.results("timesteps")
    for sampler in TIMESTEP_SAMPLERS:
        at_256 = results[f"{sampler} | 256"]
        assert at_256["error"] is None and at_256["denoisers"] == ["CompVisTimestepsDenoiser"], at_256
        assert within(at_256), describe(sampler, at_256)
        assert at_256["endpoint_rms"] < 0.01, (sampler, at_256["endpoint_rms"])
        for steps in (20, 28):
            result, euler = results[f"{sampler} | {steps}"], results[f"Euler | {steps}"]
            assert result["error"] is None, result
            assert result["endpoint_rms"] <= euler["endpoint_rms"], (sampler, steps, result, euler)
    for name, result in results.items():
        if name.startswith("img2img"):
            assert result["error"] is None and within(result), describe(name, result)
    assert "LCM" in results["lcm"] and results["lcm"].startswith("FlowSamplingError: Flow sampling is on")


def test_timestep_samplers_off_restore_the_tables_and_sample_as_the_plain_webui(host):
    results, plain = host.results("timesteps"), host.results("baseline")
    assert all(results["tables_while_on"].values()) and all(results["tables_restored"].values())
    assert results["off_ddim"]["passes"][0]["sha256"] == plain["off_ddim"]["passes"][0]["sha256"]
    assert "Flow" not in results["off_ddim"]["infotext"]


# ---- 3. img2img, inpaint, hires fix ----------------------------------------------------------
def test_img2img_inpaint_and_hires_reach_the_flow_distribution(host):
    results = host.results("img2img")
    assert len(results) == 6 * 7
    def final(name, r):     # hires returns decoded images to post_sample: read what was decoded
        return r.get("decoded") if name.startswith("hires") else (r["passes"][-1] if r["passes"] else None)

    wrong = [describe(name, final(name, r) or r) for name, r in results.items()
             if r["error"] or not final(name, r) or not within(final(name, r))]
    assert wrong == []
    for name, r in results.items():
        assert r["denoisers"] == ["FlowDenoiser"], name
        if name.startswith("hires"):
            assert final(name, r)["shape"] == [2, 4, 64, 64], name     # 256 px upscaled 2x


# ---- 4. a second processing object made by another extension ---------------------------------
def test_second_pass_of_another_extension_samples_the_flow_way(host):
    r = host.results("lifecycle")["second_pass_on"]
    assert r["error"] is None and len(r["passes"]) == 2
    assert r["denoisers"] == ["FlowDenoiser"]
    assert within(r["passes"][1]), describe("second pass", r["passes"][1])


# ---- 5. off is the webui without the extension; on -> off; exception; checkpoint change ------
def test_off_is_bit_identical_to_a_webui_without_the_extension(host):
    life, plain = host.results("lifecycle"), host.results("baseline")
    assert "model-sampling-flow" not in plain["extensions"]
    reference = plain["off"]["passes"][0]["sha256"]
    for case in ("off_1", "off_2", "after_exception_off"):
        assert life[case]["passes"][0]["sha256"] == reference, case
        assert life[case]["patched"] == [], case
    assert life["off_img2img"]["passes"][0]["sha256"] == plain["off_img2img"]["passes"][0]["sha256"]
    assert [p["sha256"] for p in life["second_pass_off"]["passes"]] == \
        [p["sha256"] for p in plain["second_pass_off"]["passes"]]
    assert "Flow" not in life["off_1"]["infotext"]


def test_on_patches_the_model_and_differs_from_off(host):
    life = host.results("lifecycle")
    assert life["on"]["patched"] == ["apply_model", "create_denoiser", "flow_sampling_state"]
    assert life["on"]["passes"][0]["sha256"] != life["off_1"]["passes"][0]["sha256"]
    assert life["on"]["denoisers"] == ["FlowDenoiser"] and life["off_1"]["denoisers"] == ["CompVisDenoiser"]


def test_exception_inside_sampling_leaves_a_consistent_host(host):
    life = host.results("lifecycle")
    assert "stand-in network failure" in life["exception"]["error"]
    # flow is still on for the model (the user's choice), nothing half-applied; off restores exactly
    assert life["exception"]["patched"] == ["apply_model", "create_denoiser", "flow_sampling_state"]
    assert life["after_exception_off"]["patched"] == []


def test_checkpoint_change_unpatches_and_auto_follows_the_marker(host):
    life = host.results("lifecycle")
    assert life["after_checkpoint_change_patch"] == []
    assert life["auto_plain"]["patched"] == [] and life["auto_plain"]["denoisers"] == ["CompVisDenoiser"]
    assert "Flow sampling (Auto) off" in life["auto_plain"]["comments"]
    assert life["auto_rf"]["denoisers"] == ["FlowDenoiser"]
    assert "Flow sampling (Auto) on: marked rectified flow" in life["auto_rf"]["comments"]


def test_refusals_are_clear_messages(host):
    refused = host.results("lifecycle")["refused"]
    for name, error in refused.items():
        assert error and error.startswith("FlowSamplingError: Flow sampling is on"), (name, error)
    life = host.results("lifecycle")
    for case in ("flow_sampler_off", "flow_scheduler_off"):
        assert "needs Flow sampling on" in life[case]["error"], life[case]["error"]


# ---- 6. infotext and XYZ -----------------------------------------------------------------------
def test_infotext_round_trip_restores_flow_settings(host):
    life = host.results("lifecycle")
    assert "Flow sampling: on, Flow shift: 2.5, Flow mapping: floor_999" in life["infotext"]
    pasted = dict(life["pasted"])
    assert pasted["Flow sampling"] == "On" and pasted["Flow shift"] == 2.5
    assert pasted["Flow timestep mapping"] == "floor_999"
    assert life["floor_999_timesteps_integral"]      # the network got floor(999 sigma)


def test_xyz_axes_apply(host):
    life = host.results("lifecycle")
    assert life["xyz"] == {"[Flow] Flow sampling": {"mode": "On"}, "[Flow] Flow shift": {"shift": 6.0},
                           "[Flow] Flow mapping": {"timestep_mapping": "floor_1000"}}
    assert "Flow shift: 6, Flow mapping: floor_1000" in life["xyz_run"]["infotext"]
    assert life["xyz_run"]["denoisers"] == ["FlowDenoiser"]
    assert life["final_patch"] == []        # the last generation had flow off


# ---- 5. practical step counts: every sampler x schedule type, 20 and 28 steps -------
def practical_failures(rows):
    """Rows that miss the bar: deterministic RMSE to the exact endpoint <= 1.1 x + 1e-3 that of the
    same sampler and schedule in native flow coordinates; stochastic mean and std within 0.01 of
    the same sampler in the VE view on the flow-range schedule mapped to VE; or a refusal. Timestep
    samplers (DDIM, DDIM CFG++, PLMS, UniPC) only above CFG 1, where their rows have a reference (the
    same A1111 function on the exact guided noise), to the deterministic bar."""
    failures = []
    for key, row in rows.items():
        if row["error"]:
            if "Flow sampling" not in row["error"]:
                failures.append(f"{key}: error without a refusal message: {row['error']}")
            continue
        if row["kind"] == "timestep":
            if "reference_error" not in row:
                continue    # CFG 1: read alphas_cumprod, judged by their own tests
            row = dict(row, kind="deterministic")
        if row.get("reference_error") or "ref_mean" not in row:
            failures.append(f"{key}: no reference ({row.get('reference_error')})")
            continue
        if not row["finite"]:
            failures.append(f"{key}: non-finite samples")
        elif reference_failure(key, row):
            failures.append(reference_failure(key, row))
    return failures


def test_practical_step_counts_meet_the_native_bar_for_every_sampler_and_schedule(host):
    result = host.results("practical")
    rows = result["rows"]
    listed = set(host.results("load")["samplers"])
    schedulers = set(host.results("load")["schedulers"])
    covered = {tuple(key.split(" | ")) for key in rows}
    expected = {(field, steps, sampler, scheduler) for field in ("gaussian", "mixture") for steps in ("20", "28")
                for sampler in listed for scheduler in schedulers}
    assert expected <= covered, sorted(expected - covered)[:10]
    failures = practical_failures(rows)
    assert not failures, "\n".join(failures[:40])
    # the references saw the noise the webui drew, so the comparison is like for like
    assert all(row.get("same_noise", True) for row in rows.values())


def test_every_listed_sampler_has_a_known_view(host):
    from webui_extension.sampler_views import sampler_kind
    unknown = [name for name in host.results("load")["samplers"] if sampler_kind(name) is None]
    assert not unknown, unknown


def test_xyz_values_are_checked_when_the_grid_is_built(host):
    confirm = host.results("lifecycle")["xyz_confirm"]
    assert confirm.pop("[Flow] Flow shift [2.0, 6.0]") is None
    for case, error in confirm.items():
        assert error and error.startswith(f"XYZ plot axis '{case.split(' [')[0]}'"), (case, error)
        assert ("Flow shift" in error) or ("Flow mapping" in error), error


def test_off_removes_the_patch_whatever_else_the_arguments_hold(host):
    life, plain = host.results("lifecycle"), host.results("baseline")
    for case in ("off_invalid_shift", "off_xyz_nan"):
        assert life[case]["error"] is None and life[case]["patched"] == [], case
        assert life[case]["passes"][0]["sha256"] == plain["off"]["passes"][0]["sha256"], case
        assert "Flow" not in life[case]["infotext"], case


def test_an_invalid_value_is_one_message_and_flow_is_off_for_that_generation(host):
    life = host.results("lifecycle")
    r = life["on_invalid_shift"]
    assert r["error"] is None and r["patched"] == [] and "Flow shift" not in r["infotext"]
    assert "Flow sampling not applied: Flow shift must be finite, got nan" in r["comments"]
    pasted = dict(life["pasted_bad_shift"])
    assert pasted["Flow sampling"] == "On" and pasted["Flow timestep mapping"] == "floor_999"
    assert [label for label, value in life["pasted_bad_shift"] if value is None] == ["Flow shift"]


# ---- 7. classifier-free guidance: A1111's CFGDenoiser with the prompt and the negative prompt -----
def test_cfg_5_meets_the_practical_bar_and_the_negative_prompt_reaches_the_network(host):
    """CFG 5, 20 steps: Euler, DPM++ 2M, Euler a, DPM++ 2M SDE, four Flow samplers, DDIM and DDIM CFG++
    through process_images, the stand-in answering the empty negative prompt's rows with the uncond
    field. Each meets the practical bar against the same sampler on the exact guided field
    (oracles.GuidedField), and every pass sent negative-prompt rows to the network; the results sit
    at the guided answer, not at the positive prompt's field (which a CFG-1 measurement would give)."""
    rows = host.results("cfg")["rows"]
    assert len(rows) == 2 * 10, sorted(rows)
    assert [key for key, row in rows.items() if row["error"]] == []
    assert practical_failures(rows) == []
    # the error bar is loose where the reference is far from the exact answer (DDIM CFG++ guides at CFG / 12.5):
    # the deterministic and timestep rows must also be their reference's result element by element
    assert [element_failure(key, row) for key, row in rows.items()
            if row["kind"] != "stochastic" and element_failure(key, row)] == []
    assert [key for key, row in rows.items() if not row["negative_rows"] > 0] == []
    # the positive prompt's data has mean 0.5 ("gaussian") and -0.4 ("two_modes"); CFG 5 moves it
    # away from the negative prompt's (0 and 0): past 0.6 and below -0.8 (DDIM CFG++ scales CFG by 1/12.5)
    for key, row in rows.items():
        field, sampler = key.split(" | ")[0], key.split(" | ")[2]
        if sampler != "DDIM CFG++":
            assert (row["mean"] > 0.6) if field == "gaussian" else (row["mean"] < -0.8), (key, row["mean"])
