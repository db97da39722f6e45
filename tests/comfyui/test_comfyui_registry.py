"""Adding a sampler or a scheduler is one registry entry, for ComfyUI: a throwaway entry of each,
added to the core's table of the loaded package, reaches KSampler's dropdowns, gets a SAMPLER node
whose widgets are the entry's options, and samples through ComfyUI's own KSampler path.

Runs against COMFYUI_DIR (either ComfyUI version); skips with the reason when it is unset.
"""
import sys

import pytest

import comfy_support as support
from model_sampling_flow import oracles

THROWAWAY_SAMPLER, THROWAWAY_SCHEDULER = "flow_throwaway_probe", "flow_throwaway_schedule"


@pytest.fixture
def patched_registry(comfyui, monkeypatch):
    """The loaded package's registry with one throwaway sampler and scheduler; ComfyUI's lists restored after."""
    import comfy.k_diffusion.sampling as k_diffusion_sampling
    import comfy.samplers
    package = support.load_repo_as_custom_node()
    core = sys.modules[package.__name__ + ".comfy_nodes._core"]
    registry = core.registry
    option = registry.Option("order", registry.INT, 2, (1, 3), "throwaway order")
    # the package's own copy of the core (ComfyUI loads the repository as a package of its own)
    sampler = registry.SamplerEntry(THROWAWAY_SAMPLER, "Flow Throwaway",
                                    registry.SAMPLERS_BY_NAME["flow_multistep"].function, False, 1, (option,))
    scheduler = registry.SchedulerEntry(THROWAWAY_SCHEDULER, "Flow Throwaway",
                                        registry.SCHEDULERS_BY_NAME["flow_shift"].function)
    monkeypatch.setattr(registry, "SAMPLERS", registry.SAMPLERS + (sampler,))
    monkeypatch.setattr(registry, "SCHEDULERS", registry.SCHEDULERS + (scheduler,))
    lists = (comfy.samplers.KSAMPLER_NAMES, comfy.samplers.SAMPLER_NAMES, comfy.samplers.KSampler.SAMPLERS,
             comfy.samplers.SCHEDULER_NAMES, comfy.samplers.KSampler.SCHEDULERS)
    saved = [list(names) for names in lists]
    handlers = getattr(comfy.samplers, "SCHEDULER_HANDLERS", None)
    try:
        added = sys.modules[package.__name__ + ".comfy_nodes.registration"].register()
        yield package, registry, sampler, added
    finally:
        for names, before in zip(lists, saved):
            names[:] = before
        if handlers is not None:
            handlers.pop(THROWAWAY_SCHEDULER, None)
        if hasattr(k_diffusion_sampling, f"sample_{THROWAWAY_SAMPLER}"):
            delattr(k_diffusion_sampling, f"sample_{THROWAWAY_SAMPLER}")


def test_a_new_registry_entry_reaches_every_comfyui_list(patched_registry):
    package, registry, entry, added = patched_registry
    nodes = support.builtin_node_classes("nodes_custom_sampler")
    assert THROWAWAY_SAMPLER in added["samplers"]
    for node, name in (("KSampler", "sampler_name"), ("KSamplerAdvanced", "sampler_name"),
                       ("KSamplerSelect", "sampler_name")):
        assert THROWAWAY_SAMPLER in support.dropdown(nodes[node], name), node
    import comfy.samplers
    if hasattr(comfy.samplers, "SCHEDULER_HANDLERS"):
        assert THROWAWAY_SCHEDULER in added["schedulers"]
        for node, name in (("KSampler", "scheduler"), ("BasicScheduler", "scheduler")):
            assert THROWAWAY_SCHEDULER in support.dropdown(nodes[node], name), node
    # the SAMPLER node's widgets are the entry's options, with its range and default
    node_module = sys.modules[package.__name__ + ".comfy_nodes.nodes"]
    inputs = node_module.sampler_node(entry).INPUT_TYPES()["required"]
    assert inputs == {"order": ("INT", {"default": 2, "min": 1, "max": 3, "tooltip": "throwaway order"})}
    assert node_module.sampler_node(entry)().get_sampler(order=3)[0].extra_options == {"order": 3}
    with pytest.raises(ValueError, match="order"):
        node_module.sampler_node(entry)().get_sampler(order=4)


def test_a_new_registry_entry_samples_through_ksampler(patched_registry):
    package, *_ = patched_registry
    import comfy.samplers
    field = oracles.gaussian_field(0.5, 0.3)
    model = package.NODE_CLASS_MAPPINGS["ModelSamplingFlowSDXL"]().patch(
        support.analytic_sdxl(field), 3.0, "continuous", "static", "ve")[0]
    scheduler = THROWAWAY_SCHEDULER if hasattr(comfy.samplers, "SCHEDULER_HANDLERS") else "simple"
    row = support.sampler_statistics(model, THROWAWAY_SAMPLER, field, steps=32, scheduler=scheduler,
                                     shape=(1, 4, 16, 16))
    assert row["endpoint_rms"] < 0.01, row     # deterministic: on the exact ODE endpoint of its noise
