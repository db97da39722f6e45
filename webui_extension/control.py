"""What the webui script decides, independent of gradio: Off/Auto/On, settings, infotext, XYZ axes.

`decide(...)` turns the accordion's values (plus XYZ overrides on the processing object) and the
loaded checkpoint into a `Decision`; the script then applies or removes the backend's patch.
"""
from typing import NamedTuple, Optional

from model_sampling_flow.checkpoint import inspect_cached as _inspect_cached
from model_sampling_flow.schedule import DEFAULT_SHIFT, DEFAULT_TIMESTEP_MAPPING, TIMESTEP_MAPPINGS
from model_sampling_flow.settings import INFOTEXT_KEYS, FlowSettings

MODES = ("Off", "Auto", "On")
VIEW_CHOICES = ("ve", "flow")
# processing-object attribute the XYZ plot axes write; the script reads it before its own arguments
OVERRIDES_ATTR = "flow_sampling_overrides"


def _auto_verdict(path):
    """(is_rf, reason, the values its RF marker states) for `path`; the header is read again only when
    the file or its sidecar changes (checkpoint.inspect_cached)."""
    if not path:
        return False, "the loaded model has no checkpoint file", {}
    try:
        verdict = _inspect_cached(path).verdict
    except (OSError, ValueError, TypeError) as error:
        return False, f"not inspected: {error}", {}
    return verdict.is_rf, verdict.reason, (dict(verdict.marker) if verdict.is_rf else {})


def detect_rectified_flow(path):
    """(is_rf, reason) for the checkpoint file at `path`, from its header and sidecars only; never raises."""
    is_rf, reason, _ = _auto_verdict(path)
    return is_rf, reason


def marker_settings(path):
    """{field: value} the checkpoint's RF marker states (shift, timestep_mapping, shift_mode), or {}."""
    return _auto_verdict(path)[2]


class Decision(NamedTuple):
    settings: Optional[FlowSettings]   # None: flow off for this model
    reason: str                        # one line for the UI / generation info


def settings_from_ui(shift, timestep_mapping, resolution_shift, view):
    return FlowSettings(shift=float(shift), timestep_mapping=timestep_mapping,
                        shift_mode="resolution" if resolution_shift else "static", view=view)


def apply_overrides(values, overrides):
    """The accordion values with XYZ overrides ({'mode', 'shift', 'timestep_mapping'}) applied."""
    values = dict(values)
    for key, value in (overrides or {}).items():
        if key not in values:
            raise ValueError(f"flow override must be one of {sorted(values)}, got {key!r}")
        values[key] = value
    return values


def decide(mode, shift, timestep_mapping, resolution_shift, view, checkpoint_path):
    """Flow settings for this generation, and why."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    settings = settings_from_ui(shift, timestep_mapping, resolution_shift, view)
    if mode == "Off":
        return Decision(None, "Flow sampling off")
    if mode == "On":
        return Decision(settings, "Flow sampling on (chosen)")
    is_rf, why, marker = _auto_verdict(checkpoint_path)
    if not is_rf:
        return Decision(None, f"Flow sampling (Auto) off: {why}")
    if marker:
        settings = settings.with_changes(**marker)
    return Decision(settings, f"Flow sampling (Auto) on: {why}")


# ---- infotext --------------------------------------------------------------------------------
def mode_from_infotext(params):
    """'On' for a flow image, else None (leave the accordion as it is)."""
    return "On" if FlowSettings.from_infotext(params) is not None else None


def field_from_infotext(name):
    """Paste function for one FlowSettings field: its value for a flow image, else None."""
    def paste(params):
        settings = FlowSettings.from_infotext(params)
        if settings is None:
            return None
        if name == "shift_mode":
            return settings.shift_mode == "resolution"
        return getattr(settings, name)
    paste.__name__ = f"paste_{name}"
    return paste


INFOTEXT_PASTE = (
    ("mode", mode_from_infotext),
    ("shift", field_from_infotext("shift")),
    ("timestep_mapping", field_from_infotext("timestep_mapping")),
    ("resolution_shift", field_from_infotext("shift_mode")),
    ("view", field_from_infotext("view")),
)


# ---- XYZ plot ---------------------------------------------------------------------------------
def xyz_setter(key, convert):
    def apply(p, value, values):
        overrides = dict(getattr(p, OVERRIDES_ATTR, None) or {})
        overrides[key] = convert(value)
        setattr(p, OVERRIDES_ATTR, overrides)
    apply.__name__ = f"apply_flow_{key}"
    return apply


def _mode(value):
    text = str(value).strip().lower()
    for mode in MODES:
        if mode.lower() == text:
            return mode
    raise ValueError(f"Flow sampling mode must be one of {list(MODES)}, got {value!r}")


def _mapping(value):
    value = str(value).strip()
    if value not in TIMESTEP_MAPPINGS:
        raise ValueError(f"Flow mapping must be one of {sorted(TIMESTEP_MAPPINGS)}, got {value!r}")
    return value


XYZ_AXES = (
    # (label, type, key, converter, choices)
    ("[Flow] Flow sampling", str, "mode", _mode, lambda: list(MODES)),
    ("[Flow] Flow shift", float, "shift", float, None),
    ("[Flow] Flow mapping", str, "timestep_mapping", _mapping, lambda: list(TIMESTEP_MAPPINGS)),
)

DEFAULTS = {"mode": "Off", "shift": DEFAULT_SHIFT, "timestep_mapping": DEFAULT_TIMESTEP_MAPPING,
            "resolution_shift": False, "view": "ve"}
INFOTEXT_KEY_ENABLED = INFOTEXT_KEYS["enabled"]
