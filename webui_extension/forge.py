"""Forge backend: flow sampling through the KModel's `predictor` (lllyasviel's Forge; Forge Neo shares it).

Forge's model is a `KModel` inside every `UnetPatcher` of `sd_model.forge_objects*`; all clones share
that one KModel. Its `predictor` decides everything a sampler needs:

* `KModel.apply_model` turns (x, sigma) into network input, the network timestep and x0 with it,
  read at call time;
* the k-diffusion samplers' schedule is `ForgeScheduleLinker(shared.sd_model.forge_objects.unet.model
  .predictor)`, built when `create_sampler` runs (txt2img, each hires pass, img2img `init`): sigmas,
  `sigma(t)` / `timestep(sigma)` for the schedule types, and txt2img / img2img `noise_scaling`;
* DDIM, PLMS, UniPC and LCM derive `alphas_cumprod = 1 / (1 + sigma^2)` from `predictor.sigmas`.

So flow on means one attribute: the shared KModel's `predictor` becomes `ForgeFlowPredictor`, the
core's VE view of the flow model. A patch on a UnetPatcher clone (`add_object_patch`) would not do:
Forge applies object patches only inside sampling, after `create_sampler` took the schedule (the
first pass would run on the eps schedule). Because the KModel is shared, hires fix, img2img, inpaint
and a second processing object made by another extension (ADetailer) all sample the flow way.
In the VE view, Forge's samplers (their VE branches: Euler a's RF branch is keyed on Flux's
predictor class), its img2img rule `x + sigma * noise` and the timestep samplers' alpha-bar table
are exact for a flow model.

`remove()` puts the very predictor object back (and `alphas_cumprod` as it was), so output is
bit-identical to never having enabled flow.

Forge Neo (Haoming02/sd-webui-forge-classic, branch neo) builds the same linker from the same
attribute. When a model's predictor is already a flow predictor (Neo's own rectified-flow option for
SDXL, or an SD3 / Flux model), this backend defers to it and says so instead of stacking.
"""
import inspect
import weakref

import torch

from model_sampling_flow.model_sampling import FlowModelSampling, FlowVEModelSampling
from model_sampling_flow.settings import FlowSettings

from . import sampler_views
from .backend import (Backend, FlowSamplingError, latent_shape_for, model_sampling_for_pass,
                      refusal_message)

FORGE_CONTAINERS = ("forge_objects_original", "forge_objects_after_applying_lora", "forge_objects")
STATE_ATTRIBUTE = "_flow_sampling_forge"
_MISSING = object()

# Forge's own predictor classes (backend/modules/k_prediction.py) that already sample a flow
_FLOW_PREDICTORS = ("PredictionFlow", "PredictionDiscreteFlow", "PredictionFlux")

_VE_CONSISTENCY = ("is the sampler for latent-consistency-distilled models: it restarts every step from the "
                   "denoised estimate plus fresh noise on a 50-level eps table, which misses the distribution "
                   "of a model that is not consistency-distilled")
# Measured on the exact RF field (docs/forge.md); the reasons say why they cannot be right.
REFUSED_SAMPLERS = {
    "LCM": _VE_CONSISTENCY,
}
# Listed by Forge Neo (from its source; not run here): its flow-parameterised ancestral sampler divides
# by 1 - sigma, which the VE view's sigmas (up to ~3e4) break
_NEO_RF = ("is written for the native flow parameterisation (sigma <= 1, x = (1 - sigma) x0 + sigma noise); "
           "Flow sampling runs the webui's samplers on the VE view (sigma up to ~3e4), where Euler a and the "
           "DPM++ SDE samplers are the exact stochastic samplers")
REFUSED_SAMPLERS.update({"DPM++ 2s a RF": _NEO_RF, "Flux Realistic": _NEO_RF})
# At CFG scale 1 Forge skips the unconditional prediction and hands DDIM CFG++ zeros in its place, so
# its noise direction becomes x / sigma, for any model; at any other CFG scale it is right.
REFUSED_AT_CFG_1 = {
    "DDIM CFG++": "at CFG scale 1 Forge skips the unconditional prediction this sampler steps with (it gets "
                  "zeros instead, for any model); use a CFG scale other than 1",
}
_FIXED_LEVELS = ("uses fixed noise levels tuned for SDXL's eps schedule (14.6 .. 0.03): a flow model starts far "
                 "higher, and starting at 14.6 leaves a bias in the image that more steps do not remove")
