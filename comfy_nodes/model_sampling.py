"""The core's model-sampling objects as ComfyUI classes, and the per-clone model patch.

ComfyUI routes several samplers on `isinstance(model_sampling, comfy.model_sampling.CONST)`
(euler_ancestral, dpm_2_ancestral and dpmpp_2s_ancestral switch to their RF variants; the
log-SNR helpers of dpmpp_sde, dpmpp_2m/3m_sde, er_sde, seeds and sa_solver use logit(sigma)).
The native flow view therefore is CONST and a ModelSamplingDiscreteFlow, exactly what
ModelSamplingSD3 builds, so every sampler takes the same path and parity is exact. The VE view
is deliberately not CONST: its sigmas are variance-exploding, and ComfyUI's EDM/VE code paths
(ancestral steps, ddpm, res_multistep_ancestral, uni_pc, log(sigma) helpers) are right for it.
The core methods come first in both MROs, so the math is the core's.
"""
import copy

import comfy.latent_formats
import comfy.model_sampling

from ._core import model_sampling as core_model_sampling
from ._core import schedule, settings
from . import sampler_views

# SDXL's VAE normalisation; RF finetunes on other VAEs (EQ-VAE, the 32-channel Flux2 VAE) differ.
SDXL_LATENT_SCALE = 0.13025
SDXL_LATENT_SHIFT = 0.0


class FlowModelSamplingComfy(core_model_sampling.FlowModelSampling,
                             comfy.model_sampling.ModelSamplingDiscreteFlow,
                             comfy.model_sampling.CONST):
    """Native flow view: the core's FlowModelSampling, typed as ComfyUI's ModelSamplingSD3 class."""

    sigma_data = 1.0  # EPS-style attribute some host code reads; the flow math never uses it


class FlowVEModelSamplingComfy(core_model_sampling.FlowVEModelSampling):
    """VE view: the core's FlowVEModelSampling; not CONST, so ComfyUI treats it as a VE model."""

    sigma_data = 1.0


HOST_CLASSES = {"flow": FlowModelSamplingComfy, "ve": FlowVEModelSamplingComfy}


class FlowLatentFormat(comfy.latent_formats.LatentFormat):
    """A model's latent format with another VAE normalisation: (latent - shift) * scale.

    Channels and preview factors are kept from the model's own format.
    """

    def __init__(self, base, scale_factor, shift_factor):
        self.__dict__.update(copy.copy(vars(base)))
        for name in ("latent_channels", "latent_dimensions", "latent_rgb_factors",
                     "latent_rgb_factors_bias", "taesd_decoder_name"):
            setattr(self, name, getattr(base, name, None))
        self.scale_factor = scale_factor
        self.shift_factor = shift_factor

    def process_in(self, latent):
        return (latent - self.shift_factor) * self.scale_factor

    def process_out(self, latent):
        return latent / self.scale_factor + self.shift_factor


def build_model_sampling(shift, timestep_mapping, shift_mode, view, latent_shape=None):
    """The ComfyUI model-sampling object for these settings (validated by the core)."""
    flow_settings = settings.FlowSettings(shift=shift, timestep_mapping=timestep_mapping,
                                          shift_mode=shift_mode, view=view)
    if flow_settings.shift_mode != "static" and latent_shape is None:
        raise ValueError("latent is required when shift_mode is 'resolution': connect the latent "
                         "you sample so the shift follows its size")
    effective_shift = flow_settings.effective_shift(latent_shape)
    return HOST_CLASSES[flow_settings.view](shift=effective_shift,
                                            timestep_mapping=flow_settings.timestep_mapping)


def patch_model(model, shift, timestep_mapping, shift_mode, view, latent_scale=SDXL_LATENT_SCALE,
                latent_shift=SDXL_LATENT_SHIFT, latent_shape=None):
    """A clone of `model` sampling as a rectified-flow model; `model` itself is left untouched."""
    latent_scale = schedule.check_number("latent_scale", latent_scale, minimum=0.0, strict_minimum=True)
    latent_shift = schedule.check_number("latent_shift", latent_shift)
    model_sampling = build_model_sampling(shift, timestep_mapping, shift_mode, view, latent_shape)
    patched = model.clone()
    patched.add_object_patch("model_sampling", model_sampling)
    if model_sampling.view == "ve":  # deterministic samplers integrate in flow coordinates
        sampler_views.add_sampler_wrapper(patched)
    current = model.get_model_object("latent_format")
    if (float(getattr(current, "scale_factor", 1.0)), float(getattr(current, "shift_factor", 0.0) or 0.0)) \
            != (float(latent_scale), float(latent_shift)):
        patched.add_object_patch("latent_format", FlowLatentFormat(current, latent_scale, latent_shift))
    return patched
