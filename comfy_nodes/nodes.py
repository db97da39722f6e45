"""ComfyUI nodes (classic V1 node classes): model sampling patch, flow samplers, flow schedulers.

V1 mappings load in every ComfyUI release and fork that runs custom nodes; the V3
`comfy_entrypoint` API is newer and still changing, and buys nothing for nodes this simple.
"""
import re
import sys

import torch

import comfy.samplers

from ._core import model_sampling as core_model_sampling
from ._core import registry, schedule, settings
from .model_patch import SDXL_LATENT_SCALE, SDXL_LATENT_SHIFT, patch_model
from .registration import require_flow_model_sampling, sampler_function, scheduler_function

# The VE view is the default: stochastic samplers take ComfyUI's VE paths there (right for RF, ddpm and
# res_multistep_ancestral included, which ModelSamplingSD3 gets wrong), deterministic ones integrate in
# flow coordinates as under ModelSamplingSD3, and every scheduler spans the flow sigma range
# (sampler_views.py; docs/comfyui.md has the tables). The native view is kept for exact parity.
DEFAULT_VIEW = core_model_sampling.DEFAULT_VIEW
VIEW_CHOICES = core_model_sampling.VIEWS


def host_category(node_name, module_name, current):
    """The category the running ComfyUI gives its built-in `node_name`, so ours sit next to it.

    ComfyUI moved them (ModelSamplingSD3: `advanced/model` in 0.3.64, `model/patch/stable
    diffusion` in 0.33); `current` is the newest layout, for a ComfyUI that lacks the node.
    """
    for node in (getattr(sys.modules.get("nodes"), "NODE_CLASS_MAPPINGS", {}).get(node_name),
                 getattr(sys.modules.get(module_name), node_name, None)):
        category = getattr(node, "CATEGORY", None)
        if isinstance(category, str) and category:
            return category
    return current


CATEGORY = host_category("ModelSamplingSD3", "comfy_extras.nodes_model_advanced", "model/patch/stable diffusion")
SAMPLER_CATEGORY = host_category("KSamplerSelect", "comfy_extras.nodes_custom_sampler", "model/sampling/samplers")
SCHEDULER_CATEGORY = host_category("BasicScheduler", "comfy_extras.nodes_custom_sampler", "model/sampling/schedulers")
# Words the node search matches besides the display name (ComfyUI reads SEARCH_ALIASES).
SEARCH_ALIASES = ["rectified flow", "RF SDXL", "flow matching", "model sampling flow", "ModelSamplingSD3", "shift"]


class ModelSamplingFlowSDXL:
    """MODEL -> MODEL: sample an RF-trained SDXL checkpoint as a rectified-flow model."""

    @classmethod
    def INPUT_TYPES(cls):
        mappings = list(schedule.TIMESTEP_MAPPINGS)
        return {
            "required": {
                "model": ("MODEL",),
                "shift": ("FLOAT", {"default": schedule.DEFAULT_SHIFT, "min": 0.01, "max": 100.0, "step": 0.01,
                                    "tooltip": "Time shift s*t/(1+(s-1)*t); higher spends more steps at high noise. "
                                               "Use the checkpoint's training shift (often 3)."}),
                "timestep_mapping": (mappings, {"default": schedule.DEFAULT_TIMESTEP_MAPPING,
                                                "tooltip": "How sigma becomes the UNet timestep; match the trainer. "
                                                + "; ".join(f"{k}: {v}" for k, v in
                                                            schedule.TIMESTEP_MAPPING_DESCRIPTIONS.items())}),
                "shift_mode": (list(settings.SHIFT_MODES), {"default": "static",
                                                            "tooltip": "static: use shift. resolution: shift = "
                                                                       "sqrt(pixels / 1024^2) of the connected latent "
                                                                       "(bluvoll sd-scripts)."}),
                "view": (list(VIEW_CHOICES), {"default": DEFAULT_VIEW,
                                              "tooltip": "ve (recommended): stochastic samplers run in the VE view (right for RF), "
                                                         "deterministic ones in flow coordinates, schedules over the flow "
                                                         "range. flow: "
                                                         "native CONST view, identical to ModelSamplingSD3."}),
            },
            "optional": {
                "latent_scale": ("FLOAT", {"default": SDXL_LATENT_SCALE, "min": 0.0001, "max": 100.0, "step": 0.00001,
                                           "tooltip": "VAE latent scale (SDXL 0.13025; differs for EQ-VAE / Flux2-VAE finetunes)."}),
                "latent_shift": ("FLOAT", {"default": SDXL_LATENT_SHIFT, "min": -100.0, "max": 100.0, "step": 0.00001,
                                           "tooltip": "VAE latent shift (SDXL 0)."}),
                "latent": ("LATENT", {"tooltip": "The latent you sample; needed for shift_mode = resolution."}),
            },
        }

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = CATEGORY
    SEARCH_ALIASES = SEARCH_ALIASES
    DESCRIPTION = "Rectified-flow model sampling for RF-trained SDXL checkpoints (shift, trainer timestep mapping, view)."

    def patch(self, model, shift, timestep_mapping, shift_mode, view, latent_scale=SDXL_LATENT_SCALE,
              latent_shift=SDXL_LATENT_SHIFT, latent=None):
        latent_shape = None if latent is None else tuple(latent["samples"].shape)
        return (patch_model(model, shift, timestep_mapping, shift_mode, view, latent_scale, latent_shift,
                            latent_shape),)