REFUSED_SCHEDULERS = {
    "Align Your Steps": _FIXED_LEVELS,
    "Align Your Steps GITS": _FIXED_LEVELS,
    "Align Your Steps 11": _FIXED_LEVELS,
    "Align Your Steps 32": _FIXED_LEVELS,
}
FIXED_LEVEL_SCHEDULERS = frozenset(name for name, reason in REFUSED_SCHEDULERS.items() if reason is _FIXED_LEVELS)
# Beta (linear in sigma between the table's ends) is right: every schedule type is computed over the flow
# table (sigma_min .. 1) and mapped to VE (before_sampling), so it is Beta in flow sigma, as natively.
OLD_KARRAS_MESSAGE = ("Flow sampling: the setting 'Use old karras scheduler sigmas (0.1 to 10)' limits every "
                      "schedule to sigma 10, far below a flow model's top noise level. Turn that setting off "
                      "or turn Flow sampling off.")
ZTSNR_MESSAGE = ("Flow sampling cannot be combined with the Zero Terminal SNR noise schedule (Settings > Sampler "
                 "parameters): a flow model already reaches pure noise. Set the noise schedule to Default or "
                 "turn Flow sampling off.")

_patched_models = weakref.WeakSet()


class _ForgePredictorProtocol:
    """What Forge's predictor protocol (k_prediction.AbstractPrediction) adds to a core model sampling.

    sigma(timestep) is floored at the table's smallest sigma: Forge's linker asks for sigma(0) as the
    last step of "Automatic" and "Uniform" (its eps predictor interpolates its table there); the
    continuous flow scale would give 0, a second zero sigma and a division by zero in the last step.
    """

    prediction_type = "epsilon"   # Forge reads it only to choose formulas these classes override
    sigma_data = 1.0

    def sigma(self, timestep):
        sigma = super().sigma(timestep)
        if isinstance(sigma, torch.Tensor):
            return torch.maximum(sigma, self.sigma_min.to(sigma))
        return max(sigma, float(self.sigma_min))


class ForgeFlowPredictor(_ForgePredictorProtocol, FlowVEModelSampling):
    """The core's VE model sampling speaking Forge's predictor protocol: the predictor on the KModel."""

    def retarget(self, model_sampling):
        """Take `model_sampling`'s shift, mapping and table in place (linkers already hold this object)."""
        self.shift, self.timestep_mapping = model_sampling.shift, model_sampling.timestep_mapping
        self.sigmas = model_sampling.sigmas.to(self.sigmas.device)

    def set_sigmas(self, sigmas):
        # processing calls it for the Zero Terminal SNR schedule, which conflict() refuses first
        raise FlowSamplingError(ZTSNR_MESSAGE)


class ForgeFlowTable(_ForgePredictorProtocol, FlowModelSampling):
    """The same flow model in native flow sigma, for one `get_sigmas` call only: Forge's schedule types
    computed over the flow table (sigma_min .. 1) instead of the VE table (.. ~3e4); the result is then
    mapped to the VE view (ForgeFlowPredictor.ve_schedule). Never a model's predictor."""


def flow_table_linker(predictor):
    """A ForgeScheduleLinker over the flow table of `predictor`'s shift and mapping, standing in for the
    sampler's `model_wrap` during `get_sigmas` (sampler_views.schedule_over_flow_range).

    Forge's schedule types read `sigmas`, `get_sigmas(n)`, `sigma_to_t` / `t_to_sigma` from it; Turbo
    reads `inner_model.forge_objects.unet.model.predictor.sigma`, which this linker's `inner_model`
    answers with the same flow table.
    """
    import types
    import k_diffusion.external
    table = ForgeFlowTable(predictor.shift, predictor.timestep_mapping).to(predictor.sigmas.device)
    linker = k_diffusion.external.ForgeScheduleLinker(table)
    unet = types.SimpleNamespace(model=types.SimpleNamespace(predictor=table))
    linker.inner_model = types.SimpleNamespace(forge_objects=types.SimpleNamespace(unet=unet))
    return linker


class _State:
    def __init__(self, settings, predictor, originals, alphas_cumprod):
        self.settings = settings
        self.predictor = predictor
        self.originals = originals          # [(KModel, the predictor it had)]
        self.alphas_cumprod = alphas_cumprod


def _kmodels(sd_model):
    """The distinct KModels behind the model's forge_objects containers (one, unless someone swapped it)."""
    seen = []
    for name in FORGE_CONTAINERS:
        kmodel = getattr(getattr(getattr(sd_model, name, None), "unet", None), "model", None)
        if kmodel is not None and all(kmodel is not k for k in seen):
            seen.append(kmodel)
    return seen


