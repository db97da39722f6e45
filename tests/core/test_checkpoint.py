"""Checkpoint inspection and RF detection on real-format safetensors files built here."""
import json
import os
import pathlib
import struct
import subprocess
import sys

import pytest
import torch

safetensors_torch = pytest.importorskip("safetensors.torch")

from model_sampling_flow.__main__ import main  # noqa: E402
from model_sampling_flow.checkpoint import (detect_rectified_flow, inspect_cached,  # noqa: E402
                                            inspect_checkpoint, recommended_settings)
from model_sampling_flow.report_text import format_report  # noqa: E402
from model_sampling_flow.safetensors_header import MAX_HEADER_BYTES, read_header  # noqa: E402
from model_sampling_flow.sidecar import marker_metadata, sidecar_path, write_sidecar  # noqa: E402
from model_sampling_flow.settings import FlowSettings  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sdxl_state_dict(latent_channels=4, layout="original"):
    """The tensors that identify an SDXL checkpoint, at their real shapes (uint8 keeps it small)."""
    def zeros(*shape):
        return torch.zeros(shape, dtype=torch.uint8)
    if layout == "diffusers":
        return {"conv_in.weight": zeros(320, latent_channels, 3, 3),
                "conv_out.weight": zeros(latent_channels, 320, 3, 3),
                "add_embedding.linear_1.weight": zeros(1280, 2816)}
    unet = "model.diffusion_model."
    return {
        unet + "input_blocks.0.0.weight": zeros(320, latent_channels, 3, 3),
        unet + "out.2.weight": zeros(latent_channels, 320, 3, 3),
        unet + "label_emb.0.0.weight": zeros(1280, 2816),
        "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": zeros(768),
        "conditioner.embedders.1.model.ln_final.weight": zeros(1280),
        "first_stage_model.decoder.conv_in.weight": zeros(512, latent_channels, 3, 3),
    }


def save(path, tensors, metadata=None):
    safetensors_torch.save_file(tensors, str(path), metadata=metadata)
    return str(path)


KOHYA_EPS_SPEC = {  # what kohya's writer (and so bluvoll's --flow_model fork) puts in a full SDXL save
    "modelspec.sai_model_spec": "1.0.0",
    "modelspec.architecture": "stable-diffusion-xl-v1-base",
    "modelspec.implementation": "https://github.com/Stability-AI/generative-models",
    "modelspec.title": "noob-finetune",
    "modelspec.resolution": "1024x1024",
    "modelspec.prediction_type": "epsilon",
}


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(data if isinstance(data, str) else json.dumps(data))


def read_json(path):
    return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))


def run_cli(*args, env=None):
    environment = dict(os.environ, PYTHONPATH=ROOT)
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "model_sampling_flow", *args], capture_output=True, text=True,
                          cwd=ROOT, env=environment)


# -------------------------------------------------------------------------------------------
# real-format headers
def test_plain_sdxl_checkpoint_is_not_rf(tmp_path):
    report = inspect_checkpoint(save(tmp_path / "base.safetensors", sdxl_state_dict()))
    facts = report.facts
    assert (facts.kind, facts.architecture, facts.layout) == ("checkpoint", "sdxl", "original")
    assert facts.latent_channels == 4 and facts.in_channels == 4
    assert facts.components == ("clip_g", "clip_l", "unet", "vae")
    assert (facts.v_pred, facts.ztsnr, facts.edm) == (False, False, False)
    assert report.verdict.is_rf is False and report.verdict.source == "none"
    assert recommended_settings(report) is None
    assert detect_rectified_flow(facts.path)[0] is False


def test_vpred_ztsnr_marker_tensors_are_reported(tmp_path):
    tensors = dict(sdxl_state_dict(), v_pred=torch.tensor([]), ztsnr=torch.tensor([]))
    path = save(tmp_path / "noob-vpred.safetensors", tensors, {"modelspec.predict_key": "v"})
    report = inspect_checkpoint(path)
    assert report.facts.v_pred and report.facts.ztsnr
    assert report.facts.trainer == "ComfyUI CheckpointSave"
    assert report.verdict.is_rf is False and "v_pred" in report.verdict.reason


def test_vpred_marker_overrides_a_name_hint(tmp_path):
    tensors = dict(sdxl_state_dict(), v_pred=torch.tensor([]))
    report = inspect_checkpoint(save(tmp_path / "rectified-flow-vpred.safetensors", tensors))
    assert report.verdict.is_rf is False
    assert any("hints ignored" in w for w in report.verdict.warnings)


