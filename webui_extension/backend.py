"""The contract between the webui script and one webui's patching mechanism.

The script (`scripts/flow_sampling.py`) decides *whether* flow sampling is on for the loaded
checkpoint (Off / Auto / On, infotext, XYZ axes); a backend decides *how* the running webui is
made to sample the flow way. One backend per mechanism:

  * `webui_extension.a1111.A1111Backend`: A1111 1.10's `sd_model.create_denoiser()` hook, through
    which every k-diffusion sampler, scheduler, img2img and hires pass gets its denoiser.
  * `webui_extension.reforge.ReforgeBackend`: reForge's UNet patcher (`sd_model.forge_objects`),
    whose `model_sampling` object decides the math.

`select_backend(sd_model)` asks reForge's backend first (its `detect` looks for what only reForge
offers), then A1111's, and returns the first whose `detect` is true. Backends are chosen by what
the running webui offers, never by version strings.

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
Errors meant for the user are raised as `FlowSamplingError`, whose text the webui shows.
"""
import importlib

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


# Tried in this order; a missing module (the reForge backend may not exist in a checkout) is skipped.
BACKEND_PATHS = (
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