def _source(function):
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return ""


def webui_mechanism():
    """None when the running webui builds its samplers' schedule from the KModel's predictor, else why not."""
    try:
        import k_diffusion.external
        from modules import sd_samplers_kdiffusion
    except ImportError as error:
        return f"no Forge sampler modules ({error})"
    if not hasattr(k_diffusion.external, "ForgeScheduleLinker"):
        return "k_diffusion has no ForgeScheduleLinker"
    wrapper = getattr(sd_samplers_kdiffusion, "CFGDenoiserKDiffusion", None)
    prop = getattr(wrapper, "inner_model", None)
    text = _source(getattr(prop, "fget", None))
    if "ForgeScheduleLinker" not in text or ".predictor" not in text:
        return "its k-diffusion samplers do not take their schedule from the model's predictor"
    return None


def model_mechanism(sd_model):
    """None when `sd_model` is an SDXL model whose KModel samples through a replaceable eps/v predictor."""
    kmodels = _kmodels(sd_model)
    if not kmodels or not all(hasattr(type(sd_model), name) or hasattr(sd_model, name)
                              for name in FORGE_CONTAINERS):
        return "the model has no forge_objects UNet"
    for kmodel in kmodels:
        predictor = getattr(kmodel, "predictor", None)
        if not isinstance(predictor, torch.nn.Module) or "self.predictor" not in _source(type(kmodel).apply_model):
            return "the model's UNet does not sample through a predictor"
    if not getattr(sd_model, "is_sdxl", False):
        return "the loaded model is not SDXL (flow sampling is for rectified-flow SDXL checkpoints)"
    return None


def native_flow_predictor(sd_model):
    """The class name of a flow predictor the webui already set on the model (not ours), else None."""
    for kmodel in _kmodels(sd_model):
        predictor = getattr(kmodel, "predictor", None)
        if not isinstance(predictor, ForgeFlowPredictor) and type(predictor).__name__ in _FLOW_PREDICTORS:
            return type(predictor).__name__
    return None