def test_our_metadata_marker(tmp_path):
    metadata = {"modelspec.prediction_type": "rectified_flow", "flow_sampling.shift": "5",
                "flow_sampling.timestep_mapping": "floor_999", "flow_sampling.shift_mode": "static"}
    path = save(tmp_path / "model.safetensors", sdxl_state_dict(), metadata)
    report = inspect_checkpoint(path)
    assert report.verdict.is_rf and report.verdict.source == "metadata"
    assert report.verdict.marker == {"shift": 5.0, "timestep_mapping": "floor_999", "shift_mode": "static"}
    assert recommended_settings(report) == FlowSettings(shift=5.0, timestep_mapping="floor_999")
    is_rf, reason = detect_rectified_flow(path)
    assert is_rf and "modelspec.prediction_type" in reason


def test_marker_metadata_round_trip(tmp_path):
    settings = FlowSettings(shift=4.5, timestep_mapping="floor_1000", shift_mode="resolution")
    report = inspect_checkpoint(save(tmp_path / "m.safetensors", sdxl_state_dict(), marker_metadata(settings)))
    assert recommended_settings(report) == settings


def test_marker_without_settings_uses_defaults_and_bad_values_warn(tmp_path):
    metadata = {"modelspec.prediction_type": "rectified_flow", "flow_sampling.shift": "-2",
                "flow_sampling.timestep_mapping": "round_500"}
    report = inspect_checkpoint(save(tmp_path / "m.safetensors", sdxl_state_dict(), metadata))
    assert report.verdict.is_rf
    assert recommended_settings(report).shift == 3.0
    assert len(report.verdict.warnings) == 2
    assert any("shift" in w and "-2" in w for w in report.verdict.warnings)
    assert any("round_500" in w for w in report.verdict.warnings)


def test_kohya_eps_spec_alone_is_not_rf(tmp_path):
    report = inspect_checkpoint(save(tmp_path / "finetune.safetensors", sdxl_state_dict(), KOHYA_EPS_SPEC))
    assert report.facts.trainer.startswith("kohya")
    assert report.facts.modelspec["modelspec.prediction_type"] == "epsilon"
    assert report.verdict.is_rf is False and "'epsilon'" in report.verdict.reason


def test_rf_name_hint_on_a_kohya_file_recommends_floor_999(tmp_path):
    path = save(tmp_path / "ChenkinNoob-XL-v0.3-Rectified-Flow.safetensors", sdxl_state_dict(), KOHYA_EPS_SPEC)
    report = inspect_checkpoint(path)
    assert report.verdict.is_rf and report.verdict.source == "hint"
    assert "file name" in report.verdict.reason
    assert any("'epsilon'" in w and "bluvoll" in w for w in report.verdict.warnings)
    assert recommended_settings(report).timestep_mapping == "floor_999"


def test_explicit_v_declaration_vetoes_name_hints_and_the_warning_fits_the_value(tmp_path):
    spec = dict(KOHYA_EPS_SPEC, **{"modelspec.prediction_type": "v"})
    report = inspect_checkpoint(save(tmp_path / "Noob-XL-V0.2-RF.safetensors", sdxl_state_dict(), spec))
    assert report.verdict.is_rf is False and report.verdict.source == "declaration"
    assert not any("bluvoll" in w for w in report.verdict.warnings)     # bluvoll writes 'epsilon', not 'v'
    assert any("hints ignored" in w for w in report.verdict.warnings)


def test_training_comment_hint(tmp_path):
    metadata = {"ss_training_comment": "trained as a rectified flow model", "ss_output_name": "x"}
    report = inspect_checkpoint(save(tmp_path / "finetune.safetensors", sdxl_state_dict(), metadata))
    assert report.facts.trainer.startswith("kohya")
    assert report.facts.trainer_metadata["ss_training_comment"].startswith("trained")
    assert report.verdict.is_rf and "ss_training_comment" in report.verdict.reason


