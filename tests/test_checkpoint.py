"""Checkpoint inspection and RF detection on real-format safetensors files built here."""
import json
import os
import struct
import subprocess
import sys

import pytest
import torch

safetensors_torch = pytest.importorskip("safetensors.torch")

from model_sampling_flow.__main__ import main  # noqa: E402
from model_sampling_flow.checkpoint import (MAX_HEADER_BYTES, detect_rectified_flow,  # noqa: E402
                                            format_report, inspect_checkpoint, marker_metadata,
                                            read_safetensors_header, recommended_settings,
                                            sidecar_path, write_sidecar)
from model_sampling_flow.settings import FlowSettings  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


# -------------------------------------------------------------------------------------------
# real-format headers
def test_plain_sdxl_checkpoint_is_not_rf(tmp_path):
    report = inspect_checkpoint(save(tmp_path / "base.safetensors", sdxl_state_dict()))
    assert report["architecture"] == "sdxl"
    assert report["layout"] == "original"
    assert report["latent_channels"] == 4 and report["in_channels"] == 4
    assert report["components"] == ["clip_g", "clip_l", "unet", "vae"]
    assert (report["v_pred"], report["ztsnr"], report["edm"]) == (False, False, False)
    assert report["is_rf"] is False and report["rf_source"] is None
    assert recommended_settings(report) is None
    assert detect_rectified_flow(report["path"])[0] is False


def test_vpred_ztsnr_marker_tensors_are_reported(tmp_path):
    tensors = dict(sdxl_state_dict(), v_pred=torch.tensor([]), ztsnr=torch.tensor([]))
    path = save(tmp_path / "noob-vpred.safetensors", tensors, {"modelspec.predict_key": "v"})
    report = inspect_checkpoint(path)
    assert report["v_pred"] and report["ztsnr"]
    assert report["trainer"] == "ComfyUI CheckpointSave"
    assert report["is_rf"] is False and "v_pred" in report["reason"]


def test_vpred_marker_overrides_a_name_hint(tmp_path):
    tensors = dict(sdxl_state_dict(), v_pred=torch.tensor([]))
    report = inspect_checkpoint(save(tmp_path / "rectified-flow-vpred.safetensors", tensors))
    assert report["is_rf"] is False
    assert any("hints ignored" in w for w in report["warnings"])


def test_our_metadata_marker(tmp_path):
    metadata = {"modelspec.prediction_type": "rectified_flow", "flow_sampling.shift": "5",
                "flow_sampling.timestep_mapping": "floor_999", "flow_sampling.shift_mode": "static"}
    path = save(tmp_path / "model.safetensors", sdxl_state_dict(), metadata)
    report = inspect_checkpoint(path)
    assert report["is_rf"] and report["rf_source"] == "metadata"
    assert report["marker"] == {"shift": 5.0, "timestep_mapping": "floor_999", "shift_mode": "static"}
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
    assert report["is_rf"]
    settings = recommended_settings(report)
    assert settings.shift == 3.0
    assert len(report["warnings"]) == 2
    assert any("shift" in w and "-2" in w for w in report["warnings"])
    assert any("round_500" in w for w in report["warnings"])


def test_kohya_eps_spec_alone_is_not_rf(tmp_path):
    report = inspect_checkpoint(save(tmp_path / "finetune.safetensors", sdxl_state_dict(), KOHYA_EPS_SPEC))
    assert report["trainer"].startswith("kohya")
    assert report["modelspec"]["modelspec.prediction_type"] == "epsilon"
    assert report["is_rf"] is False and "'epsilon'" in report["reason"]


def test_rf_name_hint_on_a_kohya_file_recommends_floor_999(tmp_path):
    path = save(tmp_path / "ChenkinNoob-XL-v0.3-Rectified-Flow.safetensors", sdxl_state_dict(), KOHYA_EPS_SPEC)
    report = inspect_checkpoint(path)
    assert report["is_rf"] and report["rf_source"] == "hint"
    assert "file name" in report["reason"]
    assert any("'epsilon'" in w and "bluvoll" in w for w in report["warnings"])
    assert recommended_settings(report).timestep_mapping == "floor_999"


