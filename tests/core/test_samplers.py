"""Samplers against exact RF fields: convergence order, sample distribution, k-diffusion protocol."""
import math

import pytest
import torch

from model_sampling_flow import registry, samplers
from model_sampling_flow.model_sampling import FlowModelSampling
from model_sampling_flow.oracles import gaussian_field, mixture_field
from model_sampling_flow.schedulers import get_sigmas

FIELDS = {"gaussian": gaussian_field(0.5, 0.3), "mixture": mixture_field()}
MS = FlowModelSampling(shift=3.0)


def sigmas(steps, scheduler="flow_shift"):
    return get_sigmas(MS, scheduler, steps).double()


def noise(shape=(2, 4, 16, 16), seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def rmse(a, b):
    return float(((a - b) ** 2).mean().sqrt())


DETERMINISTIC = [
    ("euler", samplers.sample_flow_euler, {}, 1.0),
    ("heun", samplers.sample_flow_heun, {}, 2.0),
    ("multistep2", samplers.sample_flow_multistep, {"order": 2}, 2.0),
    ("multistep3", samplers.sample_flow_multistep, {"order": 3}, 3.0),
    # DPM-Solver++(2M) in log-SNR: near sigma = 1 a uniform flow grid takes log-SNR steps that do
    # not shrink with N, so its observed order on flow grids is 1 (k-diffusion's dpmpp_2m alike).
    ("sde_eta0", samplers.sample_flow_sde, {"eta": 0.0}, 1.0),
    ("ancestral_eta0", samplers.sample_flow_euler_ancestral, {"eta": 0.0}, 1.0),
]


@pytest.mark.parametrize("field_name", FIELDS)
@pytest.mark.parametrize("name,sampler,options,order", DETERMINISTIC, ids=[d[0] for d in DETERMINISTIC])
def test_deterministic_samplers_converge_to_exact_endpoint_at_their_order(field_name, name, sampler, options, order):
    field = FIELDS[field_name]
    x1 = noise()
    exact = field.endpoint(x1)
    steps = [32, 128, 512]
    errors = [rmse(sampler(field, x1.clone(), sigmas(n), disable=True, **options), exact) for n in steps]
    # observed order over the asymptotic range (128 -> 512 steps)
    slope = -(math.log(errors[-1]) - math.log(errors[1])) / (math.log(steps[-1]) - math.log(steps[1]))
    assert slope > order - 0.25, (errors, slope)
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[-1] < 0.01 / 16 ** (order - 1), errors


def test_sde_drift_correction_beats_first_order():
    field = FIELDS["mixture"]
    x1 = noise()
    exact = field.endpoint(x1)
    for n in (16, 64, 256):
        second = rmse(samplers.sample_flow_sde(field, x1.clone(), sigmas(n), disable=True, eta=0.0), exact)
        first = rmse(samplers.sample_flow_euler(field, x1.clone(), sigmas(n), disable=True), exact)
        assert second < 0.7 * first, (n, second, first)


def test_ancestral_with_eta_zero_is_flow_euler():
    field = FIELDS["mixture"]
    x1, s = noise(), sigmas(10)
    a = samplers.sample_flow_euler(field, x1.clone(), s, disable=True)
    b = samplers.sample_flow_euler_ancestral(field, x1.clone(), s, disable=True, eta=0.0)
    assert torch.allclose(a, b, atol=1e-12)


def test_multistep_beats_comfyui_class_methods_at_low_nfe():
    # The benchmark compares with ComfyUI itself; here the bar is our own Heun at equal NFE.
    field = FIELDS["gaussian"]
    x1 = noise()
    exact = field.endpoint(x1)
    for nfe in (8, 16, 32):
        multistep = rmse(samplers.sample_flow_multistep(field, x1.clone(), sigmas(nfe, "simple"), disable=True), exact)
        heun = rmse(samplers.sample_flow_heun(field, x1.clone(), sigmas((nfe + 1) // 2, "simple"), disable=True), exact)
        assert multistep < 0.5 * heun, (nfe, multistep, heun)


STOCHASTIC = [
    ("euler_a", samplers.sample_flow_euler_ancestral, {"eta": 1.0}),
    ("euler_a_half", samplers.sample_flow_euler_ancestral, {"eta": 0.5}),
    ("sde", samplers.sample_flow_sde, {"eta": 1.0}),
    ("sde_half", samplers.sample_flow_sde, {"eta": 0.5}),
    ("sde_first_order", samplers.sample_flow_sde, {"eta": 1.0, "second_order": False}),
]


def _draw(sampler, field, steps, options, seed=0, shape=(4, 4, 32, 32)):
    generator = torch.Generator().manual_seed(seed + 1)
    noise_sampler = lambda sigma, sigma_next: torch.randn(shape, generator=generator, dtype=torch.float64)  # noqa: E731
    return sampler(field, noise(shape, seed), sigmas(steps), disable=True, noise_sampler=noise_sampler, **options)


@pytest.mark.parametrize("name,sampler,options", STOCHASTIC, ids=[s[0] for s in STOCHASTIC])
def test_stochastic_samplers_reach_gaussian_distribution(name, sampler, options):
    field = FIELDS["gaussian"]
    coarse, fine = _draw(sampler, field, 12, options), _draw(sampler, field, 256, options)
    assert abs(float(fine.mean()) - field.mean) < 0.01
    assert abs(float(fine.std()) - field.std) < 0.02
    # the distribution error shrinks as steps grow
    assert abs(float(fine.std()) - field.std) < abs(float(coarse.std()) - field.std) + 0.002


@pytest.mark.parametrize("name,sampler,options", STOCHASTIC, ids=[s[0] for s in STOCHASTIC])
def test_stochastic_samplers_reach_mixture_weights(name, sampler, options):
    field = FIELDS["mixture"]
    out = _draw(sampler, field, 256, options)
    boundary = field.component_boundary()
    low_weight = field.weights[field.means.index(min(field.means))]
    assert abs(float((out < boundary).double().mean()) - low_weight) < 0.02
    assert abs(float(out.mean()) - field.mean) < 0.02
    assert abs(float(out.std()) - field.std) < 0.03


def test_callback_reports_every_step_in_k_diffusion_form():
    for entry in registry.SAMPLERS:
        seen = []
        entry.function(FIELDS["gaussian"], noise(), sigmas(6), disable=True, callback=seen.append)
        assert [d["i"] for d in seen] == list(range(6)), entry.name
        assert set(seen[0]) == {"x", "i", "sigma", "sigma_hat", "denoised"}
        assert float(seen[0]["sigma"]) == 1.0 and seen[0]["denoised"].shape == noise().shape


def test_noise_sampler_is_called_with_sigma_pairs_and_used():
    calls = []

    def zeros(sigma, sigma_next):
        calls.append((float(sigma), float(sigma_next)))
        return torch.zeros(2, 4, 16, 16, dtype=torch.float64)

    s = sigmas(5)
    for sampler in (samplers.sample_flow_euler_ancestral, samplers.sample_flow_sde):
        calls.clear()
        quiet = sampler(FIELDS["gaussian"], noise(), s, disable=True, noise_sampler=zeros)
        noisy = sampler(FIELDS["gaussian"], noise(), s, disable=True)
        # every step but the last draws noise; Flow SDE's corrector mode only inside its noise window
        low, high = samplers.SDE_NOISE_WINDOW if sampler is samplers.sample_flow_sde else (0.0, 1.0)
        assert calls == [(float(s[i]), float(s[i + 1])) for i in range(len(s) - 2) if low <= float(s[i + 1]) <= high]
        assert calls and not torch.allclose(quiet, noisy)


def test_extra_args_reach_the_model():
    received = []

    def model(x, sigma, **extra):
        received.append(extra)
        return torch.zeros_like(x)

    for entry in registry.SAMPLERS:
        received.clear()
        entry.function(model, noise(), sigmas(3), extra_args={"cond": "c"}, disable=True)
        assert received and all(r == {"cond": "c"} for r in received), entry.name


def test_progress_bar_shows_unless_disabled(capsys):
    samplers.sample_flow_euler(FIELDS["gaussian"], noise(), sigmas(3), disable=True)
    assert capsys.readouterr().err == ""
    samplers.sample_flow_euler(FIELDS["gaussian"], noise(), sigmas(3), disable=False)
    assert "3/3" in capsys.readouterr().err


@pytest.mark.parametrize("sampler,options,name", [
    (samplers.sample_flow_euler_ancestral, {"eta": -1.0}, "eta"),
    (samplers.sample_flow_sde, {"eta": float("nan")}, "eta"),
    (samplers.sample_flow_sde, {"s_noise": -0.5}, "s_noise"),
    (samplers.sample_flow_multistep, {"order": 5}, "order"),
])
def test_bad_options_are_rejected_naming_them(sampler, options, name):
    x = noise()
    before = x.clone()
    with pytest.raises(ValueError, match=name):
        sampler(FIELDS["gaussian"], x, sigmas(3), disable=True, **options)
    assert torch.equal(x, before)


@pytest.mark.parametrize("bad", [[14.6, 3.0, 0.0], [1.0, -0.1], [float("nan"), 0.0], [1.0]])
def test_sigmas_outside_flow_range_are_rejected(bad):
    for entry in registry.SAMPLERS:
        with pytest.raises(ValueError, match="sigmas"):
            entry.function(FIELDS["gaussian"], noise(), torch.tensor(bad), disable=True)
