"""Conversions round-trip, and the VE view is exactly a VE model of the same flow."""
import math

import pytest
import torch

from model_sampling_flow import views
from model_sampling_flow.model_sampling import FlowModelSampling, FlowVEModelSampling
from model_sampling_flow.schedule import time_shift
from model_sampling_flow.oracles import gaussian_field, mixture_field

torch.manual_seed(0)
X0 = torch.randn(3, 4, 5, 5, dtype=torch.float64) * 0.4 + 0.2
NOISE = torch.randn(3, 4, 5, 5, dtype=torch.float64)
SIGMA = torch.tensor([0.03, 0.5, 0.97], dtype=torch.float64)
X = (1 - SIGMA[:, None, None, None]) * X0 + SIGMA[:, None, None, None] * NOISE
VELOCITY = NOISE - X0


def test_velocity_denoised_round_trip():
    assert torch.allclose(views.denoised_from_velocity(X, SIGMA, VELOCITY), X0, atol=1e-12)
    assert torch.allclose(views.velocity_from_denoised(X, SIGMA, X0), VELOCITY, atol=1e-12)
    assert torch.allclose(views.velocity_from_denoised(X, SIGMA, views.denoised_from_velocity(X, SIGMA, VELOCITY)),
                          VELOCITY, atol=1e-12)


def test_eps_velocity_round_trip():
    assert torch.allclose(views.eps_from_velocity(X, SIGMA, VELOCITY), NOISE, atol=1e-12)
    assert torch.allclose(views.velocity_from_eps(X, SIGMA, NOISE), VELOCITY, atol=1e-12)
    assert torch.allclose(views.denoised_from_eps(X, SIGMA, NOISE), X0, atol=1e-12)


def test_ve_view_is_variance_exploding_form_of_the_same_point():
    sigma_ve = views.sigma_to_ve(SIGMA)
    x_ve = views.x_to_ve(X, SIGMA)
    # x_ve = x0 + sigma_ve * noise: a VE model with the same x0
    assert torch.allclose(x_ve, X0 + sigma_ve[:, None, None, None] * NOISE, atol=1e-12)
    assert torch.allclose(views.sigma_from_ve(sigma_ve), SIGMA, atol=1e-15)
    assert torch.allclose(views.x_from_ve(x_ve, sigma_ve), X, atol=1e-12)


def test_img2img_rule_x_plus_sigma_noise_is_exact_in_ve_view():
    # webui img2img: x_ve = latent + sigma_ve * noise; in flow coordinates that is the flow marginal
    sigma_ve = views.sigma_to_ve(SIGMA)
    x_ve = X0 + sigma_ve[:, None, None, None] * NOISE
    assert torch.allclose(views.x_from_ve(x_ve, sigma_ve), X, atol=1e-12)


@pytest.mark.parametrize("shift", [0.5, 1.0, 1.7, 3.0, 6.0, 12.0, 100.0])
def test_ve_table_is_finite_strictly_increasing_and_capped_only_at_the_top(shift):
    flow, ve = FlowModelSampling(shift), FlowVEModelSampling(shift)
    assert bool(torch.isfinite(ve.sigmas).all())
    assert bool((ve.sigmas[1:] > ve.sigmas[:-1]).all())
    assert torch.allclose(ve.sigmas[:-1].double(), views.sigma_to_ve(time_shift(shift, torch.arange(1, 1000, dtype=torch.float64) / 1000), cap=ve.sigma_cap), rtol=1e-6)
    cap = ve.sigma_cap
    assert float(flow.sigmas[-2]) < cap < 1.0
    # what the cap costs: a pure-noise start misses (1 - cap) of x0, under 1e-4 of the data scale
    assert 0 < 1 - cap <= 1e-4 / min(shift, 1.0) * 1.01
    assert math.isclose(float(views.sigma_from_ve(ve.sigma_max)), cap, rel_tol=1e-6)


