"""The contract between the webui script and one webui's patching mechanism.

The script (`scripts/flow_sampling.py`) decides *whether* flow sampling is on for the loaded
checkpoint (Off / Auto / On, infotext, XYZ axes); a backend decides *how* the running webui is
made to sample the flow way. One backend per mechanism:

  * `webui_extension.a1111.A1111Backend`: A1111 1.10's `sd_model.create_denoiser()` hook, through
    which every k-diffusion sampler, scheduler, img2img and hires pass gets its denoiser.
  * `webui_extension.reforge.ReforgeBackend`: reForge's UNet patcher (`sd_model.forge_objects`),
    whose ldm_patched `model_sampling` object decides the math.
  * `webui_extension.forge.ForgeBackend`: Forge's (lllyasviel, and Forge Neo's) KModel `predictor`,
    from which every sampler's schedule (`ForgeScheduleLinker`) and the network call are made.

`select_backend(sd_model)` returns the first backend whose `detect` is true. Each `detect` checks
the mechanism it patches (the webui's own sampler code and the model's objects), so the order does
not decide, and the webuis that share the `forge_objects` containers are told apart. Backends are
chosen by what the running webui offers, never by version strings. When none applies,
`why_no_backend(sd_model)` says why, from each backend's `rejection`.

Lifecycle the script relies on (every backend must keep it):
  * `apply(sd_model, settings)` turns flow on *for this model object*. The patch lives on the model,
    not on a processing object, so hires fix, img2img, inpaint and a second pass started by another
    extension (ADetailer builds its own processing object and does not pass our script arguments)
    all sample the flow way until `remove`. Calling `apply` again replaces the settings (no
    stacking).
  * `remove(sd_model)` restores the model exactly as it was before the first `apply` (same
    attributes, same objects); it is idempotent and safe on a model that was never patched.
  * `active(sd_model)` returns the FlowSettings in force, or None when flow is off for the model.
  * `before_sampling(p)` runs once per sampling pass of a processing object that carries our script
    (A1111: `process_before_every_sampling`); backends that rebuild their patch per generation
    (reForge clones its UNet patcher) do it here. It must be harmless for a model with flow off.
  * `conflict(p)` returns a user-facing message when another mechanism that changes the model's
    sampling (reForge's built-in Advanced Model Sampling) is also on for `p`, else None. The script
    then refuses to stack patches and reports the message.
  * `refusal(p)` returns a user-facing message when `p`'s sampler or schedule type cannot sample a
    flow model in this webui (the script reports it; sampling then stops with it), else None.
  * `model_sampling_of(denoiser)` (class method): the core model sampling behind the denoiser this
    webui hands a sampler function, when flow is on for it, else None. The Flow samplers and the
    Flow shift schedule type use it in every webui.
Errors meant for the user are raised as `FlowSamplingError`, whose text the webui shows.

Shared per-pass helpers live here once: `latent_shape_for(p)` (the latent a pass samples),
`model_sampling_for_pass(settings, p)` and `refusal_message(kind, name, reason)`.
"""
import importlib

from model_sampling_flow.model_sampling import FlowVEModelSampling
from model_sampling_flow.schedule import SDXL_VAE_FACTOR
from model_sampling_flow.settings import FlowSettings


class FlowSamplingError(RuntimeError):
    """A refusal or misuse the user has to act on; the message says what to change."""


class Backend:
    """One webui mechanism for making a model sample as a rectified flow."""

    name = "abstract"

    @classmethod
    def detect(cls, sd_model) -> bool:
        """True when the running webui offers this mechanism for `sd_model`."""
        raise NotImplementedError

    def apply(self, sd_model, settings: FlowSettings) -> None:
        """Flow sampling on for `sd_model` with `settings` until `remove`."""
        raise NotImplementedError

    def remove(self, sd_model) -> None:
        """Restore `sd_model` exactly; idempotent."""
        raise NotImplementedError

    def active(self, sd_model):
        """The FlowSettings in force for `sd_model`, or None."""
        raise NotImplementedError

    def before_sampling(self, p) -> None:
        """Per-sampling-pass hook for a processing object that carries our script."""
        return None

    def conflict(self, p):
        """A message when another sampling patch is also active for `p`, else None."""
        return None

    def refusal(self, p):
        """A message when `p`'s sampler or schedule type cannot sample a flow model here, else None."""
        return None

    @classmethod
    def rejection(cls, sd_model):
        """Why this backend does not apply to `sd_model` in the running webui (None when it does)."""
        return None if cls.detect(sd_model) else f"not {cls.name}'s mechanism"

    @classmethod
    def model_sampling_of(cls, denoiser):
        """The core model sampling behind a webui sampler's denoiser when flow is on for it, else None."""
        return None


