"""Safetensors header inspection and rectified-flow (RF) detection, without loading any weights.

A safetensors file starts with an 8-byte little-endian header length N, then N bytes of JSON:
{tensor name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the raw tensor bytes. Everything reported here comes from that header (and from small
JSON/YAML sidecar files next to the checkpoint); tensor data is never read and pickle-based
formats (.ckpt, .pt, .pth, .bin) are refused, because unpickling runs arbitrary code.

What real RF SDXL checkpoints carry (researched; see README "The RF marker"):
  * bluvoll/sd-scripts and bluvoll/sd-scripts-f2vae (`--flow_model`) save full checkpoints
    through kohya's SAI model spec with `modelspec.prediction_type = "epsilon"` -- the
    trainer has no flow value for it -- and write no flow-specific key, so the metadata of
    those RF files is indistinguishable from an eps model's.
  * Mikubill/naifu (modules/train_sdxl_flow.py) writes only `global_step` and `current_epoch`.
  * ComfyUI's CheckpointSave writes `modelspec.predict_key` and the empty `v_pred` / `ztsnr`
    tensors that ComfyUI and reForge read as "v-prediction" / "zero terminal SNR"; there is no
    flow key. A1111 1.10 reads neither: it takes a `<name>.yaml` config next to the file.
  * The only SDXL-UNet checkpoints with 32 latent channels (Flux 2 VAE) are the
    CabalResearch/bluvoll RF conversions (NoobAI-Flux2VAE-RectifiedFlow, Mugen), trained with
    bluvoll/sd-scripts-f2vae.
So a file has to be marked. Our marker, read by every host's "Auto" (a user setting always
wins over it), in order of precedence:
  1. a sidecar `<checkpoint name without extension>.flow.json` next to the checkpoint:
       {"prediction_type": "rectified_flow", "shift": 3.0, "timestep_mapping": "floor_999"}
     ("prediction_type" of "epsilon" or "v" marks the file as *not* RF, silencing the hints);
  2. `__metadata__` keys in the checkpoint:
       "modelspec.prediction_type": "rectified_flow"
       "flow_sampling.shift": "3.0"                   (optional, default 3)
       "flow_sampling.timestep_mapping": "floor_999"  (optional; continuous | floor_999 | floor_1000)
       "flow_sampling.shift_mode": "static"           (optional; static | resolution)
  3. hints, when neither is present: "rectified flow" / "rectified_flow" / "rectified-flow" in
     the file name, modelspec title/description or kohya training comment; an SDXL UNet with
     32 latent channels.
"""
import json
import os
import re
import struct

from .schedule import (DEFAULT_SHIFT, TIMESTEP_MAPPINGS, check_choice, check_shift, parse_number)
from .settings import SHIFT_MODES, FlowSettings

# The safetensors reference implementation refuses headers above 100 MB; so do we.
MAX_HEADER_BYTES = 100 * 1000 * 1000
MAX_SIDECAR_BYTES = 1000 * 1000
RF_PREDICTION_TYPE = "rectified_flow"
SIDECAR_SUFFIX = ".flow.json"
METADATA_PREDICTION_TYPE = "modelspec.prediction_type"
METADATA_SHIFT = "flow_sampling.shift"
METADATA_TIMESTEP_MAPPING = "flow_sampling.timestep_mapping"
METADATA_SHIFT_MODE = "flow_sampling.shift_mode"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
NOT_RF_PREDICTION_TYPES = ("epsilon", "eps", "v", "v_prediction", "sample", "x0")

_RF_WORDS = re.compile(r"rectified[\s_\-]?flow", re.IGNORECASE)
# dtype names are upper-case tags (F16, BF16, F8_E4M3, ...); new ones keep appearing, so any tag is accepted
_DTYPE = re.compile(r"[A-Z][A-Z0-9_]*")

# UNet key layouts: (name, first conv, last conv, SDXL class-embedding key)
_UNET_LAYOUTS = (
    ("original", "model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.out.2.weight",
     "model.diffusion_model.label_emb.0.0.weight"),
    ("unet-only", "diffusion_model.input_blocks.0.0.weight", "diffusion_model.out.2.weight",
     "diffusion_model.label_emb.0.0.weight"),
    ("unet-only", "input_blocks.0.0.weight", "out.2.weight", "label_emb.0.0.weight"),
    ("diffusers", "conv_in.weight", "conv_out.weight", "add_embedding.linear_1.weight"),
    ("diffusers", "unet.conv_in.weight", "unet.conv_out.weight", "unet.add_embedding.linear_1.weight"),
)


# ---------------------------------------------------------------------------------------------
# reading the header
def _refuse_pickle(path):
    raise ValueError(f"path {path!r} is a pickle-based checkpoint; it is never opened here because "
                     "unpickling can run arbitrary code. Convert it to .safetensors first.")


def read_safetensors_header(path):
    """(tensors, metadata, sizes) from the header of a safetensors file; never reads tensor data.

    Raises ValueError naming the path for anything that is not a complete, well-formed file.
    """
    path = os.fspath(path)
    if path.lower().endswith(PICKLE_SUFFIXES):
        _refuse_pickle(path)
    if not os.path.isfile(path):
        raise ValueError(f"path {path!r} is not a file")
    file_bytes = os.path.getsize(path)
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if prefix[:2] == b"PK" or prefix[:1] == b"\x80":
            # zip (torch.save) or a raw pickle stream under another name
            _refuse_pickle(path)
        if len(prefix) < 8:
            raise ValueError(f"path {path!r} is not a safetensors file: {file_bytes} bytes, "
                             "shorter than the 8-byte header length")
        (header_bytes,) = struct.unpack("<Q", prefix)
        if header_bytes > MAX_HEADER_BYTES:
            raise ValueError(f"path {path!r} declares a {header_bytes}-byte header, above the "
                             f"{MAX_HEADER_BYTES}-byte limit: not a safetensors file, or a corrupt one")
        if header_bytes < 2:
            raise ValueError(f"path {path!r} is not a safetensors file: header length {header_bytes}")
        if 8 + header_bytes > file_bytes:
            raise ValueError(f"path {path!r} is truncated: the header needs {header_bytes} bytes but "
                             f"only {file_bytes - 8} follow the length")
        raw = handle.read(header_bytes)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ValueError(f"path {path!r} is not a safetensors file: its header is not JSON "
                         f"({type(error).__name__}: {str(error)[:200]})") from None
    if not isinstance(header, dict):
        raise ValueError(f"path {path!r} is not a safetensors file: its header is a "
                         f"{type(header).__name__}, not an object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"path {path!r} has a malformed __metadata__: it must map strings to strings")
    data_bytes = file_bytes - 8 - header_bytes
    end = 0
    for name, info in header.items():
        if not (isinstance(info, dict) and isinstance(info.get("shape"), list)
                and isinstance(info.get("data_offsets"), list) and len(info["data_offsets"]) == 2
                and isinstance(info.get("dtype"), str) and _DTYPE.fullmatch(info["dtype"])
                and all(isinstance(d, int) and d >= 0 for d in info["shape"])
                and all(isinstance(o, int) and o >= 0 for o in info["data_offsets"])):
            raise ValueError(f"path {path!r} has a malformed header entry for tensor {name!r}: {info!r}"[:400])
        begin, stop = info["data_offsets"]
        if stop < begin:
            raise ValueError(f"path {path!r} has a malformed header entry for tensor {name!r}: "
                             f"data_offsets {info['data_offsets']!r}")
        end = max(end, stop)
    if end > data_bytes:
        raise ValueError(f"path {path!r} is truncated: its tensors need {end} data bytes but the file "
                         f"holds {data_bytes}")
    return header, metadata, {"file_bytes": file_bytes, "header_bytes": header_bytes}


# ---------------------------------------------------------------------------------------------
# architecture
def _architecture(tensors):
    """Model family, key layout, components and latent channels from tensor names and shapes."""
    out = {"architecture": "unknown", "layout": None, "in_channels": None, "latent_channels": None,
           "unet_channels": None, "adm_in_channels": None}
    for layout, first, last, label in _UNET_LAYOUTS:
        if first not in tensors:
            continue
        shape = tensors[first]["shape"]
        if len(shape) != 4:
            continue
        out["layout"], out["unet_channels"], out["in_channels"] = layout, shape[0], shape[1]
        last_shape = tensors.get(last, {}).get("shape")
        # the output conv gives the latent channels even for inpainting UNets (input = latent + mask + image)
        out["latent_channels"] = last_shape[0] if last_shape and len(last_shape) == 4 else shape[1]
        label_shape = tensors.get(label, {}).get("shape")
        out["adm_in_channels"] = label_shape[1] if label_shape and len(label_shape) == 2 else None
        if out["unet_channels"] == 320 and out["adm_in_channels"] == 2816:
            out["architecture"] = "sdxl"
        elif out["unet_channels"] == 384 and out["adm_in_channels"] == 2560:
            out["architecture"] = "sdxl-refiner"
        elif out["unet_channels"] == 320 and out["adm_in_channels"] is None:
            out["architecture"] = "sd1/sd2"
        break
    names = tensors.keys()
    out["components"] = sorted(
        component for component, prefixes in (
            ("unet", ("model.diffusion_model.", "diffusion_model.", "input_blocks.", "conv_in.", "unet.")),
            ("clip_l", ("conditioner.embedders.0.transformer.", "cond_stage_model.transformer.",
                        "text_encoder.")),
            ("clip_g", ("conditioner.embedders.1.model.", "text_encoder_2.")),
            ("vae", ("first_stage_model.", "vae.")),
        ) if any(name.startswith(prefixes) for name in names))
    return out


# ---------------------------------------------------------------------------------------------
# metadata
def _trainer(metadata):
    """Which trainer wrote the file, and the metadata keys that say so."""
    keys = {}
    trainer = None
    ss = {k: v for k, v in metadata.items() if k.startswith("ss_")}
    if ss:
        trainer = "kohya sd-scripts (or a fork)"
        for key in ("ss_sd_scripts_commit_hash", "ss_training_comment", "ss_output_name",
                    "ss_base_model_version", "ss_v2", "ss_zero_terminal_snr", "ss_network_module"):
            if key in ss:
                keys[key] = ss[key]
    elif "modelspec.sai_model_spec" in metadata and metadata.get("modelspec.implementation", "").startswith(
            "https://github.com/Stability-AI/generative-models"):
        # kohya's full-checkpoint writer records only the SAI model spec, with this implementation URL
        trainer = "kohya sd-scripts (or a fork; SAI model spec only)"
    elif set(metadata) >= {"global_step", "current_epoch"}:
        trainer = "naifu"
        keys = {k: metadata[k] for k in ("global_step", "current_epoch")}
    elif "modelspec.predict_key" in metadata:
        trainer = "ComfyUI CheckpointSave"
        keys = {"modelspec.predict_key": metadata["modelspec.predict_key"]}
    return trainer, keys


def _modelspec(metadata):
    return {k: v for k, v in metadata.items()
            if k.startswith("modelspec.") and k != "modelspec.thumbnail"}


def sidecar_path(path):
    """`<checkpoint without its extension>.flow.json`, the sidecar holding our RF marker."""
    return os.path.splitext(os.fspath(path))[0] + SIDECAR_SUFFIX


def read_sidecar(path):
    """The sidecar's JSON object for checkpoint `path`, or None when there is none."""
    side = sidecar_path(path)
    if not os.path.isfile(side):
        return None
    return _read_small_json(side, "sidecar")


def _marker_values(source, shift, mapping, shift_mode, warnings):
    """Validated (shift, timestep_mapping, shift_mode) from a marker; invalid values become warnings."""
    values = {}
    if shift is not None:
        try:
            values["shift"] = check_shift(parse_number("shift", shift))
        except ValueError as error:
            warnings.append(f"{source}: {error}; ignored")
    if mapping is not None:
        try:
            values["timestep_mapping"] = check_choice("timestep_mapping", mapping, TIMESTEP_MAPPINGS)
        except ValueError as error:
            warnings.append(f"{source}: {error}; ignored")
    if shift_mode is not None:
        try:
            values["shift_mode"] = check_choice("shift_mode", shift_mode, SHIFT_MODES)
        except ValueError as error:
            warnings.append(f"{source}: {error}; ignored")
    return values


def _hints(path, arch, metadata):
    hints = []
    texts = [("file name", os.path.basename(path))]
    texts += [(key, metadata[key]) for key in ("modelspec.title", "modelspec.description",
                                               "ss_training_comment", "ss_output_name") if key in metadata]
    for where, text in texts:
        if _RF_WORDS.search(text):
            hints.append(f"{where} mentions rectified flow")
    if arch["architecture"] == "sdxl" and arch["latent_channels"] == 32:
        hints.append("SDXL UNet with 32 latent channels (Flux 2 VAE): every known such checkpoint is a "
                     "bluvoll/sd-scripts-f2vae rectified-flow conversion")
    return hints


def _trainer_defaults(report):
    """Settings for an unmarked RF file from what is known about the trainer that wrote it."""
    if report["latent_channels"] == 32:
        # bluvoll/sd-scripts-f2vae: timesteps = min(floor(1000 * sigma), 999); Mugen's card: shift ~6
        return {"timestep_mapping": "floor_1000", "shift": 6.0}, \
            "bluvoll/sd-scripts-f2vae mapping; shift 6 as the Mugen model card suggests"
    if report["trainer"] == "naifu":
        return {"timestep_mapping": "continuous"}, "naifu trains on t = 1000 * sigma"
    if report["trainer"] and report["trainer"].startswith("kohya"):
        return {"timestep_mapping": "floor_999"}, \
            "bluvoll/sd-scripts mapping floor(999 * sigma) (floor_1000 for sd-scripts-f2vae; they differ " \
            "by at most one timestep)"
    return {}, "no trainer information: defaults"


# ---------------------------------------------------------------------------------------------
# diffusers folders: the scheduler config is a real marker there
DIFFUSERS_UNET_FILES = ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors")


def _read_small_json(path, what):
    if os.path.getsize(path) > MAX_SIDECAR_BYTES:
        raise ValueError(f"{what} {path!r} is larger than {MAX_SIDECAR_BYTES} bytes")
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{what} {path!r} is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path!r} must hold a JSON object, got {type(data).__name__}")
    return data


