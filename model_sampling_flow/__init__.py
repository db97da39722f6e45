"""Rectified-flow sampling for SDXL-architecture checkpoints: the host-free core (torch + stdlib only).

Modules: schedule (time shift, trainers' timestep mappings), views (flow <-> VE, velocity <->
denoised), model_sampling (objects hosts attach to a model), schedulers, samplers, registry
(the one table hosts register from), settings (user settings, infotext), oracles (exact RF
fields), checkpoint (safetensors header inspection).
"""
from .model_sampling import FlowModelSampling, FlowVEModelSampling, make_model_sampling
from .registry import SAMPLERS, SCHEDULERS
from .schedule import TIMESTEP_MAPPINGS, resolution_shift, sigma_to_timestep, time_shift
from .schedulers import get_sigmas
from .settings import FlowSettings

__all__ = [
    "FlowModelSampling", "FlowVEModelSampling", "make_model_sampling", "SAMPLERS", "SCHEDULERS",
    "TIMESTEP_MAPPINGS", "resolution_shift", "sigma_to_timestep", "time_shift", "get_sigmas",
    "FlowSettings",
]
