"""Real-world file names and what Auto decides for them (no sidecar, no metadata marker).

Sources of the real names (found with the project's search tool, 2026-11):
  [1] huggingface.co/ChenkinRF/ChenkinNoob-XL-v0.2-Rectified-Flow (file of the same name; also
      civitai.com/models/2363696 "ChenkinNoob-XL v0.2 Rectified Flow", Cabal Research)
  [2] huggingface.co/ChenkinRF/ChenkinNoob-XL-v0.3-Rectified-Flow, CHECKPOINT_FILE in a model loader
  [3] huggingface.co/ChenkinRF/Chenkin0.3RF-Experiments (and Chenkin0.2RF-Experiments)
  [4] huggingface.co/CabalResearch/NoobAI-RectifiedFlow-Experimental (bluvoll/sd-scripts, 2025-11)
  [5] huggingface.co/CabalResearch/NoobAI-Flux2VAE-RectifiedFlow and -0.3 (Mugen's base_model)
  [6] huggingface.co/nyanko7/nyaflow-xl-alpha (naifu flow-matching SDXL, README lists it)
  [7] huggingface.co/CabalResearch/Mugen (diffusers; Flux 2 VAE, 32 latent channels)
  [8] issue #13: "...-XL-V0.2-RF.safetensors", and names where "rectified" and "flow" are apart
  [9] eps / v-pred SDXL releases listed next to them: ChenkinNoob/ChenkinNoob-XL-V0.2 and V0.5,
      noobaiXLNAIXL_vPred10Version / _epsilonPred11Version, illustriousXL_v01, sd_xl_base_1.0,
      sd_xl_turbo_1.0_fp16, juggernautXL_v9Rdphoto2Lightning, mugenmalumixSDXL_v41Delorean,
      nekoray-xl-1.5m-fp16mixed_e02 (Hugging Face model lists)
  [10] stabilityai/stable-audio-3-small: "stable-audio-3-small-RF.safetensors" -- RF, but no UNet
  [11] words that contain the letters but are not the word: "kenyaflowers" (a shop name found next
      to "nyaflow"), overflow, workflow, flowers, surf, perfect
"""
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from model_sampling_flow.checkpoint import inspect_checkpoint, name_tokens  # noqa: E402

EPS_SPEC = {"modelspec.sai_model_spec": "1.0.0", "modelspec.prediction_type": "epsilon",
            "modelspec.implementation": "https://github.com/Stability-AI/generative-models"}

# (file name, latent channels, model ("sdxl" full checkpoint | "other": no UNet), expected is_rf, source)
NAMES = [
    ("ChenkinNoob-XL-v0.2-Rectified-Flow.safetensors", 4, "sdxl", True, "[1]"),
    ("ChenkinNoob-XL-v0.3-Rectified-Flow.safetensors", 4, "sdxl", True, "[2]"),
    ("Chenkin0.3RF-Experiments.safetensors", 4, "sdxl", True, "[3]"),
    ("Chenkin0.2RF-Experiments_e5.safetensors", 4, "sdxl", True, "[3]"),
    ("NoobAI-RectifiedFlow-Experimental.safetensors", 4, "sdxl", True, "[4]"),
    ("NoobAI-Flux2VAE-RectifiedFlow-0.3.safetensors", 32, "sdxl", True, "[5]"),
    ("NoobAI-Flux2VAE-RectifiedFlow.safetensors", 32, "sdxl", True, "[5]"),
    ("nyaflow-xl-alpha.safetensors", 4, "sdxl", True, "[6]"),
    ("Mugen.safetensors", 32, "sdxl", True, "[7] (32 latent channels)"),
    ("Mugen-Aesthetic.safetensors", 32, "sdxl", True, "[7]"),
    ("ChenkinNoob-XL-V0.2-RF.safetensors", 4, "sdxl", True, "[8]"),
    ("noob_rectified_v1_flow.safetensors", 4, "sdxl", True, "[8]"),
    ("my_flow_finetune_e10.safetensors", 4, "sdxl", True, "[8] the abbreviation 'flow'"),
    ("noobRF_v1.safetensors", 4, "sdxl", True, "[8] 'RF' in camel case"),
    ("noob_flowmatch_e3.safetensors", 4, "sdxl", True, "[8] 'flowmatch' as one word"),
    ("ChenkinNoob-XL-V0.2.safetensors", 4, "sdxl", False, "[9]"),
    ("ChenkinNoob-XL-V0.5.safetensors", 4, "sdxl", False, "[9]"),
    ("noobaiXLNAIXL_vPred10Version.safetensors", 4, "sdxl", False, "[9]"),
    ("noobaiXLNAIXL_epsilonPred11Version.safetensors", 4, "sdxl", False, "[9]"),
    ("illustriousXL_v01.safetensors", 4, "sdxl", False, "[9]"),
    ("sd_xl_base_1.0.safetensors", 4, "sdxl", False, "[9]"),
    ("sd_xl_turbo_1.0_fp16.safetensors", 4, "sdxl", False, "[9]"),
    ("juggernautXL_v9Rdphoto2Lightning.safetensors", 4, "sdxl", False, "[9]"),
    ("mugenmalumixSDXL_v41Delorean.safetensors", 4, "sdxl", False, "[9] 'mugen' but an SDXL-VAE mix"),
    ("nekoray-xl-1.5m-fp16mixed_e02.safetensors", 4, "sdxl", False, "[9]"),
    ("stable-audio-3-small-RF.safetensors", None, "other", False, "[10]"),
    ("kenyaflowers_sdxl.safetensors", 4, "sdxl", False, "[11]"),
    ("overflow_xl_v2.safetensors", 4, "sdxl", False, "[11]"),
    ("OverflowXL.safetensors", 4, "sdxl", False, "[11]"),
    ("workflowMix_v3.safetensors", 4, "sdxl", False, "[11]"),
    ("flowersXL_v1.safetensors", 4, "sdxl", False, "[11]"),
    ("SurfXL.safetensors", 4, "sdxl", False, "[11]"),
    ("perfectdeliberate_v5SDXL.safetensors", 4, "sdxl", False, "[11]"),
]


