"""reForge backend: flow sampling through ldm_patched's model-sampling object.

reForge's CFGDenoiser hands every denoiser call to ldm_patched's `sampling_function` on
`sd_model.forge_objects.unet.model`, whose `model_sampling` object turns (x, sigma) into network
input and network output into x0. The webui sampler wrappers only supply sigmas: the k-diffusion
samplers read them from `create_denoiser()` (else a CompVisDenoiser over `alphas_cumprod`), DDIM,
PLMS and UniPC read `alphas_cumprod`, the ldm_patched ("Comfy") samplers read the model's own
`model_sampling`. So flow on means, for one loaded checkpoint:

* every UnetPatcher reForge rebuilds `forge_objects` from (`forge_objects_original`,
  `forge_objects_after_applying_lora`, and the current `forge_objects`) is replaced by a clone
  carrying `add_object_patch("model_sampling", <core FlowVEModelSampling>)`. reForge copies
  `forge_objects` from these before every sampling, and the Lora extension re-derives its unet
  from `forge_objects_original`, so hires fix, img2img and a second processing object made by
  another extension (ADetailer) all sample the flow way without our script running for them;
* `sd_model.create_denoiser` returns a k-diffusion DiscreteSchedule over the same table;
* `sd_model.alphas_cumprod` is 1 / (1 + sigma_ve^2) of the same table (reForge's own SD3 model
  derives it the same way), which makes DDIM, PLMS and UniPC exact in the VE view.

The VE view is used on reForge whatever the settings say: reForge's k-diffusion samplers, its
img2img rule `x + noise * sigma`, and ldm_patched's non-CONST branches are exactly right for a
flow model seen as a VE model; the native flow view would send the stochastic samplers down
their VE formulas with flow sigmas.

`remove()` puts every replaced object back (the very objects, so the output is bit-identical to
never having enabled flow) and also undoes an object patch left applied on the model by a
sampling that was interrupted before reForge's own cleanup.
"""
import sys
import weakref

import torch

from model_sampling_flow import registry
from model_sampling_flow.model_sampling import FlowModelSampling, FlowVEModelSampling
from model_sampling_flow.views import alphas_cumprod_from_ve
from model_sampling_flow.settings import FlowSettings

from . import sampler_views
from .backend import (Backend, FlowSamplingError, latent_shape_for, model_sampling_for_pass,
                      refusal_message)

FORGE_CONTAINERS = ("forge_objects_original", "forge_objects_after_applying_lora", "forge_objects")
STATE_ATTRIBUTE = "_flow_sampling_reforge"
ADVANCED_MODEL_SAMPLING_PREFIX = "advanced model sampling for reforge"
_MISSING = object()

# Samplers that cannot sample a flow model's distribution through reForge, with the reason.
_FLOW_PARAMETERISATION = ("is written for the native flow parameterisation (sigma <= 1, x = (1 - sigma) x0 "
                          "+ sigma noise) and divides by 1 - sigma; reForge's samplers run on the VE view "
                          "(sigma up to 3e4), where the same step is '{twin}'")
_ADAPTIVE_ODE = ("integrates the ODE in sigma with step-size control; over the VE view's sigma range "
                 "(3e4 down to 0) it exhausts its step budget and diverges at the default tolerances. "
                 "ODE (Bosh3) and ODE (Adaptive Heun) are right")
