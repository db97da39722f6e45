"""Model-sampling objects: how a host turns (x, sigma) into network input and network output into x0.

Both objects speak the protocol ComfyUI and reForge's ldm_patched use (`sigmas`, `sigma_min`,
`sigma_max`, `timestep`, `sigma`, `percent_to_sigma`, `calculate_input`, `calculate_denoised`,
`noise_scaling`, `inverse_noise_scaling`), so an adapter only has to attach one to a model.
"""
import torch

from .schedule import (DEFAULT_SHIFT, DEFAULT_TIMESTEP_MAPPING, NUM_TIMESTEPS, TIMESTEP_MAPPINGS,
                       check_choice, check_number, check_shift, time_shift)
from .views import (_shape, denoised_from_velocity, sigma_from_ve, sigma_to_ve, ve_sigma_cap,
                    x_from_ve)

VIEWS = ("flow", "ve")


class FlowModelSampling(torch.nn.Module):
    """Native flow view, equal to ComfyUI's ModelSamplingDiscreteFlow + CONST with the default mapping.

    sigmas[k - 1] = time_shift(shift, k / 1000) for k = 1..1000 (ascending, sigmas[-1] == 1).
    `timestep(sigma)` is what the network receives (the trainer's mapping); `sigma(timestep)`
    inverts the continuous 1000 * sigma scale, so schedulers built on it stay exact.
    """

    view = "flow"

    def __init__(self, shift=DEFAULT_SHIFT, timestep_mapping=DEFAULT_TIMESTEP_MAPPING,
                 num_timesteps=NUM_TIMESTEPS):
        super().__init__()
        self.shift = check_shift(shift)
        self.timestep_mapping = check_choice("timestep_mapping", timestep_mapping, TIMESTEP_MAPPINGS)
        num_timesteps = check_number("num_timesteps", num_timesteps, minimum=1)
        if int(num_timesteps) != num_timesteps:
            raise ValueError(f"num_timesteps must be an integer, got {num_timesteps!r}")
        self.multiplier = NUM_TIMESTEPS
        self.register_buffer("sigmas", self._table(int(num_timesteps)))

    def _table(self, num_timesteps):
        # the same float32 arithmetic as ComfyUI's ModelSamplingDiscreteFlow, for bit parity
        t = torch.arange(1, num_timesteps + 1, 1) / num_timesteps
        return self.sigma(t * self.multiplier)

    @property
    def sigma_min(self):
        return self.sigmas[0]

    @property
    def sigma_max(self):
        return self.sigmas[-1]

    # time
    def flow_sigma(self, sigma):
        """This view's sigma as a flow sigma."""
        return sigma

    def timestep(self, sigma):
        return TIMESTEP_MAPPINGS[self.timestep_mapping](self.flow_sigma(sigma))

    def sigma(self, timestep):
        return time_shift(self.shift, timestep / self.multiplier)

    def flow_percent_to_sigma(self, percent):
        """Flow sigma at a fraction of the way through sampling (0 = start, 1 = end)."""
        percent = check_number("percent", percent)
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return time_shift(self.shift, 1.0 - percent)

    def percent_to_sigma(self, percent):
        return self.flow_percent_to_sigma(percent)

    # network input/output
    def calculate_input(self, sigma, x):
        return x

    def calculate_denoised(self, sigma, velocity, x):
        return denoised_from_velocity(x, sigma, velocity)

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        sigma = _shape(sigma, noise)
        return sigma * noise + (1.0 - sigma) * latent_image

    def inverse_noise_scaling(self, sigma, latent):
        return latent / (1.0 - _shape(sigma, latent))

    def extra_repr(self):
        return f"view={self.view!r}, shift={self.shift}, timestep_mapping={self.timestep_mapping!r}"


class FlowVEModelSampling(FlowModelSampling):
    """The same flow model seen as a variance-exploding one: sigma_ve = sigma / (1 - sigma).

    Samplers then move x_ve = x / (1 - sigma) = x0 + sigma_ve * noise; the network still sees the
    flow input x = x_ve / (1 + sigma_ve) at its mapped timestep, and x0 is unchanged. The largest
    table entry is capped (views.VE_CAP_TIME) so every value is finite and the table stays strictly
    increasing, as webui schedulers require.
    """

    view = "ve"

    def _table(self, num_timesteps):
        # float64 first: near sigma = 1, float32 flow sigmas lose the digits that 1 - sigma needs
        t = torch.arange(1, num_timesteps + 1, 1, dtype=torch.float64) / num_timesteps
        return sigma_to_ve(time_shift(self.shift, t), cap=self.sigma_cap).float()

    @property
    def sigma_cap(self):
        """Largest flow sigma this view represents."""
        return ve_sigma_cap(self.shift)

    def flow_sigma(self, sigma):
        return sigma_from_ve(sigma)

    def sigma(self, timestep):
        if isinstance(timestep, torch.Tensor):
            # float64 inside: 1 - sigma near the top needs the digits float32 lacks
            flow = super().sigma(timestep.double())
            dtype = timestep.dtype if timestep.is_floating_point() else torch.get_default_dtype()
            return sigma_to_ve(flow, cap=self.sigma_cap).to(dtype)
        return sigma_to_ve(super().sigma(timestep), cap=self.sigma_cap)

    def percent_to_sigma(self, percent):
        return float(sigma_to_ve(self.flow_percent_to_sigma(percent), cap=self.sigma_cap))

    def calculate_input(self, sigma, x):
        return x_from_ve(x, sigma)

    def calculate_denoised(self, sigma, velocity, x):
        return denoised_from_velocity(x_from_ve(x, sigma), sigma_from_ve(sigma), velocity)

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        return latent_image + _shape(sigma, noise) * noise

    def inverse_noise_scaling(self, sigma, latent):
        return latent


def make_model_sampling(view="ve", shift=DEFAULT_SHIFT, timestep_mapping=DEFAULT_TIMESTEP_MAPPING):
    """The model sampling for a view name ('flow' or 've')."""
    check_choice("view", view, VIEWS)
    cls = FlowVEModelSampling if view == "ve" else FlowModelSampling
    return cls(shift=shift, timestep_mapping=timestep_mapping)