def _diffusers_files(path):
    """(UNet safetensors file, scheduler config path or None) for a diffusers folder or its UNet file."""
    if os.path.isdir(path):
        for name in DIFFUSERS_UNET_FILES:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                break
        else:
            raise ValueError(f"path {path!r} is a folder without a diffusers UNet "
                             f"({' or '.join(DIFFUSERS_UNET_FILES)})")
        root = path
    else:
        candidate = path
        parent = os.path.dirname(os.path.abspath(path))
        if os.path.basename(parent) != "unet":
            return path, None
        root = os.path.dirname(parent)
    config = os.path.join(root, "scheduler", "scheduler_config.json")
    return candidate, config if os.path.isfile(config) else None


# ---------------------------------------------------------------------------------------------
# public API
def inspect_checkpoint(path):
    """A dict describing the checkpoint at `path`, from its header and sidecars only.

    Keys: path, file_bytes, header_bytes, tensor_count, architecture ('sdxl', 'sdxl-refiner',
    'sd1/sd2', 'unknown'), layout ('original', 'unet-only', 'diffusers' or None), components,
    in_channels, latent_channels, v_pred, ztsnr, edm (ComfyUI/reForge marker tensors),
    a1111_yaml (path of an A1111 config sidecar or None), modelspec, trainer, trainer_metadata,
    metadata (all of __metadata__ but thumbnails), sidecar (its JSON or None), is_rf,
    rf_source ('sidecar', 'metadata', 'hint' or None), reason, marker (shift / timestep_mapping /
    shift_mode given by the marker), hints, warnings, diffusers_scheduler (the relevant keys of a
    diffusers folder's scheduler/scheduler_config.json, or None).
    `path` may also be a diffusers folder; its unet/diffusion_pytorch_model*.safetensors is read.
    Raises ValueError naming the path for files that are not complete safetensors files.
    """
    path = os.fspath(path)
    unet_file, scheduler_config = _diffusers_files(path)
    tensors, metadata, sizes = read_safetensors_header(unet_file)
    sidecar = read_sidecar(path)
    scheduler = None if scheduler_config is None else _read_small_json(scheduler_config, "scheduler config")
    arch = _architecture(tensors)
    trainer, trainer_keys = _trainer(metadata)
    yaml = os.path.splitext(path)[0] + ".yaml"
    report = {
        "path": path, **sizes, "tensor_count": len(tensors), **arch,
        "v_pred": "v_pred" in tensors, "ztsnr": "ztsnr" in tensors,
        "edm": "edm_vpred.sigma_max" in tensors or ("edm_mean" in tensors and "edm_std" in tensors),
        "a1111_yaml": yaml if os.path.isfile(yaml) else None,
        "modelspec": _modelspec(metadata), "trainer": trainer, "trainer_metadata": trainer_keys,
        "metadata": {k: v for k, v in metadata.items() if not k.endswith("thumbnail")},
        "sidecar": sidecar, "marker": {}, "hints": [], "warnings": [],
        "diffusers_scheduler": None if scheduler is None else {
            k: scheduler[k] for k in ("_class_name", "prediction_type", "shift", "use_dynamic_shifting")
            if k in scheduler},
    }
    warnings = report["warnings"]
    prediction = str(metadata.get(METADATA_PREDICTION_TYPE, "")).strip().lower()
    if sidecar is not None:
        side_type = str(sidecar.get("prediction_type", "")).strip().lower()
        name = sidecar_path(path)
        if side_type == RF_PREDICTION_TYPE:
            report["marker"] = _marker_values(name, sidecar.get("shift"), sidecar.get("timestep_mapping"),
                                              sidecar.get("shift_mode"), warnings)
            report.update(is_rf=True, rf_source="sidecar",
                          reason=f"marked rectified flow by sidecar {os.path.basename(name)}")
            return report
        if side_type in NOT_RF_PREDICTION_TYPES:
            report.update(is_rf=False, rf_source="sidecar",
                          reason=f"sidecar {os.path.basename(name)} says prediction_type {side_type!r}")
            return report
        warnings.append(f"sidecar {name}: prediction_type must be {RF_PREDICTION_TYPE!r} or one of "
                        f"{list(NOT_RF_PREDICTION_TYPES)}, got {sidecar.get('prediction_type')!r}; ignored")
    if prediction == RF_PREDICTION_TYPE:
        report["marker"] = _marker_values(
            "metadata", metadata.get(METADATA_SHIFT), metadata.get(METADATA_TIMESTEP_MAPPING),
            metadata.get(METADATA_SHIFT_MODE), warnings)
        report.update(is_rf=True, rf_source="metadata",
                      reason=f"marked rectified flow by metadata {METADATA_PREDICTION_TYPE}")
        return report
    scheduler_class = str((scheduler or {}).get("_class_name", ""))
    if scheduler_class.startswith("FlowMatch"):
        # diffusers flow-matching schedulers feed the UNet timestep = 1000 * sigma
        report["marker"] = _marker_values("scheduler config", scheduler.get("shift"), "continuous", None, warnings)
        if scheduler.get("use_dynamic_shifting"):
            warnings.append("the scheduler config uses dynamic (Flux-style) shifting, which this project does "
                            "not implement; the static shift is recommended instead")
        report.update(is_rf=True, rf_source="metadata",
                      reason=f"diffusers scheduler config names {scheduler_class}")
        return report
    report["hints"] = _hints(path, arch, metadata)
    if report["v_pred"] or report["edm"]:
        kind = "v_pred" if report["v_pred"] else "EDM"
        report.update(is_rf=False, rf_source=None, reason=f"{kind} marker tensor present: not rectified flow")
        if report["hints"]:
            warnings.append("rectified-flow hints ignored because of the " + kind + " marker")
        return report
    if report["hints"]:
        report.update(is_rf=True, rf_source="hint",
                      reason="not marked; likely rectified flow: " + "; ".join(report["hints"]))
        if prediction in NOT_RF_PREDICTION_TYPES:
            warnings.append(f"the metadata says prediction_type {prediction!r}, which bluvoll/sd-scripts also "
                            "writes into its rectified-flow checkpoints; check the model card")
        return report
    report.update(is_rf=False, rf_source=None,
                  reason="no rectified-flow marker (no " + SIDECAR_SUFFIX + " sidecar, no "
                         f"{METADATA_PREDICTION_TYPE} = {RF_PREDICTION_TYPE!r}) and no hint")
    if prediction:
        report["reason"] += f"; metadata says prediction_type {prediction!r}"
    return report


