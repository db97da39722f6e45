"""The one table of samplers and schedulers that every host registers from.

Adding a sampler is one line here. `name` is the stable identifier hosts use (ComfyUI sampler
and scheduler lists, saved workflows, webui infotext); `label` is the human name for webui
dropdowns. Names are prefixed with `flow_` so they never collide with a host's own entries.
"""
from typing import Callable, NamedTuple

from . import samplers, schedulers


class SamplerEntry(NamedTuple):
    name: str
    label: str
    function: Callable
    stochastic: bool
    options: tuple  # option names the sampler accepts beyond the k-diffusion signature


class SchedulerEntry(NamedTuple):
    name: str
    label: str
    function: Callable  # function(model_sampling, steps) -> sigmas in the model sampling's view


SAMPLERS = (
    # order is left to the sampler (it picks it from the step count), so hosts show no widget for it
    SamplerEntry("flow_pc", "Flow PC", samplers.sample_flow_pc, False, ()),
    SamplerEntry("flow_euler", "Flow Euler", samplers.sample_flow_euler, False, ()),
    SamplerEntry("flow_heun", "Flow Heun", samplers.sample_flow_heun, False, ()),
    SamplerEntry("flow_euler_ancestral", "Flow Euler a", samplers.sample_flow_euler_ancestral, True,
                 ("eta", "s_noise", "noise_sampler")),
    SamplerEntry("flow_sde", "Flow SDE", samplers.sample_flow_sde, True, ("eta", "s_noise", "noise_sampler")),
    SamplerEntry("flow_multistep", "Flow Multistep", samplers.sample_flow_multistep, False, ("order",)),
)

# Schedulers hosts lack. The ones ComfyUI already has by the same name (simple, normal, ...) give
# identical output there, so hosts keep their own entries for those.
SCHEDULERS = (
    SchedulerEntry("flow_shift", "Flow shift", schedulers.flow_shift),
    SchedulerEntry("flow_pc", "Flow PC", schedulers.flow_pc),
)

SAMPLERS_BY_NAME = {entry.name: entry for entry in SAMPLERS}
SCHEDULERS_BY_NAME = {entry.name: entry for entry in SCHEDULERS}
