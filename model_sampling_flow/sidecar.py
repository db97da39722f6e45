"""The rectified-flow (RF) marker a checkpoint carries: the `<name>.flow.json` sidecar and the
`__metadata__` entries, read, validated and written; standard library only.

    {"prediction_type": "rectified_flow", "shift": 3.0, "timestep_mapping": "floor_999"}

is the sidecar of `model.safetensors`, `model.flow.json` (of a diffusers folder `model/`:
`model.flow.json`); `marker_metadata` gives the same settings as metadata entries. The small-JSON
reader and the marker-value validation are shared with the inspector (checkpoint.py), which
decides what a file is; this module only says what a marker holds.
"""
import json
import os
import stat

from .schedule import (DEFAULT_SHIFT, DEFAULT_TIMESTEP_MAPPING, SHIFT_MODES, TIMESTEP_MAPPINGS,
                       check_choice, check_shift, parse_number)

MAX_SIDECAR_BYTES = 1_000_000
RF_PREDICTION_TYPE = "rectified_flow"
SIDECAR_SUFFIX = ".flow.json"
METADATA_PREDICTION_TYPE = "modelspec.prediction_type"
METADATA_SHIFT = "flow_sampling.shift"
METADATA_TIMESTEP_MAPPING = "flow_sampling.timestep_mapping"
METADATA_SHIFT_MODE = "flow_sampling.shift_mode"


def read_small_json(path, what):
    """(object, None) from a small JSON file, or (None, a one-line problem); never raises."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return None, f"{what} {path!r} is not a regular file; ignored"
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SIDECAR_BYTES + 1)
    except OSError as error:
        return None, f"{what} {path!r} cannot be read ({error.strerror}); ignored"
    if len(raw) > MAX_SIDECAR_BYTES:
        return None, f"{what} {path!r} is larger than {MAX_SIDECAR_BYTES} bytes; ignored"
    try:
        data = json.loads(raw.decode("utf-8-sig"))     # Notepad and PowerShell 5 write a BOM
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        return None, f"{what} {path!r} is not valid JSON ({type(error).__name__}); ignored"
    if not isinstance(data, dict):
        return None, f"{what} {path!r} must hold a JSON object, not {type(data).__name__}; ignored"
    return data, None


def sidecar_path(path):
    """`<checkpoint without its extension>.flow.json`; for a folder `<folder>.flow.json`."""
    path = os.path.normpath(os.fspath(path))
    if os.path.isdir(path):
        return path + SIDECAR_SUFFIX
    return os.path.splitext(path)[0] + SIDECAR_SUFFIX


def marker_values(source, shift, mapping, shift_mode):
    """({validated shift / timestep_mapping / shift_mode}, [warnings]) from one marker's raw values."""
    values, warnings = {}, []
    for key, value, check in (("shift", shift, _check_shift_value),
                              ("timestep_mapping", mapping, lambda v: _check_text_choice("timestep_mapping", v,
                                                                                         TIMESTEP_MAPPINGS)),
                              ("shift_mode", shift_mode, lambda v: _check_text_choice("shift_mode", v,
                                                                                      SHIFT_MODES))):
        if value is None:
            continue
        try:
            values[key] = check(value)
        except (ValueError, TypeError, OverflowError) as error:
            warnings.append(f"{source}: {error}; ignored")
    return values, warnings


def _check_shift_value(value):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"shift must be a number, got {brief(value)}")
    # safetensors metadata holds text: "3.0" is a shift, a JSON number too
    return check_shift(parse_number("shift", value))


def _check_text_choice(name, value, choices):
    if not isinstance(value, str):
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {brief(value)}")
    return check_choice(name, value, choices)


def brief(value):
    """A short description of a JSON value for a message (never deep: repr of a deep list would recurse)."""
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def shallow(value, depth=0):
    """`value` with containers below depth 4 replaced by a description: safe to print and to dump."""
    if isinstance(value, dict):
        return {str(k): shallow(v, depth + 1) for k, v in value.items()} if depth < 4 else brief(value)
    if isinstance(value, list):
        return [shallow(v, depth + 1) for v in value] if depth < 4 else brief(value)
    return value


def marker_metadata(settings):
    """The `__metadata__` entries that mark a checkpoint as RF with these FlowSettings."""
    values = _settings_values(settings)
    return {METADATA_PREDICTION_TYPE: RF_PREDICTION_TYPE, METADATA_SHIFT: f"{values['shift']:g}",
            METADATA_TIMESTEP_MAPPING: values["timestep_mapping"], METADATA_SHIFT_MODE: values["shift_mode"]}


def _settings_values(settings):
    """Validated {shift, timestep_mapping, shift_mode} from FlowSettings or such a dict."""
    if isinstance(settings, dict):
        raw = settings
    elif all(hasattr(settings, k) for k in ("shift", "timestep_mapping", "shift_mode")):
        raw = {k: getattr(settings, k) for k in ("shift", "timestep_mapping", "shift_mode")}
    else:
        raise ValueError(f"settings must be a FlowSettings or a dict of shift, timestep_mapping, shift_mode; "
                         f"got {settings!r}")
    values, warnings = marker_values("settings", raw.get("shift", DEFAULT_SHIFT),
                                      raw.get("timestep_mapping", DEFAULT_TIMESTEP_MAPPING),
                                      raw.get("shift_mode", "static"))
    if warnings:
        raise ValueError(warnings[0].replace("; ignored", ""))
    return values


def sidecar_says(path):
    """('absent' | 'broken' | 'symlink' | 'rf' | 'other', the JSON object or None) for the sidecar of `path`."""
    side = sidecar_path(path)
    if os.path.islink(side):
        return "symlink", None
    if not os.path.lexists(side):
        return "absent", None
    data, problem = read_small_json(side, "sidecar")
    if problem:
        return "broken", None
    prediction = data.get("prediction_type")
    if isinstance(prediction, str) and prediction.strip().lower() == RF_PREDICTION_TYPE:
        return "rf", data
    return "other", data


def write_sidecar(path, settings, force=False):
    """Write `<name>.flow.json` next to checkpoint `path` marking it RF with `settings`; returns its path.

    Atomic (a temporary file in the same folder, then os.replace); never writes through a symlink.
    Without `force` it refuses (ValueError) to replace a symlink, a broken sidecar or one that
    says something else than these settings.
    """
    values = _settings_values(settings)
    side = sidecar_path(path)
    data = {"prediction_type": RF_PREDICTION_TYPE, **values}
    state, existing = sidecar_says(path)
    if not force:
        if state == "symlink":
            raise ValueError(f"sidecar {side!r} is a symbolic link; it is not followed. Remove it, or pass "
                             "--force to replace the link itself")
        if state == "broken":
            raise ValueError(f"sidecar {side!r} exists but is not a valid JSON object; pass --force to "
                             "replace it")
        if state in ("rf", "other") and existing != data:
            raise ValueError(f"sidecar {side!r} already exists and says {brief(existing)}; pass --force "
                             "to replace it")
    folder = os.path.dirname(side) or "."
    temp = os.path.join(folder, f".{os.path.basename(side)}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(temp, flags, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, side)
    except BaseException:
        if os.path.lexists(temp):
            os.unlink(temp)
        raise
    return side
