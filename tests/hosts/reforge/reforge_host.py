"""reForge on CPU for the project's host tests: imports, stand-in models, processing objects.

Runs inside the reForge venv (REFORGE_PYTHON), in a writable copy of reForge (REFORGE_DIR).
Nothing here is reForge code: it only sets up what launch.py and a checkpoint load would have,
then the tests drive reForge's own sampler classes, CFG denoiser and ldm_patched model code.
"""
import os
import sys
import tempfile

# ------------------------------------------------------------------ import stand-ins
# tests/flow_test_support/standins.py. launch.py would git-clone Stability's `ldm` and `sgm` into
# repositories/; the SDXL sampling path never calls them, but the webui imports them at module level.
# The CPU torch 2.13 build has no loadable torchvision wheel; nothing on the sampling path calls it.
sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))   # tests/
from flow_test_support import models, standins  # noqa: E402


def install_stand_ins(reforge_dir):
    standins.install("ldm", "sgm", always=True)
    standins.install("torchvision")
    # modules/paths.py checks for the cloned repositories by these paths
    marker = os.path.join(reforge_dir, "repositories", "stable-diffusion-stability-ai", "ldm",
                          "models", "diffusion", "ddpm.py")
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    open(marker, "a").close()
    os.makedirs(os.path.join(reforge_dir, "repositories", "generative-models", "sgm"), exist_ok=True)


def start_reforge(reforge_dir, options=None):
    """Import and initialise reForge the way webui.py does, without loading a checkpoint."""
    sys.path.insert(0, reforge_dir)
    os.chdir(reforge_dir)
    install_stand_ins(reforge_dir)
    data_dir = tempfile.mkdtemp(prefix="flow_reforge_data_")
    if options:
        import json
        with open(os.path.join(data_dir, "config.json"), "w") as f:
            json.dump(options, f)
    sys.argv = ["webui.py", "--always-cpu", "--data-dir", data_dir]
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from modules_forge.initialization import initialize_forge
    initialize_forge()
    from modules import shared_init
    shared_init.initialize()
    from modules import processing  # noqa: F401  (before sd_samplers: circular import)
    from modules import sd_samplers
    sd_samplers.set_samplers()
    return data_dir


# ------------------------------------------------------------------ models
def tiny_sdxl_unet_patcher(seed=0):
    """A randomly initialised SDXL-architecture ldm_patched model (32 channels) in a UnetPatcher."""
    import torch
    from ldm_patched.modules import supported_models
    from modules_forge.unet_patcher import UnetPatcher
    cpu = torch.device("cpu")
    return UnetPatcher(models.tiny_sdxl_model(supported_models, seed), load_device=cpu, offload_device=cpu)


def analytic_flow_network(field, timestep_to_sigma=lambda t: t / 1000.0):
    """A diffusion model returning the exact RF velocity of `field` for the flow input x at the
    flow sigma its timestep stands for, and counting its calls (records the last timesteps).
    sigma is clamped to [1e-4, 1] so that flow off (the checkpoint sampled as the EPS model it is
    declared as, timesteps up to 999 meaning something else) still gives finite, comparable output."""
    return models.exact_velocity_network(field, timestep_to_sigma, sigma_clamp=(1e-4, 1.0))


def analytic_eps_network(field, eps_model_sampling):
    """The control: the exact noise prediction of `field` for reForge's own SDXL (EPS, discrete)
    model sampling, i.e. the same data distribution served by an ordinary SDXL checkpoint.
    x_ve = x0 + sigma * noise; the network sees x_ve / sqrt(1 + sigma^2) at the discrete timestep."""
    import torch

    class AnalyticEpsNetwork(torch.nn.Module):
        dtype = torch.float32

        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x, timesteps, context=None, y=None, **kwargs):
            self.calls += 1
            sigma = eps_model_sampling.sigma(timesteps).double().reshape(-1, 1, 1, 1)
            x_ve = x.double() * (1.0 + sigma ** 2).sqrt()
            mean, var = field.means[0], field.stds[0] ** 2
            denoised = mean + var / (var + sigma ** 2) * (x_ve - mean)
            return ((x_ve - denoised) / sigma).float()

    return AnalyticEpsNetwork()


def analytic_eps_unet_patcher(field):
    unet = tiny_sdxl_unet_patcher()
    unet.model.diffusion_model = analytic_eps_network(field, unet.model.model_sampling)
    return unet


def analytic_unet_patcher(field):
    unet = tiny_sdxl_unet_patcher()
    unet.model.diffusion_model = analytic_flow_network(field)
    return unet


