"""Checkpoint inspector and rectified-flow (RF) detection, from headers and small sidecars only.

`inspect_checkpoint(path)` first assembles `Facts` (what the safetensors header, the sidecars
and a diffusers scheduler config say), then `RULES`, one ordered list, gives the `Verdict`. The
inspector runs on the standard library alone; tensor data is never read, nothing is unpickled.
The marker's own format (sidecar file, metadata keys) is read and written in sidecar.py, and
report_text.py turns a Report into the text `inspect` prints.

What real RF SDXL checkpoints carry (researched; README "Checkpoint inspector and the RF marker"):
  * bluvoll/sd-scripts and bluvoll/sd-scripts-f2vae (`--flow_model`) save full checkpoints
    through kohya's SAI model spec with `modelspec.prediction_type = "epsilon"` -- the trainer
    has no flow value for it -- and no flow-specific key: their metadata looks like an eps model's.
  * Mikubill/naifu (modules/train_sdxl_flow.py, which trained nyanko7/nyaflow-xl-alpha) writes
    only `global_step` and `current_epoch`.
  * ComfyUI's CheckpointSave writes `modelspec.predict_key` and the empty `v_pred` / `ztsnr`
    tensors that ComfyUI and reForge read; there is no flow key. A1111 reads a `<name>.yaml`.
  * Diffusers-format releases (CabalResearch/Mugen) name a `FlowMatch*` scheduler class in
    `scheduler/scheduler_config.json`; single files lose it.
  * SDXL UNets with 32 latent channels (Flux 2 VAE) are, as far as known, all CabalResearch /
    bluvoll RF conversions (NoobAI-Flux2VAE-RectifiedFlow, Mugen).
So a file is marked by us, or recognised by hints. Markers, in order of precedence:
  1. a sidecar `<checkpoint without extension>.flow.json` (for a diffusers folder: `<folder>.flow.json`):
       {"prediction_type": "rectified_flow", "shift": 3.0, "timestep_mapping": "floor_999"}
     ("prediction_type" "epsilon" or "v" marks the file as *not* RF, silencing the hints);
  2. `__metadata__`: "modelspec.prediction_type": "rectified_flow", optional
     "flow_sampling.shift" / ".timestep_mapping" / ".shift_mode";
  3. a diffusers scheduler config naming a FlowMatch* class;
  then marker tensors (v_pred, EDM) and an explicit v-prediction declaration rule RF out, and
  hints (`name_hints`, the 32-channel UNet) make an unmarked full checkpoint or UNet likely RF.
"""
import os
import re
import threading
from dataclasses import dataclass, field, fields, replace

from .safetensors_header import HeaderError, read_header
from .schedule import DEFAULT_SHIFT, DEFAULT_TIMESTEP_MAPPING
from .sidecar import (METADATA_PREDICTION_TYPE, METADATA_SHIFT, METADATA_SHIFT_MODE, METADATA_TIMESTEP_MAPPING,
                      RF_PREDICTION_TYPE, SIDECAR_SUFFIX, brief, marker_values, read_small_json, shallow,
                      sidecar_path)

EPSILON_PREDICTION_TYPES = ("epsilon", "eps")
V_PREDICTION_TYPES = ("v", "v_prediction", "v-prediction", "vpred", "v_pred")
NOT_RF_PREDICTION_TYPES = EPSILON_PREDICTION_TYPES + V_PREDICTION_TYPES + ("sample", "x0")
DIFFUSERS_UNET_FILES = ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors")
MAX_SHOWN_METADATA = 64          # metadata entries kept for the report beyond the ones rules read
MAX_METADATA_TEXT = 65_536       # characters kept of one metadata value

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
_MARKER_TENSORS = ("v_pred", "ztsnr", "edm_vpred.sigma_max", "edm_mean", "edm_std")
_KEPT_TENSORS = frozenset(key for layout in _UNET_LAYOUTS for key in layout[1:]) | frozenset(_MARKER_TENSORS)
# one pass over the tensor names: which component each name belongs to (first matching group)
_COMPONENT_GROUPS = ("lora", "controlnet", "unet", "clip_l", "clip_g", "vae")
_COMPONENT = re.compile(
    # kohya (lora_unet_...), LyCORIS (hada_/lokr_/oft_), PEFT (lora_A/B) and diffusers attention
    # processors (to_q_lora.down, lora.down, lora_linear_layer) name their weights these ways
    r"(lora_|lycoris_|.*(?:\.lora_down|\.lora_up|\.lora_A|\.lora_B|\.lora\.down|\.lora\.up|_lora\.down|_lora\.up|"
    r"lora_linear_layer|\.hada_w[12]_|\.lokr_w[12]|\.lokr_t2|\.oft_blocks|\.oft_diag))"
    r"|(control_model\.|controlnet_|.*input_hint_block\.)"
    r"|(model\.diffusion_model\.|diffusion_model\.|input_blocks\.|middle_block\.|output_blocks\.|"
    r"conv_in\.|down_blocks\.|up_blocks\.|unet\.)"
    r"|(conditioner\.embedders\.0\.|cond_stage_model\.|text_encoder\.|text_model\.)"
    r"|(conditioner\.embedders\.1\.|text_encoder_2\.)"
    r"|(first_stage_model\.|vae\.|encoder\.|decoder\.|quant_conv\.|post_quant_conv\.)")
_KEPT_METADATA_PREFIXES = ("modelspec.", "flow_sampling.")
_KEPT_METADATA = frozenset((
    "global_step", "current_epoch", "ss_sd_scripts_commit_hash", "ss_training_comment", "ss_output_name",
    "ss_base_model_version", "ss_v2", "ss_zero_terminal_snr", "ss_network_module", "ss_v_parameterization"))


# ---------------------------------------------------------------------------------------------
# names: the tokens a file name or title is made of
_TOKEN = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# a token that is by itself a rectified-flow hint in a name (lower case). Taken from real releases
# (tests/core/test_rf_names.py cites them): "...-Rectified-Flow", "NoobAI-Flux2VAE-RectifiedFlow",
# "ChenkinRF/Chenkin0.3RF-Experiments", "...-XL-V0.2-RF", "nyaflow-xl-alpha" (naifu's flow model).
RF_NAME_TOKENS = ("rectified", "rf", "flow", "nyaflow", "rectifiedflow", "flowmatch", "flowmatching")
# prose (a description, a training comment): only these phrases; "flow" alone is too common there
_RF_PROSE = re.compile(r"rectified[\s_\-]*flow|flow[\s_\-]*match(?:ing)?", re.IGNORECASE)


def name_tokens(name):
    """The words of a file name or title: split at non-alphanumerics, case changes and digits.

    'ChenkinNoob-XL-v0.2-Rectified-Flow' -> ['Chenkin', 'Noob', 'XL', 'v', '0', '2', 'Rectified', 'Flow'].
    """
    return _TOKEN.findall(name)


def name_hints(text, where):
    """Hints (one string each, saying what was found) that `text`, a name or title, is an RF model."""
    found = []
    for token in name_tokens(text):
        if token.lower() in RF_NAME_TOKENS and token not in found:
            found.append(token)
    if not found:
        return []
    return [f"{where} has the word{'s' if len(found) > 1 else ''} " + " and ".join(repr(t) for t in found)]


def prose_hints(text, where):
    match = _RF_PROSE.search(text)
    return [f"{where} mentions {match.group(0)!r}"] if match else []


# ---------------------------------------------------------------------------------------------
# the facts
@dataclass(frozen=True)
class Facts:
    """What the files say, before any rule. Sizes in bytes; channels from the UNet's convolutions."""
    path: str
    name: str                       # file (or diffusers folder) name the hints read
    file_bytes: int
    header_bytes: int
    tensor_count: int
    kind: str                       # checkpoint | unet | lora | vae | text encoder | controlnet | unknown
    components: tuple
    architecture: str = "unknown"   # sdxl | sdxl-refiner | sd1/sd2 | unknown
    layout: str = None              # original | unet-only | diffusers | None
    in_channels: int = None
    latent_channels: int = None
    unet_channels: int = None
    adm_in_channels: int = None
    v_pred: bool = False
    ztsnr: bool = False
    edm: bool = False
    a1111_yaml: str = None
    trainer: str = None
    trainer_metadata: dict = field(default_factory=dict)
    modelspec: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)   # kept entries (values cut at MAX_METADATA_TEXT)
    metadata_count: int = 0
    declared_prediction: str = ""                  # modelspec.prediction_type, lower case
    sidecar_path: str = None
    sidecar: dict = None                           # the sidecar's JSON object, when it is one
    scheduler_config: str = None
    scheduler: dict = None                         # relevant keys of a diffusers scheduler config
    hints: tuple = ()
    problems: tuple = ()                           # unreadable sidecar / scheduler config, as warnings


@dataclass(frozen=True)
class Verdict:
    """The rules' answer: is the file RF, on what ground, and the settings to sample it with."""
    is_rf: bool
    source: str            # sidecar | metadata | scheduler config | hint | marker tensor | declaration |
    #                        file kind | none
    reason: str
    settings: dict         # shift, timestep_mapping, shift_mode for an RF file; {} otherwise
    settings_note: str     # where those values come from
    warnings: tuple = ()
    marker: dict = field(default_factory=dict)   # the values the deciding marker itself states (Auto applies them)


@dataclass(frozen=True)
class Report:
    facts: Facts
    verdict: Verdict

    @property
    def is_rf(self):
        return self.verdict.is_rf

    @property
    def reason(self):
        return self.verdict.reason

    def as_dict(self):
        """Facts and verdict as one JSON-ready dict (what `inspect --json` prints)."""
        out = {f.name: getattr(self.facts, f.name) for f in fields(Facts)}
        out.update(hints=list(self.facts.hints), problems=list(self.facts.problems),
                   components=list(self.facts.components), sidecar=shallow(self.facts.sidecar),
                   scheduler=shallow(self.facts.scheduler))
        out["verdict"] = dict({f.name: getattr(self.verdict, f.name) for f in fields(Verdict)},
                              warnings=list(self.verdict.warnings))
        out["is_rf"], out["reason"] = self.verdict.is_rf, self.verdict.reason
        out["recommended"] = dict(self.verdict.settings) if self.verdict.is_rf else None
        return out


# ---------------------------------------------------------------------------------------------
# reading the files
class _NameScan:
    """keep(name) for read_header: records which components the tensor names belong to."""

    def __init__(self):
        self.seen = set()

    def __call__(self, name):
        match = _COMPONENT.match(name)
        if match is not None:
            self.seen.add(_COMPONENT_GROUPS[match.lastindex - 1])
        return name in _KEPT_TENSORS


class _MetadataKeep:
    def __init__(self):
        self.others = 0

    def __call__(self, key):
        if key in _KEPT_METADATA or key.startswith(_KEPT_METADATA_PREFIXES):
            return True
        self.others += 1
        return self.others <= MAX_SHOWN_METADATA



def _diffusers_files(path):
    """(UNet safetensors file, scheduler config path or None) for a diffusers folder or its UNet file."""
    if os.path.isdir(path):
        for name in DIFFUSERS_UNET_FILES:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                break
        else:
            raise HeaderError(f"folder {path!r} is not a diffusers model: it has no "
                              f"{' or '.join(DIFFUSERS_UNET_FILES)}")
        root = path
    else:
        candidate = path
        parent = os.path.dirname(os.path.abspath(path))
        if os.path.basename(parent) != "unet":
            return path, None
        root = os.path.dirname(parent)
    config = os.path.join(root, "scheduler", "scheduler_config.json")
    return candidate, config if os.path.isfile(config) else None


def _architecture(tensors):
    out = {}
    for layout, first, last, label in _UNET_LAYOUTS:
        info = tensors.get(first)
        if info is None or len(info.shape) != 4:
            continue
        out.update(layout=layout, unet_channels=info.shape[0], in_channels=info.shape[1])
        last_info = tensors.get(last)
        # the output conv gives the latent channels even for inpainting UNets (input = latent + mask + image)
        out["latent_channels"] = last_info.shape[0] if last_info and len(last_info.shape) == 4 else info.shape[1]
        label_info = tensors.get(label)
        out["adm_in_channels"] = label_info.shape[1] if label_info and len(label_info.shape) == 2 else None
        if out["unet_channels"] == 320 and out["adm_in_channels"] == 2816:
            out["architecture"] = "sdxl"
        elif out["unet_channels"] == 384 and out["adm_in_channels"] == 2560:
            out["architecture"] = "sdxl-refiner"
        elif out["unet_channels"] == 320 and out["adm_in_channels"] is None:
            out["architecture"] = "sd1/sd2"
        break
    return out


def _kind(components, metadata):
    if "lora" in components:
        return "lora"
    if "controlnet" in components:
        return "controlnet"
    if "unet" in components:      # a LoRA merged into a checkpoint may keep the LoRA's ss_network_module
        return "checkpoint" if components & {"clip_l", "clip_g", "vae"} else "unet"
    if "ss_network_module" in metadata:
        return "lora"
    if components == {"vae"}:
        return "vae"
    if components and components <= {"clip_l", "clip_g"}:
        return "text encoder"
    return "unknown"


def _trainer(metadata):
    """Which trainer wrote the file, and the metadata keys that say so."""
    if any(key.startswith("ss_") for key in metadata):
        keys = {k: metadata[k] for k in ("ss_sd_scripts_commit_hash", "ss_training_comment", "ss_output_name",
                                         "ss_base_model_version", "ss_v2", "ss_zero_terminal_snr",
                                         "ss_network_module") if k in metadata}
        return "kohya sd-scripts (or a fork)", keys
    if "modelspec.sai_model_spec" in metadata and metadata.get("modelspec.implementation", "").startswith(
            "https://github.com/Stability-AI/generative-models"):
        # kohya's full-checkpoint writer records only the SAI model spec, with this implementation URL
        return "kohya sd-scripts (or a fork; SAI model spec only)", {}
    if "global_step" in metadata and "current_epoch" in metadata:
        return "naifu", {k: metadata[k] for k in ("global_step", "current_epoch")}
    if "modelspec.predict_key" in metadata:
        return "ComfyUI CheckpointSave", {"modelspec.predict_key": metadata["modelspec.predict_key"]}
    return None, {}


def gather_facts(path):
    """Facts about the checkpoint (file or diffusers folder) at `path`; raises HeaderError for
    files that are not valid safetensors (the message names the file and what is wrong)."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise HeaderError(f"path {path!r} does not exist")
    path = os.path.normpath(path)
    unet_file, scheduler_config = _diffusers_files(path)
    names, keep_metadata = _NameScan(), _MetadataKeep()
    header = read_header(unet_file, keep=names, keep_metadata=keep_metadata)
    metadata = {k: v[:MAX_METADATA_TEXT] for k, v in header.metadata.items()}
    tensors = header.tensors
    components = names.seen
    kind = _kind(components, metadata)
    problems = []
    side = sidecar_path(path)
    sidecar = None
    if os.path.lexists(side):
        sidecar, problem = read_small_json(side, "sidecar")
        if problem:
            problems.append(problem)
    scheduler = None
    if scheduler_config is not None:
        config, problem = read_small_json(scheduler_config, "scheduler config")
        if problem:
            problems.append(problem)
        else:
            scheduler = {k: config[k] for k in ("_class_name", "prediction_type", "shift", "use_dynamic_shifting")
                         if k in config}
    trainer, trainer_keys = _trainer(metadata)
    yaml = os.path.splitext(path)[0] + ".yaml"
    arch = _architecture(tensors)
    name = os.path.basename(path)
    hints = []
    if kind in ("checkpoint", "unet"):
        if os.path.isdir(path):
            hints += name_hints(name, "the folder name")
        elif os.path.basename(os.path.dirname(os.path.abspath(path))) == "unet":    # a diffusers UNet file
            hints += name_hints(os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(path)))),
                                "the model folder name")
        else:
            hints += name_hints(os.path.splitext(name)[0], "the file name")
        for key in ("modelspec.title", "ss_output_name"):
            if key in metadata:
                hints += name_hints(metadata[key], key)
        for key in ("modelspec.description", "ss_training_comment"):
            if key in metadata:
                hints += prose_hints(metadata[key], key)
        if arch.get("architecture") == "sdxl" and arch.get("latent_channels") == 32:
            hints.append("an SDXL UNet with 32 latent channels (Flux 2 VAE): every known one is a "
                         "bluvoll/sd-scripts-f2vae rectified-flow conversion")
    prediction = metadata.get(METADATA_PREDICTION_TYPE, "")
    return Facts(
        path=path, name=name, file_bytes=header.file_bytes, header_bytes=header.header_bytes,
        tensor_count=header.tensor_count, kind=kind, components=tuple(sorted(components - {"lora", "controlnet"})),
        **arch, v_pred="v_pred" in tensors, ztsnr="ztsnr" in tensors,
        edm="edm_vpred.sigma_max" in tensors or ("edm_mean" in tensors and "edm_std" in tensors),
        a1111_yaml=yaml if os.path.isfile(yaml) else None, trainer=trainer, trainer_metadata=trainer_keys,
        modelspec={k: v for k, v in metadata.items() if k.startswith("modelspec.") and k != "modelspec.thumbnail"},
        metadata={k: v for k, v in metadata.items() if not k.endswith("thumbnail")},
        metadata_count=header.metadata_count, declared_prediction=prediction.strip().lower(),
        sidecar_path=side, sidecar=sidecar, scheduler_config=scheduler_config, scheduler=scheduler,
        hints=tuple(hints), problems=tuple(problems))


# ---------------------------------------------------------------------------------------------
# marker values and settings


def _trainer_defaults(facts):
    """(settings, why) for an RF file that states none, from what is known about its trainer."""
    if facts.latent_channels == 32:
        # bluvoll/sd-scripts-f2vae: timesteps = min(floor(1000 * sigma), 999); Mugen's card: shift ~6
        return {"timestep_mapping": "floor_1000", "shift": 6.0}, \
            "bluvoll/sd-scripts-f2vae mapping; shift 6 as the Mugen model card suggests"
    if facts.trainer == "naifu":
        return {"timestep_mapping": "continuous"}, "naifu trains on t = 1000 * sigma"
    if facts.trainer and facts.trainer.startswith("kohya"):
        return {"timestep_mapping": "floor_999"}, \
            "bluvoll/sd-scripts mapping floor(999 * sigma) (floor_1000 for sd-scripts-f2vae; they differ " \
            "by at most one timestep)"
    return {}, "no trainer information: defaults"


def _markers(facts):
    """[(source, label, prediction, values, warnings)] of the explicit markers present, in precedence order."""
    out = []
    if facts.sidecar is not None:
        side = facts.sidecar
        label = f"sidecar {os.path.basename(facts.sidecar_path)}"
        prediction = side.get("prediction_type")
        text = prediction.strip().lower() if isinstance(prediction, str) else None
        values, warnings = marker_values(label, side.get("shift"), side.get("timestep_mapping"),
                                          side.get("shift_mode"))
        if text not in (RF_PREDICTION_TYPE,) + NOT_RF_PREDICTION_TYPES:
            warnings = [f"{label}: prediction_type must be {RF_PREDICTION_TYPE!r} or one of "
                        f"{list(NOT_RF_PREDICTION_TYPES)}, got {brief(prediction)}; the sidecar is ignored"]
            text = None
        out.append(("sidecar", label, text, values, warnings))
    if facts.declared_prediction == RF_PREDICTION_TYPE:
        metadata = facts.metadata
        values, warnings = marker_values("metadata", metadata.get(METADATA_SHIFT),
                                          metadata.get(METADATA_TIMESTEP_MAPPING), metadata.get(METADATA_SHIFT_MODE))
        out.append(("metadata", f"metadata {METADATA_PREDICTION_TYPE}", RF_PREDICTION_TYPE, values, warnings))
    scheduler_class = str((facts.scheduler or {}).get("_class_name", ""))
    if scheduler_class.startswith("FlowMatch"):
        # diffusers flow-matching schedulers feed the UNet timestep = 1000 * sigma
        values, warnings = marker_values("scheduler config", facts.scheduler.get("shift"), "continuous", None)
        if facts.scheduler.get("use_dynamic_shifting"):
            warnings.append("the scheduler config uses dynamic (Flux-style) shifting, which this project does "
                            "not implement; the static shift is recommended instead")
        out.append(("scheduler config", f"diffusers scheduler config ({scheduler_class})", RF_PREDICTION_TYPE,
                    values, warnings))
    return out


def rf_settings(facts):
    """(settings, note): what to sample the file with *if* it is RF -- the first RF marker's values,
    then its trainer's, then the defaults. `inspect` recommends these and `mark` writes them."""
    marker = next((m for m in _markers(facts) if m[2] == RF_PREDICTION_TYPE), None)
    given = marker[3] if marker else {}
    defaults, why = _trainer_defaults(facts)
    values = {"shift": DEFAULT_SHIFT, "timestep_mapping": DEFAULT_TIMESTEP_MAPPING, "shift_mode": "static"}
    values.update(defaults)
    values.update(given)
    rest = [k for k in ("shift", "timestep_mapping") if k not in given]
    if given and not rest:
        note = "from the " + marker[1]
    elif given:
        note = f"from the {marker[1]}; {', '.join(rest)}: {why}"
    else:
        note = why
    return values, note


