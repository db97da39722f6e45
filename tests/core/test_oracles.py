"""The exact fields are what the other tests trust, so check them against independent facts."""
import pytest
import torch

from flow_test_support.guided import GUIDED_PAIRS
from model_sampling_flow.oracles import GaussianMixtureField, GuidedField, gaussian_field, mixture_field

FIELDS = {"gaussian": gaussian_field(0.5, 0.3), "mixture": mixture_field()}


@pytest.mark.parametrize("name", FIELDS)
def test_transport_follows_the_velocity(name):
    """d/dsigma of the exact ODE solution equals the exact velocity (central differences)."""
    field = FIELDS[name]
    x1 = torch.randn(2000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for sigma in (0.9, 0.5, 0.2, 0.05):
        h = 1e-5
        x = field.transport(x1, 1.0, sigma)
        derivative = (field.transport(x1, 1.0, sigma + h) - field.transport(x1, 1.0, sigma - h)) / (2 * h)
        assert torch.allclose(derivative, field.velocity(x, sigma), atol=2e-5), sigma


@pytest.mark.parametrize("name", FIELDS)
def test_endpoints_of_noise_have_the_data_distribution(name):
    field = FIELDS[name]
    x1 = torch.randn(200_000, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x0 = field.endpoint(x1)
    assert abs(float(x0.mean()) - field.mean) < 0.005
    assert abs(float(x0.std()) - field.std) < 0.005
    draws = field.sample((200_000,), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert abs(float(draws.mean()) - field.mean) < 0.005 and abs(float(draws.std()) - field.std) < 0.005
    assert torch.allclose(field.transport(x0, 0.0, 1.0), x1, atol=1e-8)


def test_denoiser_is_the_posterior_mean():
    """Monte Carlo: average x0 over draws whose noised value falls in a narrow bin around x."""
    field = FIELDS["mixture"]
    gen = torch.Generator().manual_seed(4)
    x0 = field.sample((2_000_000,), generator=gen, dtype=torch.float64)
    sigma = 0.4
    xs = (1 - sigma) * x0 + sigma * torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    for centre in (-0.5, 0.0, 0.3, 0.8):
        in_bin = (xs - centre).abs() < 0.01
        estimate = float(x0[in_bin].mean())
        exact = float(field(torch.tensor([centre], dtype=torch.float64), sigma))
        assert abs(estimate - exact) < 0.01, (centre, estimate, exact)


def test_gaussian_transport_is_affine_and_mixture_bisection_agrees_with_it():
    one = gaussian_field(0.2, 0.7)
    as_mixture = GaussianMixtureField([0.2, 0.2], [0.7, 0.7], [0.5, 0.5])  # same distribution, bisection path
    x = torch.linspace(-3, 3, 101, dtype=torch.float64)
    assert torch.allclose(one.transport(x, 0.8, 0.1), as_mixture.transport(x, 0.8, 0.1), atol=1e-9)
    assert torch.allclose(one(x, 0.6), as_mixture(x, 0.6), atol=1e-12)


def test_bad_fields_are_rejected():
    with pytest.raises(ValueError, match="stds"):
        GaussianMixtureField([0.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="weights"):
        GaussianMixtureField([0.0], [1.0], [-1.0])
    with pytest.raises(ValueError, match="equal-length"):
        GaussianMixtureField([0.0, 1.0], [1.0], [1.0])


# ---- the CFG field: no closed form, a reference solve checked against the closed forms it contains
COND, UNCOND, _ = GUIDED_PAIRS["two_modes"]


def _noise(count=4096, seed=7):
    return torch.randn(count, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("scale, exact", [(1.0, COND), (0.0, UNCOND)])
def test_guided_reference_matches_the_closed_form_where_there_is_one(scale, exact):
    """At CFG 1 the guided field is cond, at 0 uncond: the reference solve must give their exact endpoints."""
    noise = _noise()
    error = (GuidedField(COND, UNCOND, scale).endpoint(noise) - exact.endpoint(noise)).abs().max()
    assert float(error) < 1e-8


def test_guided_reference_has_converged_at_cfg_5():
    field, noise = GuidedField(COND, UNCOND, 5.0), _noise()
    coarse, fine = field.endpoint(noise, steps=1000), field.endpoint(noise)
    assert float((coarse - fine).pow(2).mean().sqrt()) < 1e-8
    # and guidance moved it: CFG 5 is not CFG 1
    assert float((fine - COND.endpoint(noise)).abs().max()) > 0.1


def test_guided_denoiser_is_uncond_plus_scale_times_the_difference():
    x, sigma = _noise(16), torch.full((16,), 0.4, dtype=torch.float64)
    field = GuidedField(COND, UNCOND, 3.0)
    expected = UNCOND(x, sigma) + 3.0 * (COND(x, sigma) - UNCOND(x, sigma))
    assert torch.equal(field(x, sigma), expected)
    assert field.calls == 1
    field.endpoint(_noise(8), steps=10)
    assert field.calls == 1          # the reference solve does not count as the sampler's calls


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), "5", True, None, torch.tensor(5.0)])
def test_guided_field_rejects_a_bad_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        GuidedField(COND, UNCOND, scale)


def test_guided_field_takes_any_real_scale():
    import fractions
    assert GuidedField(COND, UNCOND, fractions.Fraction(7, 2)).scale == 3.5
    assert GuidedField(COND, UNCOND, -1).scale == -1.0
