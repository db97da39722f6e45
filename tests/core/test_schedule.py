"""Time shift, sigma table, trainers' timestep mappings, resolution shift, validation."""
import math

import pytest
import torch

from model_sampling_flow.model_sampling import FlowModelSampling, FlowVEModelSampling, make_model_sampling
from model_sampling_flow.schedule import (inverse_time_shift, latent_resolution_shift, resolution_shift,
                                          sigma_to_timestep, time_shift)

SHIFTS = (0.5, 1.0, 1.7, 3.0, 6.0, 12.0)


@pytest.mark.parametrize("shift", SHIFTS)
def test_time_shift_fixes_endpoints_is_monotone_and_inverts(shift):
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    sigma = time_shift(shift, t)
    assert float(sigma[0]) == 0.0 and float(sigma[-1]) == 1.0
    assert bool((sigma[1:] > sigma[:-1]).all())
    assert torch.allclose(inverse_time_shift(shift, sigma), t, atol=1e-12)
    # shift > 1 moves every interior time towards noise, shift < 1 towards data
    interior = sigma[1:-1] - t[1:-1]
    assert bool((interior > 0).all()) if shift > 1 else bool((interior <= 0).all())


@pytest.mark.parametrize("shift", SHIFTS)
def test_table_is_time_shift_of_k_over_1000(shift):
    ms = FlowModelSampling(shift=shift)
    k = torch.arange(1, 1001, dtype=torch.float64)
    assert ms.sigmas.shape == (1000,)
    assert torch.allclose(ms.sigmas.double(), time_shift(shift, k / 1000), atol=1e-6)
    assert float(ms.sigma_max) == 1.0
    assert math.isclose(float(ms.sigma_min), shift * 0.001 / (1 + (shift - 1) * 0.001), rel_tol=1e-6)
    assert ms.percent_to_sigma(0.0) == 1.0 and ms.percent_to_sigma(1.0) == 0.0
    assert math.isclose(ms.percent_to_sigma(0.25), time_shift(shift, 0.75), rel_tol=1e-12)


@pytest.mark.parametrize("mapping,sigma,expected", [
    ("continuous", 0.5, 500.0), ("continuous", 1.0, 1000.0), ("continuous", 0.0123, 12.3),
    ("floor_999", 0.5, 499.0), ("floor_999", 1.0, 999.0), ("floor_999", 0.0, 0.0), ("floor_999", 0.0011, 1.0),
    ("floor_1000", 0.5, 500.0), ("floor_1000", 1.0, 999.0), ("floor_1000", 0.0009, 0.0), ("floor_1000", 0.9999, 999.0),
])
def test_trainer_timestep_mappings(mapping, sigma, expected):
    assert math.isclose(float(sigma_to_timestep(sigma, mapping)), expected, rel_tol=1e-9)
    as_tensor = sigma_to_timestep(torch.tensor([sigma], dtype=torch.float64), mapping)
    assert math.isclose(float(as_tensor[0]), expected, rel_tol=1e-9)


@pytest.mark.parametrize("mapping", ["continuous", "floor_999", "floor_1000"])
def test_network_gets_mapped_timestep_while_sigma_table_stays_exact(mapping):
    ms = FlowModelSampling(shift=3.0, timestep_mapping=mapping)
    reference = FlowModelSampling(shift=3.0)
    assert torch.equal(ms.sigmas, reference.sigmas)
    sigma = torch.tensor([0.73456, 0.0021])
    assert torch.equal(ms.timestep(sigma), sigma_to_timestep(sigma, mapping))
    ve = FlowVEModelSampling(shift=3.0, timestep_mapping=mapping)
    assert torch.allclose(ve.timestep(sigma / (1 - sigma)), sigma_to_timestep(sigma, mapping), atol=1e-3)


def test_resolution_shift_is_bluvoll_ratio():
    assert resolution_shift(1024, 1024) == 1.0
    assert resolution_shift(2048, 2048) == 2.0
    assert math.isclose(resolution_shift(1536, 1024), math.sqrt(1.5))
    assert latent_resolution_shift((1, 4, 128, 128)) == 1.0
    assert latent_resolution_shift((2, 4, 256, 128)) == math.sqrt(2.0)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), -float("inf"), "three", None])
def test_bad_shift_is_rejected_naming_it(bad):
    with pytest.raises(ValueError, match="shift"):
        FlowModelSampling(shift=bad)
    with pytest.raises(ValueError, match="shift"):
        FlowVEModelSampling(shift=bad)


def test_bad_names_and_sigmas_are_rejected_naming_them():
    with pytest.raises(ValueError, match="timestep_mapping.*'floor'"):
        FlowModelSampling(timestep_mapping="floor")
    with pytest.raises(ValueError, match="timestep_mapping"):
        sigma_to_timestep(0.5, "nope")
    with pytest.raises(ValueError, match="view.*'eps'"):
        make_model_sampling(view="eps")
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="sigma"):
            sigma_to_timestep(bad)
        with pytest.raises(ValueError, match="sigma"):
            sigma_to_timestep(torch.tensor([0.5, bad]))
    with pytest.raises(ValueError, match="height"):
        resolution_shift(0, 1024)
    with pytest.raises(ValueError, match="percent"):
        FlowModelSampling().percent_to_sigma(float("nan"))