REFUSED_SAMPLERS = {
    "LCM": "LCM is the sampler for latent-consistency-distilled models: it restarts every step "
           "from the denoised estimate plus fresh noise, which collapses the variance of a model "
           "that is not consistency-distilled (flow or not)",
    "Euler A Comfy RF": _FLOW_PARAMETERISATION.format(twin="Euler A Comfy"),
    "DPM++ 2S Ancestral Comfy RF": _FLOW_PARAMETERISATION.format(twin="DPM++ 2S Ancestral Comfy"),
    "ODE (Dopri5)": _ADAPTIVE_ODE,
    "DPM++ 2S Ancestral CFG++ Intern": "it evaluates the model on a half-resolution latent and mixes the CFG++ "
                                       "correction into the ancestral step, so it misses the distribution of an "
                                       "ordinary EPS model too, and where an ancestral step leaves no deterministic "
                                       "part (sigma-spaced schedules over a flow model's range) it stops with a "
                                       "tensor size error; DPM++ 2S a and DPM++ 2S Ancestral Comfy are right",
    # listed only with the "ldm patched (Comfy)" sampling backend
    "Euler A2": _FLOW_PARAMETERISATION.format(twin="Euler a") + "; it also halves the injected noise by "
                "averaging two noise draws, which misses the distribution of an EPS model too",
}
# With Settings > "SD Sampling backend" = "ldm patched (Comfy)", ldm_patched's DPM adaptive takes
# its step-size control in absolute units over the VE range and lands at std 0.43 for 0.3 (the
# A1111 backend's DPM adaptive is right); measured in docs/reforge.md.
REFUSED_WITH_COMFY_BACKEND = {
    "DPM adaptive": "with the 'ldm patched (Comfy)' sampling backend its adaptive step control misses "
                    "a flow model's distribution (the 'A1111' backend's DPM adaptive is right)",
}
# ODE Custom runs the solver chosen in Settings. With dopri5 (its default) at its Settings tolerances
# (rtol 1e-3, atol 1e-4) it stops off the distribution in flow coordinates (mean 0.468 for 0.5 at any
# step count, as natively: RMSE 0.031 to the exact endpoint) and diverges in the VE view on a 16x16
# latent (RMSE 3.0); dopri8 is not measured and is refused with the same reason
REFUSED_ODE_CUSTOM_SOLVERS = ("dopri5", "dopri8")
_ODE_CUSTOM = ("integrates the ODE with step-size control at the tolerances set in Settings, which are too "
               "loose for a flow model: it lands off the distribution (mean 0.468 for 0.5 in flow coordinates, "
               "as natively) or diverges in the VE view. ODE (Bosh3), ODE (Fehlberg2) and ODE (Adaptive Heun) are "
               "right")

# Schedulers that cannot be right for a flow model. A flow model in the VE view spans sigma from
# 0.003 to 3e4 (SDXL's EPS schedule: 0.03 to 14.6). These place their steps by fixed numbers or
# ratios, or linearly in sigma, tuned for the EPS range: over the VE range almost every step lands
# at pure noise and the last one jumps to the data, so 256 steps still miss the distribution.
_FIXED_LEVELS = "uses fixed noise levels tuned for SDXL's EPS schedule"
_LINEAR_IN_SIGMA = ("spaces its steps (nearly) linearly in sigma, which over a flow model's sigma range "
                    "puts almost every step at pure noise")
REFUSED_SCHEDULERS = {
    "Align Your Steps": _FIXED_LEVELS,
    "Align Your Steps GITS": _FIXED_LEVELS,
    "Align Your Steps 11": _FIXED_LEVELS,
    "Align Your Steps 32": _FIXED_LEVELS,
    "Align Your Steps Custom": "uses the noise levels typed in Settings, meant for an EPS model",
    "Sinusoidal SF": _LINEAR_IN_SIGMA,
    "Invcosinusoidal SF": _LINEAR_IN_SIGMA,
    "React Cosinusoidal DynSF": _LINEAR_IN_SIGMA,
    "Cosine": _LINEAR_IN_SIGMA,
    "Cosine-exponential Blend": _LINEAR_IN_SIGMA,
    "Phi": _LINEAR_IN_SIGMA,
    "Karras Dynamic": "oscillates its Karras exponent per step, which over a flow model's sigma range "
                      "leaves too few steps near the data",
    "Laplace": "centres its steps on a fixed log-sigma (Settings: Laplace mu) chosen for EPS models",
}

# Deterministic samplers that integrate in flow coordinates on a txt2img pass (they see the model only
# as (x, sigma) -> denoised): measured as accurate as natively in flow coordinates at 20 and 28 steps
# (docs/practical_steps.txt). Every other sampler integrates in the VE view.
FLOW_COORDINATES = frozenset({
    "Euler", "LMS", "Heun", "DPM2", "DPM++ 2M",
    # reForge's own (ldm_patched k-diffusion, AlterSampler)
    "Euler CFG++", "DPM++ 2M CFG++", "RES Multistep", "RES Multistep CFG++", "Gradient Estimation",
    "Gradient Estimation CFG++", "HeunPP2", "IPNDM", "IPNDM_V", "DEIS", "RES Solver", "DPM++ 2M Turbo",
    "Euler Comfy", "Heun Comfy", "DPM++ 2M Comfy", "ODE (Bosh3)", "ODE (Fehlberg2)", "ODE (Adaptive Heun)",
    "ODE Custom",
})

