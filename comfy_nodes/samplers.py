"""The core's flow samplers as ComfyUI k-diffusion sampler functions.

ComfyUI calls `sample_<name>(model, x, sigmas, extra_args, callback, disable, **options)` with
x and sigmas in the coordinates of the model's model sampling. The core samplers work in flow
coordinates (sigma in [0, 1], x = (1 - sigma) x0 + sigma noise), so:
  * CONST model samplings (our native view, ModelSamplingSD3, ...) already are flow coordinates;
  * every other one (our VE view, and any VE/EPS model) is run through the core's flow <-> VE
    conversions: sigmas with sigma_from_ve, x with x_from_ve, and back for the result.
The denoised estimate is the same in both coordinates, so previews are unchanged.
"""
import struct

import torch

import comfy.k_diffusion.sampling as k_diffusion_sampling
import comfy.model_sampling

from ._core import views

MARK = "__model_sampling_flow__"  # set on every function this package puts into ComfyUI


def model_sampling_of(model):
    """The model sampling behind the denoiser ComfyUI hands a sampler (KSamplerX0Inpaint)."""
    return model.inner_model.inner_model.model_sampling


def _key(sigma):
    # The float32 value a sampler multiplies into its sigma batch; equal sigmas share one key.
    return struct.unpack("f", struct.pack("f", float(sigma)))[0]


class FlowDenoiser:
    """A host denoiser in VE coordinates, called in flow coordinates.

    VE sigmas come from the host schedule; a flow sigma converted back from a float32 batch
    would lose the digits near sigma = 1 (sigma_ve ~ 1e4), so the VE value is looked up from
    the schedule it came from and only computed for a sigma outside it.
    """

    def __init__(self, model, ve_sigmas):
        self.model = model
        self.inner_model = model.inner_model
        self.ve_sigmas = [float(s) for s in ve_sigmas]
        self.flow_sigmas = [float(views.sigma_from_ve(s)) for s in self.ve_sigmas]
        self.cap = max(self.flow_sigmas)
        self._ve_by_key = {}
        for flow, ve in zip(self.flow_sigmas, self.ve_sigmas):
            self._ve_by_key.setdefault(_key(flow), (flow, ve))

    def lookup(self, flow_sigma):
        """(flow sigma in double precision, VE sigma) for a flow sigma the sampler passes."""
        found = self._ve_by_key.get(_key(flow_sigma))
        if found is not None:
            return found
        flow = min(float(flow_sigma), self.cap)
        return flow, float(views.sigma_to_ve(flow, cap=self.cap))

    def to_ve(self, x, flow_sigmas):
        """x in VE coordinates; one double-precision sigma when the batch shares it."""
        if len(set(flow_sigmas)) == 1:
            return views.x_to_ve(x, flow_sigmas[0])
        return views.x_to_ve(x, torch.tensor(flow_sigmas, dtype=x.dtype, device=x.device))

    def __call__(self, x, sigma, **extra_args):
        pairs = [self.lookup(s) for s in sigma.reshape(-1).tolist()]
        ve = torch.tensor([p[1] for p in pairs], dtype=sigma.dtype, device=sigma.device)
        return self.model(self.to_ve(x, [p[0] for p in pairs]), ve, **extra_args)


def _ve_callback(denoiser, callback):
    if callback is None:
        return None

    def report(info):
        flow, ve = denoiser.lookup(info["sigma"])
        callback(dict(info, x=denoiser.to_ve(info["x"], [flow]), sigma=ve, sigma_hat=ve))
    return report


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
        return function(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable, **options)
    denoiser = FlowDenoiser(model, sigmas)
    flow_sigmas = torch.tensor(denoiser.flow_sigmas, dtype=torch.float64)
    x_flow = views.x_from_ve(x, denoiser.ve_sigmas[0])
    x_flow = function(denoiser, x_flow, flow_sigmas, extra_args=extra_args,
                      callback=_ve_callback(denoiser, callback), disable=disable, **options)
    last = denoiser.flow_sigmas[-1]
    return x_flow if last == 0.0 else views.x_to_ve(x_flow, last)


def host_sampler(entry):
    """A ComfyUI `sample_<name>` function for a core registry entry."""
    noise_option = "noise_sampler" in entry.options

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
        if noise_option:
            options.setdefault("noise_sampler", None)
        return run_flow_sampler(entry.function, model, x, sigmas, extra_args, callback, disable, **options)

    sample.__name__ = sample.__qualname__ = f"sample_{entry.name}"
    sample.__doc__ = f"{entry.label} (model_sampling_flow), in ComfyUI's sampler signature."
    setattr(sample, MARK, entry.name)
    return sample
