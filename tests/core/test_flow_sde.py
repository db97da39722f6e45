"""Flow SDE (samplers.sample_flow_sde): the stochastic Adams predictor-corrector against exact oracles.

Distribution tolerances come from the sample count: N draws give the mean a standard error of
std / sqrt(N), the std (Gaussian) std / sqrt(2 N) and a mode weight sqrt(p (1 - p) / N); the
bounds are 4 standard errors, so an unbiased sampler fails them about once in 10^4 runs.
"""
import math

import pytest
import torch

from model_sampling_flow import registry, samplers, schedulers
from model_sampling_flow.model_sampling import FlowModelSampling
from model_sampling_flow.oracles import gaussian_field, mixture_field

SHAPE = (1, 4, 128, 128)
DRAWS = math.prod(SHAPE)
STEPS = 32     # moderate: the benchmark measures its bias there far below these bounds
STANDARD_ERRORS = 4.0


def run(field, steps=STEPS, scheduler="karras", seed=0, **options):
    sigmas = schedulers.get_sigmas(FlowModelSampling(shift=3.0), scheduler, steps).double()
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed + 1)
    return samplers.sample_flow_sde(
        field, noise, sigmas, disable=True,
        noise_sampler=lambda sigma, sigma_next: torch.randn(SHAPE, generator=generator, dtype=torch.float64), **options)


def test_gaussian_mean_and_std_within_sampling_error():
    field = gaussian_field(0.5, 0.3)
    out = run(field)
    assert abs(float(out.mean()) - 0.5) < STANDARD_ERRORS * 0.3 / math.sqrt(DRAWS)
    assert abs(float(out.std()) - 0.3) < STANDARD_ERRORS * 0.3 / math.sqrt(2 * DRAWS)


@pytest.mark.parametrize("means,stds,weights", [
    ((-1.0, 1.0), (0.2, 0.2), (0.5, 0.5)),
    ((-0.6, 0.7), (0.15, 0.25), (0.3, 0.7)),
])
def test_mixture_mode_weights_within_sampling_error(means, stds, weights):
    field = mixture_field(means, stds, weights)
    boundary = field.component_boundary()
    target = sum(w * 0.5 * (1 + math.erf((boundary - m) / (s * math.sqrt(2)))) for w, m, s in zip(weights, means, stds))
    below = float((run(field) < boundary).double().mean())
    assert abs(below - target) < STANDARD_ERRORS * math.sqrt(target * (1 - target) / DRAWS)
    assert abs(float(run(field).mean()) - field.mean) < STANDARD_ERRORS * field.std / math.sqrt(DRAWS)


def test_automatic_gives_flow_sde_a_schedule_it_samples_right_at_20_steps():
    # the webuis' "Automatic" follows the registry entry; Flow shift's last sigma (0.14 at 20 steps,
    # shift 3) is far from 0, and Flow SDE returns the denoised there: the std falls short
    # (docs/webui.md quotes these figures: 0.302 on Flow PC, 0.265 on Flow shift)
    field = gaussian_field(0.5, 0.3)
    automatic = float(run(field, steps=20, scheduler=registry.SAMPLERS_BY_NAME["flow_sde"].scheduler).std())
    flow_shift = float(run(field, steps=20, scheduler="flow_shift").std())
    assert abs(automatic - 0.3) < 0.005 and flow_shift < 0.28, (automatic, flow_shift)
    assert (round(automatic, 3), round(flow_shift, 3)) == (0.302, 0.265)


def test_last_step_returns_the_denoised_without_noise():
    field = gaussian_field(0.5, 0.3)
    sigmas = torch.tensor([1.0, 0.7, 0.4, 0.2, 0.0], dtype=torch.float64)
    noise_calls, seen = [], []

    def noise_sampler(sigma, sigma_next):
        noise_calls.append(float(sigma_next))
        return torch.randn(2, 3, generator=torch.Generator().manual_seed(len(noise_calls)), dtype=torch.float64)

    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    out = samplers.sample_flow_sde(field, x.clone(), sigmas, disable=True, noise_sampler=noise_sampler,
                                   callback=lambda info: seen.append(info))
    assert 0.0 not in noise_calls and len(noise_calls) == 1     # 0.7 is the one inside the noise window
    assert torch.equal(out, seen[-1]["denoised"])
    # the first model call sees the starting noise itself (sigma = 1 is the start, exactly)
    assert torch.equal(seen[0]["x"], x)


def test_noise_only_inside_the_window_and_everywhere_without_the_corrector():
    field = gaussian_field(0.5, 0.3)
    sigmas = torch.tensor([1.0, 0.95, 0.9, 0.7, 0.5, 0.3, 0.1, 0.0], dtype=torch.float64)
    low, high = samplers.SDE_NOISE_WINDOW
    for second_order, expected in ((True, [s for s in sigmas[1:-1].tolist() if low <= s <= high]),
                                   (False, sigmas[1:-1].tolist())):
        calls = []

        def noise_sampler(sigma, sigma_next):
            calls.append(float(sigma_next))
            return torch.randn(2, 3, dtype=torch.float64)

        samplers.sample_flow_sde(field, torch.randn(2, 3, dtype=torch.float64), sigmas, disable=True,
                                 noise_sampler=noise_sampler, second_order=second_order)
        assert calls == expected, second_order


def test_a_schedule_starting_below_the_window_is_the_ode_in_the_default_mode():
    # img2img, inpaint or hires at low denoise start at flow sigma <= 0.43: no step ends inside the
    # window, so the default mode adds no noise there (eta, s_noise and the noise sampler have no
    # effect; README says so) and samples like eta = 0; second_order=False still adds noise
    field = mixture_field((-1.0, 1.0), (0.2, 0.2), (0.5, 0.5))
    x1 = torch.randn(2, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    sigmas = 0.4 * torch.linspace(1.0, 0.0, 13, dtype=torch.float64) ** 1.6
    start = field.transport(x1, 1.0, 0.4)
    calls = []

    def noise_sampler(sigma, sigma_next):
        calls.append(float(sigma_next))
        return torch.randn(2, 3, dtype=torch.float64)

    out = samplers.sample_flow_sde(field, start.clone(), sigmas, disable=True, noise_sampler=noise_sampler, eta=2.0)
    assert calls == []
    assert torch.equal(out, samplers.sample_flow_sde(field, start.clone(), sigmas, disable=True, eta=0.0))
    assert float(((out - field.endpoint(x1)) ** 2).mean().sqrt()) < 0.01     # the ODE's own endpoint
    samplers.sample_flow_sde(field, start.clone(), sigmas, disable=True, noise_sampler=noise_sampler,
                             second_order=False)
    assert len(calls) == 11


def test_same_seed_same_samples_other_seed_other_samples():
    field = mixture_field((-1.0, 1.0), (0.2, 0.2), (0.5, 0.5))
    first, again, other = run(field, steps=8), run(field, steps=8), run(field, steps=8, seed=3)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_corrector_beats_the_first_order_step_at_low_step_counts():
    # the Gaussian's std error at 12 steps: the predictor-corrector's is well below the first-order step's
    field = gaussian_field(0.5, 0.3)
    corrected = abs(float(run(field, steps=12).std()) - 0.3)
    first_order = abs(float(run(field, steps=12, second_order=False).std()) - 0.3)
    assert corrected < 0.5 * first_order, (corrected, first_order)


@pytest.mark.parametrize("sigma,sigma_next,eta", [(1.0, 0.9, 1.0), (0.5, 0.05, 1.0), (0.05, 0.003, 0.5),
                                                   (1.0, 0.003, 0.0), (0.3, 0.2, 0.3)])
def test_exponential_weights_integrate_constants_and_sigma_exactly(sigma, sigma_next, eta):
    nodes = [sigma, 0.5 * (sigma + sigma_next)]
    weights = samplers._exponential_weights(nodes, sigma, sigma_next, eta)
    q = samplers._q(sigma, sigma_next)
    # D = 1: alpha_next (1 - q^(1 + eta)) in closed form
    assert abs(sum(weights) - (1 - sigma_next) * (1 - q ** (1 + eta))) < 1e-8
    # D = sigma: the kernel integral sigma_next * int (1 + eta) e^(-eta (l_next - l)) e^l sigma(l) dl by a fine trapezoid in lambda
    l_next = math.log((1 - sigma_next) / sigma_next)
    l_start = math.log((1 - sigma) / sigma) if sigma < 1 else l_next - 60.0
    grid = torch.linspace(l_start, l_next, 400001, dtype=torch.float64)
    integrand = (1 + eta) * torch.exp(-eta * (l_next - grid) + grid) * torch.sigmoid(-grid)
    exact = sigma_next * float(torch.trapezoid(integrand, grid))
    assert abs(sum(w * node for w, node in zip(weights, nodes)) - exact) < 1e-6


@pytest.mark.parametrize("options,name", [({"second_order": 1}, "second_order"), ({"eta": -1.0}, "eta"),
                                          ({"s_noise": float("nan")}, "s_noise"), ({"noise_sampler": 3}, "noise_sampler")])
def test_bad_option_raises_value_error_naming_it(options, name):
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match=name):
        samplers.sample_flow_sde(gaussian_field(), x, torch.tensor([1.0, 0.5, 0.0]), disable=True, **options)
