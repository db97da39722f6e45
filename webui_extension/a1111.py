"""A1111 1.10 backend: a flow model presented to the webui through `sd_model.create_denoiser()`.

A1111's k-diffusion wrapper (`CFGDenoiserKDiffusion.inner_model`) builds its denoiser from
`shared.sd_model.create_denoiser()` when the model has one (SD3 uses this). We give the model one
that returns `FlowDenoiser`, a k-diffusion `DiscreteSchedule` over one of the core's tables. The
view is chosen per sampling pass (`before_sampling`, webui_extension.sampler_views):
  * deterministic samplers on a txt2img pass integrate in flow coordinates (`FlowModelSampling`):
    A1111's schedules and samplers see flow sigmas in [0, 1], as ComfyUI's ModelSamplingSD3 gives
    them, so they are as accurate as natively;
  * every other pass (stochastic samplers, img2img, hires, unknown samplers) runs in the VE view
    (`FlowVEModelSampling`), where a flow model is exactly a variance-exploding model, so
    k-diffusion's stochastic samplers, txt2img's `noise * sigmas[0]` and img2img's
    `x + noise * sigma` are right unchanged; A1111's schedule is computed over the flow range and
    mapped to VE (a Karras schedule over sigma_ve 0.003 .. 3e4 would put most steps at pure noise).
A pass without our script (another extension's processing object) keeps the VE view with the VE
table.

DDIM, DDIM CFG++, PLMS and UniPC never ask for `create_denoiser`: they step through
`sd_model.alphas_cumprod` and call `sd_model.apply_model(x, t)` expecting noise prediction. While
flow is on the model presents the same VE view to them as an eps model: `alphas_cumprod` (and
`alphas_cumprod_original`, which A1111 copies back before every batch) is the DDPM table of the VE
table, and `apply_model` called from outside `FlowDenoiser` reads (x, t) as the DDPM state at
`alphas_cumprod[t]`, runs the network on the flow state of that noise level and answers its noise.

What cannot be right is refused while flow is on, with a message the webui shows:
  * LCM (a sampler for consistency-distilled models), and any other sampler that reaches
    `apply_model` through a denoiser other than ours or A1111's timestep denoiser (a
    v-prediction wrapper would convert our noise again).
  * Align Your Steps (fixed SDXL sigmas 14.6 .. 0.03) and the "use old karras scheduler sigmas"
    option (0.1 .. 10): checked on the first denoiser call, when the processing object is known
    (an on_cfg_denoiser callback records it).

The patch is three instance attributes on the model (`create_denoiser`, `apply_model`, the state)
and the model's `alphas_cumprod` / `alphas_cumprod_original`; `remove` puts back exactly what was
there (the very objects). Nothing global in A1111 is changed by `apply`; the
samplers and the "Flow shift" scheduler are registered once, at script load, and do nothing unless
chosen (and refuse with a message when chosen with flow off).

This module imports torch, k_diffusion and the core at import time; A1111's `modules` only inside
functions, so the denoiser and the sampler wrappers run host-free on the package k-diffusion.
"""
import inspect
import threading

import k_diffusion.external
import torch

from model_sampling_flow import registry, ve_bridge, views
from model_sampling_flow.model_sampling import FlowModelSampling
from model_sampling_flow.schedule import TIMESTEP_MAPPINGS
from model_sampling_flow.settings import FlowSettings

from . import sampler_views
from .backend import Backend, FlowSamplingError, flow_model_sampling, latent_shape_for

STATE_ATTR = "flow_sampling_state"
PATCHED_ATTRS = ("create_denoiser", "apply_model", STATE_ATTR)
# the DDPM tables the timestep samplers read; buffers on SD1 models, plain attributes on SDXL
PATCHED_TABLES = ("alphas_cumprod", "alphas_cumprod_original")

TIMESTEP_SAMPLERS_MESSAGE = (
    "Flow sampling is on for this checkpoint, and this sampler (LCM, or a sampler that calls the model "
    "through a denoiser this extension does not know) does not sample through the model's denoiser or "
    "A1111's timestep denoiser (DDIM, PLMS, UniPC), so it cannot sample a rectified-flow model. LCM is "
    "for consistency-distilled models. Choose a k-diffusion sampler (Euler, Euler a, DPM++ 2M, ...), "
    "DDIM, PLMS, UniPC or a Flow sampler, or turn Flow sampling off.")
REFUSED_SCHEDULERS = {
    "Align Your Steps": "uses fixed noise levels tuned for eps-prediction SDXL (14.6 .. 0.03); a flow "
                        "model's noise levels are flow sigmas 0 .. 1",
}

_inside_denoiser = threading.local()


def _flow_scheduler_label():
    return registry.SCHEDULERS_BY_NAME[registry.DEFAULT_SCHEDULER].label


def _automatic_labels():
    """The schedule types "Automatic" gives the Flow samplers (their registry entries' scheduler), quoted."""
    labels = sorted({registry.SCHEDULERS_BY_NAME[entry.scheduler].label for entry in registry.SAMPLERS})
    return " or ".join(f"'{label}'" for label in labels)


def checkpoint_identity(sd_model):
    """What identifies the loaded checkpoint (A1111 may load new weights into the same model object)."""
    info = getattr(sd_model, "sd_checkpoint_info", None)
    return getattr(info, "filename", None) or getattr(sd_model, "sd_model_checkpoint", None)


class FlowState:
    """What `apply` attached to a model: the settings, the checkpoint, the attributes it replaced."""

    def __init__(self, settings, checkpoint, saved):
        self.settings = settings
        self.checkpoint = checkpoint
        self.saved = saved              # {attribute: value} of instance attributes we replaced
        self.latent_shape = None        # last latent shape seen (resolution-dependent shift)
        self.saved_tables = {}          # {table name: the object the model had} (PATCHED_TABLES)

    def model_sampling(self, view="ve"):
        shape = self.latent_shape
        if self.settings.shift_mode == "resolution" and shape is None:
            shape = self.settings.base_latent_shape     # until a generation says otherwise
        return self.settings.with_changes(view=view).model_sampling(shape)


class FlowDenoiser(k_diffusion.external.DiscreteSchedule):
    """k-diffusion denoiser for a flow model: `denoiser(x, sigma, cond=...) -> x0` in the view of its
    model sampling.

    VE view (FlowVEModelSampling, the default): x_ve, sigma_ve; flow view (FlowModelSampling, set per
    pass for deterministic samplers): flow x and sigma in [0, 1]. `sigmas` is that view's table
    (1000 entries, strictly increasing), which is what A1111's schedulers, `apply_refiner` and DPM
    fast/adaptive read. The network receives the flow input and the trainer's timestep; its output
    is read as velocity.
    """

    def __init__(self, sd_model, model_sampling):
        if not isinstance(model_sampling, FlowModelSampling):
            raise ValueError(f"model_sampling must be a FlowModelSampling or FlowVEModelSampling, "
                             f"got {model_sampling!r}")
        device = getattr(getattr(sd_model, "alphas_cumprod", None), "device", None) or torch.device("cpu")
        super().__init__(model_sampling.sigmas.to(device), quantize=False)
        self.inner_model = sd_model
        self.model_sampling = model_sampling
        self.processing = None          # set by observe_cfg_denoiser; None when not inside A1111

    def set_model_sampling(self, model_sampling):
        """Swap the view and table (per pass: the sampler's view, the resolution-dependent shift)."""
        self.model_sampling = model_sampling
        sigmas = model_sampling.sigmas.to(self.sigmas.device)
        self.sigmas = sigmas
        self.log_sigmas = sigmas.log()

    def forward(self, input, sigma, **kwargs):
        if self.processing is not None:
            message = refusal(self.processing)
            if message is not None:
                raise FlowSamplingError(message)
        sampling = self.model_sampling
        x = sampling.calculate_input(sigma, input)
        timestep = sampling.timestep(sigma)
        _inside_denoiser.depth = getattr(_inside_denoiser, "depth", 0) + 1
        try:
            velocity = self.inner_model.apply_model(x, timestep, **kwargs)
        finally:
            _inside_denoiser.depth -= 1
        return sampling.calculate_denoised(sigma, velocity, input)


_calling = threading.local()    # .refusal: set per CFG denoiser call by observe_cfg_denoiser


def _eps_apply_model(sd_model, original, state):
    """`apply_model` while flow is on: our denoiser's calls go through; others see an eps model.

    Outside FlowDenoiser, `apply_model(x, t, ...)` is a timestep sampler's call: x is the DDPM state
    at alpha_bar = alphas_cumprod[t] (log-linear between entries for UniPC's fractional t). The
    network runs on the flow state of that noise level (views.flow_from_vp) at the trainer's
    timestep, and its velocity is answered as noise (views.eps_from_velocity).
    """
    def apply_model(x, t, *args, **kwargs):
        if getattr(_inside_denoiser, "depth", 0) > 0:
            return original(x, t, *args, **kwargs)
        refused = getattr(_calling, "refusal", None)
        if refused:
            raise FlowSamplingError(refused)
        alpha_bar = views.alpha_bar_at(sd_model.alphas_cumprod, t).to(x.device)
        x_flow, sigma = views.flow_from_vp(x, alpha_bar)
        timestep = TIMESTEP_MAPPINGS[state.settings.timestep_mapping](sigma)
        velocity = original(x_flow, timestep.to(x.dtype), *args, **kwargs)
        return views.eps_from_velocity(x_flow, sigma.to(x.dtype), velocity)
    apply_model.flow_sampling_guard = True
    return apply_model


def _set_tables(sd_model, state):
    """The timestep samplers' DDPM table: the VE table of this pass's model sampling."""
    sigmas = state.model_sampling().sigmas.double()
    for name, saved in state.saved_tables.items():
        device = getattr(saved, "device", torch.device("cpu"))
        setattr(sd_model, name, views.alphas_cumprod_from_ve(sigmas).float().to(device))


def resolved_scheduler_label(p):
    """The scheduler label A1111's KDiffusionSampler.get_sigmas will use for this pass of `p`."""
    from modules import sd_schedulers
    name = (p.hr_scheduler if getattr(p, "is_hr_pass", False) else p.scheduler) or "Automatic"
    if name == "Automatic":
        sampler = getattr(p, "sampler", None)
        config = getattr(sampler, "config", None)
        name = config.options.get("scheduler", None) if config is not None else None
    scheduler = sd_schedulers.schedulers_map.get(name) if name else None
    return scheduler.label if scheduler is not None else "Automatic"


def refusal(p):
    """Why this pass of `p` cannot sample a flow model, or None."""
    if getattr(p, "sampler_noise_scheduler_override", None) is not None:
        return None     # a script supplies the sigmas itself
    from modules.shared import opts
    label = resolved_scheduler_label(p)
    if label in REFUSED_SCHEDULERS:
        return (f"Flow sampling is on for this checkpoint; the '{label}' schedule type "
                f"{REFUSED_SCHEDULERS[label]}. Choose another schedule type (Automatic, "
                f"{_flow_scheduler_label()}, Karras, Exponential, SGM Uniform, Simple, Normal, ...), "
                f"or turn Flow sampling off.")
    if getattr(opts, "use_old_karras_scheduler_sigmas", False):
        return ("Flow sampling is on for this checkpoint, and the setting 'Use old karras scheduler sigmas "
                "(0.1 to 10)' limits every schedule to sigma 10, far below a flow model's top noise level. "
                "Turn that setting off, or turn Flow sampling off.")
    return None


def observe_cfg_denoiser(params):
    """on_cfg_denoiser callback: tell our denoiser which processing object it serves (checks only),
    and tell the eps presentation of `apply_model` whether this CFG denoiser's wrapper may use it.

    Runs before every CFG denoiser's model calls; exceptions here are swallowed by the webui, so the
    refusal is raised by `apply_model` when the refused wrapper calls it.
    """
    cfg_denoiser = getattr(params, "denoiser", None)
    wrapped = getattr(cfg_denoiser, "model_wrap", None)
    _calling.refusal = None
    if isinstance(wrapped, FlowDenoiser):
        wrapped.processing = cfg_denoiser.p
        return
    try:
        from modules import sd_samplers_timesteps
    except ImportError:
        return
    if type(wrapped) is not sd_samplers_timesteps.CompVisTimestepsDenoiser:
        _calling.refusal = TIMESTEP_SAMPLERS_MESSAGE