def test_flux2_vae_sdxl_unet_is_a_hint_with_the_f2vae_mapping_and_mark_writes_it(tmp_path, capsys):
    path = save(tmp_path / "mugen.safetensors", sdxl_state_dict(latent_channels=32))
    report = inspect_checkpoint(path)
    assert report.facts.architecture == "sdxl" and report.facts.latent_channels == 32
    assert report.verdict.is_rf and report.verdict.source == "hint"
    settings = recommended_settings(report)
    assert settings.timestep_mapping == "floor_1000" and settings.shift == 6.0
    # `mark FILE`, as the report suggests, writes exactly what inspect recommends
    assert main(["mark", path]) == 0
    capsys.readouterr()
    marked = inspect_checkpoint(path)
    assert marked.verdict.source == "sidecar" and recommended_settings(marked) == settings


def test_naifu_metadata(tmp_path):
    metadata = {"global_step": "12000", "current_epoch": "3", "modelspec.prediction_type": "rectified_flow"}
    report = inspect_checkpoint(save(tmp_path / "checkpoint-e3_s12000.safetensors", sdxl_state_dict(), metadata))
    assert report.facts.trainer == "naifu"
    assert report.facts.trainer_metadata == {"global_step": "12000", "current_epoch": "3"}
    assert recommended_settings(report).timestep_mapping == "continuous"


def test_diffusers_layout_and_inpaint_channels(tmp_path):
    facts = inspect_checkpoint(save(tmp_path / "unet.safetensors", sdxl_state_dict(layout="diffusers"))).facts
    assert (facts.architecture, facts.layout, facts.latent_channels, facts.kind) == ("sdxl", "diffusers", 4, "unet")
    tensors = sdxl_state_dict()
    tensors["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(320, 9, 3, 3, dtype=torch.uint8)
    facts = inspect_checkpoint(save(tmp_path / "inpaint.safetensors", tensors)).facts
    assert (facts.in_channels, facts.latent_channels) == (9, 4)


@pytest.mark.parametrize("name, tensors, metadata, kind", [
    ("Chenkin-RF-style-lora.safetensors", {"lora_unet_input_blocks_1_0.alpha": torch.ones(1),
                                           "lora_unet_input_blocks_1_0.lora_down.weight": torch.ones(4, 8)},
     {"ss_network_module": "networks.lora", "ss_training_comment": "rectified flow"}, "lora"),
    ("rectified-flow-peft.safetensors", {"unet.down_blocks.0.attn.to_q.lora_A.weight": torch.ones(4, 8)}, {}, "lora"),
    # diffusers attention-processor LoRAs and LyCORIS LoKr, with no kohya prefix or metadata
    ("NoobAI-RF-diffusers-lora.safetensors",
     {"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight": torch.ones(4, 8),
      "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.up.weight": torch.ones(8, 4)},
     {}, "lora"),
    ("rf-lora-linear-layer.safetensors",
     {"unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k.lora_linear_layer.down.weight": torch.ones(4, 8)},
     {}, "lora"),
    ("ChenkinRF-lokr.safetensors", {"input_blocks.1.0.lokr_w1_a": torch.ones(4, 4), "input_blocks.1.0.lokr_w2_b": torch.ones(4, 4)},
     {}, "lora"),
    ("flux2-vae-RF.safetensors", {"encoder.conv_in.weight": torch.ones(1), "decoder.conv_out.weight": torch.ones(1)},
     {}, "vae"),
    ("nyaflow-te.safetensors", {"text_model.embeddings.position_ids": torch.ones(1)}, {}, "text encoder"),
])
def test_a_lora_or_a_vae_is_reported_as_such_not_as_an_rf_checkpoint(tmp_path, name, tensors, metadata, kind):
    path = save(tmp_path / name, tensors, dict(metadata, **{"modelspec.prediction_type": "rectified_flow"}))
    report = inspect_checkpoint(path)
    assert report.facts.kind == kind
    assert report.verdict.is_rf is False and report.verdict.source == "file kind"
    assert "not a checkpoint" in report.verdict.reason
    assert recommended_settings(report) is None
    text = format_report(report)
    assert f"kind            {kind}" in text and "recommended" not in text
    assert main(["mark", path]) == 1


def test_unknown_architecture_with_a_unet_key_still_reads_the_marker(tmp_path):
    # the webui host tests' stand-in checkpoints: one UNet tensor and the metadata marker
    path = save(tmp_path / "standin.safetensors", {"model.diffusion_model.out.2.bias": torch.zeros(4)},
                {"modelspec.prediction_type": "rectified_flow"})
    report = inspect_checkpoint(path)
    assert (report.facts.kind, report.facts.architecture) == ("unet", "unknown")
    assert report.verdict.is_rf and "architecture    unknown" in format_report(report)


# -------------------------------------------------------------------------------------------
# sidecars
def test_sidecar_marks_and_beats_metadata(tmp_path):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict(),
                {"modelspec.prediction_type": "rectified_flow", "flow_sampling.shift": "5"})
    write_json(sidecar_path(path), {"prediction_type": "rectified_flow", "shift": 7, "timestep_mapping": "floor_1000"})
    report = inspect_checkpoint(path)
    assert sidecar_path(path) == str(tmp_path / "model.flow.json")
    assert report.verdict.source == "sidecar"
    assert recommended_settings(report) == FlowSettings(shift=7.0, timestep_mapping="floor_1000")


