"""The one table of samplers and schedulers that every host registers from.

Adding a sampler or a scheduler is one entry here; every host derives what it shows from the
entry: ComfyUI's KSampler lists, SAMPLER node widgets and scheduler table, the webuis' sampler
and schedule-type lists (A1111, reForge, Forge), the samplers' own option checks and the demo.

`name` is the stable identifier hosts use (ComfyUI sampler and scheduler lists, saved workflows,
webui infotext); `label` is the human name for webui dropdowns. Names are prefixed with `flow_` so
they never collide with a host's own entries.
"""
from dataclasses import dataclass
from typing import Callable

from . import samplers, schedulers
from .schedule import check_integer, check_number

FLOAT, INT, BOOL, NOISE_SAMPLER = "float", "int", "bool", "noise_sampler"
OPTION_KINDS = (FLOAT, INT, BOOL, NOISE_SAMPLER)


@dataclass(frozen=True)
class Option:
    """One keyword option of a sampler beyond the k-diffusion signature.

    kind: FLOAT / INT / BOOL (a host shows a widget for it) or NOISE_SAMPLER (the host supplies its
    seeded `noise_sampler(sigma, sigma_next)`; no widget). range: (minimum, maximum) for numbers,
    both inclusive, None for the other kinds. default: the sampler function's own default.
    """
    name: str
    kind: str
    default: object
    range: tuple = None
    help: str = ""

    def check(self, value):
        """The value, checked against kind and range; ValueError naming the option otherwise."""
        if self.kind == FLOAT:
            return check_number(self.name, value, minimum=self.range[0], maximum=self.range[1])
        if self.kind == INT:
            return check_integer(self.name, value, minimum=self.range[0], maximum=self.range[1])
        if self.kind == BOOL and not isinstance(value, bool):
            raise ValueError(f"{self.name} must be True or False, got {value!r}")
        if self.kind == NOISE_SAMPLER and value is not None and not callable(value):
            raise ValueError(f"{self.name} must be a function noise_sampler(sigma, sigma_next) or None, got {value!r}")
        return value


# the schedule the webuis' "Automatic" gives the Flow samplers, unless an entry names its own: flow_pc
# (sigma = t^1.6). Against the trainers' own flow_shift it is the more accurate schedule for every Flow
# sampler at 10-28 steps, shift 3 and 6, on the Gaussian and the mixtures (Flow Heun 20 steps, shift 3,
# two modes at +-1, one 1x4x16x16 noise: RMSE 0.0377 -> 0.0028), and the stochastic ones end their last step from a small
# sigma instead of 0.14 (Flow SDE Gaussian std 0.265 -> 0.302 for 0.3): tests/core/test_registry.py
DEFAULT_SCHEDULER = "flow_pc"


@dataclass(frozen=True)
class SamplerEntry:
    """A core sampler: `function` has the k-diffusion signature and works in flow coordinates.

    model_calls_per_step: model evaluations per step (2 for Heun: the webuis count its steps
    twice); stochastic: it injects noise (right only in distribution, seeds matter); scheduler:
    the name of the schedule a webui's "Automatic" schedule type gives it (a SCHEDULERS entry).
    """
    name: str
    label: str
    function: Callable
    stochastic: bool
    model_calls_per_step: int
    options: tuple = ()     # Option records, in widget order
    scheduler: str = DEFAULT_SCHEDULER

    @property
    def option_names(self):
        return tuple(option.name for option in self.options)

    @property
    def takes_noise_sampler(self):
        return any(option.kind == NOISE_SAMPLER for option in self.options)

    @property
    def widget_options(self):
        """The options a host shows as widgets (everything but the noise sampler)."""
        return tuple(option for option in self.options if option.kind != NOISE_SAMPLER)

    def check_options(self, values):
        """{name: value} checked against this entry's options; ValueError for an unknown name or a bad value."""
        known = {option.name: option for option in self.options}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"{self.name} has no option {unknown[0]!r}; options are {sorted(known)}")
        return {name: known[name].check(value) for name, value in values.items()}


@dataclass(frozen=True)
class SchedulerEntry:
    """A core scheduler: function(model_sampling, steps) -> steps + 1 sigmas in the model sampling's view."""
    name: str
    label: str
    function: Callable


ETA = Option("eta", FLOAT, 1.0, (0.0, 100.0),
             "Noise injected per step: 0 is the deterministic ODE (DDIM), 1 the exact reverse SDE.")
S_NOISE = Option("s_noise", FLOAT, 1.0, (0.0, 100.0), "Scale of the injected noise (1 is exact).")
NOISE = Option("noise_sampler", NOISE_SAMPLER, None, None,
               "noise_sampler(sigma, sigma_next) -> standard normal noise like x; the host's seeded one.")
ORDER = Option("order", INT, 3, (1, 4), "How many past velocities each Adams-Bashforth step uses.")
SECOND_ORDER = Option("second_order", BOOL, True, None,
                      "Stochastic Adams predictor-corrector on the denoised (no extra model call), noise on "
                      "the steps ending at flow sigma 0.92 to 0.43; off: first-order steps, noise on every step.")

SAMPLERS = (
    # Flow PC picks its order from the step count, so hosts show no widget for it
    SamplerEntry("flow_pc", "Flow PC", samplers.sample_flow_pc, False, 1),
    SamplerEntry("flow_euler", "Flow Euler", samplers.sample_flow_euler, False, 1),
    SamplerEntry("flow_heun", "Flow Heun", samplers.sample_flow_heun, False, 2),
    SamplerEntry("flow_euler_ancestral", "Flow Euler a", samplers.sample_flow_euler_ancestral, True, 1,
                 (ETA, S_NOISE, NOISE)),
    SamplerEntry("flow_sde", "Flow SDE", samplers.sample_flow_sde, True, 1, (ETA, S_NOISE, NOISE, SECOND_ORDER)),
    SamplerEntry("flow_multistep", "Flow Multistep", samplers.sample_flow_multistep, False, 1, (ORDER,)),
)

# Schedulers hosts lack. The ones ComfyUI already has by the same name (simple, normal, ...) give
# identical output there, so hosts keep their own entries for those.
SCHEDULERS = (
    SchedulerEntry("flow_shift", "Flow shift", schedulers.flow_shift),
    SchedulerEntry("flow_pc", "Flow PC", schedulers.flow_pc),
)

SAMPLERS_BY_NAME = {entry.name: entry for entry in SAMPLERS}
SCHEDULERS_BY_NAME = {entry.name: entry for entry in SCHEDULERS}


def sampler_entry(function):
    """The entry of SAMPLERS whose function is `function` (ValueError when none is)."""
    for entry in SAMPLERS:
        if entry.function is function:
            return entry
    raise ValueError(f"function must be a registered sampler, got {function!r}")
