"""The flow-sigma schedule of one of the core's registry schedulers, as a webui's get_sigmas shapes it.

The practical-step references of the webui runners (A1111, reForge, Forge) compute a same-named
schedule in native flow coordinates; for the core's own schedule types (Flow shift, Flow PC, and any
registry entry added later) that is the entry's function on a flow model sampling.
"""
import torch


def registry_flow_sigmas(label, steps, shift, discard_next_to_last_sigma=False):
    """Flow sigmas (steps + 1, float64) of the registry scheduler named or labelled `label`, or None
    when `label` is a host's own schedule type. With `discard_next_to_last_sigma` (DPM2, DPM2 a) one
    more step is computed and the next-to-last sigma dropped, as the webuis' get_sigmas does."""
    from model_sampling_flow import registry
    from model_sampling_flow.model_sampling import FlowModelSampling
    entry = next((e for e in registry.SCHEDULERS if label in (e.name, e.label)), None)
    if entry is None:
        return None
    sigmas = entry.function(FlowModelSampling(shift=shift), steps + (1 if discard_next_to_last_sigma else 0))
    sigmas = torch.as_tensor(sigmas).double()
    if discard_next_to_last_sigma:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas

