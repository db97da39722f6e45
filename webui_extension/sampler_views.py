"""Which view each webui sampler integrates in while flow sampling is on (issue 10, design item 2).

Deterministic samplers integrate in flow coordinates: the sampler sees the native flow model
(flow sigmas in [0, 1], x = (1 - sigma) x0 + sigma noise), exactly what ComfyUI's ModelSamplingSD3
or reForge's Advanced Model Sampling give it, so their accuracy is the native one by construction.
Stochastic samplers (ancestral, SDE, Restart, adaptive with eta, ...) are only right in the VE view
(sigma_ve = sigma / (1 - sigma)): they run there, on the host's schedule computed over the flow
range and mapped with views.flow_schedule_to_ve. A sampler not listed here (added by another
extension) runs in the VE view: right in distribution, at worst a little less accurate.

Samplers listed by label, as A1111 1.10 and reForge show them. TIMESTEP samplers never call the
denoiser (they read alphas_cumprod, which describes the VE view); they are listed so every host
sampler has a known kind.
"""
from model_sampling_flow import registry

FLOW, VE = "flow", "ve"

DETERMINISTIC = frozenset({
    "Euler", "LMS", "Heun", "DPM2", "DPM++ 2M",
})
STOCHASTIC = frozenset({
    "Euler a", "DPM2 a", "DPM++ 2S a", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE",
    # DPM fast / adaptive get the webui's eta (1 unless set): noise is injected at every step
    "DPM fast", "DPM adaptive", "Restart",
})
TIMESTEP = frozenset({"DDIM", "DDIM CFG++", "PLMS", "UniPC", "LCM"})

DETERMINISTIC_KIND, STOCHASTIC_KIND, TIMESTEP_KIND = "deterministic", "stochastic", "timestep"


def sampler_kind(label):
    """'deterministic', 'stochastic', 'timestep', or None for a sampler this table does not know."""
    for entry in registry.SAMPLERS:
        if label in (entry.label, entry.name):
            return STOCHASTIC_KIND if entry.stochastic else DETERMINISTIC_KIND
    if label in DETERMINISTIC:
        return DETERMINISTIC_KIND
    if label in STOCHASTIC:
        return STOCHASTIC_KIND
    if label in TIMESTEP:
        return TIMESTEP_KIND
    return None


def view_for_sampler(label, img2img=False):
    """'flow' for a deterministic sampler on a txt2img first pass, else 've'.

    img2img and hires passes run in the VE view whatever the sampler: the webuis add noise there as
    `x + noise * sigma`, which is the VE view's rule (the flow view would need (1 - sigma) x).
    """
    if not img2img and sampler_kind(label) == DETERMINISTIC_KIND:
        return FLOW
    return VE
