"""Helpers for the ComfyUI host tests and the overhead benchmark (no pytest import here).

ComfyUI itself is imported by the `comfyui` fixture in conftest.py (COMFYUI_DIR, CPU, a
torchvision stand-in). Here: loading this repository the way ComfyUI loads a custom node, a
tiny real SDXL model, and an SDXL-shaped model whose UNet returns the exact velocity of an RF
Gaussian field.
"""
import asyncio
import os
import sys
import tempfile

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from model_sampling_flow import oracles  # noqa: E402

_BASE_DIRECTORY = None


def import_comfyui_nodes():
    """Import ComfyUI's `nodes` module with its input/output/user folders in a temporary directory.

    folder_paths creates those folders at import; pointing ComfyUI's own --base-directory setting
    at a temporary folder keeps the ComfyUI checkout untouched.
    """
    global _BASE_DIRECTORY
    if "folder_paths" not in sys.modules:
        import comfy.cli_args
        _BASE_DIRECTORY = tempfile.mkdtemp(prefix="comfyui-base-")
        comfy.cli_args.args.base_directory = _BASE_DIRECTORY
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        import nodes
        import comfy_extras.nodes_custom_sampler  # noqa: F401
        import comfy_extras.nodes_model_advanced  # noqa: F401
    finally:
        sys.dont_write_bytecode = saved
    return nodes


def load_repo_as_custom_node(path=REPO):
    """Load the repository with ComfyUI's own nodes.load_custom_node; returns the package module."""
    nodes = import_comfyui_nodes()
    module_name = path.replace(".", "_x_")
    if module_name not in sys.modules:
        if not asyncio.run(nodes.load_custom_node(path)):
            raise RuntimeError(f"ComfyUI did not load {path} as a custom node")
    return sys.modules[module_name]


def load_repo_again(path=REPO, name="model_sampling_flow_second_copy"):
    """Import the repository a second time under another package name (as a second install would)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, os.path.join(path, "__init__.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


TINY_UNET = {
    "use_checkpoint": False, "image_size": 32, "in_channels": 4, "out_channels": 4,
    "model_channels": 32, "channel_mult": [1, 2], "num_res_blocks": [1, 1],
    "transformer_depth": [0, 1], "transformer_depth_output": [0, 0, 1, 1], "transformer_depth_middle": 1,
    "use_spatial_transformer": True, "legacy": False, "use_linear_in_transformer": True,
    "num_classes": "sequential", "adm_in_channels": 2816, "context_dim": 2048,
    "use_temporal_attention": False, "use_temporal_resblock": False,
}


def tiny_sdxl(seed=0):
    """A real comfy.model_base.SDXL (tiny channels, random weights) in a ModelPatcher, on CPU."""
    import comfy.model_patcher
    import comfy.supported_models
    config = comfy.supported_models.SDXL(dict(TINY_UNET, dtype=torch.float32))
    config.unet_config["num_head_channels"] = 16  # the SDXL default of 64 leaves 0 heads at 32 channels
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({}, "", device=torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.diffusion_model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    model.eval()
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"),
                                            offload_device=torch.device("cpu"))


class ExactVelocityUNet(torch.nn.Module):
    """A UNet stand-in returning the exact RF velocity of `field` at the flow input it receives.

    The network sees x = calculate_input(sigma, x_host) and timestep = 1000 * sigma (the
    continuous mapping), so sigma = timestep / 1000 recovers the flow time exactly.
    """

    def __init__(self, field):
        super().__init__()
        self.field = field
        self.dtype = torch.float32
        self.register_buffer("anchor", torch.zeros(1))  # gives the module a device for ComfyUI
        self.timesteps_seen = []

    def forward(self, x, timesteps, context=None, y=None, control=None, transformer_options={}, **kwargs):
        self.timesteps_seen.append(float(timesteps.reshape(-1)[0]))
        sigma = (timesteps.double() / 1000.0).reshape(-1, *([1] * (x.ndim - 1)))
        x64 = x.double()
        return ((x64 - self.field(x64, sigma)) / sigma).float()


def analytic_sdxl(field=None):
    """A real comfy.model_base.SDXL whose diffusion_model is ExactVelocityUNet(field)."""
    patcher = tiny_sdxl()
    patcher.model.diffusion_model = ExactVelocityUNet(oracles.gaussian_field(0.5, 0.3) if field is None else field)
    return patcher


def sdxl_conds(batch=1, seed=0, tokens=77):
    """positive / negative conditioning in ComfyUI's format for an SDXL model."""
    generator = torch.Generator().manual_seed(seed)
    cross = torch.randn(batch, tokens, 2048, generator=generator) * 0.1
    pooled = torch.randn(batch, 1280, generator=generator) * 0.1
    positive = [[cross, {"pooled_output": pooled}]]
    negative = [[torch.zeros_like(cross), {"pooled_output": torch.zeros_like(pooled)}]]
    return positive, negative


def sample(model, sampler_name, scheduler="simple", steps=20, seed=0, shape=(1, 4, 8, 8), cfg=1.0,
           latent=None, denoise=1.0, callback=None, noise=None):
    """comfy.sample.sample end to end, as the KSampler node calls it."""
    import comfy.sample
    latent = torch.zeros(shape) if latent is None else latent
    if noise is None:
        noise = comfy.sample.prepare_noise(latent, seed)
    # the exact-velocity UNet ignores text, so one token keeps ComfyUI's per-step cond copies small
    tokens = 1 if isinstance(model.model.diffusion_model, ExactVelocityUNet) else 77
    positive, negative = sdxl_conds(latent.shape[0], tokens=tokens)
    return comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                               denoise=denoise, callback=callback, disable_pbar=True, seed=seed)


