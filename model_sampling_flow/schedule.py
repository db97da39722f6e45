"""Flow time: the shift, the 1000-entry sigma table, and the trainers' timestep mappings.

Vocabulary used everywhere in this package:
  sigma     in [0, 1]; 1 is pure noise, 0 is data; x_sigma = (1 - sigma) * x0 + sigma * noise
  t         unshifted flow time in [0, 1]; sigma = time_shift(shift, t)
  timestep  the number the network receives, given by a trainer's timestep mapping
"""
import math
import sys

NUM_TIMESTEPS = 1000
DEFAULT_SHIFT = 3.0
SDXL_BASE_PIXELS = 1024 * 1024
SDXL_VAE_FACTOR = 8


def check_number(name, value, minimum=None, maximum=None, strict_minimum=False):
    """Raise ValueError naming `name` unless `value` is a finite real number in range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if minimum is not None:
        if strict_minimum and value <= minimum:
            raise ValueError(f"{name} must be > {minimum}, got {value!r}")
        if not strict_minimum and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return value


def check_shift(shift):
    return float(check_number("shift", shift, minimum=0.0, strict_minimum=True))


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_sigma(sigma, name="sigma"):
    """Raise ValueError unless every element of `sigma` (number or tensor) lies in [0, 1]."""
    if _is_tensor(sigma):
        bad = ~((sigma >= 0) & (sigma <= 1))  # NaN fails both comparisons
        if bool(bad.any()):
            raise ValueError(f"{name} must lie in [0, 1], got {sigma[bad].flatten()[0].item()!r}")
        return sigma
    return check_number(name, sigma, minimum=0.0, maximum=1.0)


def time_shift(shift, t):
    """sigma = shift * t / (1 + (shift - 1) * t): the SD3 / rectified-flow time shift.

    shift > 1 spends more of the schedule at high noise. Works on floats and tensors;
    shift == 1 returns t itself, as ComfyUI's time_snr_shift does (bit-exact parity).
    """
    if shift == 1.0:
        return t
    return shift * t / (1 + (shift - 1) * t)


def inverse_time_shift(shift, sigma):
    """t such that time_shift(shift, t) == sigma."""
    if shift == 1.0:
        return sigma
    return sigma / (shift - (shift - 1) * sigma)


def resolution_shift(height, width, base_pixels=SDXL_BASE_PIXELS):
    """Resolution-dependent shift as the bluvoll sd-scripts flow trainer defines it.

    The trainer uses ratio = sqrt(pixels / base_pixels) as the shift, so 1024x1024 gives 1
    and 2048x2048 gives 2. height and width are in pixels.
    """
    height = check_number("height", height, minimum=0, strict_minimum=True)
    width = check_number("width", width, minimum=0, strict_minimum=True)
    base_pixels = check_number("base_pixels", base_pixels, minimum=0, strict_minimum=True)
    return math.sqrt(height * width / base_pixels)


def latent_resolution_shift(latent_shape, vae_factor=SDXL_VAE_FACTOR, base_pixels=SDXL_BASE_PIXELS):
    """resolution_shift for a latent of shape (..., H, W) decoded at `vae_factor` pixels per latent."""
    if len(latent_shape) < 2:
        raise ValueError(f"latent_shape must end in (height, width), got {tuple(latent_shape)!r}")
    height, width = latent_shape[-2], latent_shape[-1]
    return resolution_shift(height * vae_factor, width * vae_factor, base_pixels)


def _is_tensor(value):
    # torch is not imported here: the checkpoint inspector uses this module's validators on the
    # standard library alone, and a tensor can only exist once torch has been imported
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


# The network input is the trainer's mapping of sigma; sigma itself stays exact in the sampler math.
def _continuous(sigma):
    # naifu modules/train_sdxl_flow.py, diffusers FlowMatch*, ComfyUI ModelSamplingDiscreteFlow: t = 1000 * sigma
    return sigma * NUM_TIMESTEPS


def _floor_999(sigma):
    # bluvoll/sd-scripts library/train_util.py: timesteps = clamp(long(sigma * 999), 0, 999)
    return sigma.mul(999).floor().clamp(0, 999) if _is_tensor(sigma) \
        else float(min(max(math.floor(sigma * 999), 0), 999))


def _floor_1000(sigma):
    # bluvoll/sd-scripts-f2vae: timesteps = min(floor(sigma * 1000), 999)
    return sigma.mul(NUM_TIMESTEPS).floor().clamp(0, 999) if _is_tensor(sigma) \
        else float(min(max(math.floor(sigma * NUM_TIMESTEPS), 0), 999))


TIMESTEP_MAPPINGS = {
    "continuous": _continuous,
    "floor_999": _floor_999,
    "floor_1000": _floor_1000,
}
TIMESTEP_MAPPING_DESCRIPTIONS = {
    "continuous": "1000*sigma (naifu, ComfyUI ModelSamplingSD3, diffusers)",
    "floor_999": "floor(999*sigma) (bluvoll/sd-scripts)",
    "floor_1000": "min(floor(1000*sigma), 999) (bluvoll/sd-scripts-f2vae)",
}
DEFAULT_TIMESTEP_MAPPING = "continuous"
# static: the shift as given; resolution: bluvoll's sqrt(pixels / base pixels) (resolution_shift)
SHIFT_MODES = ("static", "resolution")


def sigma_to_timestep(sigma, timestep_mapping=DEFAULT_TIMESTEP_MAPPING):
    """The number the network receives at noise level sigma under a trainer's mapping."""
    check_choice("timestep_mapping", timestep_mapping, TIMESTEP_MAPPINGS)
    return TIMESTEP_MAPPINGS[timestep_mapping](check_sigma(sigma))