# ---------------------------------------------------------------------------------------------
# the rules: each takes the facts and returns a Verdict, or None to pass to the next rule
def _not_rf(source, reason, warnings=()):
    return Verdict(False, source, reason, {}, "not rectified flow: no settings recommended", tuple(warnings))


def _rf(facts, source, reason, warnings=(), marker=None):
    settings, note = rf_settings(facts)
    return Verdict(True, source, reason, settings, note, tuple(warnings), dict(marker or {}))


def _rule_not_a_model(facts):
    what = {"lora": "a LoRA (or another network add-on)", "vae": "a VAE alone", "text encoder":
            "text encoders alone", "controlnet": "a ControlNet"}.get(facts.kind)
    if what is None:
        return None
    warnings = [f"{m[1]} is ignored: the file is {what}" for m in _markers(facts) if m[2] == RF_PREDICTION_TYPE]
    if facts.hints or any(name_hints(facts.name, "")):
        warnings.append("the file name suggests rectified flow, but that is about the model it belongs to")
    return _not_rf("file kind", f"not a checkpoint: the file is {what}; Auto goes by the checkpoint it is "
                                f"used with", warnings)


def _rule_markers(facts):
    marker_tensor = "v_pred" if facts.v_pred else ("EDM" if facts.edm else None)
    for source, label, prediction, values, warnings in _markers(facts):
        if prediction is None:
            continue
        if prediction == RF_PREDICTION_TYPE:
            if marker_tensor:
                warnings = warnings + [f"the file also holds the {marker_tensor} marker tensor, which ComfyUI "
                                       f"and reForge read as not rectified flow; the {label} overrides it here"]
            return _rf(facts, source, f"marked rectified flow by the {label}", warnings, values)
        return _not_rf(source, f"the {label} says prediction_type {prediction!r}: not rectified flow",
                       [f"{label} overrides the hints ({'; '.join(facts.hints)})"] if facts.hints else ())
    return None


def _rule_marker_tensor(facts):
    if not (facts.v_pred or facts.edm):
        return None
    kind = "v_pred" if facts.v_pred else "EDM"
    return _not_rf("marker tensor", f"{kind} marker tensor present: not rectified flow",
                   [f"rectified-flow hints ignored because of the {kind} marker: {'; '.join(facts.hints)}"]
                   if facts.hints else ())


def _rule_declared_v(facts):
    if facts.declared_prediction not in V_PREDICTION_TYPES:
        return None
    return _not_rf("declaration", f"the metadata declares {METADATA_PREDICTION_TYPE} = "
                                  f"{facts.declared_prediction!r} (v-prediction): not rectified flow",
                   [f"rectified-flow hints ignored because of that declaration: {'; '.join(facts.hints)}"]
                   if facts.hints else ())