# ---------------------------------------------------------------- every-sampler truth table

TABLE_SHAPE = (1, 4, 48, 48)   # 9216 draws: standard error 0.003 on the mean, 0.002 on the std
TABLE_STEPS = 256
TABLE_SCHEDULER = "simple"
MEAN_TOLERANCE = 0.01
STD_TOLERANCE = 0.02


def sampler_statistics(model, sampler_name, field, seed=1, steps=TABLE_STEPS, scheduler=TABLE_SCHEDULER,
                       shape=TABLE_SHAPE):
    """Mean, std and RMS distance to the exact ODE endpoint of one comfy.sample.sample run."""
    import comfy.sample
    latent = torch.zeros(shape)
    noise = comfy.sample.prepare_noise(latent, seed)
    out = sample(model, sampler_name, scheduler, steps=steps, seed=seed, latent=latent, noise=noise)
    out = out.double() * model.get_model_object("latent_format").scale_factor
    exact = field.endpoint(noise.double())
    mean, std = float(out.mean()), float(out.std())
    return {"sampler": sampler_name, "mean": mean, "std": std,
            "endpoint_rms": float((out - exact).pow(2).mean().sqrt()),
            "passes": abs(mean - field.mean) <= MEAN_TOLERANCE and abs(std - field.std) <= STD_TOLERANCE}


if __name__ == "__main__":
    # python tests/comfy_support.py [ve|flow|sd3]: print the table for docs/comfyui.md
    os.environ.setdefault("COMFYUI_DIR", os.path.join(REPO, "..", "shared", "hosts", "ComfyUI"))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import conftest
    conftest.import_comfyui()
    package = load_repo_as_custom_node()
    import comfy.samplers
    view = sys.argv[1] if len(sys.argv) > 1 else "ve"
    the_field = oracles.gaussian_field(0.5, 0.3)
    base = analytic_sdxl(the_field)
    if view == "sd3":
        from comfy_extras.nodes_model_advanced import ModelSamplingSD3
        patched = ModelSamplingSD3().patch(base, 3.0)[0]
    else:
        patched = package.NODE_CLASS_MAPPINGS["ModelSamplingFlowSDXL"]().patch(base, 3.0, "continuous", "static", view)[0]
    print(f"| sampler | mean | std | RMS to exact ODE endpoint | within 0.01 / 0.02 |")
    print("|---|---|---|---|---|")
    for name in list(comfy.samplers.KSampler.SAMPLERS):
        row = sampler_statistics(patched, name, the_field)
        print(f"| {name} | {row['mean']:.4f} | {row['std']:.4f} | {row['endpoint_rms']:.4f} | "
              f"{'pass' if row['passes'] else 'FAIL'} |", flush=True)


FRESH_COMFYUI_SCRIPT = r'''
import asyncio, importlib.abc, importlib.machinery, json, sys, types

class StandIn(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        child = make(f"{self.__name__}.{name}")
        setattr(self, name, child)
        return child

def make(name):
    module = StandIn(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    module.__path__ = []
    sys.modules[name] = module
    return module

class StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
    def create_module(self, spec):
        return make(spec.name)
    def exec_module(self, module):
        pass

try:
    import torchvision
except Exception:
    make("torchvision")
    sys.meta_path.insert(0, StandInFinder())
comfy_dir = sys.argv[1]
sys.path.insert(0, comfy_dir)
sys.argv = ["main.py", "--cpu", "--disable-api-nodes"]
import comfy.options
comfy.options.enable_args_parsing()
import nodes
asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
ksampler = nodes.NODE_CLASS_MAPPINGS["KSampler"].INPUT_TYPES()["required"]
select = nodes.NODE_CLASS_MAPPINGS["KSamplerSelect"].INPUT_TYPES()["required"]
print(json.dumps({
    "nodes": sorted(nodes.NODE_CLASS_MAPPINGS),
    "display": nodes.NODE_DISPLAY_NAME_MAPPINGS,
    "ksampler_samplers": ksampler["sampler_name"][0],
    "ksampler_schedulers": ksampler["scheduler"][0],
    "select_samplers": select["sampler_name"][0],
    "loaded": sorted(nodes.LOADED_MODULE_DIRS.values()),
}))
'''


def fresh_comfyui_with_repo(comfy_dir, workdir, timeout=600):
    """Start a copy of ComfyUI (init_extra_nodes, as main.py does) with this repo in custom_nodes/."""
    import json
    import shutil
    import subprocess
    copy = os.path.join(workdir, "ComfyUI")
    top = os.path.abspath(comfy_dir)

    def skip(directory, names):  # caches, and the top-level model / output / input folders
        return [n for n in names if n == "__pycache__"
                or (os.path.abspath(directory) == top and n in ("models", "output", "input", "user"))]
    shutil.copytree(comfy_dir, copy, ignore=skip)
    for root, dirs, files in os.walk(copy):
        os.chmod(root, 0o755)
    os.symlink(REPO, os.path.join(copy, "custom_nodes", "model-sampling-flow"))
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([sys.executable, "-c", FRESH_COMFYUI_SCRIPT, copy], cwd=copy, env=env,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"ComfyUI failed to start:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr
