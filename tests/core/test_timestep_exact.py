"""The network's timestep in the VE view equals the flow view's and the trainers' rule exactly
for every sigma every schedule produces."""

import pytest
import torch

from model_sampling_flow.model_sampling import FlowModelSampling, FlowVEModelSampling
from model_sampling_flow.schedule import TIMESTEP_MAPPINGS
from model_sampling_flow.schedulers import SCHEDULES_BY_NAME, get_sigmas
from model_sampling_flow.views import sigma_from_ve, sigma_to_ve


def trainer_timestep(mapping, sigma):
    """The trainers' rules on a float32 sigma, written from their source, independently of the core:
    naifu / diffusers: 1000 * sigma; bluvoll/sd-scripts: (sigma * 999).long() clamped to [0, 999];
    sd-scripts-f2vae: min(floor(sigma * 1000), 999). float32 arithmetic, as the trainers' tensors."""
    s = torch.tensor([sigma], dtype=torch.float32)
    if mapping == "continuous":
        return float(s * 1000)
    if mapping == "floor_999":
        return float((s * 999).long().clamp(0, 999))
    return float(torch.clamp(torch.floor(s * 1000), max=999))


@pytest.mark.parametrize("mapping", sorted(TIMESTEP_MAPPINGS))
@pytest.mark.parametrize("shift", [1.0, 3.0, 6.0, 12.0])
def test_ve_view_timestep_equals_flow_view_and_trainer(mapping, shift):
    flow_ms = FlowModelSampling(shift=shift, timestep_mapping=mapping)
    ve_ms = FlowVEModelSampling(shift=shift, timestep_mapping=mapping)
    for name in sorted(SCHEDULES_BY_NAME):
        for steps in range(1, 65):
            flow = get_sigmas(flow_ms, name, steps)
            ve = get_sigmas(ve_ms, name, steps)
            assert flow.shape == ve.shape, (name, steps)
            flow_t = flow_ms.timestep(flow)
            ve_t = ve_ms.timestep(ve)
            assert torch.equal(flow_t, ve_t), (name, steps, mapping, shift, flow_t, ve_t)
            for sigma, t in zip(flow.tolist(), ve_t.tolist()):
                # the top may be a float32 rounding above 1 (flow table); the trainers never see it
                if sigma <= 1.0:
                    assert t == trainer_timestep(mapping, sigma), (name, steps, sigma, t)
            # scalar calls (ComfyUI passes tensors; some hosts pass floats) give the same numbers
            assert [float(ve_ms.timestep(float(v))) for v in ve[:3]] == \
                [float(flow_ms.timestep(float(v))) for v in flow[:3]]


def test_issue_example_flow_shift_floor_1000_shift_3_28_steps():
    flow_ms = FlowModelSampling(shift=3.0, timestep_mapping="floor_1000")
    ve_ms = FlowVEModelSampling(shift=3.0, timestep_mapping="floor_1000")
    flow = get_sigmas(flow_ms, "flow_shift", 28)
    ve = get_sigmas(ve_ms, "flow_shift", 28)
    expected = [trainer_timestep("floor_1000", s) for s in flow.tolist()]
    assert ve_ms.timestep(ve).tolist() == expected
    # what the VE view did before: float32 sigma_ve of the exact flow sigma, back through
    # sigma_ve / (1 + sigma_ve): 2 of the 27 interior steps a step off (659 for 660, 99 for 100)
    old_ve = torch.tensor([float(sigma_to_ve(min(3 * t / (1 + 2 * t), ve_ms.sigma_cap), cap=ve_ms.sigma_cap))
                           for t in (1 - k / 28 for k in range(29))])
    naive = flow_ms.timestep(sigma_from_ve(old_ve)).tolist()
    assert sum(a != b for a, b in zip(naive, expected)) == 2


def test_unknown_ve_sigmas_are_converted_in_float64():
    ve_ms = FlowVEModelSampling(shift=3.0)
    sigma_ve = torch.tensor([0.7321, 123.25], dtype=torch.float32)   # a sampler's midpoint, not a schedule value
    expected = sigma_from_ve(sigma_ve.double()) * 1000
    assert torch.allclose(ve_ms.timestep(sigma_ve).double(), expected, rtol=1e-7)