_patched_models = weakref.WeakSet()


def _forge_unets(sd_model):
    """(container, unet) for every forge_objects container of the model that holds a unet."""
    for name in FORGE_CONTAINERS:
        container = getattr(sd_model, name, None)
        unet = getattr(container, "unet", None)
        if unet is not None:
            yield container, unet


class FlowSamplingRefused(FlowSamplingError):
    """Raised from inside sampling when flow sampling cannot be right for the chosen options."""


model_sampling_for = model_sampling_for_pass     # the shared per-pass helper (backend.py)


class _State:
    def __init__(self, settings, model_sampling):
        self.settings = settings
        self.model_sampling = model_sampling
        self.clones = {}            # id(our clone) -> (our clone, the unet it replaced)
        self.create_denoiser = _MISSING
        self.alphas_cumprod = _MISSING
        self.flow_model_sampling = None     # the flow view of the same shift: schedules over the flow range

    def flow_view(self):
        ms, flow = self.model_sampling, self.flow_model_sampling
        if flow is None or (flow.shift, flow.timestep_mapping) != (ms.shift, ms.timestep_mapping):
            flow = self.flow_model_sampling = FlowModelSampling(shift=ms.shift, timestep_mapping=ms.timestep_mapping)
        return flow


def _settings_for_reforge(settings):
    return settings if settings.view == "ve" else settings.with_changes(view="ve")


def alphas_cumprod_for(model_sampling):
    """The DDPM alpha-bar table whose sigmas sqrt((1 - a) / a) are the VE table."""
    return alphas_cumprod_from_ve(model_sampling.sigmas.double()).float()


def _discrete_schedule_class():
    # reForge picks k-diffusion (k_diff or ldm_patched) by an option at import: use its choice
    from modules import sd_samplers_kdiffusion
    return sys.modules[sd_samplers_kdiffusion.CompVisDenoiser.__module__].DiscreteSchedule


_denoiser_classes = {}


def make_denoiser(sd_model, model_sampling):
    """The webui-side sigma table for a flow model: what `create_denoiser()` returns.

    reForge's CFGDenoiser never calls it (the unet's model_sampling does the math); samplers
    read sigmas, sigma_to_t/t_to_sigma, and `model_patcher` (ER SDE, SA-Solver, SEEDS ...).
    """
    base = _discrete_schedule_class()
    cls = _denoiser_classes.get(base)
    if cls is None:
        class FlowVEDenoiser(base):
            def __init__(self, sd_model, sigmas, quantize):
                super().__init__(sigmas, quantize)
                self.inner_model = sd_model

            @property
            def model_patcher(self):
                return self.inner_model.forge_objects.unet

            def set_model_sampling(self, model_sampling):
                sigmas = model_sampling.sigmas.to(self.sigmas.device)
                self.register_buffer("sigmas", sigmas.clone())
                self.register_buffer("log_sigmas", sigmas.log())

        cls = _denoiser_classes[base] = FlowVEDenoiser
    from modules import shared
    quantize = bool(getattr(shared.opts, "enable_quantization", False))
    return cls(sd_model, model_sampling.sigmas.clone(), quantize)


def _is_flow_denoiser(obj):
    return type(obj) in _denoiser_classes.values()


def _is_alter_sampler(sampler):
    """reForge's own samplers (modules_forge.forge_alter_samplers.AlterSampler): their get_sigmas
    reads ldm_patched's `unet.model.model_sampling`, not the webui denoiser's table."""
    return type(sampler).__name__ == "AlterSampler" and hasattr(sampler, "unet")


class _FlowUnetView:
    """What AlterSampler.get_sigmas reads from its unet (`model.model_sampling`, `load_device`),
    with the flow view's model sampling, for one call."""

    def __init__(self, unet, flow_model_sampling):
        self.model = type("FlowModelView", (), {"model_sampling": flow_model_sampling})()
        self.load_device = getattr(unet, "load_device", torch.device("cpu"))