def test_sidecar_can_say_not_rf(tmp_path):
    path = save(tmp_path / "my-rectified-flow-test.safetensors", sdxl_state_dict())
    assert detect_rectified_flow(path)[0] is True  # the name hint
    write_json(sidecar_path(path), {"prediction_type": "epsilon"})
    is_rf, reason = detect_rectified_flow(path)
    assert is_rf is False and "epsilon" in reason


def test_a_sidecar_over_a_vpred_tensor_says_so(tmp_path):
    path = save(tmp_path / "model.safetensors", dict(sdxl_state_dict(), v_pred=torch.tensor([])))
    write_json(sidecar_path(path), {"prediction_type": "rectified_flow"})
    report = inspect_checkpoint(path)
    assert report.verdict.is_rf and any("v_pred" in w and "overrides" in w for w in report.verdict.warnings)


def test_write_sidecar_round_trip(tmp_path):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict())
    settings = FlowSettings(shift=4.0, timestep_mapping="floor_999")
    assert write_sidecar(path, settings) == sidecar_path(path)
    assert recommended_settings(inspect_checkpoint(path)) == settings
    with pytest.raises(ValueError, match="settings"):
        write_sidecar(path, 4.0)


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ("[" * 100000 + "]" * 100000, "not valid JSON"),
    ('{"prediction_type": "rectified_flow", "timestep_mapping": ["floor_999"], "shift": {"a": 1}, '
     '"shift_mode": true}', "timestep_mapping must be one of"),
    ('{"prediction_type": ["rectified_flow"]}', "prediction_type must be"),
    ('{"prediction_type": "rectified_flow", "shift": "NaN"}', "shift must be finite"),
    ('{"prediction_type": "rectified_flow", "shift": true}', "shift must be a number"),
    (b"\xff\xfe not utf-8", "not valid JSON"),
])
def test_a_broken_or_odd_sidecar_is_a_warning_never_an_exception(tmp_path, content, problem):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict(), {"modelspec.prediction_type": "rectified_flow"})
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(sidecar_path(path), mode) as handle:
        handle.write(content)
    report = inspect_checkpoint(path)
    assert report.verdict.is_rf                             # the metadata marker still decides (or the sidecar does)
    assert any(problem in w for w in report.verdict.warnings), report.verdict.warnings
    assert detect_rectified_flow(path)[0] is True
    assert main(["inspect", path]) == 0


def test_a_sidecar_that_is_a_folder_or_fifo_is_not_read(tmp_path):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict())
    os.mkdir(sidecar_path(path))
    report = inspect_checkpoint(path)
    assert report.verdict.is_rf is False and any("not a regular file" in w for w in report.verdict.warnings)
    os.rmdir(sidecar_path(path))
    if hasattr(os, "mkfifo"):
        os.mkfifo(sidecar_path(path))                      # opening a FIFO would block forever
        assert any("not a regular file" in w for w in inspect_checkpoint(path).verdict.warnings)


def test_unknown_sidecar_prediction_type_warns_and_falls_through(tmp_path):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict(), {"modelspec.prediction_type": "rectified_flow"})
    write_json(sidecar_path(path), {"prediction_type": "flowy"})
    report = inspect_checkpoint(path)
    assert report.verdict.source == "metadata"
    assert any("flowy" in w for w in report.verdict.warnings)


def diffusers_folder(root, scheduler):
    (root / "unet").mkdir(parents=True)
    (root / "scheduler").mkdir()
    save(root / "unet" / "diffusion_pytorch_model.safetensors", sdxl_state_dict(layout="diffusers"))
    write_json(root / "scheduler" / "scheduler_config.json", scheduler)
    return root


