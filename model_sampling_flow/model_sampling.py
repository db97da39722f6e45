"""Model-sampling objects: how a host turns (x, sigma) into network input and network output into x0.

Both objects speak the protocol ComfyUI and reForge's ldm_patched use (`sigmas`, `sigma_min`,
`sigma_max`, `timestep`, `sigma`, `percent_to_sigma`, `calculate_input`, `calculate_denoised`,
`noise_scaling`, `inverse_noise_scaling`), so an adapter only has to attach one to a model.
"""
import torch

from .schedule import (DEFAULT_SHIFT, DEFAULT_TIMESTEP_MAPPING, NUM_TIMESTEPS, TIMESTEP_MAPPINGS,
                       check_choice, check_integer, check_number, check_shift, time_shift)
from .views import (broadcast_sigma, denoised_from_velocity, flow_schedule_to_ve, sigma_from_ve, sigma_to_ve,
                    ve_sigma_cap, x_from_ve)

# The two views a flow model is presented in (flow: native CONST; ve: variance-exploding), default
# first: every host offers them in this order and defaults to the VE view.
FLOW, VE = "flow", "ve"
VIEWS = (VE, FLOW)
DEFAULT_VIEW = VE


def _flow_table(shift, num_timesteps):
    # the same float32 arithmetic as ComfyUI's ModelSamplingDiscreteFlow, for bit parity
    t = torch.arange(1, num_timesteps + 1, 1) / num_timesteps
    return time_shift(shift, t * NUM_TIMESTEPS / NUM_TIMESTEPS)


def _float32(value):
    """The float32 value nearest `value`, as a Python float (a dictionary key that tensors match)."""
    return float(torch.tensor(float(value), dtype=torch.float32))


class FlowModelSampling(torch.nn.Module):
    """Native flow view, equal to ComfyUI's ModelSamplingDiscreteFlow + CONST with the default mapping.

    sigmas[k - 1] = time_shift(shift, k / 1000) for k = 1..1000 (ascending, sigmas[-1] == 1).
    `timestep(sigma)` is what the network receives (the trainer's mapping); `sigma(timestep)`
    inverts the continuous 1000 * sigma scale, so schedulers built on it stay exact.
    """

    view = FLOW

    def __init__(self, shift=DEFAULT_SHIFT, timestep_mapping=DEFAULT_TIMESTEP_MAPPING,
                 num_timesteps=NUM_TIMESTEPS):
        super().__init__()
        self.shift = check_shift(shift)
        self.timestep_mapping = check_choice("timestep_mapping", timestep_mapping, TIMESTEP_MAPPINGS)
        num_timesteps = check_integer("num_timesteps", num_timesteps, minimum=1)
        self.multiplier = NUM_TIMESTEPS
        self.register_buffer("sigmas", self._table(num_timesteps))

    def _table(self, num_timesteps):
        return _flow_table(self.shift, num_timesteps)

    @property
    def sigma_min(self):
        return self.sigmas[0]

    @property
    def sigma_max(self):
        return self.sigmas[-1]

    # views
    def flow_view(self):
        """The flow-view model sampling with this shift, mapping and table (this object itself here)."""
        return self

    def schedule_from_flow(self, flow_sigmas):
        """A flow-sigma schedule as this view's float32 schedule (1-D tensor; unchanged in the flow view)."""
        return torch.as_tensor(flow_sigmas, dtype=torch.float32).reshape(-1).clone()

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
        sigma = broadcast_sigma(sigma, noise)
        return sigma * noise + (1.0 - sigma) * latent_image

    def inverse_noise_scaling(self, sigma, latent):
        return latent / (1.0 - broadcast_sigma(sigma, latent))

    def extra_repr(self):
        return f"view={self.view!r}, shift={self.shift}, timestep_mapping={self.timestep_mapping!r}"


