"""Schedulers: shape and ordering in each view, the beta quantile, and parity with ComfyUI."""
import math

import pytest
import torch

from model_sampling_flow.model_sampling import FlowModelSampling, FlowVEModelSampling
from model_sampling_flow.schedulers import SCHEDULES_BY_NAME, beta_ppf, get_sigmas
from model_sampling_flow.views import sigma_from_ve

SHIFTS = (1.0, 1.7, 3.0, 6.0, 12.0)
COMFY_NAMES = ("simple", "sgm_uniform", "normal", "beta", "karras", "exponential")


@pytest.mark.parametrize("name", sorted(SCHEDULES_BY_NAME))
@pytest.mark.parametrize("view", ["flow", "ve"])
@pytest.mark.parametrize("steps", [1, 2, 9, 30])
def test_descending_ending_in_zero_within_the_view(name, view, steps):
    ms = (FlowVEModelSampling if view == "ve" else FlowModelSampling)(shift=3.0)
    sigmas = get_sigmas(ms, name, steps)
    assert float(sigmas[-1]) == 0.0
    assert bool((sigmas[1:] < sigmas[:-1]).all()), sigmas
    assert 2 <= len(sigmas) <= steps + 1
    assert bool(torch.isfinite(sigmas).all())
    assert float(sigmas[0]) <= float(ms.sigma_max) * (1 + 1e-6)
    flow = sigmas if view == "flow" else sigma_from_ve(sigmas.double())
    assert float(flow.max()) <= 1.0


@pytest.mark.parametrize("name", ["karras", "exponential", "flow_shift", "simple"])
def test_native_view_starts_from_pure_noise(name):
    assert float(get_sigmas(FlowModelSampling(3.0), name, 10)[0]) == 1.0


@pytest.mark.parametrize("name", sorted(SCHEDULES_BY_NAME))
def test_views_agree_on_the_flow_sigmas(name):
    flow = get_sigmas(FlowModelSampling(3.0), name, 12).double()
    ve = sigma_from_ve(get_sigmas(FlowVEModelSampling(3.0), name, 12).double())
    # computed in flow sigma and mapped: identical but for the VE cap on the very first sigma
    assert torch.allclose(flow[1:], ve[1:], rtol=1e-6, atol=1e-9), (flow, ve)
    assert 0 < float(flow[0] - ve[0]) < 1e-4


def test_beta_quantile_against_closed_forms():
    for p in (0.0, 0.1, 0.37, 0.5, 0.9, 1.0):
        assert math.isclose(beta_ppf(p, 1.0, 1.0), p, abs_tol=1e-12)      # uniform
        assert math.isclose(beta_ppf(p, 2.0, 1.0), math.sqrt(p), abs_tol=1e-12)  # CDF x^2
        assert math.isclose(beta_ppf(p, 1.0, 2.0), 1 - math.sqrt(1 - p), abs_tol=1e-12)
    assert math.isclose(beta_ppf(0.5, 0.6, 0.6), 0.5, abs_tol=1e-12)  # symmetric


def test_flow_shift_is_time_shift_of_uniform_grid():
    sigmas = get_sigmas(FlowModelSampling(3.0), "flow_shift", 4)
    expected = [3 * t / (1 + 2 * t) for t in (1.0, 0.75, 0.5, 0.25, 0.0)]
    assert torch.allclose(sigmas.double(), torch.tensor(expected, dtype=torch.float64), atol=1e-7)


def test_bad_scheduler_arguments_are_rejected_naming_them():
    ms = FlowModelSampling(3.0)
    with pytest.raises(ValueError, match="scheduler.*'linear'"):
        get_sigmas(ms, "linear", 10)
    for bad in (0, -3, 2.5, float("nan")):
        with pytest.raises(ValueError, match="steps"):
            get_sigmas(ms, "simple", bad)
    with pytest.raises(ValueError, match="rho"):
        SCHEDULES_BY_NAME["karras"](ms, 10, rho=0)


@pytest.mark.parametrize("shift", SHIFTS)
def test_model_sampling_matches_comfyui_discrete_flow(comfyui, shift):
    import comfy.model_sampling as cms

    class Reference(cms.ModelSamplingDiscreteFlow, cms.CONST):
        pass

    reference = Reference()
    reference.set_parameters(shift=shift)
    ours = FlowModelSampling(shift=shift)
    assert float((reference.sigmas - ours.sigmas).abs().max()) <= 1e-6
    assert math.isclose(float(reference.sigma_min), float(ours.sigma_min), abs_tol=1e-6)
    assert math.isclose(float(reference.sigma_max), float(ours.sigma_max), abs_tol=1e-6)
    probe = torch.tensor([0.001, 0.25, 0.5, 0.999, 1.0])
    assert torch.allclose(reference.timestep(probe), ours.timestep(probe), atol=1e-6)
    assert torch.allclose(reference.sigma(probe * 1000), ours.sigma(probe * 1000), atol=1e-6)
    for percent in (0.0, 0.2, 0.5, 0.93, 1.0):
        assert math.isclose(float(reference.percent_to_sigma(percent)), float(ours.percent_to_sigma(percent)),
                            abs_tol=1e-6)
    x, velocity = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    sigma = torch.tensor([0.3, 0.9])
    assert torch.allclose(reference.calculate_denoised(sigma, velocity, x), ours.calculate_denoised(sigma, velocity, x))
    assert torch.allclose(reference.noise_scaling(sigma, velocity, x), ours.noise_scaling(sigma, velocity, x))


@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("view", ["flow", "ve"])
def test_schedulers_are_comfyuis_flow_schedules_in_the_view(comfyui, shift, view):
    """ComfyUI's scheduler on the flow view (ModelSamplingSD3's numbers), mapped to the view."""
    import comfy.samplers
    ms = (FlowVEModelSampling if view == "ve" else FlowModelSampling)(shift=shift)
    flow_ms = FlowModelSampling(shift=shift)
    for name in COMFY_NAMES:
        for steps in (1, 7, 20, 33):
            reference = comfy.samplers.calculate_sigmas(flow_ms, name, steps)
            if view == "ve":
                reference = ms.ve_schedule(reference)
            ours = get_sigmas(ms, name, steps)
            assert reference.shape == ours.shape, (name, steps)
            assert torch.allclose(reference, ours, rtol=1e-6, atol=1e-7), (name, steps, reference, ours)
