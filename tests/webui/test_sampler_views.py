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
    assert views.view_for_sampler("Flow Heun") == views.FLOW
    assert views.view_for_sampler("DEIS") == views.VE       # deterministic, not yet measured in the flow view


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


def test_integrate_in_flow_coordinates_equals_the_sampler_run_natively_in_flow():
    """A k-diffusion Euler on the VE-view denoiser, wrapped, equals the same Euler in flow coordinates
    on the flow schedule (the exact mixture field as the model): what native flow gives it."""
    import torch
    from model_sampling_flow import views as core_views
    from model_sampling_flow.model_sampling import FlowVEModelSampling
    from model_sampling_flow.oracles import mixture_field
    from model_sampling_flow.schedulers import get_sigmas

    field = mixture_field()

    def euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
        for i in range(len(sigmas) - 1):
            denoised = model(x, sigmas[i] * x.new_ones([x.shape[0]]), **(extra_args or {}))
            x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
            if callback is not None:
                callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
        return x

    def ve_denoiser(x_ve, sigma_ve, **extra):
        sigma = core_views.sigma_from_ve(sigma_ve.double())
        return field(core_views.x_from_ve(x_ve.double(), sigma_ve.double()), sigma)

    ve_sigmas = get_sigmas(FlowVEModelSampling(3.0), "karras", 20).double()
    flow_sigmas = core_views.sigma_from_ve(ve_sigmas)
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sampler = type("S", (), {"func": staticmethod(euler)})()
    integrate_in_flow_coordinates = views.integrate_in_flow_coordinates
    integrate_in_flow_coordinates(sampler)
    wrapped = sampler.func
    integrate_in_flow_coordinates(sampler)
    assert sampler.func is wrapped                       # idempotent
    seen = []
    out = sampler.func(ve_denoiser, noise * ve_sigmas[0], sigmas=ve_sigmas, extra_args={}, disable=True,
                       callback=seen.append)
    native = euler(field, noise * flow_sigmas[0], flow_sigmas)
    in_ve = euler(ve_denoiser, noise * ve_sigmas[0], ve_sigmas)
    assert torch.allclose(out, native, atol=1e-9)
    assert (in_ve - native).abs().max() > 1e3 * (out - native).abs().max()   # VE-coordinate Euler differs
    assert float(seen[0]["sigma"]) == float(ve_sigmas[0])  # the host's callback speaks VE


def test_integrate_in_flow_coordinates_shows_the_function_signature():
    """The webuis pick the options they pass (sigmas, n, s_churn, eta ...) from the function's
    signature: the wrapper must show the sampler's own."""
    import inspect

    def euler(model, x, sigmas, extra_args=None, callback=None, disable=None, s_churn=0.0, s_noise=1.0):
        return x

    sampler = type("S", (), {"func": staticmethod(euler)})()
    views.integrate_in_flow_coordinates(sampler)
    assert sampler.func is not euler
    assert list(inspect.signature(sampler.func).parameters) == list(inspect.signature(euler).parameters)


def test_karras_churn_makes_a_pass_stochastic():
    """sigma churn (Settings, or p.s_churn) on Euler / Heun / DPM2 adds a VE noise step each step: the
    pass runs in the VE view, and the flow-coordinate wrapper leaves a call with s_churn as it was."""
    import torch
    p = type("P", (), {"s_churn": 10.0})()
    assert views.pass_churn(p, "Euler") == 10.0
    assert views.pass_churn(p, "DPM++ 2M") == 0.0          # takes no churn
    assert views.view_for_sampler("Euler", churn=views.pass_churn(p, "Euler")) == views.VE
    assert views.view_for_sampler("Euler", churn=0.0) == views.FLOW
    calls = []

    def euler(model, x, sigmas=None, extra_args=None, callback=None, disable=None, s_churn=0.0):
        calls.append((float(sigmas[0]), s_churn))
        return x
    sampler = type("S", (), {"func": staticmethod(euler)})()
    views.integrate_in_flow_coordinates(sampler)
    sigmas = torch.tensor([29996.0, 1.0, 0.0])
    sampler.func(None, torch.zeros(1), sigmas=sigmas, s_churn=10.0)
    sampler.func(None, torch.zeros(1), sigmas=sigmas, s_churn=0.0)
    assert calls[0] == (29996.0, 10.0)                  # VE sigmas: unchanged call
    assert calls[1][0] < 1.0                            # flow sigmas: integrated in flow coordinates
