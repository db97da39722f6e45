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


class ComfyRebuildProtocol:
    """The calls ComfyUI nodes make to rebuild a model sampling from its class.

    ModelNoiseScale (ComfyUI v0.33) does `ms = type(original)(model.model_config)`, then
    `ms.set_parameters(shift=original.shift, multiplier=original.multiplier)` and
    `ms.set_noise_scale(noise_scale)`. The model config carries none of our settings, so each
    (view, timestep mapping) has its own class (host_class) and the rebuilt object keeps them.
    """

    default_timestep_mapping = schedule.DEFAULT_TIMESTEP_MAPPING
    noise_scale = 1.0

    def __init__(self, shift=schedule.DEFAULT_SHIFT, timestep_mapping=None, **options):
        if hasattr(shift, "sampling_settings"):  # type(ms)(model_config): shift follows in set_parameters
            shift = schedule.DEFAULT_SHIFT
        if timestep_mapping is None:
            timestep_mapping = self.default_timestep_mapping
        super().__init__(shift=shift, timestep_mapping=timestep_mapping, **options)

    def set_parameters(self, shift=schedule.DEFAULT_SHIFT, timesteps=schedule.NUM_TIMESTEPS,
                       multiplier=schedule.NUM_TIMESTEPS):
        """Rebuild the table for another shift (ComfyUI's ModelSamplingDiscreteFlow signature)."""
        if multiplier != schedule.NUM_TIMESTEPS or timesteps != schedule.NUM_TIMESTEPS:
            raise ValueError(f"timesteps and multiplier must be {schedule.NUM_TIMESTEPS} for an RF SDXL "
                             f"model sampling, got timesteps={timesteps!r}, multiplier={multiplier!r}")
        self.shift = schedule.check_shift(shift)
        self.multiplier = schedule.NUM_TIMESTEPS
        self.register_buffer("sigmas", self._table(schedule.NUM_TIMESTEPS))

    def set_noise_scale(self, noise_scale):
        noise_scale = schedule.check_number("noise_scale", noise_scale, minimum=0.0)
        if noise_scale != 1.0:
            raise ValueError(f"noise_scale must be 1 with Model Sampling Flow (RF SDXL), got {noise_scale!r}: "
                             "RF SDXL checkpoints are trained on unit-variance noise; ModelNoiseScale is for "
                             "models trained on scaled noise (HiDream-O1). Remove ModelNoiseScale or set it to 1.")
        self.noise_scale = 1.0


class FlowModelSamplingComfy(ComfyRebuildProtocol, core_model_sampling.FlowModelSampling,
                             comfy.model_sampling.ModelSamplingDiscreteFlow,
                             comfy.model_sampling.CONST):
    """Native flow view: the core's FlowModelSampling, typed as ComfyUI's ModelSamplingSD3 class."""

    sigma_data = 1.0  # EPS-style attribute some host code reads; the flow math never uses it


class FlowVEModelSamplingComfy(ComfyRebuildProtocol, core_model_sampling.FlowVEModelSampling):
    """VE view: the core's FlowVEModelSampling; not CONST, so ComfyUI treats it as a VE model."""

    sigma_data = 1.0


HOST_CLASSES = {core_model_sampling.FLOW: FlowModelSamplingComfy, core_model_sampling.VE: FlowVEModelSamplingComfy}
_CLASSES_BY_SETTINGS = {}


def host_class(view, timestep_mapping):
    """The ComfyUI model-sampling class of a view whose default mapping is `timestep_mapping`."""
    key = (view, timestep_mapping)
    if key not in _CLASSES_BY_SETTINGS:
        base = HOST_CLASSES[view]
        _CLASSES_BY_SETTINGS[key] = base if timestep_mapping == base.default_timestep_mapping else type(
            base.__name__, (base,), {"default_timestep_mapping": timestep_mapping, "__module__": __name__,
                                     "__qualname__": base.__qualname__})
    return _CLASSES_BY_SETTINGS[key]


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
    return host_class(flow_settings.view, flow_settings.timestep_mapping)(shift=effective_shift)


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
