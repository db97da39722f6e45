"""Conversions between parameterisations of one flow model, each paired with its inverse.

Flow coordinates: x = (1 - sigma) * x0 + sigma * noise, velocity v = noise - x0.
VE view: sigma_ve = sigma / (1 - sigma), x_ve = x / (1 - sigma) = x0 + sigma_ve * noise,
with the denoised estimate unchanged. In the VE view a flow model is, exactly, a
variance-exploding model, so every sampler written for VE/EDM models (Euler a, DPM++ SDE,
DDPM, ...) and the webui img2img rule `x + sigma * noise` are right for it unchanged.
"""
import torch

from .schedule import time_shift

# sigma = 1 has no VE image (sigma_ve = inf). The VE view caps unshifted time at 1 - 1e-4, a tenth
# of one table step, so the capped sigma stays strictly above the table's next entry at any shift
# (hosts need strictly increasing tables). A sampler started there from pure noise misses a
# (1 - sigma_cap) share of x0, under 1e-4 of the data scale.
VE_CAP_TIME = 1.0 - 1e-4


def ve_sigma_cap(shift):
    """Largest flow sigma the VE view represents for a table with this shift."""
    return time_shift(shift, VE_CAP_TIME)


def _clamp(sigma, cap):
    if isinstance(sigma, torch.Tensor):
        return sigma.clamp(max=cap)
    return min(sigma, cap)


def broadcast_sigma(sigma, like):
    """A per-sample sigma shaped to broadcast against `like` (B, C, H, W) or any (B, ...).

    sigma: a number, a 0-d tensor or a (B,) tensor; a (B,) tensor becomes (B, 1, 1, 1) (one trailing
    1 per dimension of `like` after the first), anything else is returned as it is.
    """
    if isinstance(sigma, torch.Tensor) and sigma.ndim == 1 and like.ndim > 1:
        return sigma.reshape(sigma.shape + (1,) * (like.ndim - 1))
    return sigma


# velocity <-> denoised
def denoised_from_velocity(x, sigma, velocity):
    """x0 = x - sigma * v."""
    return x - broadcast_sigma(sigma, x) * velocity


def velocity_from_denoised(x, sigma, denoised):
    """v = (x - x0) / sigma, for sigma > 0."""
    return (x - denoised) / broadcast_sigma(sigma, x)


# eps <-> velocity
def eps_from_velocity(x, sigma, velocity):
    """noise = x + (1 - sigma) * v."""
    return x + (1 - broadcast_sigma(sigma, x)) * velocity


def velocity_from_eps(x, sigma, eps):
    """v = (noise - x) / (1 - sigma), for sigma < 1."""
    return (eps - x) / (1 - broadcast_sigma(sigma, x))


def denoised_from_eps(x, sigma, eps):
    """x0 = (x - sigma * noise) / (1 - sigma), for sigma < 1."""
    sigma = broadcast_sigma(sigma, x)
    return (x - sigma * eps) / (1 - sigma)


# flow <-> VE view
def sigma_to_ve(sigma, cap=None):
    """sigma_ve = sigma / (1 - sigma), with sigma first limited to `cap` (default: the shift-1 cap)."""
    sigma = _clamp(sigma, ve_sigma_cap(1.0) if cap is None else cap)
    return sigma / (1 - sigma)


def sigma_from_ve(sigma_ve):
    """sigma = sigma_ve / (1 + sigma_ve); exact inverse of sigma_to_ve below the cap."""
    return sigma_ve / (1 + sigma_ve)


def flow_schedule_to_ve(flow_sigmas, cap, dtype=torch.float32):
    """A descending flow-sigma schedule as the VE view's schedule: sigma_ve = sigma / (1 - sigma).

    The one mapping every host uses for a schedule computed over the flow range (sigma_min .. 1 of
    the flow table; a host's Karras, exponential, beta ... functions run unchanged on it). Each value
    is limited to `cap` (the VE view's top, views.ve_sigma_cap) first, so the top entry 1 (or a
    float32 rounding of it, 1 + 2**-23) becomes the VE cap; computed in float64, returned as a 1-D
    tensor of `dtype`. ValueError naming `flow_sigmas` when a value is negative or NaN.
    """
    flow = torch.as_tensor(flow_sigmas, dtype=torch.float64).reshape(-1)
    if not bool((flow >= 0).all()):
        raise ValueError(f"flow_sigmas must be >= 0, got {flow_sigmas!r}")
    flow = flow.clamp(max=float(cap))
    return (flow / (1 - flow)).to(dtype)


def x_to_ve(x, sigma):
    """x_ve = x / (1 - sigma), for sigma < 1."""
    return x / (1 - broadcast_sigma(sigma, x))


def x_from_ve(x_ve, sigma_ve):
    """x = x_ve / (1 + sigma_ve) (= x_ve * (1 - sigma))."""
    return x_ve / (1 + broadcast_sigma(sigma_ve, x_ve))


# VE view <-> DDPM (variance-preserving) alpha-bar
def alphas_cumprod_from_ve(sigma_ve):
    """alpha_bar = 1 / (1 + sigma_ve^2): the DDPM table whose sqrt((1 - a) / a) is sigma_ve.

    Timestep samplers (DDIM, PLMS, UniPC) that read alphas_cumprod sample the VE view with it.
    """
    return 1.0 / (1.0 + sigma_ve * sigma_ve)


def alpha_bar_at(alphas_cumprod, timestep):
    """alpha_bar at a DDPM timestep in [0, len - 1], log-linear between table entries.

    Integer timesteps (DDIM, PLMS) read the table; fractional ones (UniPC's continuous time) get
    the interpolation UniPC's `NoiseScheduleVP('discrete')` uses (log alpha linear in t), so a
    model answering at this alpha_bar answers at the noise level the sampler assumes. Returns a
    float64 tensor shaped like `timestep`.
    """
    table = torch.as_tensor(alphas_cumprod).double()
    t = torch.as_tensor(timestep, device=table.device).double().clamp(0, len(table) - 1)
    low = t.floor().long()
    high = (low + 1).clamp(max=len(table) - 1)
    weight = t - low
    log_low, log_high = table[low].log(), table[high].log()
    between = (log_low + weight * (log_high - log_low)).exp()
    # integer timesteps read the table exactly (and a zero-SNR end, log 0 = -inf, never meets 0 * inf)
    return torch.where(weight > 0, between, table[low])


def flow_from_vp(x_vp, alpha_bar):
    """(x, sigma) for a DDPM state x_vp = sqrt(a) x0 + sqrt(1 - a) noise, a = alpha_bar.

    x = x_vp / (sqrt(a) + sqrt(1 - a)), sigma = sqrt(1 - a) / (sqrt(a) + sqrt(1 - a)): finite for
    every a in [0, 1] (a = 0 is pure noise, sigma = 1). With a = alphas_cumprod_from_ve(sigma_ve)
    this sigma is sigma_from_ve(sigma_ve). `alpha_bar` is a scalar or a per-sample vector.
    """
    alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64, device=x_vp.device)
    root_signal, root_noise = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    scale = root_signal + root_noise
    return x_vp / broadcast_sigma(scale, x_vp).to(x_vp.dtype), root_noise / scale