def test_diffusers_folder_with_a_flow_matching_scheduler(tmp_path):
    root = diffusers_folder(tmp_path / "Mugen", {"_class_name": "FlowMatchEulerDiscreteScheduler",
                                                 "shift": 6.0, "num_train_timesteps": 1000})
    for path in (root, root / "unet" / "diffusion_pytorch_model.safetensors"):
        report = inspect_checkpoint(path)
        assert report.facts.architecture == "sdxl" and report.facts.layout == "diffusers"
        assert report.verdict.is_rf and report.verdict.source == "scheduler config"
        assert "FlowMatchEulerDiscreteScheduler" in report.verdict.reason
        assert recommended_settings(report) == FlowSettings(shift=6.0, timestep_mapping="continuous")
        assert "scheduler       _class_name=FlowMatchEulerDiscreteScheduler" in format_report(report)


def test_deeply_nested_scheduler_config_is_a_warning(tmp_path):
    root = diffusers_folder(tmp_path / "deep", {})
    (root / "scheduler" / "scheduler_config.json").write_text("[" * 100000 + "]" * 100000)
    report = inspect_checkpoint(root)
    assert report.verdict.is_rf is False and any("scheduler config" in w for w in report.verdict.warnings)


def test_diffusers_folder_with_a_diffusion_scheduler_is_not_rf(tmp_path):
    root = diffusers_folder(tmp_path / "sdxl", {"_class_name": "EulerDiscreteScheduler",
                                                "prediction_type": "v_prediction"})
    report = inspect_checkpoint(root)
    assert report.verdict.is_rf is False
    assert report.facts.scheduler == {"_class_name": "EulerDiscreteScheduler", "prediction_type": "v_prediction"}


def test_a1111_yaml_config_is_reported(tmp_path):
    path = save(tmp_path / "vmodel.safetensors", sdxl_state_dict())
    (tmp_path / "vmodel.yaml").write_text("model: {}\n")
    assert inspect_checkpoint(path).facts.a1111_yaml == str(tmp_path / "vmodel.yaml")


# -------------------------------------------------------------------------------------------
# Auto: the verdict is cached per file state
def test_auto_reads_the_header_again_only_when_the_file_or_its_sidecar_changes(tmp_path, monkeypatch):
    import model_sampling_flow.checkpoint as checkpoint
    path = save(tmp_path / "model.safetensors", sdxl_state_dict())
    calls = []
    real = checkpoint.inspect_checkpoint
    monkeypatch.setattr(checkpoint, "inspect_checkpoint", lambda p: calls.append(p) or real(p))
    first = inspect_cached(path)
    assert inspect_cached(path) is first and detect_rectified_flow(path)[0] is False
    assert len(calls) == 1
    write_json(sidecar_path(path), {"prediction_type": "rectified_flow", "shift": 4})
    assert detect_rectified_flow(path)[0] is True and len(calls) == 2
    save(tmp_path / "model.safetensors", sdxl_state_dict(), {"modelspec.title": "changed"})
    os.utime(path, ns=(1, 1))               # a new mtime even on a coarse-clock filesystem
    assert inspect_cached(path).facts.modelspec == {"modelspec.title": "changed"} and len(calls) == 3


# -------------------------------------------------------------------------------------------
# broken and refused files: one line naming the file and what is wrong, in the user's terms
def test_only_the_header_is_read(tmp_path):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict())
    header = read_header(path)
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
    assert (header.file_bytes, header.header_bytes) == (os.path.getsize(path), length)
    # scribbling over every data byte changes nothing: the data is never parsed
    with open(path, "r+b") as handle:
        handle.seek(8 + length)
        handle.write(b"\xff" * (header.file_bytes - 8 - length))
    assert read_header(path).tensors == header.tensors


@pytest.mark.parametrize("first_bytes", [b"\x80\x02", b"PK"])
def test_a_truncated_file_whose_length_looks_like_a_pickle_is_called_truncated(tmp_path, first_bytes):
    metadata = {"pad": ""}
    while True:     # pad the header until its length field starts with the pickle / zip bytes
        data = pathlib.Path(save(tmp_path / "full.safetensors", {"w": torch.zeros(1)}, metadata)).read_bytes()
        if data[:2] == first_bytes:
            break
        metadata["pad"] += "x" * (1 if first_bytes == b"PK" else 8)
        if len(metadata["pad"]) > 70000:
            pytest.skip("no header length with these first bytes in range")
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:-2])
    with pytest.raises(ValueError, match="truncated") as error:
        inspect_checkpoint(path)
    assert "pickle" not in str(error.value) and "zip" not in str(error.value)