class FlowVEModelSampling(FlowModelSampling):
    """The same flow model seen as a variance-exploding one: sigma_ve = sigma / (1 - sigma).

    Samplers then move x_ve = x / (1 - sigma) = x0 + sigma_ve * noise; the network still sees the
    flow input x = x_ve / (1 + sigma_ve) at its mapped timestep, and x0 is unchanged. The largest
    table entry is capped (views.VE_CAP_TIME) so every value is finite and the table stays strictly
    increasing, as webui schedulers require.
    """

    view = VE

    def flow_view(self):
        twin = self.__dict__.get("_flow_twin")
        if twin is None:
            twin = FlowModelSampling(shift=self.shift, timestep_mapping=self.timestep_mapping,
                                     num_timesteps=len(self.sigmas))
            object.__setattr__(self, "_flow_twin", twin)     # not a registered submodule
        return twin

    def schedule_from_flow(self, flow_sigmas):
        return self.ve_schedule(flow_sigmas)

    def _table(self, num_timesteps):
        # float64 first: near sigma = 1, float32 flow sigmas lose the digits that 1 - sigma needs
        t = torch.arange(1, num_timesteps + 1, 1, dtype=torch.float64) / num_timesteps
        table = sigma_to_ve(time_shift(self.shift, t), cap=self.sigma_cap).float()
        # Where each VE value came from, in the flow view's own float32 numbers: the timestep of a
        # VE sigma is the flow view's timestep of the flow sigma it was made from, exactly (a float32
        # sigma_ve / (1 + sigma_ve) lands one float32 step off, and floor mappings drop a step).
        flow_table = _flow_table(self.shift, num_timesteps).tolist()
        self._flow_of_ve = {}
        self._ve_of_flow = {}
        for flow, ve in zip(flow_table, table.tolist()):
            self._flow_of_ve.setdefault(ve, flow)
            self._ve_of_flow.setdefault(flow, ve)
        return table

    def ve_schedule(self, flow_sigmas):
        """A flow-sigma schedule (descending, any length) as this view's float32 VE schedule.

        Flow table entries become the VE table's entries; anything else goes through
        views.flow_schedule_to_ve with this view's cap. Each result is remembered with the flow
        sigma it came from, so `timestep` of these VE sigmas equals the flow view's exactly.
        """
        flow = [_float32(s) for s in torch.as_tensor(flow_sigmas, dtype=torch.float64).reshape(-1).tolist()]
        ve = flow_schedule_to_ve(flow, self.sigma_cap).tolist()
        out = []
        for flow_value, ve_value in zip(flow, ve):
            ve_value = self._ve_of_flow.get(flow_value, ve_value)
            # two float32 flow sigmas can share a float32 VE value: the schedule made last is the
            # one being sampled
            self._flow_of_ve[ve_value] = flow_value
            out.append(ve_value)
        return torch.tensor(out, dtype=torch.float32)

    def timestep_sigma(self, sigma):
        """The flow sigma whose mapping gives the network's timestep at VE sigma `sigma`.

        A VE sigma this view made (table, ve_schedule) gives back the exact float32 flow sigma it
        came from; any other (a sampler's intermediate point) is converted in float64.
        """
        if isinstance(sigma, torch.Tensor):
            known = self._flow_of_ve
            values = sigma.detach().reshape(-1).tolist()
            flows = [known.get(v) for v in values]
            if any(f is None for f in flows):
                exact = sigma_from_ve(sigma.detach().double().reshape(-1)).tolist()
                flows = [e if f is None else f for f, e in zip(flows, exact)]
            dtype = sigma.dtype if sigma.is_floating_point() else torch.get_default_dtype()
            return torch.tensor(flows, dtype=dtype, device=sigma.device).reshape(sigma.shape)
        flow = self._flow_of_ve.get(_float32(sigma))
        return float(sigma_from_ve(float(sigma))) if flow is None else flow

    def timestep(self, sigma):
        return TIMESTEP_MAPPINGS[self.timestep_mapping](self.timestep_sigma(sigma))

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
        return latent_image + broadcast_sigma(sigma, noise) * noise

    def inverse_noise_scaling(self, sigma, latent):
        return latent


def make_model_sampling(view=DEFAULT_VIEW, shift=DEFAULT_SHIFT, timestep_mapping=DEFAULT_TIMESTEP_MAPPING):
    """The model sampling for a view name (FLOW or VE); ValueError naming `view` otherwise."""
    check_choice("view", view, VIEWS)
    return MODEL_SAMPLING_CLASSES[view](shift=shift, timestep_mapping=timestep_mapping)


MODEL_SAMPLING_CLASSES = {FLOW: FlowModelSampling, VE: FlowVEModelSampling}