def test_training_comment_hint(tmp_path):
    metadata = {"ss_training_comment": "trained as a rectified flow model", "ss_output_name": "x"}
    report = inspect_checkpoint(save(tmp_path / "lora.safetensors", sdxl_state_dict(), metadata))
    assert report["trainer"].startswith("kohya")
    assert report["trainer_metadata"]["ss_training_comment"].startswith("trained")
    assert report["is_rf"] and "ss_training_comment" in report["reason"]


def test_flux2_vae_sdxl_unet_is_a_hint_with_the_f2vae_mapping(tmp_path):
    report = inspect_checkpoint(save(tmp_path / "mugen.safetensors", sdxl_state_dict(latent_channels=32)))
    assert report["architecture"] == "sdxl" and report["latent_channels"] == 32
    assert report["is_rf"] and report["rf_source"] == "hint"
    settings = recommended_settings(report)
    assert settings.timestep_mapping == "floor_1000" and settings.shift == 6.0


def test_naifu_metadata(tmp_path):
    metadata = {"global_step": "12000", "current_epoch": "3", "modelspec.prediction_type": "rectified_flow"}
    report = inspect_checkpoint(save(tmp_path / "checkpoint-e3_s12000.safetensors", sdxl_state_dict(), metadata))
    assert report["trainer"] == "naifu"
    assert report["trainer_metadata"] == {"global_step": "12000", "current_epoch": "3"}
    assert recommended_settings(report).timestep_mapping == "continuous"


def test_diffusers_layout_and_inpaint_channels(tmp_path):
    report = inspect_checkpoint(save(tmp_path / "unet.safetensors", sdxl_state_dict(layout="diffusers")))
    assert (report["architecture"], report["layout"], report["latent_channels"]) == ("sdxl", "diffusers", 4)
    tensors = sdxl_state_dict()
    tensors["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(320, 9, 3, 3, dtype=torch.uint8)
    report = inspect_checkpoint(save(tmp_path / "inpaint.safetensors", tensors))
    assert (report["in_channels"], report["latent_channels"]) == (9, 4)


def test_unknown_architecture(tmp_path):
    report = inspect_checkpoint(save(tmp_path / "lora.safetensors", {"lora_unet_x.alpha": torch.ones(1)}))
    assert report["architecture"] == "unknown" and report["latent_channels"] is None
    assert report["is_rf"] is False
    assert "architecture    unknown" in format_report(report)


# -------------------------------------------------------------------------------------------
# sidecars
def test_sidecar_marks_and_beats_metadata(tmp_path):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict(),
                {"modelspec.prediction_type": "rectified_flow", "flow_sampling.shift": "5"})
    with open(sidecar_path(path), "w") as handle:
        json.dump({"prediction_type": "rectified_flow", "shift": 7, "timestep_mapping": "floor_1000"}, handle)
    report = inspect_checkpoint(path)
    assert sidecar_path(path) == str(tmp_path / "model.flow.json")
    assert report["rf_source"] == "sidecar"
    assert recommended_settings(report) == FlowSettings(shift=7.0, timestep_mapping="floor_1000")


def test_sidecar_can_say_not_rf(tmp_path):
    path = save(tmp_path / "my-rectified-flow-test.safetensors", sdxl_state_dict())
    assert detect_rectified_flow(path)[0] is True  # the name hint
    with open(sidecar_path(path), "w") as handle:
        json.dump({"prediction_type": "epsilon"}, handle)
    is_rf, reason = detect_rectified_flow(path)
    assert is_rf is False and "epsilon" in reason


def test_write_sidecar_round_trip(tmp_path):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict())
    settings = FlowSettings(shift=4.0, timestep_mapping="floor_999")
    assert write_sidecar(path, settings) == sidecar_path(path)
    assert recommended_settings(inspect_checkpoint(path)) == settings
    with pytest.raises(ValueError, match="settings"):
        write_sidecar(path, {"shift": 4})