def test_mark_refuses_a_file_that_is_not_a_checkpoint_or_a_unet(tmp_path, capsys):
    path = save(tmp_path / "embedding_rectified_flow.safetensors", {"clip_g": torch.ones(2, 8), "clip_l": torch.ones(2, 8)})
    assert inspect_checkpoint(path).facts.kind == "unknown"
    assert main(["mark", path]) == 1
    assert "not a checkpoint" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "embedding_rectified_flow.flow.json")


def test_a_sidecar_with_a_byte_order_mark_is_read(tmp_path):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict())
    (tmp_path / "model.flow.json").write_bytes(b"\xef\xbb\xbf" + json.dumps({"prediction_type": "epsilon"}).encode())
    report = inspect_checkpoint(path)
    assert report.verdict.is_rf is False and report.verdict.source == "sidecar"


def test_json_report_is_strict_json_with_a_nan_in_the_sidecar(tmp_path, capsys):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict())
    (tmp_path / "model.flow.json").write_text('{"prediction_type": "rectified_flow", "shift": NaN}')
    assert main(["inspect", "--json", path]) == 0
    out = capsys.readouterr().out
    json.loads(out, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))


def test_truncated_files(tmp_path):
    data = pathlib.Path(save(tmp_path / "full.safetensors", sdxl_state_dict())).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    for name, cut in (("in_header", 8 + length // 2), ("in_data", len(data) - 100), ("in_length", 5)):
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated|fewer than") as error:
            inspect_checkpoint(path)
        assert str(path) in str(error.value)


@pytest.mark.parametrize("setup, message", [
    (lambda d: d / "nothing-here.safetensors", "does not exist"),
    (lambda d: (d / "sub").mkdir() or d / "sub", "not a diffusers model"),
    (lambda d: (d / "notes.safetensors").write_text("hello, this is not a model") and d / "notes.safetensors",
     "not a safetensors file: its first 8 bytes .* like a text file"),
    (lambda d: (d / "empty.safetensors").write_bytes(b"") or d / "empty.safetensors", "fewer than the 8-byte"),
    (lambda d: (d / "a.safetensors").write_bytes(struct.pack("<Q", 2) + b"[]") and d / "a.safetensors",
     "not a JSON object"),
])
def test_messages_say_what_is_wrong_in_the_users_terms(tmp_path, setup, message):
    path = setup(tmp_path)
    with pytest.raises(ValueError, match=message):
        inspect_checkpoint(path)
    result = run_cli("inspect", str(path))
    assert result.returncode == 1 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_enormous_header_is_refused_before_reading_it(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{" + b" " * 64)
    with pytest.raises(ValueError, match="not a safetensors file"):
        inspect_checkpoint(path)


def test_pickle_checkpoints_are_refused_unopened(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    with pytest.raises(ValueError, match="zip archive.*never opened"):
        inspect_checkpoint(ckpt)
    disguised = tmp_path / "model.safetensors"      # a pickle under a safetensors name: its magic bytes say so
    disguised.write_bytes(ckpt.read_bytes())
    with pytest.raises(ValueError, match="pickle"):
        inspect_checkpoint(disguised)
    raw = tmp_path / "raw.safetensors"
    raw.write_bytes(b"\x80\x04\x95" + b"\0" * 20)
    with pytest.raises(ValueError, match="it is a pickle"):
        inspect_checkpoint(raw)


@pytest.mark.parametrize("pad_to_low_byte", [0x80, 0x50])
def test_a_valid_file_whose_header_length_looks_like_a_pickle_or_zip_is_read(tmp_path, pad_to_low_byte):
    # the header length's low byte 0x80 (pickle's first byte) or 'P' (of 'PK'): both still safetensors
    for k in range(0, 300):
        path = save(tmp_path / "model.safetensors", sdxl_state_dict(), {"pad": "x" * k})
        with open(path, "rb") as handle:
            if handle.read(1)[0] == pad_to_low_byte:
                break
    else:
        pytest.fail("no padding gave the wanted header length")
    with open(path, "r+b") as handle:           # 'PK': make the second length byte 'K' is impossible for a
        first = handle.read(2)                  # real header (> 100 MB), so the low byte is what matters
    assert first[0] == pad_to_low_byte
    report = inspect_checkpoint(path)
    assert report.facts.architecture == "sdxl"
    write_json(sidecar_path(path), {"prediction_type": "rectified_flow"})
    assert detect_rectified_flow(path)[0] is True
    assert main(["mark", path, "--force"]) == 0


def test_detect_reports_unreadable_files_instead_of_raising(tmp_path):
    is_rf, reason = detect_rectified_flow(tmp_path / "missing.safetensors")
    assert is_rf is False and reason.startswith("not inspected:") and "does not exist" in reason


def test_recommended_settings_validates_its_argument():
    with pytest.raises(ValueError, match="report"):
        recommended_settings("model.safetensors")


# -------------------------------------------------------------------------------------------
# the text report cannot be spoofed
def test_control_characters_in_metadata_are_escaped(tmp_path):
    spoof = "x\n\x1b[1A\x1b[2Kverdict  YES: spoofed\r\u202e\u2028"
    metadata = dict(KOHYA_EPS_SPEC, **{"modelspec.title": spoof, "modelspec.description": spoof,
                                       "ss_training_comment": spoof})
    path = save(tmp_path / "model\x1b[31m.safetensors", sdxl_state_dict(), metadata)
    text = format_report(inspect_checkpoint(path))
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text and "\u2028" not in text
    assert "\\x1b[2K" in text and "\\u202e" in text
    assert not any(line.startswith("verdict") for line in text.splitlines())
    assert [line for line in text.splitlines() if line.startswith("rectified flow")] == \
        ["rectified flow  no: no rectified-flow marker (no .flow.json sidecar, no modelspec.prediction_type = "
         "'rectified_flow') and no hint; the metadata says prediction_type 'epsilon'"]


def test_text_the_terminal_cannot_encode_is_shown_escaped(tmp_path):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict(), {"modelspec.title": "snow \u2603 \U0001f600"})
    result = run_cli("inspect", path, env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.stderr
    assert "snow \\u2603 \\U0001f600" in result.stdout


# -------------------------------------------------------------------------------------------
# command line
def test_cli_inspect_text_and_json(tmp_path, capsys):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict(),
                {"modelspec.prediction_type": "rectified_flow", "flow_sampling.shift": "4"})
    assert main(["inspect", path]) == 0
    out = capsys.readouterr().out
    assert "rectified flow  YES" in out and "shift 4" in out and "latent channels 4" in out
    assert main(["inspect", "--json", path]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["is_rf"] is True and report["recommended"]["shift"] == 4.0
    assert report["verdict"]["source"] == "metadata" and report["kind"] == "checkpoint"


def test_cli_mark_then_inspect(tmp_path, capsys):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict(), KOHYA_EPS_SPEC)
    assert main(["mark", path, "--shift", "5"]) == 0
    assert "floor_999" in capsys.readouterr().out  # kohya-written file: the sd-scripts mapping
    report = inspect_checkpoint(path)
    assert report.verdict.source == "sidecar" and recommended_settings(report).shift == 5.0


def test_mark_asks_for_force_before_replacing_a_different_or_broken_sidecar(tmp_path, capsys):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict())
    side = sidecar_path(path)
    write_json(side, {"prediction_type": "epsilon"})
    assert main(["mark", path]) == 1
    assert "--force" in capsys.readouterr().err
    assert read_json(side) == {"prediction_type": "epsilon"}         # untouched
    write_json(side, "{broken")
    assert main(["mark", path]) == 1 and "--force" in capsys.readouterr().err
    assert main(["mark", path, "--force", "--shift", "4"]) == 0
    assert read_json(side)["shift"] == 4.0
    assert main(["mark", path, "--shift", "4"]) == 0                      # the same content: no --force needed
    assert main(["mark", path, "--shift", "5"]) == 1
    assert sorted(os.listdir(tmp_path)) == ["model.flow.json", "model.safetensors"]   # no temporary left


def test_mark_never_follows_a_symlink(tmp_path, capsys):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict())
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious")
    os.symlink(target, sidecar_path(path))
    assert main(["mark", path]) == 1 and "symbolic link" in capsys.readouterr().err
    assert target.read_text() == "precious"
    assert main(["mark", path, "--force"]) == 0
    assert target.read_text() == "precious" and not os.path.islink(sidecar_path(path))
    assert inspect_checkpoint(path).verdict.source == "sidecar"


def test_mark_writes_atomically(tmp_path, monkeypatch):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict())
    write_json(sidecar_path(path), {"prediction_type": "epsilon"})

    def fail(*args):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_sidecar(path, {"shift": 3.0}, force=True)
    assert read_json(sidecar_path(path)) == {"prediction_type": "epsilon"}
    assert sorted(os.listdir(tmp_path)) == ["model.flow.json", "model.safetensors"]


def test_mark_treats_a_folder_with_a_trailing_slash_like_the_folder(tmp_path, capsys):
    root = diffusers_folder(tmp_path / "Mugen", {"_class_name": "EulerDiscreteScheduler"})
    assert main(["mark", str(root) + os.sep]) == 0
    capsys.readouterr()
    assert os.path.isfile(str(root) + ".flow.json") and not os.path.exists(root / ".flow.json")
    for spelling in (str(root), str(root) + os.sep):
        assert inspect_checkpoint(spelling).verdict.source == "sidecar"


def test_cli_errors_are_messages_not_tracebacks(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 10 ** 12) + b"{}")
    result = run_cli("inspect", str(bad))
    assert result.returncode == 1 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    ckpt = tmp_path / "old.ckpt"
    ckpt.write_bytes(b"\x80\x02}q\x00.")
    result = run_cli("inspect", str(ckpt))
    assert result.returncode == 1 and "pickle" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("inspect")
    assert result.returncode == 2 and "usage" in result.stderr


