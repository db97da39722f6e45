"""The core's flow samplers as ComfyUI k-diffusion sampler functions.

ComfyUI calls `sample_<name>(model, x, sigmas, extra_args, callback, disable, **options)` with
x and sigmas in the coordinates of the model's model sampling. The core samplers work in flow
coordinates (sigma in [0, 1], x = (1 - sigma) x0 + sigma noise), so:
  * CONST model samplings (our native view, ModelSamplingSD3, ...) already are flow coordinates;
  * every other one (our VE view, and any VE/EPS model) goes through the core's ve_bridge,
    which converts the state, the schedule, every model call, callback and noise request.
The denoised estimate is the same in both coordinates, so previews are unchanged.
"""
import comfy.k_diffusion.sampling as k_diffusion_sampling
import comfy.model_sampling

from ._core import schedule, ve_bridge

MARK = "__model_sampling_flow__"  # set on every function this package puts into ComfyUI


def model_sampling_of(model):
    """The model sampling behind the denoiser ComfyUI hands a sampler (KSamplerX0Inpaint)."""
    return model.inner_model.inner_model.model_sampling


def without_table_rounding(sigmas):
    """Flow sigmas with a float32 table's rounding above 1 (ComfyUI's normal / sgm_uniform on its flow
    table: schedule.HOST_SCHEDULE_ROUNDING) taken back to 1 (a new tensor if changed)."""
    top = float(sigmas.max())
    if 1.0 < top <= 1.0 + schedule.HOST_SCHEDULE_ROUNDING:
        return sigmas.clamp(max=1.0)
    return sigmas


def run_flow_sampler(function, model, x, sigmas, extra_args=None, callback=None, disable=None,
                     **options):
    """Run a core flow sampler inside ComfyUI's sampler loop, in either view."""
    extra_args = {} if extra_args is None else extra_args
    if "noise_sampler" in options and options["noise_sampler"] is None:
        # seeded like ComfyUI's own stochastic samplers, so a seed reproduces an image
        options["noise_sampler"] = k_diffusion_sampling.default_noise_sampler(x, seed=extra_args.get("seed"))
    if len(sigmas) <= 1:
        return x
    if isinstance(model_sampling_of(model), comfy.model_sampling.CONST):
        sigmas = without_table_rounding(sigmas)
        return function(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable, **options)
    return ve_bridge.sample_in_ve(function, model, x, sigmas, extra_args=extra_args, callback=callback,
                                  disable=disable, **options)


def host_sampler(entry):
    """A ComfyUI `sample_<name>` function for a core registry entry."""
    noise_option = entry.takes_noise_sampler

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
        if noise_option:
            options.setdefault("noise_sampler", None)
        return run_flow_sampler(entry.function, model, x, sigmas, extra_args, callback, disable, **options)

    sample.__name__ = sample.__qualname__ = f"sample_{entry.name}"
    sample.__doc__ = f"{entry.label} (model_sampling_flow), in ComfyUI's sampler signature."
    setattr(sample, MARK, entry.name)
    return sample
