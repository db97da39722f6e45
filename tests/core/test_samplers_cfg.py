"""The Flow samplers under classifier-free guidance (CFG 3-7), against the guided ODE's reference endpoint.

A guided velocity (uncond + scale * (cond - uncond)) is stiffer and less polynomial than any data
distribution's, which is where high-order multistep methods go unstable; benchmarks/bench_cfg.py
measures the whole matrix, these tests hold the cases that failed before Flow PC's stability checks.
"""
import pytest
import torch

from flow_test_support.guided import GUIDED_PAIRS
from model_sampling_flow import samplers, schedulers
from model_sampling_flow.model_sampling import FlowModelSampling
from model_sampling_flow.oracles import GuidedField

PAIRS = {name: (cond, uncond) for name, (cond, uncond, _) in GUIDED_PAIRS.items()}
NOISE = torch.randn((1, 4, 32, 32), generator=torch.Generator().manual_seed(0))
_ENDPOINTS = {}


def error(sampler, pair, scale, schedule, steps, shift=3.0, noise=NOISE):
    field = GuidedField(*PAIRS[pair], scale)
    key = (pair, scale, noise.data_ptr())
    if key not in _ENDPOINTS:
        _ENDPOINTS[key] = field.endpoint(noise.double()).float()
    sigmas = schedulers.get_sigmas(FlowModelSampling(shift=shift), schedule, steps)
    out = sampler(field, noise.clone(), sigmas, disable=True)
    return float((out - _ENDPOINTS[key]).pow(2).mean().sqrt())


@pytest.mark.parametrize("pair", list(PAIRS))
@pytest.mark.parametrize("scale", [5.0, 7.0])
def test_flow_pc_on_its_schedule_stays_far_ahead_of_flow_euler_at_practical_steps(pair, scale):
    """Before the stability checks, 20-28 steps: 0.067 (CFG 5) and 0.20 (CFG 7) at worst, Flow Euler 0.12."""
    for steps in (20, 28):
        pc = error(samplers.sample_flow_pc, pair, scale, "flow_pc", steps)
        euler = error(samplers.sample_flow_euler, pair, scale, "flow_pc", steps)
        assert pc <= 0.6 * euler and pc < 0.04, (steps, pc, euler)


@pytest.mark.parametrize("pair", list(PAIRS))
def test_flow_pc_on_simple_at_cfg_7_is_not_far_behind_flow_euler(pair):
    """Before: the long last step of `simple` (0.14 -> 0 at 20 steps, shift 3) took Flow PC to 2.9 on two
    modes, Flow Euler 0.05; its order-3 polynomial extrapolated the guided velocity to sigma 0."""
    for steps in (20, 28):
        pc = error(samplers.sample_flow_pc, pair, 7.0, "simple", steps)
        euler = error(samplers.sample_flow_euler, pair, 7.0, "simple", steps)
        assert pc <= 5 * euler, (steps, pc, euler)


def test_each_sample_keeps_its_own_order():
    """The checks act per sample: a sample's result does not depend on what else is in the batch."""
    field = GuidedField(*PAIRS["two_modes"], 7.0)
    sigmas = schedulers.get_sigmas(FlowModelSampling(shift=3.0), "simple", 20)
    calm = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(3)) * 0.01   # near the mean
    wild = NOISE[:, :, :8, :8]
    together = samplers.sample_flow_pc(field, torch.cat([calm, wild]), sigmas, disable=True)
    alone = [samplers.sample_flow_pc(field, x.clone(), sigmas, disable=True) for x in (calm, wild)]
    assert torch.equal(together, torch.cat(alone))


def test_unguided_fields_on_the_flow_pc_schedule_are_not_slowed():
    """At CFG 1 the checks rarely act: Flow PC keeps its order-4/5 accuracy on the Gaussian (the guided
    field at scale 1 is the cond field)."""
    errors = [error(samplers.sample_flow_pc, "gaussian", 1.0, "flow_pc", steps) for steps in (12, 24)]
    assert errors[0] < 3e-4 and errors[1] < 2e-5, errors


def test_one_dimensional_latents_and_low_precision_still_sample():
    """x of shape [batch] (no element axes) and float16 run as before the checks were added."""
    field = GuidedField(*PAIRS["two_modes"], 7.0)
    sigmas = schedulers.get_sigmas(FlowModelSampling(shift=3.0), "simple", 12)
    flat = samplers.sample_flow_pc(field, NOISE.flatten()[:5].clone(), sigmas, disable=True)
    assert flat.shape == (5,) and torch.isfinite(flat).all()
    half = samplers.sample_flow_pc(field, NOISE[:, :, :4, :4].half(), sigmas, disable=True)
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    empty = samplers.sample_flow_pc(field, torch.zeros((0, 4, 2, 2)), sigmas, disable=True)
    assert empty.shape == (0, 4, 2, 2)