class _FlowSdModelView:
    """The sd_model as a webui schedule function sees it through a flow-range denoiser: its unet's
    `model.model_sampling` is the flow view's; everything else is the model's own."""

    def __init__(self, sd_model, flow_model_sampling):
        self._sd_model = sd_model
        self.forge_objects = type("FlowObjectsView", (), {})()
        self.forge_objects.unet = _FlowUnetView(sd_model.forge_objects.unet, flow_model_sampling)

    def __getattr__(self, name):
        return getattr(self._sd_model, name)


def _core_scheduler(p):
    """The core's registry scheduler (Flow shift, Flow PC, ...) the pass of `p` asks for, or None."""
    label = sampler_views.pass_scheduler_label(p)
    return next((entry for entry in registry.SCHEDULERS if label in (entry.label, entry.name)), None)


def _core_schedule(sampler, entry, flow_model_sampling, ve_schedule):
    """An AlterSampler's get_sigmas computing the core scheduler `entry` over the flow view, mapped to
    VE (reForge's own get_sigmas would fall back to Normal for a name it does not know)."""
    def schedule(p, steps, original):
        flow = entry.function(flow_model_sampling, steps)
        return ve_schedule(flow.cpu()).to(getattr(sampler.unet, "load_device", flow.device))

    sampler_views.replace_get_sigmas(sampler, schedule)


def _restore_model_attribute(unet, model_sampling):
    """Undo our object patch on the shared BaseModel if a sampling left it applied."""
    model = unet.model
    if getattr(model, "model_sampling", None) is model_sampling:
        original = unet.object_patches_backup.pop("model_sampling", None)
        if original is not None:
            model.model_sampling = original


