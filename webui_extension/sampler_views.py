"""Which view each webui sampler integrates in while flow sampling is on.

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
import inspect

from model_sampling_flow import registry, ve_bridge
from model_sampling_flow.model_sampling import FLOW, VE

DETERMINISTIC = frozenset({
    # A1111 1.10 and reForge
    "Euler", "LMS", "Heun", "DPM2", "DPM++ 2M",
    # reForge: ODE solvers with no noise injection
    "Euler CFG++", "DPM++ 2M CFG++", "RES Multistep", "RES Multistep CFG++", "Gradient Estimation",
    "Gradient Estimation CFG++", "HeunPP2", "IPNDM", "IPNDM_V", "DEIS", "RES Solver", "DPM++ 2M Turbo",
    "Euler Comfy", "Heun Comfy", "DPM++ 2M Comfy",
    "ODE (Bosh3)", "ODE (Fehlberg2)", "ODE (Adaptive Heun)", "ODE (Dopri5)", "ODE Custom",
})
STOCHASTIC = frozenset({
    # A1111 1.10 and reForge
    "Euler a", "DPM2 a", "DPM++ 2S a", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE",
    # DPM fast / adaptive get the webui's eta (1 unless set): noise is injected at every step
    "DPM fast", "DPM adaptive", "Restart",
    # reForge: ancestral / SDE steps, or Karras churn ("Dy"), or per-step resampling
    "DPM++ SDE Classic", "ER SDE", "Euler Ancestral CFG++", "DPM++ 2S Ancestral CFG++", "DPM++ SDE CFG++",
    "DPM++ 3M SDE CFG++", "Euler A DY CFG++", "RES Multistep Ancestral", "RES Multistep Ancestral CFG++",
    "SEEDS 2 DP", "SEEDS 3 DP", "SA-Solver", "SA-Solver-Pece", "DPM++ 3M SDE DY", "DDPM", "Euler A Turbo",
    "DPM++ 2M SDE Turbo", "Euler A Comfy", "Euler A Comfy RF", "DPM++ 2S Ancestral Comfy",
    "DPM++ 2S Ancestral Comfy RF", "DPM++ SDE Comfy", "DPM++ 2M SDE Comfy", "DPM++ 3M SDE Comfy",
    "DPM++ 2S Ancestral CFG++ Dyn", "DPM++ 2S Ancestral CFG++ Intern", "Euler Dy", "Euler SMEA Dy",
    "Euler Negative", "Euler Negative Dy", "Euler DY CFG++", "Euler SMEA DY CFG++", "DPM++ 2M DY CFG++",
    "DPM++ 2M DY", "DPM++ 3M DY", "Kohaku_LoNyu_Yog", "Euler A2",
    # reForge's "Custom Sampler" runs whatever Settings choose: treated as stochastic (VE, right in distribution)
    "Custom Sampler",
})
TIMESTEP = frozenset({"DDIM", "DDIM CFG++", "PLMS", "UniPC", "LCM"})

# Deterministic samplers A1111 runs on its flow-view denoiser (measured as accurate as natively in
# flow coordinates, docs/practical_steps.txt). reForge keeps its VE denoiser and integrates its
# deterministic samplers in flow coordinates instead (integrate_in_flow_coordinates below; its table
# is webui_extension.reforge.FLOW_COORDINATES).
FLOW_VIEW = frozenset({"Euler", "LMS", "Heun", "DPM2", "DPM++ 2M"})

DETERMINISTIC_KIND, STOCHASTIC_KIND, TIMESTEP_KIND = "deterministic", "stochastic", "timestep"


def is_core_sampler(label):
    """True for a sampler of the core's registry (by label or name): those bridge to flow themselves."""
    return any(label in (entry.label, entry.name) for entry in registry.SAMPLERS)


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


# Karras churn (k-diffusion's s_churn for Euler, Heun, DPM2: Settings > Sampler parameters > sigma
# churn; reForge's own Comfy samplers read their own options) raises sigma and adds fresh noise at
# every step: a VE noise step, which in flow coordinates would rescale the data part of x. A pass with
# churn is stochastic and runs in the VE view.
CHURN_SAMPLERS = frozenset({"Euler", "Heun", "DPM2"})
OWN_CHURN_OPTIONS = {"Euler Comfy": "euler_og_s_churn", "Heun Comfy": "heun_og_s_churn", "HeunPP2": "heunpp2_s_churn"}


def pass_churn(p, label):
    """The Karras churn (0.0 for none) the pass of `p` with sampler `label` will add, read as the
    webuis do when the sampler starts (sd_samplers_common.Sampler.initialize: the Settings value,
    else p.s_churn; reForge's Comfy samplers: their own Settings option)."""
    try:
        from modules import shared
        opts = shared.opts
    except (ImportError, AttributeError):    # outside a webui (host-free tests): only p's own value
        opts = None
    option = OWN_CHURN_OPTIONS.get(label)
    if option is not None:
        return float(getattr(opts, option, 0.0) or 0.0)
    if label not in CHURN_SAMPLERS:
        return 0.0
    return float(getattr(opts, "s_churn", None) or getattr(p, "s_churn", None) or 0.0)


def view_for_sampler(label, img2img=False, churn=0.0):
    """'flow' for a deterministic sampler on a txt2img first pass, else 've'.

    img2img and hires passes run in the VE view whatever the sampler: the webuis add noise there as
    `x + noise * sigma`, which is the VE view's rule (the flow view would need (1 - sigma) x).
    """
    if not img2img and not churn and sampler_kind(label) == DETERMINISTIC_KIND and \
            (is_core_sampler(label) or label in FLOW_VIEW):
        return FLOW
    return VE


# ---- per-pass helpers both webuis use on their KDiffusionSampler (instance attributes only) ----
def pass_sampler_label(p):
    """The label of the sampler this pass of `p` runs (the hires sampler in a hires pass)."""
    config = getattr(getattr(p, "sampler", None), "config", None)
    return getattr(config, "name", None) or getattr(p, "sampler_name", None)


def pass_scheduler_label(p):
    """The schedule type this pass of `p` asks for ("Automatic" when unset; the hires one in a hires pass)."""
    if getattr(p, "is_hr_pass", False) and getattr(p, "hr_scheduler", None) not in (None, "Use same scheduler"):
        return p.hr_scheduler
    return getattr(p, "scheduler", None) or "Automatic"


def is_img2img_pass(p):
    """A hires pass, or a StableDiffusionProcessingImg2Img (img2img, inpaint, ADetailer-style passes hold
    init_images): the webuis add noise there as x + noise * sigma."""
    return bool(getattr(p, "is_hr_pass", False)) or hasattr(p, "init_images")


def schedule_over_flow_range(sampler, flow_denoiser, ve_schedule, attribute="model_wrap"):
    """Make `sampler.get_sigmas` run the webui's schedule over the flow table, then map it to VE.

    The webuis' schedule functions read sigma_min / sigma_max (and, for Simple, Normal, SGM
    Uniform, Uniform, DDIM, Beta, the table) from `sampler.model_wrap`; for one call they see
    `flow_denoiser` (a DiscreteSchedule over the flow table), then `ve_schedule` (the pass's
    FlowVEModelSampling.ve_schedule: sigma / (1 - sigma), top -> the VE cap) maps the result.
    `attribute` names what the sampler's schedule reads instead when it is not `model_wrap`
    (reForge's own samplers read `unet`). A script's `sampler_noise_scheduler_override` is left
    alone. Changes this sampler object only.
    """
    def schedule(p, steps, original):
        own = getattr(sampler, attribute)
        setattr(sampler, attribute, flow_denoiser)
        try:
            flow = original(p, steps)
        finally:
            setattr(sampler, attribute, own)
        return ve_schedule(flow.cpu()).to(flow.device)

    replace_get_sigmas(sampler, schedule)


def replace_get_sigmas(sampler, schedule):
    """Make `sampler.get_sigmas(p, steps)` return `schedule(p, steps, original)`, `original` being the
    webui's own get_sigmas, which still runs alone when a script set `sampler_noise_scheduler_override`.

    Once per sampler object (the wrapper is marked `flow_sampling`); a sampler without get_sigmas
    is left as it is.
    """
    original = getattr(sampler, "get_sigmas", None)
    if original is None or getattr(original, "flow_sampling", False):
        return

    def get_sigmas(p, steps):
        if getattr(p, "sampler_noise_scheduler_override", None) is not None:
            return original(p, steps)
        return schedule(p, steps, original)

    get_sigmas.flow_sampling = True
    sampler.get_sigmas = get_sigmas


def brownian_noise_within_interval(sampler):
    """The pass's Brownian-tree noise sampler queried only inside its tree (no torchsde warnings,
    same noise: model_sampling_flow.ve_bridge.noise_sampler_within)."""
    original = getattr(sampler, "create_noise_sampler", None)
    if original is None or getattr(original, "flow_sampling", False):
        return

    def create_noise_sampler(x, sigmas, p):
        noise_sampler = original(x, sigmas, p)
        return None if noise_sampler is None else ve_bridge.noise_sampler_within(noise_sampler)

    create_noise_sampler.flow_sampling = True
    sampler.create_noise_sampler = create_noise_sampler


def integrate_in_flow_coordinates(sampler):
    """Make the webui sampler's k-diffusion function integrate in flow coordinates.

    The webui keeps its VE-view denoiser, its VE sigmas, its `x + noise * sigma` img2img rule, its
    callbacks and masks; only the integration changes coordinates: `sampler.func(model, x, sigmas=...)`
    becomes `ve_bridge.sample_in_ve(func, model, x, sigmas, ...)`, which hands the same function the
    flow state x / (1 + sigma_ve), the flow sigmas sigma_ve / (1 + sigma_ve) and a model over them,
    and converts every model call and callback back. A deterministic sampler then computes exactly
    what it computes natively in flow coordinates (ComfyUI + ModelSamplingSD3, reForge's AMS) on the
    same flow schedule, with no second model object: nothing outlives the pass.

    For deterministic samplers that see the model only as (x, sigma) -> denoised (DETERMINISTIC above)
    and add no churn (a call with a non-zero `s_churn` runs as it was, in the VE view). The wrapper shows the function's own signature, so the webui passes the same options (s_churn,
    n, ...). Changes this sampler object only; a second call is a no-op.
    """
    original = getattr(sampler, "func", None)
    if original is None or getattr(original, "flow_coordinates", False):
        return

    def func(model, x, *args, sigmas=None, extra_args=None, callback=None, disable=None, **options):
        # not the webuis' keyword call, or Karras churn on (a VE noise step: see pass_churn): as it was
        if args or sigmas is None or options.get("s_churn"):
            return original(model, x, *args, sigmas=sigmas, extra_args=extra_args, callback=callback,
                            disable=disable, **options)
        return ve_bridge.sample_in_ve(original, model, x, sigmas, extra_args=extra_args, callback=callback,
                                      disable=disable, **options)

    try:
        func.__signature__ = inspect.signature(original)
    except (TypeError, ValueError):     # a builtin without a signature: the wrapper's own
        pass
    func.flow_coordinates = True
    sampler.func = func