class FlowSchedulerSDXL:
    """MODEL -> SIGMAS for the core's flow schedulers (in the model sampling's view)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "scheduler": ([entry.name for entry in registry.SCHEDULERS],),
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("SIGMAS",)
    FUNCTION = "get_sigmas"
    CATEGORY = SCHEDULER_CATEGORY

    def get_sigmas(self, model, scheduler, steps, denoise):
        function = scheduler_function(scheduler)
        steps = schedule.check_integer("steps", steps, minimum=1)
        denoise = schedule.check_number("denoise", denoise, minimum=0.0, maximum=1.0)
        if denoise <= 0.0:
            return (torch.FloatTensor([]),)
        total_steps = steps if denoise >= 1.0 else int(steps / denoise)
        model_sampling = require_flow_model_sampling(model.get_model_object("model_sampling"), "Flow Scheduler")
        sigmas = function(model_sampling, total_steps).cpu()
        return (sigmas[-(steps + 1):],)


# ComfyUI widget types of the registry's option kinds (registry.Option); ranges and defaults come
# from the entry, so the node accepts exactly what the core sampler accepts.
WIDGET_TYPES = {registry.FLOAT: "FLOAT", registry.INT: "INT", registry.BOOL: "BOOLEAN"}


def option_widget(option):
    """The ComfyUI input spec of a registry option."""
    spec = {"default": option.default, "tooltip": option.help}
    if option.range is not None:
        spec["min"], spec["max"] = option.range
    if option.kind == registry.FLOAT:
        spec.update(step=0.01, round=False)
    return (WIDGET_TYPES[option.kind], spec)


def _option_inputs(entry):
    return {option.name: option_widget(option) for option in entry.widget_options}


def _class_name(entry):
    return "Sampler" + "".join(part.capitalize() for part in re.split(r"[_\W]+", entry.name) if part)


def sampler_node(entry):
    """A SAMPLER node class for a core registry entry, its widgets taken from the entry's options."""
    inputs = _option_inputs(entry)
    function = sampler_function(entry.name)

    def get_sampler(self, **options):
        unknown = set(options) - set(inputs)
        if unknown:
            raise ValueError(f"{entry.name} has no option {sorted(unknown)[0]!r}; options are {sorted(inputs)}")
        return (comfy.samplers.KSAMPLER(function, extra_options=entry.check_options(options)),)

    return type(_class_name(entry), (), {
        "INPUT_TYPES": classmethod(lambda cls: {"required": dict(inputs)}),
        "RETURN_TYPES": ("SAMPLER",),
        "FUNCTION": "get_sampler",
        "CATEGORY": SAMPLER_CATEGORY,
        "DESCRIPTION": f"{entry.label}: a rectified-flow sampler (model_sampling_flow); right in both views.",
        "get_sampler": get_sampler,
        "registry_name": entry.name,
    })


NODE_CLASS_MAPPINGS = {
    "ModelSamplingFlowSDXL": ModelSamplingFlowSDXL,
    "FlowSchedulerSDXL": FlowSchedulerSDXL,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "ModelSamplingFlowSDXL": "Model Sampling Flow (RF SDXL)",
    "FlowSchedulerSDXL": "Flow Scheduler (RF SDXL)",
}
for _entry in registry.SAMPLERS:
    _node = sampler_node(_entry)
    NODE_CLASS_MAPPINGS[_node.__name__] = _node
    NODE_DISPLAY_NAME_MAPPINGS[_node.__name__] = f"Sampler {_entry.label}"
