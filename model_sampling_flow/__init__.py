"""Rectified-flow sampling for SDXL-architecture checkpoints: the host-free core (torch + stdlib only).

Modules: schedule (time shift, trainers' timestep mappings), views (flow <-> VE, velocity <->
denoised), model_sampling (objects hosts attach to a model), schedulers, samplers, registry
(the one table hosts register from), settings (user settings, infotext), oracles (exact RF
fields), safetensors_header (header reader) and checkpoint (inspector, RF marker).

The names below are imported on first use, so `python -m model_sampling_flow inspect` and the
checkpoint inspector run with the standard library alone; everything else needs torch.
"""
import importlib

_LAZY = {
    "FlowModelSampling": "model_sampling", "FlowVEModelSampling": "model_sampling",
    "make_model_sampling": "model_sampling", "SAMPLERS": "registry", "SCHEDULERS": "registry",
    "TIMESTEP_MAPPINGS": "schedule", "resolution_shift": "schedule", "sigma_to_timestep": "schedule",
    "time_shift": "schedule", "get_sigmas": "schedulers", "FlowSettings": "settings",
}

__all__ = list(_LAZY)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
