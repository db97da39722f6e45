"""Host-free checks of webui_extension/reforge.py: what it derives from the core for reForge."""
from types import SimpleNamespace

import torch

from model_sampling_flow.model_sampling import FlowVEModelSampling
from model_sampling_flow.settings import FlowSettings
from webui_extension.backend import FlowSamplingError
from webui_extension.reforge import (REFUSED_SAMPLERS, REFUSED_SCHEDULERS, FlowSamplingRefused, ReforgeBackend,
                                     alphas_cumprod_for, latent_shape_for, model_sampling_for)


def test_alphas_cumprod_gives_back_the_ve_table_and_decreases():
    ms = model_sampling_for(FlowSettings(shift=3.0), (128, 128))
    alphas = alphas_cumprod_for(ms).double()
    sigmas = ((1 - alphas) / alphas).sqrt()
    relative = ((sigmas - ms.sigmas.double()) / ms.sigmas.double()).abs().max()
    # alpha-bar is float32 in reForge; next to 1 it keeps sigma^2 only to ~6e-8, so the smallest
    # sigmas come back to ~0.1%. DDIM/PLMS/UniPC read both directions from this one table, so this
    # moves which sigmas are visited, not the math at them.
    assert relative < 2e-3
    assert ((sigmas[500:] - ms.sigmas.double()[500:]) / ms.sigmas.double()[500:]).abs().max() < 1e-5
    assert bool((alphas[1:] < alphas[:-1]).all())


def test_model_sampling_is_the_core_ve_view_whatever_view_is_asked():
    for view in ("ve", "flow"):
        ms = model_sampling_for(FlowSettings(shift=2.5, view=view), (128, 128))
        assert isinstance(ms, FlowVEModelSampling) and ms.shift == 2.5


def test_integer_timesteps_give_float_sigmas_like_ldm_patched():
    ms = model_sampling_for(FlowSettings(shift=3.0), (128, 128))
    steps = torch.tensor([999, 500, 3])
    sigma = ms.sigma(steps)
    assert sigma.is_floating_point()
    assert torch.allclose(sigma, ms.sigma(steps.float()))
    assert float(sigma[0]) > 100.0 and 0.0 < float(sigma[-1]) < 0.02


def test_resolution_shift_follows_the_pass_being_sampled():
    settings = FlowSettings(shift_mode="resolution")
    first = SimpleNamespace(is_hr_pass=False, width=1024, height=1024)
    hires = SimpleNamespace(is_hr_pass=True, width=1024, height=1024, hr_upscale_to_x=2048, hr_upscale_to_y=2048)
    assert latent_shape_for(first) == (128, 128) and latent_shape_for(hires) == (256, 256)
    assert model_sampling_for(settings, latent_shape_for(first)).shift == 1.0
    assert model_sampling_for(settings, latent_shape_for(hires)).shift == 2.0


def test_detect_needs_reforge_forge_objects():
    assert ReforgeBackend.detect(object()) is False
    assert ReforgeBackend.detect(SimpleNamespace(forge_objects=SimpleNamespace(unet=None))) is False


def test_refusals_name_the_choice_and_say_what_to_do():
    backend = ReforgeBackend()
    for name in ("LCM", "Euler A Comfy RF", "ODE (Dopri5)"):
        message = backend.refusal(SimpleNamespace(sampler_name=name, scheduler="Automatic", is_hr_pass=False))
        assert f"'{name}'" in message and "turn Flow sampling off" in message
    for name in REFUSED_SCHEDULERS:
        message = backend.refusal(SimpleNamespace(sampler_name="Euler", scheduler=name, is_hr_pass=False))
        assert f"'{name}'" in message and "turn Flow sampling off" in message
    assert backend.refusal(SimpleNamespace(sampler_name="Euler a", scheduler="Karras", is_hr_pass=False)) is None
    hires = SimpleNamespace(sampler_name="Euler", scheduler="Karras", is_hr_pass=True, hr_sampler_name="LCM",
                            hr_scheduler="Use same scheduler")
    assert "'LCM'" in backend.refusal(hires)
    assert issubclass(FlowSamplingRefused, FlowSamplingError)
    assert set(REFUSED_SAMPLERS) >= {"LCM", "Euler A Comfy RF", "DPM++ 2S Ancestral Comfy RF", "ODE (Dopri5)"}


def test_remove_and_active_on_a_model_never_patched():
    backend, model = ReforgeBackend(), torch.nn.Module()
    backend.remove(model)
    backend.remove(model)
    assert backend.active(model) is None and backend.model_sampling(model) is None