def detect_rectified_flow(path):
    """(is_rf, reason) for the checkpoint at `path`: what every host's "Auto" uses.

    Unreadable files give (False, the reason) rather than an exception, so a host can show it.
    """
    try:
        report = inspect_checkpoint(path)
    except (OSError, ValueError) as error:
        return False, f"not inspected: {error}"
    return report["is_rf"], report["reason"]


def recommended_settings(report):
    """FlowSettings for an RF report (marker values first, then what the trainer used), else None."""
    if not isinstance(report, dict) or "is_rf" not in report:
        raise ValueError(f"report must be a dict from inspect_checkpoint, got {type(report).__name__}")
    if not report["is_rf"]:
        return None
    values = {"shift": DEFAULT_SHIFT}
    defaults, _ = _trainer_defaults(report)
    values.update(defaults)
    values.update(report.get("marker") or {})
    return FlowSettings(**values)


def settings_explanation(report):
    """One line saying where recommended_settings' values come from."""
    if not report.get("is_rf"):
        return "not rectified flow: no settings recommended"
    marker = report.get("marker") or {}
    defaults, why = _trainer_defaults(report)
    given = ", ".join(f"{k}={v}" for k, v in marker.items())
    rest = [k for k in ("shift", "timestep_mapping") if k not in marker]
    if marker and not rest:
        return f"from the marker ({given})"
    if marker:
        return f"from the marker ({given}); {', '.join(rest)}: {why}"
    return why