# ---- per-pass helpers every backend shares ------------------------------------------------------

def latent_shape_for(p, vae_factor=SDXL_VAE_FACTOR):
    """Latent (height, width) the processing object `p` is about to sample (the hires size in a hires pass)."""
    if getattr(p, "is_hr_pass", False) and getattr(p, "hr_upscale_to_y", 0):
        height, width = p.hr_upscale_to_y, p.hr_upscale_to_x
    else:
        height, width = p.height, p.width
    return (height // vae_factor, width // vae_factor)


def model_sampling_for_pass(settings, latent_shape=None):
    """The VE-view model sampling the webuis sample with, for `settings` at `latent_shape`.

    Every webui sampler, img2img's `x + sigma * noise` and the timestep samplers' alphas_cumprod are
    exact for a flow model in the VE view, so all webui backends use it whatever `settings.view` says.
    Resolution-dependent shift without a shape uses the base resolution (1024 x 1024 for SDXL).
    """
    if latent_shape is None:
        latent_shape = settings.base_latent_shape
    return FlowVEModelSampling(shift=settings.effective_shift(latent_shape),
                               timestep_mapping=settings.timestep_mapping)


def refusal_message(kind, name, reason):
    """The one wording of a refusal: kind is 'sampler' or 'schedule type'."""
    return f"Flow sampling: {kind} '{name}' is not supported: {reason}. Pick another {kind} or turn Flow sampling off."


# Tried in this order; a missing module (the reForge backend may not exist in a checkout) is skipped.
# Each detect checks the mechanism it patches, so Forge is never taken for reForge or the reverse.
BACKEND_PATHS = (
    ("webui_extension.forge", "ForgeBackend"),
    ("webui_extension.reforge", "ReforgeBackend"),
    ("webui_extension.a1111", "A1111Backend"),
)


_unusable = {}  # module name -> why it cannot be imported in this webui (reported once)


def backend_classes():
    """The backend classes importable in this process, in the order they are tried."""
    return [cls for cls in map(_import_backend, BACKEND_PATHS) if cls is not None]


def _import_backend(path):
    module_name, class_name = path
    if module_name in _unusable:
        return None
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        # the module is absent, or needs another webui's modules (reForge's ldm_patched on A1111)
        _unusable[module_name] = str(error)
        if getattr(error, "name", None) != module_name:
            print(f"[flow sampling] {module_name} not usable in this webui: {error}")
        return None
    return getattr(module, class_name)


_instances = {}


def select_backend(sd_model):
    """The backend instance for `sd_model` (one instance per class), or None when none applies."""
    for path in BACKEND_PATHS:  # imported lazily: the first backend that applies ends the search
        cls = _import_backend(path)
        if cls is None:
            continue
        try:
            offered = cls.detect(sd_model)
        except Exception:  # a backend that cannot even inspect the model does not apply
            offered = False
        if offered:
            if cls not in _instances:
                _instances[cls] = cls()
            return _instances[cls]
    return None


def why_no_backend(sd_model):
    """A user-facing sentence: why no backend applies to `sd_model` in this webui."""
    reasons = []
    for cls in backend_classes():
        try:
            reason = cls.rejection(sd_model)
        except Exception as error:  # a backend that cannot inspect the model does not apply
            reason = f"cannot inspect the model ({type(error).__name__}: {error})"
        if reason:
            reasons.append(f"{cls.name}: {reason}")
    known = "A1111 1.10's create_denoiser hook, reForge's UNet patcher, Forge's KModel predictor"
    detail = "; ".join(reasons) if reasons else "no backend could be imported"
    return (f"Flow sampling is on but cannot be applied in this webui, so this generation samples exactly as "
            f"without the extension. This extension knows {known}; here: {detail}.")


def flow_model_sampling(denoiser):
    """The core model sampling behind the denoiser (or its CFG wrapper) a webui hands a sampler
    function, when flow is on for it; None otherwise. Asks every importable backend."""
    candidates = [denoiser, getattr(denoiser, "model_wrap", None)]
    for cls in backend_classes():
        for candidate in candidates:
            if candidate is None:
                continue
            model_sampling = cls.model_sampling_of(candidate)
            if model_sampling is not None:
                return model_sampling
    return None