@pytest.mark.parametrize("field", [gaussian_field(), mixture_field()], ids=["gaussian", "mixture"])
@pytest.mark.parametrize("mapping", ["continuous", "floor_999"])
def test_both_views_give_the_exact_denoised_from_the_exact_velocity(field, mapping):
    """A network that predicts the exact velocity yields the exact x0 through either view."""
    flow_ms, ve_ms = FlowModelSampling(3.0, mapping), FlowVEModelSampling(3.0, mapping)
    x0_true = field(X, SIGMA)
    velocity = field.velocity(X, SIGMA)
    # native: the host feeds x and gets x0 = x - sigma v
    assert torch.allclose(flow_ms.calculate_input(SIGMA, X), X)
    assert torch.allclose(flow_ms.calculate_denoised(SIGMA, velocity, X), x0_true, atol=1e-12)
    # VE view: the host holds x_ve at sigma_ve; the network must see the flow input
    sigma_ve = views.sigma_to_ve(SIGMA)
    x_ve = views.x_to_ve(X, SIGMA)
    assert torch.allclose(ve_ms.calculate_input(sigma_ve, x_ve), X, atol=1e-12)
    assert torch.allclose(ve_ms.calculate_denoised(sigma_ve, velocity, x_ve), x0_true, atol=1e-12)
    assert torch.allclose(ve_ms.timestep(sigma_ve), flow_ms.timestep(SIGMA))


def test_noise_scaling_matches_each_view():
    flow_ms, ve_ms = FlowModelSampling(3.0), FlowVEModelSampling(3.0)
    assert torch.allclose(flow_ms.noise_scaling(SIGMA, NOISE, X0), X)
    sigma_ve = views.sigma_to_ve(SIGMA)
    assert torch.allclose(ve_ms.noise_scaling(sigma_ve, NOISE, X0), views.x_to_ve(X, SIGMA), atol=1e-12)
    assert torch.equal(ve_ms.inverse_noise_scaling(sigma_ve, X0), X0)


def test_integer_timesteps_give_float_sigmas_in_both_views():
    # reForge's Turbo schedule hands sigma() a long tensor
    timesteps = torch.tensor([999, 500, 10])
    for ms in (FlowModelSampling(3.0), FlowVEModelSampling(3.0)):
        sigmas = ms.sigma(timesteps)
        assert sigmas.is_floating_point()
        assert torch.allclose(sigmas, ms.sigma(timesteps.float()), rtol=1e-6)
        assert float(sigmas[-1]) < 0.05


def test_alphas_cumprod_round_trips_the_ve_table():
    ve = FlowVEModelSampling(3.0).sigmas.double()
    alpha_bar = views.alphas_cumprod_from_ve(ve)
    assert bool((alpha_bar[1:] < alpha_bar[:-1]).all()) and float(alpha_bar.min()) > 0
    assert torch.allclose(((1 - alpha_bar) / alpha_bar).sqrt(), ve, rtol=1e-6)


@pytest.mark.parametrize("shift", [0.01, 1.0, 3.0, 4.07, 12.0])
def test_flow_schedule_to_ve_maps_each_step_and_caps_the_top(shift):
    cap = views.ve_sigma_cap(shift)
    flow = torch.tensor([1.0000001, 0.9, 0.5, 0.01, 0.0], dtype=torch.float32)
    ve = views.flow_schedule_to_ve(flow, cap)
    assert ve.dtype == torch.float32
    assert float(ve[0]) == pytest.approx(float(views.sigma_to_ve(cap, cap=cap)), rel=1e-6)
    assert float(ve[-1]) == 0.0
    expected = [float(s) / (1 - float(s)) for s in flow[1:-1].double()]
    assert [float(s) for s in ve[1:-1]] == pytest.approx(expected, rel=1e-6)


def test_vp_state_maps_to_the_flow_state_of_the_same_noise_level():
    sigma_ve = views.sigma_to_ve(SIGMA)
    alpha_bar = views.alphas_cumprod_from_ve(sigma_ve)
    a = alpha_bar[:, None, None, None]
    x_vp = a.sqrt() * X0 + (1 - a).sqrt() * NOISE
    x, sigma = views.flow_from_vp(x_vp, alpha_bar)
    assert torch.allclose(sigma, SIGMA, atol=1e-12)
    assert torch.allclose(x, X, atol=1e-12)
    x, sigma = views.flow_from_vp(NOISE, torch.tensor(0.0, dtype=torch.float64))   # zero SNR: pure noise
    assert float(sigma) == 1.0 and torch.equal(x, NOISE)


def test_alpha_bar_at_reads_integers_and_interpolates_log_linearly():
    table = torch.tensor([0.9, 0.5, 0.1, 0.0], dtype=torch.float64)
    assert torch.equal(views.alpha_bar_at(table, torch.tensor([0.0, 1.0, 2.0, 3.0])), table)
    middle = views.alpha_bar_at(table, torch.tensor([0.5, 2.5]))
    assert abs(float(middle[0]) - (0.9 * 0.5) ** 0.5) < 1e-12 and float(middle[1]) == 0.0
    assert float(views.alpha_bar_at(table, 7.0)) == 0.0 and float(views.alpha_bar_at(table, -1.0)) == 0.9