def analytic_guided_unet_patcher(cond, uncond):
    """analytic_unet_patcher for classifier-free guidance: the network (models.GuidedVelocityNetwork, same
    timestep mapping and clamp as analytic_flow_network) answers the rows whose cross-attention context is
    all zeros (the negative prompt of `conds`) with `uncond`'s exact velocity, the others with `cond`'s,
    and counts the former in `negative_rows`."""
    unet = tiny_sdxl_unet_patcher()
    unet.model.diffusion_model = models.GuidedVelocityNetwork(cond, uncond, lambda t: t / 1000.0,
                                                              sigma_clamp=(1e-4, 1.0))
    return unet


class StandInSdModel:
    """Builds what forge_loader.load_model_for_a1111 gives the webui, around a UnetPatcher:
    forge_objects (+ original / after-Lora copies), the EPS alphas_cumprod an SDXL checkpoint
    has, and the flags sampling reads."""

    def __new__(cls, unet):
        import torch
        from modules_forge.forge_loader import ForgeSD

        model = torch.nn.Module()
        model.forge_objects = ForgeSD(unet, None, None, None)
        model.forge_objects_original = model.forge_objects.shallow_copy()
        model.forge_objects_after_applying_lora = model.forge_objects.shallow_copy()
        model.model = torch.nn.Module()
        model.model.conditioning_key = "crossattn"
        model.model.diffusion_model = unet.model.diffusion_model
        eps_sigmas = unet.model.model_sampling.sigmas.float()
        model.alphas_cumprod = 1.0 / (eps_sigmas ** 2 + 1.0)
        model.is_sdxl, model.is_sd1, model.is_sd2, model.is_sd3 = True, False, False, False
        model.is_sdxl_inpaint, model.ztsnr, model.latent_channels = False, False, 4
        model.cond_stage_key, model.parameterization = "crossattn", "eps"
        model.sd_checkpoint_info = None
        model.device = torch.device("cpu")
        return model


# ------------------------------------------------------------------ processing
def conds(steps, batch=1, seed=3, tokens=77, width=2048, vector_width=2816):
    """SDXL webui conditioning (cond, uncond) in the structures prompt_parser produces.

    The analytic network ignores conditioning, so its runs pass tiny tensors: reForge copies
    and stacks the conds on every step, which would otherwise dominate a CPU test's time."""
    import torch
    from modules import prompt_parser
    generator = torch.Generator().manual_seed(seed)
    cross = torch.randn(tokens, width, generator=generator) * 0.1
    vector = torch.randn(vector_width, generator=generator) * 0.1

    def scheduled(c_cross, c_vector):
        return prompt_parser.ScheduledPromptConditioning(
            steps, prompt_parser.DictWithShape({"crossattn": c_cross, "vector": c_vector}))

    cond = prompt_parser.MulticondLearnedConditioning(shape=(batch,), batch=[
        [prompt_parser.ComposableScheduledPromptConditioning([scheduled(cross, vector)])]
        for _ in range(batch)])
    uncond = [[scheduled(torch.zeros_like(cross), torch.zeros_like(vector))] for _ in range(batch)]
    return cond, uncond


class Processing:
    """The fields of StableDiffusionProcessing that reForge's samplers and our backend read."""

    def __init__(self, sd_model, sampler_name="Euler", scheduler="Automatic", steps=20, seed=1,
                 width=512, height=512, cfg_scale=1.0, denoising_strength=0.75, scripts=None,
                 script_args=(), cond_size=(77, 2048, 2816)):
        from modules import rng
        self.sd_model = sd_model
        self.sampler_name, self.scheduler = sampler_name, scheduler
        self.hr_sampler_name, self.hr_scheduler = None, None
        self.steps, self.cfg_scale, self.hr_cfg = steps, cfg_scale, cfg_scale
        self.width, self.height = width, height
        self.hr_upscale_to_x, self.hr_upscale_to_y = 0, 0
        self.denoising_strength = denoising_strength
        self.is_hr_pass = False
        self.sampler_noise_scheduler_override = None
        self.extra_generation_params = {}
        self.eta, self.s_churn, self.s_tmin, self.s_tmax, self.s_noise = None, 0.0, 0.0, float("inf"), 1.0
        self.seeds = self.all_seeds = self.subseeds = self.all_subseeds = [seed]
        self.iteration, self.batch_size, self.n_iter = 0, 1, 1
        self.refiner_switch_at, self.refiner_checkpoint_info = None, None
        self.scripts, self.script_args = scripts, list(script_args)
        self.modified_noise = None
        self.sampler = None
        self.cond_size = cond_size
        self.rng = rng.ImageRNG((4, height // 8, width // 8), self.seeds)

    def get_conds(self):
        return self.c, self.uc


def _cond_args(p):
    tokens, width, vector_width = p.cond_size
    return (1, 3, tokens, width, vector_width)


def prepare_sampler(p):
    """What processing does before every sampling: a sampler for p's choice, forge_objects
    rebuilt from the after-Lora copy, then the scripts' process_before_every_sampling."""
    from modules import sd_samplers
    p.sampler = sd_samplers.create_sampler(p.sampler_name, p.sd_model)
    p.sd_model.forge_objects = p.sd_model.forge_objects_after_applying_lora.shallow_copy()
    return p.sampler


def txt2img(p, before_sampling=None):
    from modules import shared
    shared.sd_model = p.sd_model
    p.c, p.uc = conds(p.steps, *_cond_args(p))
    sampler = prepare_sampler(p)
    x = p.rng.next()
    if p.scripts is not None:
        p.scripts.process_before_every_sampling(p, x=x, noise=x, c=p.c, uc=p.uc)
    if before_sampling is not None:
        before_sampling(p)
    return sampler.sample(p, x, p.c, p.uc, image_conditioning=None)


def img2img(p, init_latent, before_sampling=None, mask=None, steps=None):
    from modules import shared
    shared.sd_model = p.sd_model
    p.c, p.uc = conds(p.steps, *_cond_args(p))
    sampler = prepare_sampler(p)
    noise = p.rng.next()
    if mask is not None:                      # 1 = keep, as processing's p.mask
        p.mask, p.nmask = mask, 1.0 - mask
    if p.scripts is not None:
        p.scripts.process_before_every_sampling(p, x=init_latent, noise=noise, c=p.c, uc=p.uc)
    if before_sampling is not None:
        before_sampling(p)
    samples = sampler.sample_img2img(p, init_latent, noise, p.c, p.uc, steps=steps, image_conditioning=None)
    if mask is not None:
        samples = samples * p.nmask + init_latent * p.mask
    return samples


def load_builtin_script(reforge_dir, extension, filename, class_name, name, args_from, args_to):
    from modules import script_loading
    base = os.path.join(reforge_dir, "extensions-builtin", extension)
    if base not in sys.path:
        sys.path.insert(0, base)             # the webui puts an extension's folder on sys.path
    path = os.path.join(base, "scripts", filename)
    script = getattr(script_loading.load_module(path), class_name)()
    script.filename, script.name = path, name
    script.args_from, script.args_to = args_from, args_to
    return script


# ------------------------------------------------------------------ full processing.process_images
def make_processable(sd_model, field, seed=21):
    """Give a stand-in model what process_images touches beyond sampling: a checkpoint record,
    prompt conditioning (tiny: the analytic network ignores it), and a stand-in VAE whose decode
    keeps the latent's first three channels and whose encode returns fresh exact data draws (so
    img2img starts from the data distribution whatever the picture)."""
    import torch
    from types import SimpleNamespace
    sd_model.sd_checkpoint_info = SimpleNamespace(
        name_for_extra="flow-standin", model_name="flow-standin", name="flow-standin.safetensors",
        title="flow-standin", filename=os.path.join(tempfile.gettempdir(), "flow-standin.safetensors"),
        shorthash=None, hash=None, sha256=None)
    sd_model.sd_model_hash, sd_model.sd_model_checkpoint = None, "flow-standin"
    sd_model.tiling_enabled = False
    sd_model.cond_stage_model = torch.nn.Module()
    sd_model.first_stage_model = None
    generator = torch.Generator().manual_seed(seed)
    sd_model.get_learned_conditioning = lambda texts: {
        "crossattn": torch.zeros(len(texts), 1, 8), "vector": torch.zeros(len(texts), 8)}
    sd_model.decode_first_stage = lambda z: z[:, :3]
    sd_model.encode_first_stage = lambda image: field.sample(
        (image.shape[0], 4, image.shape[2] // 8, image.shape[3] // 8), generator=generator)
    sd_model.get_first_stage_encoding = lambda latent: latent
    return sd_model


def use_as_loaded_model(sd_model):
    """shared.sd_model = the stand-in; reloading weights returns it and the selected checkpoint is
    its record (there is no checkpoint file)."""
    from modules import sd_models, shared
    shared.sd_model = sd_model
    sd_models.reload_model_weights = lambda *args, **kwargs: shared.sd_model
    sd_models.select_checkpoint = lambda: shared.sd_model.sd_checkpoint_info
    shared.opts.sd_vae_decode_method = "Full"
    shared.opts.sd_vae_encode_method = "Full"
    shared.opts.live_previews_enable = False


def load_extension_script(extension_dir, filename, class_name, args_from, args_to):
    """Load one of the extension's scripts the way the webui does (its folder on sys.path)."""
    from modules import script_loading
    if extension_dir not in sys.path:
        sys.path.insert(0, extension_dir)
    path = os.path.join(extension_dir, "scripts", filename)
    script = getattr(script_loading.load_module(path), class_name)()
    script.filename, script.name = path, script.title().lower()
    script.args_from, script.args_to = args_from, args_to
    return script
