"""Flow samplers run on a VE-view denoiser give what they give in flow coordinates."""
import pytest
import torch

from model_sampling_flow import registry, views
from model_sampling_flow.model_sampling import FlowVEModelSampling
from model_sampling_flow.oracles import mixture_field
from model_sampling_flow.schedulers import get_sigmas
from model_sampling_flow.ve_bridge import VESchedule, sample_in_ve

FIELD = mixture_field()


def ve_denoiser(x_ve, sigma_ve, **extra):
    """What a host's VE-view denoiser computes: the flow input, then x0."""
    sigma = views.sigma_from_ve(sigma_ve.double())
    return FIELD(views.x_from_ve(x_ve.double(), sigma_ve.double()), sigma).to(x_ve.dtype)


@pytest.mark.parametrize("entry", registry.SAMPLERS, ids=[e.name for e in registry.SAMPLERS])
def test_ve_host_matches_flow_coordinates(entry):
    steps = 12
    ve_sigmas = get_sigmas(FlowVEModelSampling(3.0), "simple", steps).double()
    flow_sigmas = views.sigma_from_ve(ve_sigmas)
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    draws = [torch.randn(noise.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
             for _ in range(steps)]
    options = {}
    if entry.takes_noise_sampler:
        options = {"noise_sampler": lambda s, sn, it=iter(draws): next(it)}
    seen = []
    out_ve = sample_in_ve(entry.function, ve_denoiser, noise * ve_sigmas[0], ve_sigmas, disable=True,
                          callback=seen.append, **options)
    if options:
        options = {"noise_sampler": lambda s, sn, it=iter(draws): next(it)}
    out_flow = entry.function(FIELD, noise * flow_sigmas[0], flow_sigmas, disable=True, **options)
    assert torch.allclose(out_ve, out_flow, atol=1e-9)
    # the callback speaks the host's VE sigmas and coordinates
    assert [float(d["sigma"]) for d in seen] == pytest.approx([float(s) for s in ve_sigmas[:-1]], rel=1e-12)
    assert torch.allclose(seen[0]["x"], noise * ve_sigmas[0], rtol=1e-9)


def test_noise_sampler_gets_ve_sigmas():
    asked = []

    def noise_sampler(sigma_ve, sigma_ve_next):
        asked.append((sigma_ve, sigma_ve_next))
        return torch.zeros(1, 4, 4, 4, dtype=torch.float64)

    ve_sigmas = get_sigmas(FlowVEModelSampling(3.0), "simple", 4).double()
    sample_in_ve(registry.SAMPLERS_BY_NAME["flow_euler_ancestral"].function, ve_denoiser,
                 torch.ones(1, 4, 4, 4, dtype=torch.float64) * ve_sigmas[0], ve_sigmas,
                 disable=True, noise_sampler=noise_sampler)
    assert asked == [pytest.approx((float(ve_sigmas[i]), float(ve_sigmas[i + 1]))) for i in range(3)]


def test_float32_sigma_batch_maps_back_to_the_exact_ve_sigma_at_the_cap():
    ve_ms = FlowVEModelSampling(3.0)
    schedule = VESchedule(get_sigmas(ve_ms, "simple", 8))
    top = torch.tensor(schedule.flow[0], dtype=torch.float32)  # what a float32 sigma batch holds
    flow, ve = schedule.lookup(float(top))
    assert ve == schedule.ve[0] and flow == schedule.flow[0]
    # a naive float32 round trip would be far off there
    assert abs(float(views.sigma_to_ve(float(top), cap=1.0)) - ve) / ve > 1e-4


def test_callbacks_that_report_t_or_no_sigma_get_ve_sigmas():
    """DPM-Solver reports t = -log(sigma); ComfyUI's UniPC reports only the step index."""
    ve_sigmas = get_sigmas(FlowVEModelSampling(3.0), "simple", 4).double()
    flow_sigmas = views.sigma_from_ve(ve_sigmas)

    def reporting(model, x, sigmas, extra_args=None, callback=None, disable=None):
        callback({"x": x, "i": 1, "t": -torch.log(sigmas[1]), "denoised": x})
        callback({"x": x, "i": 2, "denoised": x})
        return x

    seen = []
    sample_in_ve(reporting, ve_denoiser, torch.ones(1, 1, 2, 2, dtype=torch.float64) * ve_sigmas[0], ve_sigmas,
                 callback=seen.append)
    assert [float(d["sigma"]) for d in seen] == pytest.approx([float(ve_sigmas[1]), float(ve_sigmas[2])], rel=1e-9)
    assert float(seen[1]["x"].flatten()[0]) == pytest.approx(float(ve_sigmas[0] / (1 + ve_sigmas[0]) * (1 + ve_sigmas[2])), rel=1e-9)