class A1111Backend(Backend):
    name = "a1111"

    @classmethod
    def detect(cls, sd_model):
        """A1111's k-diffusion wrapper asks the model for `create_denoiser`, and the model class has none."""
        try:
            from modules import sd_samplers_kdiffusion
        except ImportError:
            return False
        wrapper = getattr(sd_samplers_kdiffusion, "CFGDenoiserKDiffusion", None)
        prop = getattr(wrapper, "inner_model", None)
        try:
            offered = "create_denoiser" in inspect.getsource(prop.fget)
        except (AttributeError, OSError, TypeError):
            offered = False
        # a model class with its own create_denoiser (SD3) already samples its own way
        return offered and sd_model is not None and not hasattr(type(sd_model), "create_denoiser") \
            and hasattr(sd_model, "apply_model")

    @classmethod
    def model_sampling_of(cls, denoiser):
        return denoiser.model_sampling if isinstance(denoiser, FlowDenoiser) else None

    def refusal(self, p):
        return sampler_refusal(getattr(p, "sampler_name", None))

    def apply(self, sd_model, settings):
        if not isinstance(settings, FlowSettings):
            raise ValueError(f"settings must be a FlowSettings, got {settings!r}")
        # A1111's samplers and img2img rule are right only in the VE view
        settings = settings.with_changes(view="ve")
        state = sd_model.__dict__.get(STATE_ATTR)
        if state is None:
            saved = {name: sd_model.__dict__[name] for name in PATCHED_ATTRS if name in sd_model.__dict__}
            state = FlowState(settings, checkpoint_identity(sd_model), saved)
            state.saved_tables = {name: getattr(sd_model, name) for name in PATCHED_TABLES
                                  if getattr(sd_model, name, None) is not None}
            guard = _eps_apply_model(sd_model, sd_model.apply_model, state)

            def create_denoiser():
                return FlowDenoiser(sd_model, state.model_sampling())

            setattr(sd_model, "create_denoiser", create_denoiser)
            setattr(sd_model, "apply_model", guard)
            setattr(sd_model, STATE_ATTR, state)
        state.settings = settings
        state.checkpoint = checkpoint_identity(sd_model)
        _set_tables(sd_model, state)
        _calling.refusal = None     # a refusal belongs to the CFG denoiser call that set it

    def remove(self, sd_model):
        if sd_model is None:
            return
        state = sd_model.__dict__.get(STATE_ATTR)
        if state is None:
            return
        for name in PATCHED_ATTRS:
            if name in state.saved:
                setattr(sd_model, name, state.saved[name])
            elif name in sd_model.__dict__:
                delattr(sd_model, name)
        for name, table in state.saved_tables.items():
            setattr(sd_model, name, table)

    def active(self, sd_model):
        state = None if sd_model is None else sd_model.__dict__.get(STATE_ATTR)
        return None if state is None else state.settings

    def state(self, sd_model):
        return None if sd_model is None else sd_model.__dict__.get(STATE_ATTR)

    def before_sampling(self, p):
        """Per pass: the sampler's view (flow for deterministic samplers on txt2img, else VE with the
        schedule computed over the flow range), the resolution-dependent shift (and with it the
        timestep samplers' DDPM table), Brownian noise inside its interval."""
        sd_model = getattr(p, "sd_model", None)
        state = self.state(sd_model)
        if state is None:
            return
        if state.settings.shift_mode == "resolution":
            state.latent_shape = latent_shape_for(p, state.settings.vae_factor)
            _set_tables(sd_model, state)
        sampler = getattr(p, "sampler", None)
        wrapped = getattr(getattr(sampler, "model_wrap_cfg", None), "model_wrap", None)
        if not isinstance(wrapped, FlowDenoiser):
            return
        view = pass_view(p)
        wrapped.processing = p          # refusals are known before the first model call
        wrapped.set_model_sampling(state.model_sampling(view))
        if view == sampler_views.VE:
            sampler_views.schedule_over_flow_range(
                sampler, FlowDenoiser(p.sd_model, state.model_sampling(sampler_views.FLOW)),
                wrapped.model_sampling.ve_schedule)
        sampler_views.brownian_noise_within_interval(sampler)

    def conflict(self, p):
        return None


def pass_view(p):
    """The view this sampling pass of `p` runs in (webui_extension.sampler_views)."""
    label = sampler_views.pass_sampler_label(p)
    return sampler_views.view_for_sampler(label, img2img=sampler_views.is_img2img_pass(p),
                                          churn=sampler_views.pass_churn(p, label))


# ---- samplers from the core's table, run on the sigmas and x a webui hands a k-diffusion sampler ----
# (registered wherever the webui has A1111's k-diffusion layout: A1111, reForge with its
# repositories/k-diffusion, Forge; they find the flow model through the backend contract)

def make_webui_sampler(entry):
    """A k-diffusion-signature function over VE sigmas that runs `entry.function` in flow coordinates.

    The core's ve_bridge translates the state, the schedule, every model call, callback and noise
    request, so the webui's denoiser and seeds are used unchanged and the result is x_ve. The options
    the webui passes (eta from its settings) are checked against the entry's (registry.Option).
    """
    accepts = set(entry.option_names)

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
        model_sampling = flow_model_sampling(model)     # any webui's denoiser with flow on (backend contract)
        if model_sampling is None:
            raise FlowSamplingError(
                f"The '{entry.label}' sampler samples rectified-flow models and needs Flow sampling on "
                f"(Flow sampling accordion: On, or Auto with a checkpoint marked rectified flow). Choose "
                f"another sampler for this checkpoint.")
        denoiser = model if isinstance(model, FlowDenoiser) else getattr(model, "model_wrap", None)
        processing = denoiser.processing if isinstance(denoiser, FlowDenoiser) else None   # A1111's own only
        if processing is not None:      # e.g. Align Your Steps: refuse before checking its sigmas
            message = refusal(processing)
            if message is not None:
                raise FlowSamplingError(message)
        kwargs = entry.check_options({name: value for name, value in options.items()
                                      if name in accepts and name != "noise_sampler"})
        if model_sampling.view == "flow":      # deterministic on a txt2img pass: native flow
            return entry.function(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
                                  **kwargs)
        noise_sampler = options.get("noise_sampler") if entry.takes_noise_sampler else None
        if entry.takes_noise_sampler and noise_sampler is None:
            processing = getattr(model, "p", None)
            rng = getattr(processing, "rng", None)
            if rng is not None:     # the webui's per-image seeds, as TorchHijack gives Euler a
                noise_sampler = lambda sigma, sigma_next: rng.next().to(x)  # noqa: E731
        return ve_bridge.sample_in_ve(entry.function, model, x, sigmas, extra_args=extra_args, callback=callback,
                                      disable=disable, noise_sampler=noise_sampler, **kwargs)

    parameters = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                  for name in ("model", "x", "sigmas")]
    parameters += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
                   for name in ("extra_args", "callback", "disable")]
    # A1111 passes eta / noise_sampler only to functions whose signature names them
    parameters += [inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=option.default)
                   for option in entry.options if option.name in ("eta", "noise_sampler")]
    parameters.append(inspect.Parameter("options", inspect.Parameter.VAR_KEYWORD))
    sample.__signature__ = inspect.Signature(parameters)
    sample.__name__ = sample.__qualname__ = f"sample_{entry.name}"
    sample.__doc__ = f"{entry.label} for A1111: {entry.function.__doc__.splitlines()[0]}"
    sample.flow_entry = entry
    return sample


_WEBUI_FUNCTIONS = {}    # registry entry -> its webui function, made once (registration is idempotent)


def _webui_function(entry, make):
    if entry not in _WEBUI_FUNCTIONS:
        _WEBUI_FUNCTIONS[entry] = make(entry)
    return _WEBUI_FUNCTIONS[entry]


WEBUI_SAMPLERS = tuple((entry, _webui_function(entry, make_webui_sampler)) for entry in registry.SAMPLERS)


def sampler_options(entry):
    """A1111 SamplerData options for a core sampler entry (the webuis' own keys, from the entry)."""
    options = {"scheduler": entry.scheduler}
    if entry.model_calls_per_step > 1:
        options["second_order"] = True      # the webuis count such a sampler's steps twice
    if entry.stochastic:
        options["uses_ensd"] = True
        if entry.takes_noise_sampler:
            options["brownian_noise"] = True
    return options


