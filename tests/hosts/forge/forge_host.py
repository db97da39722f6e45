"""Forge (lllyasviel/stable-diffusion-webui-forge, dfdcbab6) on CPU for the project's host tests.

Runs inside the Forge venv (FORGE_PYTHON, tests/hosts/forge/forge_venv.sh), in a writable copy of Forge
(FORGE_DIR). Forge is started in webui.py's order with every built-in extension and whatever is in
the data dir's extensions/ folder; the model is Forge's own StableDiffusionXL engine, built by Forge's
component loader from shrunk configs (Forge's SDXL tokenizers, random weights), made the loaded model
as a checkpoint load does. Its UNet can be replaced by the exact velocity of N(mean, std^2) data.
Nothing here is Forge code.
"""
import json
import os
import shutil
import sys
import tempfile
import types

ARGV = ["--always-cpu", "--all-in-fp32", "--clip-in-fp32", "--skip-torch-cuda-test", "--skip-prepare-environment",
        "--skip-install", "--skip-version-check", "--no-download-sd-model", "--disable-nan-check"]


# ------------------------------------------------------------------ import stand-in (torchvision only)
# tests/flow_test_support/standins.py: k_diffusion/utils.py imports torchvision at module level; nothing on
# the sampling path calls it; CPU torch 2.13 has no torchvision wheel.
sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))   # tests/
from flow_test_support import standins  # noqa: E402


def _stand_in_torchvision():
    standins.install("torchvision")


def _no_network():
    import socket
    resolve = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in ("localhost", "127.0.0.1", "::1", None):
            raise OSError(f"no network in the host tests (tried {host!r})")
        return resolve(host, *args, **kwargs)
    socket.getaddrinfo = loopback_only


REPORTED = []       # messages of modules.errors.report(): Forge prints script errors and goes on


def start_forge(forge_dir, data_dir=None):
    """Initialise Forge as webui.py does, up to the UI (not launched). Returns the default script
    args of txt2img and img2img (what the UI's components hold)."""
    _stand_in_torchvision()
    _no_network()
    os.chdir(forge_dir)
    sys.path.insert(0, forge_dir)
    sys.argv = [os.path.join(forge_dir, "webui.py")] + ARGV + (["--data-dir", data_dir] if data_dir else [])
    os.environ.update(COMMANDLINE_ARGS="", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    from modules_forge.initialization import initialize_forge
    initialize_forge()
    from modules import errors, initialize
    real_report = errors.report

    def report(message, *, exc_info=False):
        REPORTED.append(message)
        return real_report(message, exc_info=exc_info)
    errors.report = report
    initialize.imports()
    initialize.check_versions()
    initialize.initialize()
    from modules import scripts, shared, ui
    from modules.api.api import Api
    ui.create_ui()
    shared.opts.live_previews_enable = False      # the Approx NN preview would download a model
    return (Api.init_default_script_args(None, scripts.scripts_txt2img),
            Api.init_default_script_args(None, scripts.scripts_img2img))


# ------------------------------------------------------------------ a tiny SDXL made by Forge's loader
SDXL_REPO = os.path.join("backend", "huggingface", "stabilityai", "stable-diffusion-xl-base-1.0")
TEXT_ENCODERS = {"text_encoder": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, projection_dim=32),
                 "text_encoder_2": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=2, projection_dim=64)}
VAE_LEVELS = [32, 32, 32, 32]       # four levels: the same 8x downscale as SDXL's VAE


def _unet_config():
    context = TEXT_ENCODERS["text_encoder"]["hidden_size"] + TEXT_ENCODERS["text_encoder_2"]["hidden_size"]
    return {"use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
            "num_classes": "sequential", "adm_in_channels": TEXT_ENCODERS["text_encoder_2"]["hidden_size"] + 6 * 256,
            "in_channels": 4, "out_channels": 4, "model_channels": 32, "num_res_blocks": [1, 1],
            "transformer_depth": [0, 1], "transformer_depth_output": [0, 0, 1, 1], "channel_mult": [1, 2],
            "transformer_depth_middle": 1, "use_linear_in_transformer": True, "context_dim": context,
            "use_temporal_resblock": False, "use_temporal_attention": False}


def _shrunk_repo(forge_dir):
    source = os.path.join(forge_dir, SDXL_REPO)
    repo = tempfile.mkdtemp(prefix="flow_forge_sdxl_")
    shutil.copy(os.path.join(source, "model_index.json"), repo)
    for name in ("scheduler", "tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2", "vae", "unet"):
        shutil.copytree(os.path.join(source, name), os.path.join(repo, name))
    for name, change in list(TEXT_ENCODERS.items()) + [("vae", {"block_out_channels": VAE_LEVELS,
                                                                 "layers_per_block": 1})]:
        path = os.path.join(repo, name, "config.json")
        with open(path) as f:
            config = json.load(f)
        config.update(change)
        for key in ("down_block_types", "up_block_types"):
            if key in config:
                config[key] = config[key][:len(VAE_LEVELS)]
        with open(path, "w") as f:
            json.dump(config, f)
    return repo


