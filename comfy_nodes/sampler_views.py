"""Schedules over the flow sigma range, and the view each ComfyUI sampler integrates in.

With our model sampling in the VE view (the default), ComfyUI would compute its schedulers on VE
sigmas, which span seven decades (about 0.003 to 3e4): Karras, exponential, kl_optimal and
linear_quadratic then crowd the steps at the ends and lose accuracy at 20-28 steps. And
deterministic samplers lose accuracy integrating in VE coordinates on timestep-axis schedules,
while the stochastic ones need the VE view to be right. Two patches fix that for our model
sampling only (every other model keeps ComfyUI's exact path):

* `calculate_sigmas`, ComfyUI's one scheduler entry (KSampler and BasicScheduler both call the
  module function), computes any scheduler on the flow twin of our VE model sampling (what
  ModelSamplingSD3 would be) and maps the result to VE with the core's FlowVEModelSampling.ve_schedule.
* a SAMPLER_SAMPLE wrapper, added to the model by our node, runs a deterministic sampler in flow
  coordinates through the core's ve_bridge: the sampler function sees flow sigmas, flow x and a
  CONST model sampling (as under ModelSamplingSD3), while everything below it (conditioning
  ranges, ControlNet, CFG functions, the model call) keeps seeing the VE view it was set up in.
  Stochastic and unknown samplers run in VE unchanged.
"""
import weakref

import comfy.k_diffusion.sampling as k_diffusion_sampling
import comfy.samplers

from ._core import ve_bridge, views
from .samplers import MARK

WRAPPER_KEY = "model_sampling_flow.sampler_view"

# The coordinates each ComfyUI sampler integrates in under our VE view. "flow": deterministic,
# integrated in flow coordinates exactly as under ModelSamplingSD3 (more accurate there at 20-28
# steps). "ve": stochastic samplers, right only in the VE view (in flow coordinates ComfyUI's
# EDM-style noise injection biases them). Names not listed (other node packs) stay in VE.
SAMPLER_VIEWS = {
    **dict.fromkeys((
        "euler", "euler_cfg_pp", "heun", "heunpp2", "dpm_2", "lms", "dpm_fast", "dpm_adaptive",
        "dpmpp_2m", "dpmpp_2m_cfg_pp", "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp",
        "gradient_estimation", "gradient_estimation_cfg_pp", "exp_heun_2_x0", "ddim", "uni_pc", "uni_pc_bh2",
    ), "flow"),
    **dict.fromkeys((
        "euler_ancestral", "euler_ancestral_cfg_pp", "dpm_2_ancestral", "dpmpp_2s_ancestral",
        "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
        "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm",
        "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "er_sde", "seeds_2", "seeds_3",
        "sa_solver", "sa_solver_pece", "exp_heun_2_x0_sde",
    ), "ve"),
}
# ComfyUI builds these two as closures inside comfy.samplers.ksampler; ddim is sample_euler.
_CLOSURE_NAMES = {"dpm_fast_function": "dpm_fast", "dpm_adaptive_function": "dpm_adaptive"}
# Options that make a deterministic sampler function stochastic.
_NOISE_OPTIONS = ("eta", "s_churn")


def sampler_name_of(function):
    """ComfyUI's name for a sampler function, or None for functions ComfyUI does not list."""
    name = _CLOSURE_NAMES.get(getattr(function, "__name__", None))
    if name is not None and getattr(function, "__module__", None) == comfy.samplers.__name__:
        return name
    for name in SAMPLER_VIEWS:
        if function is getattr(k_diffusion_sampling, f"sample_{name}", None):
            return name
    uni_pc = getattr(comfy.samplers, "uni_pc", None)
    if uni_pc is not None:
        if function is getattr(uni_pc, "sample_unipc", None):
            return "uni_pc"
        if function is getattr(uni_pc, "sample_unipc_bh2", None):
            return "uni_pc_bh2"
    return None


def sampler_view(sampler):
    """'flow' when this KSAMPLER integrates in flow coordinates under our VE view, else 've'."""
    function = getattr(sampler, "sampler_function", None)
    if function is None or getattr(function, MARK, None) is not None:
        return "ve"  # not a KSAMPLER, or one of ours (they already integrate in flow time)
    options = getattr(sampler, "extra_options", None) or {}
    if any(float(options.get(name, 0.0) or 0.0) > 0.0 for name in _NOISE_OPTIONS):
        return "ve"
    return SAMPLER_VIEWS.get(sampler_name_of(function), "ve")


# ---------------------------------------------------------------- the flow twin

_TWINS = weakref.WeakKeyDictionary()


def is_our_ve_sampling(model_sampling):
    """Our VE-view model sampling (duck-typed: a second install has its own copy of the classes)."""
    return getattr(model_sampling, "view", None) == "ve" and hasattr(model_sampling, "flow_sigma") \
        and hasattr(model_sampling, "sigma_cap") and hasattr(model_sampling, "timestep_mapping")


def flow_twin(model_sampling):
    """The native-view model sampling with the same shift and timestep mapping (cached)."""
    twin = _TWINS.get(model_sampling)
    if twin is None:
        from .model_patch import FlowModelSamplingComfy
        twin = FlowModelSamplingComfy(shift=model_sampling.shift, timestep_mapping=model_sampling.timestep_mapping)
        _TWINS[model_sampling] = twin
    return twin


# ---------------------------------------------------------------- schedules

def calculate_sigmas_in_flow(original):
    """A comfy.samplers.calculate_sigmas that computes schedules for our VE view over flow sigmas."""
    def calculate_sigmas(model_sampling, scheduler_name, steps):
        if not is_our_ve_sampling(model_sampling):
            return original(model_sampling, scheduler_name, steps)
        flow_sigmas = original(flow_twin(model_sampling), scheduler_name, steps)
        return model_sampling.ve_schedule(flow_sigmas).to(flow_sigmas.device)
    calculate_sigmas.__wrapped__ = original
    setattr(calculate_sigmas, MARK, "calculate_sigmas")
    return calculate_sigmas


def install_schedule_hook():
    """Put the flow-range calculate_sigmas into comfy.samplers (idempotent)."""
    current = comfy.samplers.calculate_sigmas
    if getattr(current, MARK, None) is None:
        comfy.samplers.calculate_sigmas = calculate_sigmas_in_flow(current)


# ---------------------------------------------------------------- samplers

class _Overlay:
    """`target` with some attributes replaced; everything else read through."""

    def __init__(self, target, **replaced):
        self.__dict__["_target"] = target
        self.__dict__.update(replaced)

    def __getattr__(self, name):
        return getattr(self.__dict__["_target"], name)


class _PatcherOverlay(_Overlay):
    def get_model_object(self, name):
        if name == "model_sampling":
            return self.model_sampling
        return self._target.get_model_object(name)


class _CallableOverlay(_Overlay):
    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)


def in_flow_coordinates(function, model_sampling):
    """A ComfyUI sampler function that runs `function` in flow coordinates on a VE-view denoiser.

    `model_sampling` is our VE one; a schedule starting at its top (the VE cap) starts at flow
    sigma 1 in flow coordinates, as the same schedule does under ModelSamplingSD3.
    """
    twin = flow_twin(model_sampling)
    ve_top = float(model_sampling.sigma_max)

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
        def run(flow_model, flow_x, flow_sigmas, **kwargs):
            flow_sigmas = flow_sigmas.clone()
            if float(sigmas[0]) >= ve_top:
                flow_sigmas[0] = 1.0
            denoiser = _CallableOverlay(model, _call=flow_model, inner_model=_Overlay(
                model.inner_model,
                inner_model=_Overlay(model.inner_model.inner_model, model_sampling=twin),
                model_patcher=_PatcherOverlay(model.inner_model.model_patcher, model_sampling=twin)))
            flow_sigmas = flow_sigmas.to(sigmas.dtype)
            last = float(flow_sigmas[-1])
            out = function(denoiser, flow_x, flow_sigmas, **kwargs)
            # uni_pc sets its sigmas[-1] from 0 to 0.001 in place and returns x there; in flow
            # coordinates ComfyUI then divides by 1 - sigmas[-1] (inverse_noise_scaling), so do that
            returned_at = float(flow_sigmas[-1])
            if returned_at != last:
                out = out * ((1.0 - last) / (1.0 - returned_at))
            return out
        return ve_bridge.sample_in_ve(run, model, x, sigmas, extra_args=extra_args, callback=callback,
                                      disable=disable, **options)
    return sample


def sampler_sample_wrapper(executor, guider, sigmas, *args, **kwargs):
    """WrappersMP.SAMPLER_SAMPLE: deterministic samplers integrate in flow coordinates (our VE view only)."""
    sampler = executor.class_obj
    model_sampling = guider.inner_model.model_sampling
    if not is_our_ve_sampling(model_sampling) or sampler_view(sampler) != "flow":
        return executor(guider, sigmas, *args, **kwargs)
    function = sampler.sampler_function
    sampler.sampler_function = in_flow_coordinates(function, model_sampling)
    try:
        return executor(guider, sigmas, *args, **kwargs)
    finally:
        sampler.sampler_function = function


def add_sampler_wrapper(model_patcher):
    """Add the per-sampler view wrapper to a model clone (replacing an earlier copy of it)."""
    import comfy.patcher_extension
    kind = comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE
    model_patcher.remove_wrappers_with_key(kind, WRAPPER_KEY)
    model_patcher.add_wrapper_with_key(kind, WRAPPER_KEY, sampler_sample_wrapper)
