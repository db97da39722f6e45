"""Flow time: the shift, the 1000-entry sigma table, and the trainers' timestep mappings.

Vocabulary used everywhere in this package:
  sigma     in [0, 1]; 1 is pure noise, 0 is data; x_sigma = (1 - sigma) * x0 + sigma * noise
  t         unshifted flow time in [0, 1]; sigma = time_shift(shift, t)
  timestep  the number the network receives, given by a trainer's timestep mapping
"""
import math
import operator
import sys

NUM_TIMESTEPS = 1000
DEFAULT_SHIFT = 3.0
SDXL_BASE_PIXELS = 1024 * 1024
SDXL_VAE_FACTOR = 8


# The shifts whose 1000-entry tables are finite and strictly increasing in float32 in both views
# (hosts look sigmas up in the table; a tie or an inf breaks them). Above ~1e4 the flow table's top
# entries tie in float32; above ~1e13 the VE cap is inf; below ~1e-4 the flow table's top is 0/0.
# The range keeps a decade of margin on each side of the UI widgets (0.01 .. 100).
MIN_SHIFT = 0.001
MAX_SHIFT = 1000.0
# A float32 table or sigma batch can top out a few float32 steps above 1: ComfyUI's flow table (and
# ours, bit-identical) ends at 1 + 2**-23 for 93 of the 10000 widget shifts 0.01 .. 100 (e.g. 4.07)
# and at up to 1 + 8 * 2**-23 for shifts below 0.1. That is rounding, not a VE sigma (the VE
# view's top is >= 10 at any allowed shift): flow samplers read sigmas up to SIGMA_ONE_ROUNDING as 1.
FLOAT32_ONE_ABOVE = 1.0 + 2.0 ** -23
SIGMA_ONE_ROUNDING = 1.0 + 2.0 ** -19
# A host's own schedulers that go from the float32 table through the timestep and back (ComfyUI's
# normal and sgm_uniform) amplify that rounding by up to 1 / shift: the top reaches 1.0000973 at the
# widget's shift 0.01. Still rounding, not a VE sigma; an adapter that runs such a host schedule in
# flow coordinates takes a top up to 1 + HOST_SCHEDULE_ROUNDING back to 1 (the core samplers keep
# the tighter SIGMA_ONE_ROUNDING, so a VE sigma such as 1.00001 stays an error there).
HOST_SCHEDULE_ROUNDING = 2.0 ** -10


def _is_boolean(value):
    """Python, NumPy (bool_, NumPy 2's bool) and torch booleans (a bool tensor)."""
    if isinstance(value, bool) or type(value).__name__ in ("bool_", "bool"):
        return True
    dtype = getattr(value, "dtype", None)
    return dtype is not None and str(dtype) in ("torch.bool", "bool")


def check_number(name, value, minimum=None, maximum=None, strict_minimum=False):
    """Raise ValueError naming `name` unless `value` is a finite real number in range; returns a float.

    Numbers are Python/NumPy numbers or 0-d tensors; text and booleans are refused (a checkbox or a
    text field wired to a number is a bug to report, not to guess). Text sources use parse_number.
    """
    if _is_boolean(value) or isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a number, got {value!r}")
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


def parse_number(name, value, **limits):
    """check_number for values read from text (infotext, safetensors metadata, sidecars)."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"{name} must be a number, got {value!r}") from None
    return check_number(name, value, **limits)


def check_integer(name, value, minimum=None, maximum=None):
    """The value as an int; ValueError naming `name` unless it is an integer (not a float, not a
    boolean) within [minimum, maximum] (either bound may be None)."""
    if _is_boolean(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return value


def check_shift(shift):
    """The shift as a float; ValueError naming `shift` and the allowed range otherwise."""
    value = check_number("shift", shift)
    if not MIN_SHIFT <= value <= MAX_SHIFT:
        raise ValueError(f"shift must lie in [{MIN_SHIFT:g}, {MAX_SHIFT:g}] (outside it the sigma table "
                         f"has infinite or tied entries), got {shift!r}")
    return value


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
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
    Raises ValueError naming `shift` outside [MIN_SHIFT, MAX_SHIFT].
    """
    shift = check_shift(shift)
    if shift == 1.0:
        return t
    return shift * t / (1 + (shift - 1) * t)


def inverse_time_shift(shift, sigma):
    """t such that time_shift(shift, t) == sigma."""
    shift = check_shift(shift)
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