def test_malformed_sidecar_is_an_error_naming_it(tmp_path):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict())
    with open(sidecar_path(path), "w") as handle:
        handle.write("{not json")
    with pytest.raises(ValueError, match="model.flow.json"):
        inspect_checkpoint(path)
    with open(sidecar_path(path), "w") as handle:
        handle.write("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        inspect_checkpoint(path)


def test_unknown_sidecar_prediction_type_warns_and_falls_through(tmp_path):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict(), {"modelspec.prediction_type": "rectified_flow"})
    with open(sidecar_path(path), "w") as handle:
        json.dump({"prediction_type": "flowy"}, handle)
    report = inspect_checkpoint(path)
    assert report["rf_source"] == "metadata"
    assert any("flowy" in w for w in report["warnings"])


def diffusers_folder(root, scheduler):
    (root / "unet").mkdir(parents=True)
    (root / "scheduler").mkdir()
    save(root / "unet" / "diffusion_pytorch_model.safetensors", sdxl_state_dict(layout="diffusers"))
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    return root


def test_diffusers_folder_with_a_flow_matching_scheduler(tmp_path):
    root = diffusers_folder(tmp_path / "Mugen", {"_class_name": "FlowMatchEulerDiscreteScheduler",
                                                 "shift": 6.0, "num_train_timesteps": 1000})
    for path in (root, root / "unet" / "diffusion_pytorch_model.safetensors"):
        report = inspect_checkpoint(path)
        assert report["architecture"] == "sdxl" and report["layout"] == "diffusers"
        assert report["is_rf"] and "FlowMatchEulerDiscreteScheduler" in report["reason"]
        assert recommended_settings(report) == FlowSettings(shift=6.0, timestep_mapping="continuous")
        assert "scheduler       _class_name=FlowMatchEulerDiscreteScheduler" in format_report(report)


def test_diffusers_folder_with_a_diffusion_scheduler_is_not_rf(tmp_path):
    root = diffusers_folder(tmp_path / "sdxl", {"_class_name": "EulerDiscreteScheduler",
                                                "prediction_type": "v_prediction"})
    report = inspect_checkpoint(root)
    assert report["is_rf"] is False
    assert report["diffusers_scheduler"] == {"_class_name": "EulerDiscreteScheduler",
                                             "prediction_type": "v_prediction"}


def test_a1111_yaml_config_is_reported(tmp_path):
    path = save(tmp_path / "vmodel.safetensors", sdxl_state_dict())
    (tmp_path / "vmodel.yaml").write_text("model: {}\n")
    assert inspect_checkpoint(path)["a1111_yaml"] == str(tmp_path / "vmodel.yaml")


# -------------------------------------------------------------------------------------------
# broken and refused files
def test_only_the_header_is_read(tmp_path):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict())
    tensors, metadata, sizes = read_safetensors_header(path)
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
    assert sizes == {"file_bytes": os.path.getsize(path), "header_bytes": length}
    # scribbling over every data byte changes nothing: the data is never parsed
    with open(path, "r+b") as handle:
        handle.seek(8 + length)
        handle.write(b"\xff" * (sizes["file_bytes"] - 8 - length))
    assert read_safetensors_header(path)[0] == tensors


def test_truncated_files(tmp_path):
    data = open(save(tmp_path / "full.safetensors", sdxl_state_dict()), "rb").read()
    (length,) = struct.unpack("<Q", data[:8])
    for name, cut in (("in_header", 8 + length // 2), ("in_data", len(data) - 100), ("in_length", 5)):
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated|shorter than") as error:
            inspect_checkpoint(path)
        assert str(path) in str(error.value)


def test_malformed_json_header(tmp_path):
    body = b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]'  # unterminated
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(body)) + body + b"\0" * 4)
    with pytest.raises(ValueError, match="not JSON"):
        inspect_checkpoint(path)
    deep = b"[" * 200000  # nesting deep enough to exhaust the JSON parser's recursion
    path.write_bytes(struct.pack("<Q", len(deep)) + deep)
    with pytest.raises(ValueError, match="not JSON"):
        inspect_checkpoint(path)


