"""Hostile option values for the registry's typed options: NumPy and torch booleans, a non-callable noise sampler."""
import numpy as np
import pytest
import torch

from model_sampling_flow import registry, samplers


@pytest.mark.parametrize("value", [np.True_, torch.tensor(True)], ids=["numpy-bool", "torch-bool"])
def test_a_boolean_eta_is_refused(value):
    """check_number says booleans are refused (a checkbox wired to a number); numpy 2's bool (its type
    is named 'bool', not 'bool_') and a torch bool tensor pass as 1.0."""
    with pytest.raises(ValueError, match="eta"):
        registry.SAMPLERS_BY_NAME["flow_sde"].check_options({"eta": value})


def test_a_non_callable_noise_sampler_is_refused_before_sampling():
    """noise_sampler=123: ValueError naming noise_sampler before any model call, not a TypeError
    ('int' object is not callable) from inside the first stochastic step."""
    calls = []

    def model(x, sigma, **kwargs):
        calls.append(float(sigma.reshape(-1)[0]))
        return torch.zeros_like(x)
    sigmas = torch.linspace(1.0, 0.0, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="noise_sampler"):
        samplers.sample_flow_sde(model, torch.randn(1, 4, 2, 2), sigmas, noise_sampler=123)
    assert calls == []
