"""Every sampler in ComfyUI's KSampler list on an exact RF Gaussian field N(0.5, 0.3^2), 256 steps.

The model is a real comfy.model_base.SDXL whose UNet returns the exact velocity, sampled through
comfy.sample.sample as the KSampler node does. Skips when COMFYUI_DIR is unset.
"""
import pytest

import comfy_support as support
from model_sampling_flow import oracles

FIELD = oracles.gaussian_field(0.5, 0.3)

# Measured failures in the VE view (deterministic samplers such as dpm_adaptive integrate in flow
# coordinates there, comfy_nodes/sampler_views.py), each with its cause; the test asserts this set exactly, so a
# host fix (or a regression elsewhere) shows up.
VE_KNOWN_FAILURES = {
    # LCM is a sampler for consistency-distilled models (excluded by the target).
    "lcm",
    # ComfyUI bug: after the second model call, `temp[0]` holds the uncond of the midpoint, and the
    # final update adds (denoised - that) instead of 0 at cfg 1; wrong in every view (0.66 under
    # ModelSamplingSD3). With the stale value fixed it measures 0.499 / 0.300 in the VE view.
    "dpmpp_2s_ancestral_cfg_pp",
}
DETERMINISTIC = {"euler", "euler_cfg_pp", "heun", "heunpp2", "dpm_2", "lms", "dpm_fast", "dpmpp_2m",
                 "dpmpp_2m_cfg_pp", "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp",
                 "gradient_estimation", "gradient_estimation_cfg_pp", "ddim", "uni_pc", "uni_pc_bh2",
                 "exp_heun_2_x0",  # in v0.33.0, not in a125cd8
                 "flow_euler", "flow_heun", "flow_multistep"}


@pytest.fixture(scope="module")
def package(comfyui):
    return support.load_repo_as_custom_node()


def test_every_sampler_is_right_in_the_ve_view(package):
    import comfy.samplers
    base = support.analytic_sdxl(FIELD)
    model = package.NODE_CLASS_MAPPINGS["ModelSamplingFlowSDXL"]().patch(base, 3.0, "continuous", "static", "ve")[0]
    names = list(comfy.samplers.KSampler.SAMPLERS)
    assert len(names) >= 45 and "flow_euler" in names and "res_multistep_ancestral" in names
    rows = {name: support.sampler_statistics(model, name, FIELD) for name in names}
    for row in rows.values():
        print(f"{row['sampler']:32s} mean {row['mean']:.4f} std {row['std']:.4f} "
              f"endpoint rms {row['endpoint_rms']:.4f} {'pass' if row['passes'] else 'FAIL'}")
    failing = {name for name, row in rows.items() if not row["passes"]}
    assert failing == VE_KNOWN_FAILURES
    # deterministic samplers converge to the exact ODE endpoint of their own noise
    far = {name: round(rows[name]["endpoint_rms"], 4) for name in DETERMINISTIC & set(rows)
           if rows[name]["endpoint_rms"] > 0.03}
    assert far == {}
    assert rows["flow_multistep"]["endpoint_rms"] < 1e-3


def test_model_sampling_sd3_is_biased_where_the_ve_view_is_not(package):
    """The two samplers the issue names, under ModelSamplingSD3 (mean ~0.69 / ~0.72 measured)."""
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    model = ModelSamplingSD3().patch(support.analytic_sdxl(FIELD), 3.0)[0]
    for name in ("ddpm", "res_multistep_ancestral"):
        row = support.sampler_statistics(model, name, FIELD)
        assert row["mean"] > 0.6 and not row["passes"], row


@pytest.mark.parametrize("scheduler", ["normal", "sgm_uniform"])
def test_host_schedule_rounding_above_one_is_read_as_one(comfyui, scheduler):
    """ComfyUI's normal / sgm_uniform at the widget's smallest shift (0.01) top out at 1.0000973 in the
    flow view (rounding the timestep round trip amplifies, schedule.HOST_SCHEDULE_ROUNDING): the Flow
    samplers take it as 1 and sample (Euler at shift 0.01 is coarse: the mean is checked); the core alone
    (SIGMA_ONE_ROUNDING) would refuse it with a ValueError."""
    import comfy.samplers
    from model_sampling_flow import schedule
    package = support.load_repo_as_custom_node()
    model = package.NODE_CLASS_MAPPINGS["ModelSamplingFlowSDXL"]().patch(
        support.analytic_sdxl(FIELD), 0.01, "continuous", "static", "flow")[0]
    top = float(comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, 8).max())
    assert schedule.SIGMA_ONE_ROUNDING < top <= 1.0 + schedule.HOST_SCHEDULE_ROUNDING
    row = support.sampler_statistics(model, "flow_euler", FIELD, steps=64, scheduler=scheduler, shape=(1, 4, 16, 16))
    assert abs(row["mean"] - 0.5) < 0.02, row