def make_webui_scheduler(entry):
    """A webui scheduler function (n, sigma_min, sigma_max, inner_model, device) for a core scheduler
    entry: the entry's sigmas in the view of the flow denoiser's model sampling (needs flow on)."""
    def scheduler(n, sigma_min, sigma_max, inner_model, device):
        model_sampling = flow_model_sampling(inner_model)
        if model_sampling is None:
            raise FlowSamplingError(
                f"The '{entry.label}' schedule type is a rectified-flow schedule (the Flow samplers' "
                f"Automatic gives them {_automatic_labels()}) and needs Flow sampling on "
                f"(Flow sampling accordion: On, or Auto with a checkpoint marked rectified flow). Choose "
                f"another sampler and schedule type for this checkpoint.")
        return entry.function(model_sampling, n).to(device)

    scheduler.__name__ = scheduler.__qualname__ = f"{entry.name}_scheduler"
    scheduler.flow_entry = entry
    return scheduler


WEBUI_SCHEDULERS = tuple((entry, _webui_function(entry, make_webui_scheduler)) for entry in registry.SCHEDULERS)
flow_shift_scheduler = _webui_function(registry.SCHEDULERS_BY_NAME["flow_shift"], make_webui_scheduler)


def register_samplers():
    """Add the Flow samplers to A1111's sampler list (idempotent: by label)."""
    from modules import sd_samplers, sd_samplers_common, sd_samplers_kdiffusion
    added = []
    for entry in registry.SAMPLERS:
        if entry.label in sd_samplers.all_samplers_map:
            continue
        function = _webui_function(entry, make_webui_sampler)
        data = sd_samplers_common.SamplerData(
            entry.label,
            lambda model, function=function: sd_samplers_kdiffusion.KDiffusionSampler(function, model),
            [entry.name], sampler_options(entry))
        sd_samplers.all_samplers.append(data)
        sd_samplers.all_samplers_map[entry.label] = data
        added.append(entry.label)
    if added:
        sd_samplers.set_samplers()
        getattr(sd_samplers.get_sampler_and_scheduler, "cache_clear", lambda: None)()
    return added


def register_schedulers():
    """Add the core's schedulers (registry.SCHEDULERS) to the webui's schedule types (idempotent: by
    name). A1111, reForge and Forge share this path (modules.sd_schedulers)."""
    from modules import sd_samplers, sd_schedulers
    added = []
    for entry in registry.SCHEDULERS:
        if entry.name in sd_schedulers.schedulers_map:
            continue
        function = _webui_function(entry, make_webui_scheduler)
        scheduler = sd_schedulers.Scheduler(entry.name, entry.label, function, need_inner_model=True)
        sd_schedulers.schedulers.append(scheduler)
        sd_schedulers.schedulers_map[entry.name] = scheduler
        sd_schedulers.schedulers_map[entry.label] = scheduler
        added.append(entry.label)
    if added:
        sd_samplers.get_sampler_and_scheduler.cache_clear()
    return added


def sampler_refusal(sampler_name):
    """A message when `sampler_name` cannot sample a flow model in A1111 (checked early by the script)."""
    from modules import sd_samplers, sd_samplers_kdiffusion
    config = sd_samplers.find_sampler_config(sampler_name)
    if config is None:
        return None
    from modules import sd_samplers_timesteps
    flow_labels = {entry.label for entry in registry.SAMPLERS}
    if config in sd_samplers_kdiffusion.samplers_data_k_diffusion or config.name in flow_labels \
            or config in sd_samplers_timesteps.samplers_data_timesteps:
        return None
    return TIMESTEP_SAMPLERS_MESSAGE


__all__ = ["A1111Backend", "FlowDenoiser", "FlowState", "WEBUI_SAMPLERS", "WEBUI_SCHEDULERS", "make_webui_sampler",
           "make_webui_scheduler",
           "register_samplers", "register_schedulers", "observe_cfg_denoiser", "refusal",
           "flow_shift_scheduler", "sampler_refusal", "checkpoint_identity"]