def _random_weights(guess, repo, seed):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel
    from backend.nn.clip import IntegratedCLIP
    from backend.nn.unet import IntegratedUNet2DConditionModel
    from backend.nn.vae import IntegratedAutoencoderKL
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    modules = {"unet": IntegratedUNet2DConditionModel.from_config(guess.unet_config),
               "vae": IntegratedAutoencoderKL.from_config(IntegratedAutoencoderKL.load_config(os.path.join(repo, "vae")))}
    for name, module in modules.items():
        state = module.state_dict()
        for key, value in state.items():
            if value.is_floating_point():
                state[key] = torch.randn(value.shape, generator=generator) * 0.02 + float(key.endswith("norm.weight"))
        weights[name] = state
    for name in TEXT_ENCODERS:
        torch.manual_seed(seed)
        config = CLIPTextConfig.from_pretrained(os.path.join(repo, name))
        weights[name] = IntegratedCLIP(CLIPTextModel, config, add_text_projection=True).state_dict()
    return weights


class CheckpointRecord(types.SimpleNamespace):
    """What processing and infotext read of sd_models.CheckpointInfo (no file behind it)."""

    def __init__(self, name, data_dir):
        super().__init__(name=name, name_for_extra=name, model_name=name, title=name, short_title=name,
                         filename=os.path.join(data_dir, "models", "Stable-diffusion", name + ".safetensors"),
                         hash=None, sha256=None, shorthash=None, ids=[name], metadata={})

    def calculate_shorthash(self):
        return None


def build_sdxl(forge_dir, data_dir, name="tiny-sdxl", seed=0):
    """Forge's StableDiffusionXL engine around tiny components from Forge's own component loader."""
    import torch
    import huggingface_guess
    from diffusers import DiffusionPipeline
    from backend import loader
    from backend.diffusion_engine.sdxl import StableDiffusionXL
    with torch.inference_mode():
        repo = _shrunk_repo(forge_dir)
        guess = huggingface_guess.model_list.SDXL(_unet_config())
        guess.unet_config["num_head_channels"] = 16          # SDXL's 64 would leave 0 heads at 32 channels
        guess.unet_key_prefix = ["model.diffusion_model."]
        guess.clip_target = guess.clip_target({})
        guess.model_type = huggingface_guess.model_list.ModelType.EPS
        guess.ztsnr = False
        weights = _random_weights(guess, repo, seed)
        components = {}
        for component, value in DiffusionPipeline.load_config(repo).items():
            if isinstance(value, list) and len(value) == 2:
                loaded = loader.load_huggingface_component(guess, component, value[0], value[1], repo,
                                                           weights.get(component))
                if loaded is not None:
                    components[component] = loaded
        sd_model = StableDiffusionXL(estimated_config=guess, huggingface_components=components)
        record = CheckpointRecord(name, data_dir)
        sd_model.extra_generation_params, sd_model.comments = {}, []
        sd_model.sd_checkpoint_info, sd_model.filename, sd_model.sd_model_hash = record, record.filename, None
    shutil.rmtree(repo, ignore_errors=True)
    return sd_model


def exact_flow_unet(mean, std):
    """Stands in for the SDXL UNet: the exact rectified-flow velocity of N(mean, std^2) data at the flow
    sigma timestep / 1000 (the `continuous` mapping), (x - E[x0 | x]) / sigma. Counts its calls and can
    be told to fail at call number `fail_at_call`."""
    import torch

    class ExactFlowUNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.calls, self.fail_at_call, self.timesteps = 0, None, []

        def forward(self, x, timesteps=None, context=None, y=None, control=None, transformer_options={}, **kwargs):
            self.calls += 1
            if self.fail_at_call is not None and self.calls >= self.fail_at_call:
                raise RuntimeError("test: failure inside sampling")
            self.timesteps.append(float(timesteps.max()))
            # the clamp only keeps an eps-table run (flow off) finite; flow timesteps are >= 1
            sigma = (timesteps.float() / 1000.0).clamp(1e-4, 1.0).view(-1, 1, 1, 1).to(x)
            alpha = 1.0 - sigma
            x0 = mean + alpha * std * std / ((alpha * std) ** 2 + sigma ** 2) * (x - alpha * mean)
            return (x - x0) / sigma

    return ExactFlowUNet()


def build_exact_flow_sdxl(forge_dir, data_dir, mean, std, name="exact-rf-sdxl", seed=1):
    sd_model = build_sdxl(forge_dir, data_dir, name=name, seed=seed)
    sd_model.forge_objects.unet.model.diffusion_model = exact_flow_unet(mean, std)   # the KModel all clones share
    return sd_model


def make_loaded(sd_model):
    """What the end of sd_models.forge_model_reload does: unload, set, run the model-loaded callbacks,
    and make later process_images calls keep this model (no checkpoint file to load)."""
    from modules import script_callbacks, sd_models
    from backend import memory_management
    memory_management.unload_all_models()
    sd_models.model_data.set_sd_model(sd_model)
    script_callbacks.model_loaded_callback(sd_model)
    sd_models.model_data.forge_hash = str(sd_models.model_data.forge_loading_parameters)