def marker_metadata(settings):
    """The `__metadata__` entries that mark a checkpoint as RF with these FlowSettings."""
    if not isinstance(settings, FlowSettings):
        raise ValueError(f"settings must be a FlowSettings, got {settings!r}")
    return {METADATA_PREDICTION_TYPE: RF_PREDICTION_TYPE, METADATA_SHIFT: f"{settings.shift:g}",
            METADATA_TIMESTEP_MAPPING: settings.timestep_mapping, METADATA_SHIFT_MODE: settings.shift_mode}


def write_sidecar(path, settings):
    """Write `<name>.flow.json` next to checkpoint `path` marking it RF with `settings`; returns its path."""
    if not isinstance(settings, FlowSettings):
        raise ValueError(f"settings must be a FlowSettings, got {settings!r}")
    side = sidecar_path(path)
    data = {"prediction_type": RF_PREDICTION_TYPE, "shift": settings.shift,
            "timestep_mapping": settings.timestep_mapping, "shift_mode": settings.shift_mode}
    with open(side, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    return side


def format_report(report):
    """Human-readable multi-line text of an inspect_checkpoint report (what the CLI prints)."""
    def size(n):
        for unit in ("B", "KB", "MB", "GB"):
            if n < 1000 or unit == "GB":
                return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
            n /= 1000
    lines = [f"file            {report['path']}",
             f"size            {size(report['file_bytes'])} (header {size(report['header_bytes'])}, "
             f"{report['tensor_count']} tensors)",
             f"architecture    {report['architecture']}"
             + (f" ({report['layout']} key layout)" if report["layout"] else ""),
             f"components      {', '.join(report['components']) or '-'}"]
    if report["in_channels"] is not None:
        lines.append(f"latent channels {report['latent_channels']}"
                     + (f" (UNet input {report['in_channels']})" if report["in_channels"] != report["latent_channels"]
                        else ""))
    lines.append(f"v_pred / ztsnr  {'yes' if report['v_pred'] else 'no'} / {'yes' if report['ztsnr'] else 'no'}"
                 + ("   EDM marker present" if report["edm"] else ""))
    if report["a1111_yaml"]:
        lines.append(f"A1111 config    {report['a1111_yaml']}")
    lines.append(f"trainer         {report['trainer'] or 'unknown'}")
    for key, value in sorted(report["modelspec"].items()) + sorted(report["trainer_metadata"].items()):
        text = value if len(value) <= 100 else value[:97] + "..."
        lines.append(f"  {key} = {text}")
    if report["diffusers_scheduler"]:
        lines.append("scheduler       " + ", ".join(f"{k}={v}" for k, v in report["diffusers_scheduler"].items()))
    if report["sidecar"] is not None:
        lines.append(f"sidecar         {sidecar_path(report['path'])}")
    lines.append(f"rectified flow  {'YES' if report['is_rf'] else 'no'}: {report['reason']}")
    settings = recommended_settings(report)
    if settings is not None:
        lines.append(f"recommended     shift {settings.shift:g}, timestep mapping {settings.timestep_mapping}, "
                     f"shift mode {settings.shift_mode}")
        lines.append(f"                ({settings_explanation(report)})")
        if report["rf_source"] == "hint":
            lines.append("                not marked: confirm with the model card, then mark it with "
                         "`python -m model_sampling_flow mark FILE`")
    for warning in report["warnings"]:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)