class ForgeBackend(Backend):
    name = "Forge"

    @classmethod
    def detect(cls, sd_model):
        return sd_model is not None and webui_mechanism() is None and model_mechanism(sd_model) is None

    @classmethod
    def rejection(cls, sd_model):
        return webui_mechanism() or model_mechanism(sd_model)

    @classmethod
    def model_sampling_of(cls, denoiser):
        predictor = getattr(denoiser, "predictor", None)    # a ForgeScheduleLinker
        return predictor if isinstance(predictor, (ForgeFlowPredictor, ForgeFlowTable)) else None

    # model-level lifecycle
    def apply(self, sd_model, settings: FlowSettings, latent_shape=None) -> None:
        if not isinstance(settings, FlowSettings):
            raise ValueError(f"settings must be a FlowSettings, got {settings!r}")
        settings = settings.with_changes(view="ve")
        for other in list(_patched_models):
            if other is not sd_model:       # checkpoint changed: only the loaded model keeps flow
                self.remove(other)
        model_sampling = model_sampling_for_pass(settings, latent_shape)
        state = getattr(sd_model, STATE_ATTRIBUTE, None)
        if state is None:
            predictor = ForgeFlowPredictor(model_sampling.shift, model_sampling.timestep_mapping)
            originals = [(kmodel, kmodel.predictor) for kmodel in _kmodels(sd_model)]
            device = originals[0][1].sigmas.device if originals else torch.device("cpu")
            predictor.to(device)
            state = _State(settings, predictor, originals, sd_model.__dict__.get("alphas_cumprod", _MISSING))
            setattr(sd_model, STATE_ATTRIBUTE, state)
            _patched_models.add(sd_model)
        else:
            state.settings = settings
            state.predictor.retarget(model_sampling)
        for kmodel in _kmodels(sd_model):
            if kmodel.predictor is not state.predictor:
                if all(kmodel is not k for k, _ in state.originals):
                    state.originals.append((kmodel, kmodel.predictor))
                kmodel.predictor = state.predictor

    def remove(self, sd_model) -> None:
        state = getattr(sd_model, STATE_ATTRIBUTE, None) if sd_model is not None else None
        if state is None:
            return
        for kmodel, original in state.originals:
            if kmodel.predictor is state.predictor:
                kmodel.predictor = original
        # DDIM / PLMS / UniPC set sd_model.alphas_cumprod from the predictor when created
        if state.alphas_cumprod is _MISSING:
            sd_model.__dict__.pop("alphas_cumprod", None)
        else:
            sd_model.alphas_cumprod = state.alphas_cumprod
        delattr(sd_model, STATE_ATTRIBUTE)
        _patched_models.discard(sd_model)

    def active(self, sd_model):
        state = getattr(sd_model, STATE_ATTRIBUTE, None) if sd_model is not None else None
        return None if state is None else state.settings

    def predictor(self, sd_model):
        """The ForgeFlowPredictor in force for `sd_model`, or None."""
        state = getattr(sd_model, STATE_ATTRIBUTE, None) if sd_model is not None else None
        return None if state is None else state.predictor

    # per-sampling
    def before_sampling(self, p) -> None:
        """Per pass: retarget the predictor (resolution-dependent shift; in place, so the sampler p
        already built sees it); make sampling stop with the message when it cannot be right; else
        compute the pass's schedule type over the flow table and map it to VE, and let deterministic
        samplers integrate in flow coordinates (webui_extension.sampler_views; instance attributes
        of this pass's sampler only)."""
        state = getattr(p.sd_model, STATE_ATTRIBUTE, None)
        if state is None:
            return
        if state.settings.shift_mode != "static":
            shape = latent_shape_for(p, state.settings.vae_factor)
            state.predictor.retarget(model_sampling_for_pass(state.settings, shape))
        message = self.refusal(p)
        sampler = getattr(p, "sampler", None)
        if message is not None:
            if hasattr(sampler, "func"):
                sampler.func = _refusing(message)
            return
        if sampler is None or not hasattr(sampler, "get_sigmas") or not hasattr(sampler, "model_wrap"):
            return      # not a k-diffusion sampler (DDIM, PLMS, UniPC step through alphas_cumprod)
        if sampler_views.pass_scheduler_label(p) not in FIXED_LEVEL_SCHEDULERS:   # those ignore the model's table
            sampler_views.schedule_over_flow_range(sampler, flow_table_linker(state.predictor),
                                                   state.predictor.ve_schedule)
        label = sampler_views.pass_sampler_label(p)
        if integrates_in_flow_coordinates(label) and not sampler_views.pass_churn(p, label):
            sampler_views.integrate_in_flow_coordinates(sampler)
        sampler_views.brownian_noise_within_interval(sampler)

    def refusal(self, p):
        from modules import shared
        for name in _with_hires_pass(p, "sampler_name", "hr_sampler_name", "Use same sampler"):
            if name in REFUSED_SAMPLERS:
                return refusal_message("sampler", name, REFUSED_SAMPLERS[name])
            if name in REFUSED_AT_CFG_1 and getattr(p, "cfg_scale", None) == 1:
                return refusal_message("sampler", name, REFUSED_AT_CFG_1[name])
        for name in _with_hires_pass(p, "scheduler", "hr_scheduler", "Use same scheduler"):
            if name in REFUSED_SCHEDULERS:
                return refusal_message("schedule type", name, REFUSED_SCHEDULERS[name])
        if getattr(shared.opts, "use_old_karras_scheduler_sigmas", False):
            return OLD_KARRAS_MESSAGE
        return None

    def conflict(self, p):
        from modules import shared
        native = native_flow_predictor(getattr(p, "sd_model", None))
        if native is not None:
            return (f"This webui already samples the checkpoint as a rectified flow (its predictor is {native}, "
                    f"e.g. Forge Neo's own option for rectified-flow SDXL); Flow sampling leaves it unchanged "
                    f"instead of stacking a second flow schedule. Turn one of them off.")
        if getattr(shared.opts, "sd_noise_schedule", "Default") == "Zero Terminal SNR" or \
                getattr(getattr(getattr(p, "sd_model", None), "model_config", None), "ztsnr", False):
            return ZTSNR_MESSAGE
        return None


def _with_hires_pass(p, attribute, hires_attribute, same):
    """[p.<attribute>], plus p.<hires_attribute> when hires fix is on and names its own (not `same`)."""
    values = [getattr(p, attribute, None)]
    hires = getattr(p, hires_attribute, None)
    if getattr(p, "enable_hr", False) and hires not in (None, same):
        values.append(hires)
    return values


def integrates_in_flow_coordinates(label):
    """True for the deterministic k-diffusion samplers Forge lists (they see the model only as
    (x, sigma) -> denoised); the Flow samplers bridge themselves, the rest stay in the VE view."""
    return not sampler_views.is_core_sampler(label) and sampler_views.sampler_kind(label) == sampler_views.DETERMINISTIC_KIND


def _refusing(message):
    def refuse(*args, **kwargs):
        raise FlowSamplingError(message)
    return refuse
