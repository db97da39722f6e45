"""What the webui script decides, independent of gradio: Off/Auto/On, settings, infotext, XYZ axes.

`decide(...)` turns the accordion's values (plus XYZ overrides on the processing object) and the
loaded checkpoint into a `Decision`; the script then applies or removes the backend's patch.
"""
from typing import NamedTuple, Optional

from model_sampling_flow.checkpoint import inspect_cached as _inspect_cached
from model_sampling_flow.schedule import (DEFAULT_SHIFT, DEFAULT_TIMESTEP_MAPPING, MAX_SHIFT, MIN_SHIFT,
                                         TIMESTEP_MAPPINGS, parse_number)
from model_sampling_flow.model_sampling import DEFAULT_VIEW, VIEWS
from model_sampling_flow.settings import INFOTEXT_KEYS, FlowSettings

MODES = ("Off", "Auto", "On")
VIEW_CHOICES = VIEWS
# processing-object attribute the XYZ plot axes write; the script reads it before its own arguments
OVERRIDES_ATTR = "flow_sampling_overrides"
# The accordion's slider spans 0.1 .. 12 (what RF-SDXL trainers use); the API, XYZ and infotext may
# go beyond it within the core's range (schedule.MIN_SHIFT .. MAX_SHIFT: finite, strictly increasing tables).


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


def check_mode(mode):
    """`mode` as one of MODES (case and spaces forgiven); ValueError naming 'Flow sampling' otherwise."""
    text = str(mode).strip().lower()
    for choice in MODES:
        if choice.lower() == text:
            return choice
    raise ValueError(f"Flow sampling mode must be one of {list(MODES)}, got {mode!r}")


def check_flow_shift(shift):
    """A shift in the core's range [MIN_SHIFT, MAX_SHIFT] (text such as a pasted "3.0" is read as a
    number); ValueError naming 'Flow shift' otherwise."""
    return parse_number("Flow shift", shift, minimum=MIN_SHIFT, maximum=MAX_SHIFT)


def check_mapping(mapping):
    value = str(mapping).strip()
    if value not in TIMESTEP_MAPPINGS:
        raise ValueError(f"Flow mapping must be one of {sorted(TIMESTEP_MAPPINGS)}, got {mapping!r}")
    return value


def check_flag(name, value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "on", "resolution"):
        return True
    if text in ("false", "0", "off", "static", ""):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


def settings_from_ui(shift, timestep_mapping, resolution_shift, view):
    """FlowSettings from the accordion's (or API's) values; ValueError naming the first bad one."""
    return FlowSettings(shift=check_flow_shift(shift), timestep_mapping=check_mapping(timestep_mapping),
                        shift_mode="resolution" if check_flag("Resolution-dependent shift", resolution_shift)
                        else "static", view=view)


def apply_overrides(values, overrides):
    """The accordion values with XYZ overrides ({'mode', 'shift', 'timestep_mapping'}) applied."""
    values = dict(values)
    for key, value in (overrides or {}).items():
        if key not in values:
            raise ValueError(f"flow override must be one of {sorted(values)}, got {key!r}")
        values[key] = value
    return values


def decide(mode, shift, timestep_mapping, resolution_shift, view, checkpoint_path):
    """Flow settings for this generation, and why. Off is decided before anything else is read, so
    an Off generation turns flow off whatever the other values are; otherwise ValueError names the
    first invalid value."""
    mode = check_mode(mode)
    if mode == "Off":
        return Decision(None, "Flow sampling off")
    settings = settings_from_ui(shift, timestep_mapping, resolution_shift, view)
    if mode == "On":
        return Decision(settings, "Flow sampling on (chosen)")
    is_rf, why, marker = _auto_verdict(checkpoint_path)
    if not is_rf:
        return Decision(None, f"Flow sampling (Auto) off: {why}")
    if marker:
        settings = settings.with_changes(**marker)
    return Decision(settings, f"Flow sampling (Auto) on: {why}")


# ---- infotext --------------------------------------------------------------------------------
def is_flow_infotext(params):
    return str(params.get(INFOTEXT_KEYS["enabled"], "")).strip().lower() == "on"


def mode_from_infotext(params):
    """'On' for a flow image, else None (leave the accordion as it is)."""
    return "On" if is_flow_infotext(params) else None


def field_from_infotext(name):
    """Paste function for one FlowSettings field: its value for a flow image, else None.

    Each field is read and checked on its own: an invalid one prints one message naming it and
    leaves its control unchanged (None), and the valid fields still apply.
    """
    key = INFOTEXT_KEYS[name]

    def paste(params):
        if not is_flow_infotext(params):
            return None
        if key not in params:   # the infotext leaves out fields at their defaults (static shift, VE view)
            value = getattr(FlowSettings(), name)
            return value == "resolution" if name == "shift_mode" else value
        try:
            value = check_flow_shift(params[key]) if name == "shift" else params[key]
            value = getattr(FlowSettings(**{name: value}), name)
        except ValueError as error:
            print(f"[flow sampling] pasted infotext: '{key}: {params[key]}' not applied: {error}")
            return None
        return value == "resolution" if name == "shift_mode" else value
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


def xyz_confirm(label, convert):
    """AxisOption.confirm: every value of the axis checked when the grid is built, before any cell."""
    def confirm(p, values):
        for value in values:
            try:
                convert(value)
            except ValueError as error:
                raise ValueError(f"XYZ plot axis '{label}': {error}") from None
    confirm.__name__ = f"confirm_{label}"
    return confirm


XYZ_AXES = (
    # (label, type, key, converter, choices)
    ("[Flow] Flow sampling", str, "mode", check_mode, lambda: list(MODES)),
    ("[Flow] Flow shift", float, "shift", check_flow_shift, None),
    ("[Flow] Flow mapping", str, "timestep_mapping", check_mapping, lambda: list(TIMESTEP_MAPPINGS)),
)

DEFAULTS = {"mode": "Off", "shift": DEFAULT_SHIFT, "timestep_mapping": DEFAULT_TIMESTEP_MAPPING,
            "resolution_shift": False, "view": DEFAULT_VIEW}