class ReforgeBackend(Backend):
    name = "reForge"

    @classmethod
    def detect(cls, sd_model):
        forge_objects = getattr(sd_model, "forge_objects", None)
        unet = getattr(forge_objects, "unet", None)
        # ldm_patched's BaseModel decides the math through `model_sampling`; Forge's KModel (same
        # containers, same patcher methods) through `predictor`, which this backend does not patch
        return (unet is not None and hasattr(unet, "add_object_patch") and hasattr(unet, "clone")
                and hasattr(getattr(unet, "model", None), "model_sampling")
                and all(hasattr(sd_model, name) for name in FORGE_CONTAINERS))

    @classmethod
    def model_sampling_of(cls, denoiser):
        if not _is_flow_denoiser(denoiser):
            return None
        state = getattr(denoiser.inner_model, STATE_ATTRIBUTE, None)
        if state is None:
            return None
        # the flow-range schedule's denoiser (sampler_views.schedule_over_flow_range) stands for the flow view
        return getattr(denoiser, "flow_view", None) or state.model_sampling

    # model-level lifecycle
    def apply(self, sd_model, settings: FlowSettings, latent_shape=None) -> None:
        settings = _settings_for_reforge(settings)
        for other in list(_patched_models):
            if other is not sd_model:   # checkpoint changed: only the loaded model keeps flow
                self.remove(other)
        state = getattr(sd_model, STATE_ATTRIBUTE, None)
        shape = latent_shape
        if state is None:
            state = _State(settings, model_sampling_for(settings, shape))
            setattr(sd_model, STATE_ATTRIBUTE, state)
            _patched_models.add(sd_model)
            state.create_denoiser = sd_model.__dict__.get("create_denoiser", _MISSING)
            state.alphas_cumprod = getattr(sd_model, "alphas_cumprod", _MISSING)
        else:
            state.settings = settings
            self._set_model_sampling(sd_model, state, model_sampling_for(settings, shape))
        self._install(sd_model, state)

    def _install(self, sd_model, state):
        """Make every unet reForge builds forge_objects from carry our model sampling."""
        ms = state.model_sampling
        for container, unet in _forge_unets(sd_model):
            if unet.object_patches.get("model_sampling") is ms:
                continue
            if id(unet) in state.clones:      # one of ours holding an older model sampling
                unet.add_object_patch("model_sampling", ms)
                continue
            clone = next((c for c, original in state.clones.values() if original is unet), None)
            if clone is None:
                clone = unet.clone()
                clone.add_object_patch("model_sampling", ms)
                state.clones[id(clone)] = (clone, unet)
            container.unet = clone
        if getattr(sd_model.__dict__.get("create_denoiser"), "flow_sampling", False) is not True:
            def create_denoiser():
                return make_denoiser(sd_model, getattr(sd_model, STATE_ATTRIBUTE).model_sampling)
            create_denoiser.flow_sampling = True
            sd_model.create_denoiser = create_denoiser
        if state.alphas_cumprod is not _MISSING:
            device = getattr(state.alphas_cumprod, "device", torch.device("cpu"))
            sd_model.alphas_cumprod = alphas_cumprod_for(ms).to(device)

    def _set_model_sampling(self, sd_model, state, model_sampling):
        old = state.model_sampling
        if (old.shift, old.timestep_mapping) == (model_sampling.shift, model_sampling.timestep_mapping):
            return
        state.model_sampling = model_sampling
        for _, unet in _forge_unets(sd_model):   # Lora-derived clones of ours carry the old object too
            if unet.object_patches.get("model_sampling") is old:
                unet.add_object_patch("model_sampling", model_sampling)
        for clone, _ in state.clones.values():
            clone.add_object_patch("model_sampling", model_sampling)

    def remove(self, sd_model) -> None:
        state = getattr(sd_model, STATE_ATTRIBUTE, None)
        if state is None:
            return
        ms = state.model_sampling
        for container, unet in _forge_unets(sd_model):
            _restore_model_attribute(unet, ms)
            if id(unet) in state.clones:
                container.unet = state.clones[id(unet)][1]
            elif isinstance(unet.object_patches.get("model_sampling"), FlowVEModelSampling):
                # a clone reForge derived from ours (Lora): take our patch back out of it
                unet.object_patches.pop("model_sampling")
        for clone, _ in state.clones.values():
            _restore_model_attribute(clone, ms)
        current = sd_model.__dict__.get("create_denoiser")
        if current is not None and getattr(current, "flow_sampling", False) is True:
            if state.create_denoiser is _MISSING:
                del sd_model.create_denoiser
            else:
                sd_model.create_denoiser = state.create_denoiser
        if state.alphas_cumprod is not _MISSING:
            sd_model.alphas_cumprod = state.alphas_cumprod
        delattr(sd_model, STATE_ATTRIBUTE)
        _patched_models.discard(sd_model)

    def active(self, sd_model):
        state = getattr(sd_model, STATE_ATTRIBUTE, None)
        return None if state is None else state.settings

    def model_sampling(self, sd_model):
        """The model sampling object flow is using for this model (None when off)."""
        state = getattr(sd_model, STATE_ATTRIBUTE, None)
        return None if state is None else state.model_sampling

    # per-sampling
    def before_sampling(self, p) -> None:
        """Bring the patch up to date for this sampling (resolution shift, hires size) and make
        the sampler p already built use it; make sampling refuse when it cannot be right."""
        sd_model = p.sd_model
        state = getattr(sd_model, STATE_ATTRIBUTE, None)
        if state is None:
            return
        if state.settings.shift_mode != "static":
            shape = latent_shape_for(p, state.settings.vae_factor)
            self._set_model_sampling(sd_model, state, model_sampling_for(state.settings, shape))
        self._install(sd_model, state)
        sampler = getattr(p, "sampler", None)
        if type(getattr(sampler, "model_wrap_cfg", None)).__name__ == "CFGDenoiserKDiffusion":
            wrap = sampler.model_wrap
            if _is_flow_denoiser(wrap):
                wrap.set_model_sampling(state.model_sampling)
            else:   # the sampler was built before flow was switched on for this model
                sampler.model_wrap = sampler.model_wrap_cfg.model_wrap = \
                    make_denoiser(sd_model, state.model_sampling)
        if sampler is not None:
            self._set_pass_view(p, sd_model, state, sampler)
        message = self.refusal(p)
        if message is not None and sampler is not None and hasattr(sampler, "func"):
            sampler.func = _refusing(message, sampler.func)

    def _set_pass_view(self, p, sd_model, state, sampler):
        """Every pass: the schedule type computed over the flow range and mapped to VE. A txt2img pass
        of a deterministic sampler in FLOW_COORDINATES: the sampler integrates in flow coordinates on
        the unchanged VE denoiser (sampler_views.integrate_in_flow_coordinates). Changes this sampler
        object only: nothing outlives the pass."""
        label = sampler_views.pass_sampler_label(p)
        img2img = sampler_views.is_img2img_pass(p)
        flow_ms = state.flow_view()
        if self.refusal(p) is not None:
            pass    # refused: a forced run samples on the VE table's schedule, which the refusals were measured on
        elif _is_alter_sampler(sampler):
            core = _core_scheduler(p)
            if core is not None:    # reForge's own samplers know only their own names (else Normal)
                _core_schedule(sampler, core, flow_ms, state.model_sampling.ve_schedule)
            else:   # ldm_patched's calculate_sigmas on the flow view's model sampling, mapped to VE
                sampler_views.schedule_over_flow_range(sampler, _FlowUnetView(sampler.unet, flow_ms),
                                                       state.model_sampling.ve_schedule, attribute="unet")
        else:
            # Turbo reads inner_model.inner_model.forge_objects.unet.model.model_sampling: the flow view's too
            flow_denoiser = make_denoiser(_FlowSdModelView(sd_model, flow_ms), flow_ms)
            flow_denoiser.flow_view = flow_ms
            sampler_views.schedule_over_flow_range(sampler, flow_denoiser, state.model_sampling.ve_schedule)
        if not img2img and label in FLOW_COORDINATES and not sampler_views.pass_churn(p, label):
            sampler_views.integrate_in_flow_coordinates(sampler)
        sampler_views.brownian_noise_within_interval(sampler)

    def refusal(self, p):
        """Why flow sampling cannot be right for p's sampler or scheduler, or None."""
        names = [getattr(p, "sampler_name", None)]
        if getattr(p, "is_hr_pass", False) and getattr(p, "hr_sampler_name", None) not in (None, "Use same sampler"):
            names = [p.hr_sampler_name]
        for name in names:
            reason = REFUSED_SAMPLERS.get(name)
            if name in REFUSED_WITH_COMFY_BACKEND:
                from modules import shared
                if getattr(shared.opts, "sd_sampling", "A1111") == "ldm patched (Comfy)":
                    reason = REFUSED_WITH_COMFY_BACKEND[name]
            if name == "ODE Custom":
                from modules import shared
                solver = getattr(shared.opts, "ode_custom_solver", "dopri5")
                if solver in REFUSED_ODE_CUSTOM_SOLVERS:
                    reason = f"its solver (Settings: ODE Custom - Solver) is {solver}, which " + _ODE_CUSTOM
            if reason is not None:
                return refusal_message("sampler", name, reason)
        scheduler = getattr(p, "scheduler", None)
        if getattr(p, "is_hr_pass", False) and getattr(p, "hr_scheduler", None) not in (None, "Use same scheduler"):
            scheduler = p.hr_scheduler
        if scheduler in REFUSED_SCHEDULERS:
            return refusal_message("schedule type", scheduler, REFUSED_SCHEDULERS[scheduler])
        return None

    def conflict(self, p):
        """A message when something else would also rewrite the model's noise schedule."""
        runner = getattr(p, "scripts", None)
        args = getattr(p, "script_args", None) or ()
        for script in getattr(runner, "alwayson_scripts", ()) or ():
            name = (getattr(script, "name", None) or "").lower()
            if not name.startswith(ADVANCED_MODEL_SAMPLING_PREFIX):
                continue
            own = args[script.args_from:script.args_to] if script.args_from is not None else ()
            if own and bool(own[0]):
                return ("Flow sampling and reForge's Advanced Model Sampling are both enabled; they "
                        "would stack two model-sampling patches. Disable Advanced Model Sampling "
                        "(Flow sampling already sets the flow schedule and shift) or turn Flow "
                        "sampling off.")
        from modules import shared
        if getattr(shared.opts, "sd_noise_schedule", "Default") == "Zero Terminal SNR" or \
                getattr(getattr(p, "sd_model", None), "ztsnr", False):
            return ("Flow sampling cannot be combined with the Zero Terminal SNR noise schedule "
                    "(Settings > Sampler parameters): a flow model already reaches pure noise. "
                    "Set the noise schedule to Default or turn Flow sampling off.")
        return None


def _refusing(message, func=None):
    def refuse(*args, **kwargs):
        raise FlowSamplingRefused(message)
    refuse.unrefused = func     # what would have run (the tests sample it anyway to earn the refusal)
    return refuse
