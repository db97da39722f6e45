"""Put the core's samplers and schedulers into ComfyUI's dropdowns, from the core's one table.

ComfyUI resolves a KSampler sampler name through `comfy.samplers.sampler_object(name)`, which
looks up `comfy.k_diffusion.sampling.sample_<name>`; the dropdowns read the lists
`comfy.samplers.KSAMPLER_NAMES` / `SAMPLER_NAMES` (`KSampler.SAMPLERS` is the latter) and the
scheduler table `SCHEDULER_HANDLERS` / `SCHEDULER_NAMES` (`KSampler.SCHEDULERS`). The nodes
read those list objects when their INPUT_TYPES run, so entries are appended in place.
Registration is idempotent and never replaces a name ComfyUI (or another pack) already owns.
"""
import logging

import comfy.k_diffusion.sampling as k_diffusion_sampling
import comfy.model_sampling
import comfy.samplers

from ._core import model_sampling as core_model_sampling
from ._core import registry
from .samplers import MARK, host_sampler

log = logging.getLogger("model_sampling_flow")

_HOST_FUNCTIONS = {}    # registry entry -> its ComfyUI function, made once (registration is idempotent)


def _host_function(entry, make):
    if entry not in _HOST_FUNCTIONS:
        _HOST_FUNCTIONS[entry] = make(entry)
    return _HOST_FUNCTIONS[entry]


def _append(names, name):
    if name not in names:
        names.append(name)


def _owned_by_us(value):
    return value is None or getattr(value, MARK, None) is not None


def require_flow_model_sampling(model_sampling, what):
    """Flow schedulers need flow time: our model sampling, or ComfyUI's ModelSamplingSD3 class."""
    # duck-typed: a second install of this package has its own copy of the core classes
    if getattr(model_sampling, "view", None) in core_model_sampling.VIEWS and hasattr(model_sampling, "flow_sigma"):
        return model_sampling
    if isinstance(model_sampling, comfy.model_sampling.ModelSamplingDiscreteFlow) \
            and getattr(model_sampling, "multiplier", None) == 1000:
        return model_sampling
    raise ValueError(f"{what} needs a rectified-flow model: apply 'Model Sampling Flow (RF SDXL)' "
                     f"(or ModelSamplingSD3) to the model first; got {type(model_sampling).__name__}")


def host_scheduler(entry):
    def scheduler(model_sampling, steps):
        return entry.function(require_flow_model_sampling(model_sampling, f"scheduler {entry.name!r}"), steps)
    scheduler.__name__ = scheduler.__qualname__ = f"{entry.name}_scheduler"
    setattr(scheduler, MARK, entry.name)
    return scheduler


def register():
    """Add every core sampler and scheduler (registry.SAMPLERS / SCHEDULERS, read now) to ComfyUI's
    tables; returns the names now registered."""
    added = {"samplers": [], "schedulers": []}
    for entry in registry.SAMPLERS:
        attribute = f"sample_{entry.name}"
        if not _owned_by_us(getattr(k_diffusion_sampling, attribute, None)):
            log.warning("model_sampling_flow: sampler %s already exists in ComfyUI; left as it is", entry.name)
            continue
        setattr(k_diffusion_sampling, attribute, _host_function(entry, host_sampler))
        for names in (comfy.samplers.KSAMPLER_NAMES, comfy.samplers.SAMPLER_NAMES, comfy.samplers.KSampler.SAMPLERS):
            _append(names, entry.name)
        added["samplers"].append(entry.name)

    handlers = getattr(comfy.samplers, "SCHEDULER_HANDLERS", None)
    if handlers is None:  # ComfyUI before the scheduler table (early 2025): the SIGMAS node still works
        log.info("model_sampling_flow: this ComfyUI has no SCHEDULER_HANDLERS; flow schedulers are "
                 "available through the Flow Scheduler node only")
        return added
    for entry in registry.SCHEDULERS:
        current = handlers.get(entry.name)
        if current is not None and not _owned_by_us(current.handler):
            log.warning("model_sampling_flow: scheduler %s already exists in ComfyUI; left as it is", entry.name)
            continue
        handlers[entry.name] = comfy.samplers.SchedulerHandler(_host_function(entry, host_scheduler), use_ms=True)
        for names in (comfy.samplers.SCHEDULER_NAMES, comfy.samplers.KSampler.SCHEDULERS):
            _append(names, entry.name)
        added["schedulers"].append(entry.name)
    return added


def sampler_function(name):
    """The ComfyUI sampler function for a core sampler name (ValueError for unknown names)."""
    entries = {entry.name: entry for entry in registry.SAMPLERS}
    if name not in entries:
        raise ValueError(f"sampler must be one of {sorted(entries)}, got {name!r}")
    return _host_function(entries[name], host_sampler)


def scheduler_function(name):
    """The ComfyUI scheduler function for a core scheduler name (ValueError for unknown names)."""
    entries = {entry.name: entry for entry in registry.SCHEDULERS}
    if name not in entries:
        raise ValueError(f"scheduler must be one of {sorted(entries)}, got {name!r}")
    return _host_function(entries[name], host_scheduler)
