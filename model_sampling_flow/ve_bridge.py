"""Run a flow-coordinate sampler against a host whose sampler loop lives in the VE view.

Hosts that present a flow model in the VE view (A1111, reForge, ComfyUI with the VE view) hand a
sampler function a denoiser over (x_ve, sigma_ve), x_ve = x0 + sigma_ve * noise, and sigmas in
VE units. The core samplers work in flow coordinates. `sample_in_ve` converts the state and the
schedule once, and every model call, callback and noise request back, so the host's denoiser,
previews and seeds are used unchanged; the denoised estimate is the same in both coordinates.

Near sigma = 1 a flow sigma that went through a float32 sigma batch has lost the digits that
1 - sigma needs (sigma_ve ~ 3e4 at the cap): the VE value is therefore looked up from the host's
schedule by the float32 value the sampler hands back, and only computed for sigmas outside it.
"""
import struct

import torch

from .views import broadcast_sigma, sigma_from_ve, sigma_to_ve


def _float32_key(sigma):
    return struct.unpack("f", struct.pack("f", float(sigma)))[0]


class VESchedule:
    """Flow <-> VE sigma pairs of one host schedule, exact in double precision."""

    def __init__(self, ve_sigmas):
        self.ve = [float(s) for s in ve_sigmas]
        self.flow = [float(sigma_from_ve(s)) for s in self.ve]
        self.cap = max(self.flow)
        self._by_key = {}
        for flow, ve in zip(self.flow, self.ve):
            self._by_key.setdefault(_float32_key(flow), (flow, ve))

    def lookup(self, flow_sigma):
        """(flow sigma in double precision, VE sigma) for a flow sigma a sampler passes back."""
        found = self._by_key.get(_float32_key(flow_sigma))
        if found is not None:
            return found
        flow = min(float(flow_sigma), self.cap)
        return flow, float(sigma_to_ve(flow, cap=self.cap))

    def x_to_ve(self, x, flow_sigmas):
        """x_ve = x * (1 + sigma_ve), with one exact scalar when the batch shares its sigma."""
        ve = [self.lookup(s)[1] for s in flow_sigmas]
        if len(set(ve)) == 1:
            return x * (1 + ve[0])
        return x * (1 + broadcast_sigma(torch.tensor(ve, dtype=x.dtype, device=x.device), x))


def sample_in_ve(function, ve_model, x_ve, ve_sigmas, extra_args=None, callback=None, disable=None,
                 noise_sampler=None, **options):
    """Run flow sampler `function` on a VE-view denoiser; returns x in VE coordinates.

    ve_model(x_ve, sigma_ve, **extra_args) -> denoised; callback and noise_sampler speak VE
    sigmas as the host expects. A noise_sampler is passed on only when given.
    """
    if len(ve_sigmas) <= 1:
        return x_ve
    schedule = VESchedule(ve_sigmas)

    def flow_model(x, sigma, **kwargs):
        flows = sigma.reshape(-1).tolist()
        ve = torch.tensor([schedule.lookup(s)[1] for s in flows], dtype=sigma.dtype, device=sigma.device)
        return ve_model(schedule.x_to_ve(x, flows), ve.reshape(sigma.shape), **kwargs)

    def flow_callback(info):
        # k-diffusion's DPM-Solver (dpm_fast, dpm_adaptive) reports t = -log(sigma) instead of
        # sigma; ComfyUI's UniPC reports neither (its x is at about the schedule's i-th sigma)
        if "sigma" in info:
            sigma = info["sigma"]
        elif "t" in info:
            sigma = torch.exp(-torch.as_tensor(info["t"]))
        else:
            sigma = schedule.flow[min(int(info["i"]), len(schedule.flow) - 1)]
        flow, ve = schedule.lookup(sigma)
        callback(dict(info, x=schedule.x_to_ve(info["x"], [flow]), sigma=ve, sigma_hat=ve))

    if noise_sampler is not None:
        options["noise_sampler"] = lambda s, s_next: noise_sampler(schedule.lookup(s)[1], schedule.lookup(s_next)[1])
    x = x_ve / (1 + schedule.ve[0])
    # float64 keeps 1 - sigma near the cap; Apple's MPS has no float64 (a sampler may move sigmas to x's device)
    dtype = torch.float32 if x.device.type == "mps" else torch.float64
    x = function(flow_model, x, torch.tensor(schedule.flow, dtype=dtype), extra_args=extra_args,
                 callback=None if callback is None else flow_callback, disable=disable, **options)
    return x * (1 + schedule.ve[-1])



def noise_sampler_within(noise_sampler):
    """A Brownian-tree `noise_sampler(sigma, sigma_next)` whose tree is queried only inside itself.

    k-diffusion's and ComfyUI's BrownianTreeNoiseSampler (attribute `tree`, a BatchedBrownianTree of
    torchsde trees) build their trees on [sigma_min, sigma_max] rounded to torchsde's tolerance (6
    digits); a schedule's own end points and DPM++ SDE's exp(-(-log sigma)) fall a rounding step
    outside, and torchsde warns ("Should have ta>=t0 but got ...") on every step, then clamps.
    The sampler's `tree` is replaced by a proxy that clamps first, to the trees' own bounds: the
    host's own __call__ (and its normalisation by the sigmas as asked) runs unchanged, the noise is
    bit-identical, the warnings are gone. Returns the same object; anything else is returned as is.
    """
    tree = getattr(noise_sampler, "tree", None)
    # torchsde.BrownianTree keeps its (rounded) interval in a BrownianInterval's _start / _end
    intervals = [getattr(t, "_interval", t) for t in getattr(tree, "trees", None) or ()]
    if not intervals or getattr(tree, "flow_sampling_within", None) is not None or \
            not all(hasattr(i, "_start") and hasattr(i, "_end") for i in intervals):
        return noise_sampler
    low, high = max(float(i._start) for i in intervals), min(float(i._end) for i in intervals)
    noise_sampler.tree = _TreeInside(tree, low, high)
    return noise_sampler


class _TreeInside:
    """Proxy of a BatchedBrownianTree that clamps its query times into [low, high]."""

    def __init__(self, tree, low, high):
        self.tree, self.flow_sampling_within = tree, (low, high)

    def _inside(self, t):
        low, high = self.flow_sampling_within
        value = float(t)
        if low <= value <= high:
            return t
        return torch.tensor(min(max(value, low), high), dtype=torch.float64)

    def __call__(self, t0, t1):
        return self.tree(self._inside(t0), self._inside(t1))

    def __getattr__(self, name):
        return getattr(self.tree, name)