@pytest.mark.parametrize("entry", [
    {"dtype": "F32", "shape": [1]},
    {"dtype": "f32; rm -rf", "shape": [1], "data_offsets": [0, 4]},
    {"dtype": 32, "shape": [1], "data_offsets": [0, 4]},
    {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]},
    {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]},
])
def test_malformed_header_entries(tmp_path, entry):
    body = json.dumps({"w": entry}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(body)) + body + b"\0" * 8)
    with pytest.raises(ValueError, match="malformed header entry for tensor 'w'"):
        inspect_checkpoint(path)


def test_malformed_metadata(tmp_path):
    body = json.dumps({"__metadata__": {"steps": 12}}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(body)) + body)
    with pytest.raises(ValueError, match="__metadata__"):
        inspect_checkpoint(path)


def test_enormous_header_is_refused_before_reading_it(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{" + b" " * 64)
    with pytest.raises(ValueError, match="limit"):
        inspect_checkpoint(path)
    path.write_bytes(struct.pack("<Q", 2 ** 63) + b"{}")
    with pytest.raises(ValueError, match="limit"):
        inspect_checkpoint(path)


def test_non_safetensors_files(tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("hello, this is not a model at all")
    with pytest.raises(ValueError, match="limit|truncated|not a safetensors"):
        inspect_checkpoint(text)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="shorter than the 8-byte"):
        inspect_checkpoint(empty)
    array = tmp_path / "array.safetensors"
    array.write_bytes(struct.pack("<Q", 2) + b"[]")
    with pytest.raises(ValueError, match="not an object"):
        inspect_checkpoint(array)
    with pytest.raises(ValueError, match="folder without a diffusers UNet"):
        inspect_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="not a file"):
        inspect_checkpoint(tmp_path / "nothing-here.safetensors")


def test_pickle_checkpoints_are_refused_unopened(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    with pytest.raises(ValueError, match="pickle"):
        inspect_checkpoint(ckpt)
    # a pickle under a safetensors name is recognised by its magic bytes, not unpickled
    disguised = tmp_path / "model.safetensors"
    disguised.write_bytes(ckpt.read_bytes())
    with pytest.raises(ValueError, match="pickle"):
        inspect_checkpoint(disguised)
    raw = tmp_path / "raw.safetensors"
    raw.write_bytes(b"\x80\x04\x95" + b"\0" * 20)
    with pytest.raises(ValueError, match="pickle"):
        inspect_checkpoint(raw)


def test_detect_reports_unreadable_files_instead_of_raising(tmp_path):
    is_rf, reason = detect_rectified_flow(tmp_path / "missing.safetensors")
    assert is_rf is False and reason.startswith("not inspected:") and "missing.safetensors" in reason


def test_recommended_settings_validates_its_argument():
    with pytest.raises(ValueError, match="report"):
        recommended_settings("model.safetensors")


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


def test_cli_mark_then_inspect(tmp_path, capsys):
    path = save(tmp_path / "model.safetensors", sdxl_state_dict(), KOHYA_EPS_SPEC)
    assert main(["mark", path, "--shift", "5"]) == 0
    assert "floor_999" in capsys.readouterr().out  # kohya-written file: the sd-scripts mapping
    report = inspect_checkpoint(path)
    assert report["rf_source"] == "sidecar" and recommended_settings(report).shift == 5.0


def test_cli_errors_are_messages_not_tracebacks(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 10 ** 12) + b"{}")
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-m", "model_sampling_flow", "inspect", str(bad)],
                            capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "limit" in result.stderr
    assert "Traceback" not in result.stderr
    ckpt = tmp_path / "old.ckpt"
    ckpt.write_bytes(b"\x80\x02}q\x00.")
    result = subprocess.run([sys.executable, "-m", "model_sampling_flow", "inspect", str(ckpt)],
                            capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 1 and "pickle" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "model_sampling_flow", "inspect"],
                            capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 2 and "usage" in result.stderr
