"""The one table of which view each webui sampler runs in (webui_extension/sampler_views.py).
That every sampler A1111 and reForge list is in it is asserted inside the hosts
(test_a1111_host.py, test_reforge_practical.py)."""
from model_sampling_flow import registry
from webui_extension import sampler_views as views


def test_kinds_are_disjoint_and_ours_follow_the_registry():
    assert not (views.DETERMINISTIC & views.STOCHASTIC)
    assert not (views.TIMESTEP & (views.DETERMINISTIC | views.STOCHASTIC))
    for entry in registry.SAMPLERS:
        expected = "stochastic" if entry.stochastic else "deterministic"
        assert views.sampler_kind(entry.label) == expected == views.sampler_kind(entry.name)


def test_only_deterministic_txt2img_passes_get_the_flow_view():
    assert views.view_for_sampler("DPM++ 2M") == views.FLOW
    assert views.view_for_sampler("DPM++ 2M", img2img=True) == views.VE
    for label in ("Euler a", "DPM++ 2M SDE", "DDIM", "Some Extension Sampler", None):
        assert views.view_for_sampler(label) == views.VE
    assert views.sampler_kind("Some Extension Sampler") is None


class _Sampler:
    def __init__(self):
        self.model_wrap = "ve denoiser"
        self.seen = []

    def get_sigmas(self, p, steps):
        import torch
        self.seen.append(self.model_wrap)
        return torch.tensor([1.0, 0.5, 0.0])

    def create_noise_sampler(self, x, sigmas, p):
        return None


def test_schedule_over_flow_range_swaps_the_denoiser_for_one_call_and_maps():
    import torch
    from model_sampling_flow.model_sampling import FlowVEModelSampling
    sampler, ve = _Sampler(), FlowVEModelSampling(3.0)
    views.schedule_over_flow_range(sampler, "flow denoiser", ve.ve_schedule)
    views.schedule_over_flow_range(sampler, "flow denoiser", ve.ve_schedule)      # idempotent
    p = type("P", (), {"sampler_noise_scheduler_override": None})()
    sigmas = sampler.get_sigmas(p, 2)
    assert sampler.seen == ["flow denoiser"] and sampler.model_wrap == "ve denoiser"
    assert torch.equal(sigmas, torch.tensor([float(ve.sigmas[-1]), 1.0, 0.0]))
    p.sampler_noise_scheduler_override = lambda steps: None
    sampler.get_sigmas(p, 2)
    assert sampler.seen[-1] == "ve denoiser"     # a script's own sigmas are left alone
    views.brownian_noise_within_interval(sampler)
    assert sampler.create_noise_sampler(None, None, None) is None