def test_inspect_runs_with_the_standard_library_alone(tmp_path):
    path = save(tmp_path / "Noob-XL-V0.2-RF.safetensors", sdxl_state_dict(latent_channels=32), KOHYA_EPS_SPEC)
    blocker = tmp_path / "block"
    blocker.mkdir()
    for name in ("torch", "numpy", "safetensors"):       # importing any of them fails in the child
        (blocker / f"{name}.py").write_text(f"raise ImportError('{name} is blocked for this test')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(blocker), ROOT])}
    probe = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True,
                           env=dict(os.environ, **env))
    assert probe.returncode != 0 and "blocked" in probe.stderr
    result = run_cli("inspect", path, env=env)
    assert result.returncode == 0, result.stderr
    assert "rectified flow  YES" in result.stdout and "shift 6" in result.stdout
    assert run_cli("inspect", "--json", path, env=env).returncode == 0
    assert run_cli("mark", path, env=env).returncode == 0
    assert read_json(sidecar_path(path))["timestep_mapping"] == "floor_1000"


def test_a_deep_sidecar_or_scheduler_config_prints_in_text_and_json(tmp_path, capsys):
    deep = "[" * 900 + "]" * 900             # parses, but repr() or json.dumps of it would recurse too deep
    root = diffusers_folder(tmp_path / "deep", {})
    (root / "scheduler" / "scheduler_config.json").write_text(
        '{"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": %s, "prediction_type": %s}' % (deep, deep))
    write_json(sidecar_path(root), '{"prediction_type": "rectified_flow", "shift": %s, "x": %s}' % (deep, deep))
    for args in (["inspect", str(root)], ["inspect", "--json", str(root)]):
        assert main(args) == 0
        assert "shift must be a number, got a JSON array" in capsys.readouterr().out
    assert main(["mark", str(root)]) == 1 and "--force" in capsys.readouterr().err


def test_a_checkpoint_with_a_merged_loras_metadata_is_still_a_checkpoint(tmp_path):
    path = save(tmp_path / "merged-RF.safetensors", sdxl_state_dict(), {"ss_network_module": "networks.lora"})
    report = inspect_checkpoint(path)
    assert report.facts.kind == "checkpoint" and report.verdict.is_rf and report.verdict.source == "hint"


def test_a_diffusers_folder_name_is_a_hint_for_the_folder_and_its_unet_file(tmp_path):
    root = diffusers_folder(tmp_path / "NoobAI-Flux2VAE-RectifiedFlow", {"_class_name": "EulerDiscreteScheduler"})
    for path in (root, root / "unet" / "diffusion_pytorch_model.safetensors"):
        verdict = inspect_checkpoint(path).verdict
        assert verdict.is_rf and verdict.source == "hint" and "folder name" in verdict.reason