def checkpoint(latent_channels):
    def zeros(*shape):
        return torch.zeros(shape, dtype=torch.uint8)
    unet = "model.diffusion_model."
    return {unet + "input_blocks.0.0.weight": zeros(320, latent_channels, 3, 3),
            unet + "out.2.weight": zeros(latent_channels, 320, 3, 3),
            unet + "label_emb.0.0.weight": zeros(1280, 2816),
            "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": zeros(768),
            "first_stage_model.decoder.conv_in.weight": zeros(1)}


@pytest.mark.parametrize("name, channels, model, expected, source", NAMES, ids=[row[0] for row in NAMES])
def test_name_table(tmp_path, name, channels, model, expected, source):
    tensors = checkpoint(channels) if model == "sdxl" else {"model.transformer.blocks.0.weight": torch.zeros(2)}
    path = tmp_path / name
    safetensors_torch.save_file(tensors, str(path), metadata=EPS_SPEC)
    verdict = inspect_checkpoint(path).verdict
    assert verdict.is_rf is expected, (source, verdict.reason)
    if expected:
        assert verdict.source == "hint"
        # the warning is about the value found: bluvoll's trainer writes 'epsilon' into RF checkpoints
        assert any("'epsilon'" in w and "bluvoll" in w for w in verdict.warnings)


@pytest.mark.parametrize("declared", ["v", "v_prediction", "V"])
def test_an_explicit_v_declaration_vetoes_every_name_hint(tmp_path, declared):
    for name, channels, model, expected, _ in NAMES:
        if not expected:
            continue
        path = tmp_path / name
        safetensors_torch.save_file(checkpoint(channels), str(path),
                                    metadata=dict(EPS_SPEC, **{"modelspec.prediction_type": declared}))
        verdict = inspect_checkpoint(path).verdict
        assert verdict.is_rf is False and verdict.source == "declaration", name
        assert not any("writes 'epsilon'" in w for w in verdict.warnings)
        path.unlink()


def test_name_tokens():
    assert name_tokens("ChenkinNoob-XL-v0.2-Rectified-Flow") == ["Chenkin", "Noob", "XL", "v", "0", "2",
                                                               "Rectified", "Flow"]
    assert name_tokens("Chenkin0.3RF-Experiments") == ["Chenkin", "0", "3", "RF", "Experiments"]
    assert name_tokens("kenyaflowers") == ["kenyaflowers"]


def test_the_table_is_large_enough_to_mean_something():
    assert len(NAMES) >= 30 and sum(row[3] for row in NAMES) >= 12 and sum(not row[3] for row in NAMES) >= 12
