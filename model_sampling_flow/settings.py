"""User-facing flow settings, shared by every host: validation, model sampling, infotext.

Infotext keys are the same in every host so a PNG made in one reads back in another.
"""
from dataclasses import dataclass, fields, replace

from .model_sampling import DEFAULT_VIEW, VE, VIEWS, make_model_sampling
from .schedule import (DEFAULT_SHIFT, DEFAULT_TIMESTEP_MAPPING, SDXL_BASE_PIXELS, SDXL_VAE_FACTOR,
                       SHIFT_MODES, TIMESTEP_MAPPINGS, check_choice, check_number, check_shift,
                       latent_resolution_shift, parse_number)

INFOTEXT_KEYS = {
    "enabled": "Flow sampling",
    "shift": "Flow shift",
    "timestep_mapping": "Flow mapping",
    "shift_mode": "Flow shift mode",
    "view": "Flow view",
}


@dataclass(frozen=True)
class FlowSettings:
    shift: float = DEFAULT_SHIFT
    timestep_mapping: str = DEFAULT_TIMESTEP_MAPPING
    shift_mode: str = "static"
    view: str = DEFAULT_VIEW
    base_pixels: int = SDXL_BASE_PIXELS
    vae_factor: int = SDXL_VAE_FACTOR

    def __post_init__(self):
        object.__setattr__(self, "shift", check_shift(self.shift))
        check_choice("timestep_mapping", self.timestep_mapping, TIMESTEP_MAPPINGS)
        check_choice("shift_mode", self.shift_mode, SHIFT_MODES)
        check_choice("view", self.view, VIEWS)
        check_number("base_pixels", self.base_pixels, minimum=0, strict_minimum=True)
        check_number("vae_factor", self.vae_factor, minimum=0, strict_minimum=True)

    @property
    def base_latent_shape(self):
        """(height, width) of the base resolution's latent: (128, 128) for SDXL's 1024 x 1024."""
        side = int(round(self.base_pixels ** 0.5 / self.vae_factor))
        return (side, side)

    def effective_shift(self, latent_shape=None):
        """The shift to sample with: static, or the bluvoll resolution ratio for this latent."""
        if self.shift_mode == "static":
            return self.shift
        if latent_shape is None:
            raise ValueError("latent_shape is required when shift_mode is 'resolution'")
        return latent_resolution_shift(latent_shape, self.vae_factor, self.base_pixels)

    def model_sampling(self, latent_shape=None):
        return make_model_sampling(self.view, self.effective_shift(latent_shape), self.timestep_mapping)

    def with_changes(self, **changes):
        return replace(self, **changes)

    def to_infotext(self):
        """{infotext key: text} for a flow run."""
        out = {INFOTEXT_KEYS["enabled"]: "on", INFOTEXT_KEYS["shift"]: f"{self.shift:g}",
               INFOTEXT_KEYS["timestep_mapping"]: self.timestep_mapping}
        if self.shift_mode != "static":
            out[INFOTEXT_KEYS["shift_mode"]] = self.shift_mode
        if self.view != VE:
            out[INFOTEXT_KEYS["view"]] = self.view
        return out

    @classmethod
    def from_infotext(cls, params):
        """Settings from parsed infotext, or None when the image was not made with flow sampling."""
        if str(params.get(INFOTEXT_KEYS["enabled"], "")).strip().lower() != "on":
            return None
        values = {}
        for field in fields(cls):
            key = INFOTEXT_KEYS.get(field.name)
            if key is not None and key in params and field.name != "enabled":
                values[field.name] = params[key]
        if "shift" in values:
            values["shift"] = parse_number("shift", values["shift"])
        return cls(**values)