def _rule_hints(facts):
    if not facts.hints:
        return None
    warnings = []
    declared = facts.declared_prediction
    if declared in EPSILON_PREDICTION_TYPES:
        warnings.append(f"the metadata says {METADATA_PREDICTION_TYPE} = {declared!r}; bluvoll/sd-scripts writes "
                        "'epsilon' into its rectified-flow checkpoints too, so this does not rule RF out; "
                        "check the model card")
    elif declared:
        warnings.append(f"the metadata says {METADATA_PREDICTION_TYPE} = {declared!r}, a value this inspector "
                        "does not know; the hints decide")
    return _rf(facts, "hint", "not marked; likely rectified flow: " + "; ".join(facts.hints), warnings)


def _rule_default(facts):
    reason = (f"no rectified-flow marker (no {SIDECAR_SUFFIX} sidecar, no {METADATA_PREDICTION_TYPE} = "
              f"{RF_PREDICTION_TYPE!r}) and no hint")
    if facts.declared_prediction:
        reason += f"; the metadata says prediction_type {facts.declared_prediction!r}"
    return _not_rf("none", reason)


RULES = (_rule_not_a_model, _rule_markers, _rule_marker_tensor, _rule_declared_v, _rule_hints, _rule_default)


def decide(facts):
    """The Verdict of the first rule in RULES that has one; the facts' problems become warnings."""
    for rule in RULES:
        verdict = rule(facts)
        if verdict is not None:
            break
    ignored = [w for m in _markers(facts) if m[2] is None for w in m[4]]   # an unusable sidecar
    if facts.problems or ignored:
        verdict = replace(verdict, warnings=tuple(facts.problems) + tuple(ignored) + verdict.warnings)
    return verdict


# ---------------------------------------------------------------------------------------------
# public API
def inspect_checkpoint(path):
    """Report(facts, verdict) for the checkpoint file or diffusers folder at `path`.

    Reads only the safetensors header and small JSON sidecars. Raises HeaderError (a ValueError)
    whose one-line message names the file and says what is wrong (does not exist, a folder, not
    safetensors, truncated, ...) for anything safetensors itself would refuse to open.
    """
    facts = gather_facts(path)
    return Report(facts, decide(facts))


def _stat_key(path):
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns, info.st_ino


_CACHE = {}
_CACHE_SIZE = 32
_CACHE_LOCK = threading.Lock()


def inspect_cached(path):
    """inspect_checkpoint, re-run only when the checkpoint, its sidecar or its A1111 yaml / scheduler
    config changed (size, mtime, inode): what every host's Auto calls each generation."""
    path = os.path.normpath(os.fspath(path))
    unet_file, scheduler_config = _diffusers_files(path)
    key = (path, _stat_key(unet_file), _stat_key(sidecar_path(path)), _stat_key(os.path.splitext(path)[0] + ".yaml"),
           _stat_key(scheduler_config) if scheduler_config else None)
    with _CACHE_LOCK:
        hit = _CACHE.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    report = inspect_checkpoint(path)
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[path] = (key, report)
    return report


def detect_rectified_flow(path):
    """(is_rf, reason) for the checkpoint at `path`: what every host's "Auto" uses.

    Never raises for a file or its sidecars: an unreadable file gives (False, the reason).
    """
    if path is None or path == "":
        return False, "no checkpoint file"
    try:
        report = inspect_cached(path)
    except (OSError, ValueError, TypeError) as error:
        return False, f"not inspected: {error}"
    return report.verdict.is_rf, report.verdict.reason


def recommended_settings(report):
    """FlowSettings (needs torch) for an RF report, else None."""
    if not isinstance(report, Report):
        raise ValueError(f"report must be a Report from inspect_checkpoint, got {type(report).__name__}")
    if not report.verdict.is_rf:
        return None
    from .settings import FlowSettings
    return FlowSettings(**report.verdict.settings)


def settings_explanation(report):
    """One line saying where the recommended settings come from."""
    return report.verdict.settings_note
