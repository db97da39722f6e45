"""Helpers for the ComfyUI host tests and the overhead benchmark (no pytest import here).

ComfyUI itself is imported by the `comfyui` fixture in conftest.py (COMFYUI_DIR, CPU, the
torchvision / torchaudio stand-ins of flow_test_support.standins). Here: loading this repository
the way ComfyUI loads a custom node, a tiny real SDXL model, an SDXL-shaped model whose UNet
returns the exact velocity of an RF Gaussian field, and reading dropdowns in both node APIs.
"""
import asyncio
import os
import sys
import tempfile

import torch

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # tests/: the shared stand-ins
REPO = os.path.dirname(TESTS)
if __name__ == "__main__":      # run as a script (the table for docs/comfyui.md): the core and the test toolkit
    sys.path[:0] = [REPO, TESTS]

from flow_test_support import bar, models  # noqa: E402
from flow_test_support.files import make_writable  # noqa: E402
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


def combo_options(spec):
    """The choices of a dropdown input spec, in either node API.

    V1 nodes declare `(["a", "b"], {...})`; V3 nodes (comfy_api.latest.io, ComfyUI v0.33.0) declare
    `("COMBO", {"options": ["a", "b"], ...})`. Returns the list of choices.
    """
    if isinstance(spec[0], (list, tuple)):
        return list(spec[0])
    if spec[0] == "COMBO":
        return list(spec[1]["options"])
    raise ValueError(f"spec is not a dropdown: {spec!r}")


def dropdown(node_class, name):
    """The choices of the required dropdown `name` of a node class (either node API)."""
    return combo_options(node_class.INPUT_TYPES()["required"][name])


_LOADED_EXTRAS = set()


def builtin_node_classes(*extras):
    """NODE_CLASS_MAPPINGS after loading comfy_extras modules with ComfyUI's own loader.

    The loader registers V1 modules (NODE_CLASS_MAPPINGS) and V3 modules (comfy_entrypoint, e.g.
    nodes_custom_sampler in ComfyUI v0.33.0) alike, as main.py does at start-up.
    """
    nodes = import_comfyui_nodes()
    folder = os.path.join(os.path.dirname(os.path.abspath(nodes.__file__)), "comfy_extras")
    for name in extras:
        if name not in _LOADED_EXTRAS:
            if not asyncio.run(nodes.load_custom_node(os.path.join(folder, name + ".py"), module_parent="comfy_extras")):
                raise RuntimeError(f"ComfyUI did not load comfy_extras/{name}.py")
            _LOADED_EXTRAS.add(name)
    return dict(nodes.NODE_CLASS_MAPPINGS)


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


TINY_UNET = models.TINY_SDXL_UNET


def tiny_sdxl(seed=0):
    """A real comfy.model_base.SDXL (tiny channels, random weights) in a ModelPatcher, on CPU."""
    import comfy.model_patcher
    import comfy.supported_models
    model = models.tiny_sdxl_model(comfy.supported_models, seed)
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"),
                                            offload_device=torch.device("cpu"))


# The network sees x = calculate_input(sigma, x_host) and timestep = 1000 * sigma (the continuous
# mapping), so sigma = timestep / 1000 recovers the flow time exactly.
ExactVelocityUNet = models.ExactVelocityNetwork


def is_exact_velocity(network):
    return isinstance(network, ExactVelocityUNet)


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
    tokens = 1 if is_exact_velocity(model.model.diffusion_model) else 77
    positive, negative = sdxl_conds(latent.shape[0], tokens=tokens)
    return comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                               denoise=denoise, callback=callback, disable_pbar=True, seed=seed)


# ---------------------------------------------------------------- every-sampler truth table

TABLE_SHAPE = (1, 4, 48, 48)   # 9216 draws: standard error 0.003 on the mean, 0.002 on the std
TABLE_STEPS = 256
TABLE_SCHEDULER = "simple"
MEAN_TOLERANCE = bar.MEAN_TOLERANCE
STD_TOLERANCE = bar.STD_TOLERANCE


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
            "passes": bar.within(mean, std, field.mean, field.std)}


if __name__ == "__main__":
    # python tests/comfyui/comfy_support.py [ve|flow|sd3]: print the table for docs/comfyui.md
    os.environ.setdefault("COMFYUI_DIR", os.path.join(REPO, "..", "shared", "hosts", "ComfyUI"))
    from flow_test_support.comfyui import import_comfyui
    import_comfyui()
    package = load_repo_as_custom_node()
    import comfy.samplers
    import comfyui_version
    print(f"ComfyUI {comfyui_version.__version__}, view {sys.argv[1] if len(sys.argv) > 1 else 've'}")
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
import asyncio, json, sys
sys.path.insert(0, sys.argv[2])            # tests/: the shared stand-ins
from flow_test_support import standins
standins.install("torchvision", "torchaudio")
comfy_dir = sys.argv[1]
sys.path.insert(0, comfy_dir)
sys.argv = ["main.py", "--cpu", "--disable-api-nodes"]
import comfy.options
comfy.options.enable_args_parsing()
import nodes
asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
def options(node, name):
    spec = nodes.NODE_CLASS_MAPPINGS[node].INPUT_TYPES()["required"][name]
    return list(spec[1]["options"]) if spec[0] == "COMBO" else list(spec[0])
print(json.dumps({
    "nodes": sorted(nodes.NODE_CLASS_MAPPINGS),
    "display": nodes.NODE_DISPLAY_NAME_MAPPINGS,
    "ksampler_samplers": options("KSampler", "sampler_name"),
    "ksampler_schedulers": options("KSampler", "scheduler"),
    "select_samplers": options("KSamplerSelect", "sampler_name"),
    "scheduler_schedulers": options("BasicScheduler", "scheduler"),
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
    make_writable(copy)
    os.symlink(REPO, os.path.join(copy, "custom_nodes", "model-sampling-flow"))
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([sys.executable, "-c", FRESH_COMFYUI_SCRIPT, copy, TESTS], cwd=copy, env=env,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"ComfyUI failed to start:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr
