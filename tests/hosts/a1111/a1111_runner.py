"""Runs inside A1111 v1.10.1's own Python: import the webui on CPU, load the extensions installed in
its extensions folder, set an analytic rectified-flow stand-in model and run `process_images`.

    A1111_DIR=<writable copy with the extension installed> python a1111_runner.py SUITE OUT.json

Writes {"suite": ..., "results": ...} as JSON to OUT.json. Suites are functions named suite_<name>.
The stand-in's data is per element N(MEAN, STD^2) (the core's gaussian_field): its network returns
the exact velocity for the flow input and the timestep it receives (continuous mapping, t = 1000
sigma), so a correct flow sampler's output has that mean and std. Its "VAE" encodes any image as a
fresh draw from the same distribution, so img2img, inpaint and hires passes must also land there.
Its conditioning is all ones for a prompt and all zeros for the empty negative prompt; a suite that
sets `uncond` (the CFG suites) gets that field's velocity for the negative prompt's rows.
"""
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
import traceback
import types

A1111 = os.path.abspath(os.environ["A1111_DIR"])
EXTENSION_NAME = os.environ.get("FLOW_EXTENSION_NAME", "model-sampling-flow")
WORK = os.path.join(A1111, "flow-test-work")


# ---- import-only stand-ins: tests/flow_test_support/standins.py (torchvision and timm have no wheel
# that loads against CPU torch 2.13; nothing on the sampling path calls them) -----------------------
sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))   # tests/
from flow_test_support import bar, standins  # noqa: E402

MEAN, STD = bar.DATA_MEAN, bar.DATA_STD


def no_network():
    import socket
    real = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in ("localhost", "127.0.0.1", "::1", None):
            raise OSError(f"network disabled in the A1111 host test (tried {host!r})")
        return real(host, *args, **kwargs)
    socket.getaddrinfo = local_only


def start_webui():
    standins.install("torchvision", "timm")
    no_network()
    os.chdir(A1111)
    sys.path.insert(0, A1111)
    sys.argv = [sys.argv[0], "--skip-torch-cuda-test", "--use-cpu", "all", "--no-half", "--precision", "full",
                "--skip-prepare-environment", "--skip-install", "--skip-version-check", "--no-download-sd-model",
                "--skip-load-model-at-start", "--do-not-download-clip", "--disable-nan-check"]
    os.environ.update(IGNORE_CMD_ARGS_ERRORS="1", COMMANDLINE_ARGS="", GRADIO_ANALYTICS_ENABLED="False",
                      HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    from modules import initialize
    initialize.imports()
    initialize.initialize()
    from modules import script_callbacks, shared, ui, sd_models
    from modules.api.api import Api
    script_callbacks.before_ui_callback()       # webui.py's order: before_ui, then create_ui
    ui.create_ui()
    shared.opts.sd_vae_decode_method = "Full"
    shared.opts.live_previews_enable = False
    sd_models.reload_model_weights = lambda *args, **kwargs: shared.sd_model   # no checkpoint loading
    from modules import scripts
    return Api.init_default_script_args(None, scripts.scripts_txt2img), \
        Api.init_default_script_args(None, scripts.scripts_img2img)


# ---- the analytic stand-in model ---------------------------------------------------------------
def write_checkpoint(name, rectified_flow):
    """A tiny safetensors file; its header carries the RF marker when `rectified_flow`."""
    import torch
    from safetensors.torch import save_file
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, name)
    metadata = {"modelspec.prediction_type": "rectified_flow"} if rectified_flow else {}
    save_file({"model.diffusion_model.out.2.bias": torch.zeros(4)}, path, metadata=metadata)
    return path


def make_model(checkpoint_path):
    import torch
    import sgm.modules.diffusionmodules.discretizer as discretizer
    from modules import prompt_parser
    from flow_test_support import models
    try:
        from model_sampling_flow.oracles import gaussian_field
    except ImportError:     # the baseline webui has no extension: take the oracle from this checkout
        sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
        from model_sampling_flow.oracles import gaussian_field

    class TextEncoderStandIn(torch.nn.Module):
        def encode_embedding_init_text(self, text, count):
            return torch.zeros(count, 2048)

    class FlowStandIn(torch.nn.Module):
        is_sdxl = True
        is_sd1 = False
        is_sd2 = False
        is_sd3 = False
        is_sdxl_inpaint = False
        is_ssd = False
        parameterization = "eps"
        cond_stage_key = "txt"
        latent_channels = 4
        lowvram = False

        def __init__(self):
            super().__init__()
            self.model = torch.nn.Module()
            self.model.conditioning_key = "crossattn"
            self.conditioner = torch.nn.Module()
            self.conditioner.embedders = torch.nn.ModuleList()    # read by the Lora extension on model load
            self.alphas_cumprod = torch.asarray(discretizer.LegacyDDPMDiscretization().alphas_cumprod,
                                                dtype=torch.float32)
            # as sd_models.load_model_weights sets it (--no-half); copied back before every batch
            self.alphas_cumprod_original = self.alphas_cumprod
            self.first_stage_model = torch.nn.Identity()
            self.first_stage_model.dtype = torch.float32
            self.cond_stage_model_empty_prompt = None
            self.cond_stage_model = TextEncoderStandIn()   # textual inversion asks it for the embedding width
            self.set_checkpoint(checkpoint_path)
            self.device = torch.device("cpu")            # LCM's denoiser reads it
            self.field = gaussian_field(MEAN, STD)      # the data distribution; suites may swap it
            self.uncond = None          # the negative prompt's field (CFG suites); None: `field` for every row
            self.negative_rows = 0      # rows seen with an all-zero cross-attention (the negative prompt)
            self.calls = 0
            self.timesteps = []
            self.decoded = []
            self.fail_next = False

        def set_checkpoint(self, path):
            name = os.path.basename(path)
            self.sd_checkpoint_info = types.SimpleNamespace(
                name_for_extra=name, short_title=name, title=name, filename=path, model_name=name,
                hash=None, sha256=None, shorthash=None)
            self.sd_model_hash = name
            self.sd_model_checkpoint = path

        def get_learned_conditioning(self, texts):
            """A non-empty prompt's conditioning is all ones, the empty (negative) prompt's all zeros."""
            prompt = torch.tensor([1.0 if str(text) else 0.0 for text in texts])
            return prompt_parser.DictWithShape({"crossattn": prompt[:, None, None].expand(-1, 77, 2048).clone(),
                                                "vector": prompt[:, None].expand(-1, 2816).clone()})

        def apply_model(self, x, t, cond=None):
            """The 'network': exact velocity of the RF field at sigma = t / 1000: `field`'s for every
            row, or, when `uncond` is set, `uncond`'s for the rows whose cross-attention is all zeros
            (the empty negative prompt; counted in `negative_rows`)."""
            self.calls += 1
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("stand-in network failure")
            t = t.to(torch.float64) if isinstance(t, torch.Tensor) else torch.tensor(float(t))
            self.timesteps.append(float(t.flatten()[0]))
            sigma = (t / 1000.0).clamp(1e-6, 1.0)
            context = cond.get("crossattn") if isinstance(cond, dict) else None
            negative = models.negative_rows(context, x.shape[0])
            self.negative_rows += int(negative.sum())
            velocity = self.field.velocity(x.double(), sigma.double())
            if self.uncond is not None and bool(negative.any()):
                mask = negative.reshape(-1, *[1] * (x.ndim - 1))
                velocity = torch.where(mask, self.uncond.velocity(x.double(), sigma.double()), velocity)
            return velocity.to(x.dtype)

        def ema_scope(self, *args, **kwargs):
            return contextlib.nullcontext()

        def decode_first_stage(self, z):
            self.decoded.append(z.detach().clone())     # what the webui decodes: the final latents
            return torch.nn.functional.interpolate(z[:, :3], scale_factor=8).clamp(-1, 1)

        def encode_first_stage(self, image):
            batch, _, height, width = image.shape
            # a fixed seed per call, like a deterministic VAE: runs in different processes stay comparable
            generator = torch.Generator().manual_seed(1234)
            return MEAN + STD * torch.randn((batch, 4, height // 8, width // 8), generator=generator)

        def get_first_stage_encoding(self, x):
            return x

    return FlowStandIn()


# ---- processing --------------------------------------------------------------------------------
def _processing_args(sampler, scheduler, steps, seed, batch, size, cfg):
    """The processing arguments txt2img and img2img share: one prompt, square `size` pixels, nothing saved."""
    return dict(prompt="a flow", negative_prompt="", steps=steps, cfg_scale=cfg, sampler_name=sampler,
                scheduler=scheduler, seed=seed, width=size, height=size, batch_size=batch,
                do_not_save_samples=True, do_not_save_grid=True)


class Run:
    """Shared state of one runner process."""

    def __init__(self):
        self.t2i_args, self.i2i_args = start_webui()
        from modules import shared, sd_models
        self.rf_path = write_checkpoint("rf-model.safetensors", True)
        self.plain_path = write_checkpoint("plain-model.safetensors", False)
        self.model = make_model(self.rf_path)
        shared.sd_model = self.model
        sd_models.model_data.was_loaded_at_least_once = True

    def flow_script(self, runner):
        for script in runner.alwayson_scripts:
            if script.title() == "Flow sampling":
                return script
        return None

    def script_args(self, runner, defaults, flow):
        args = list(defaults)
        script = self.flow_script(runner)
        if script is not None and flow is not None:
            values = [flow.get("mode", "Off"), flow.get("shift", 3.0), flow.get("timestep_mapping", "continuous"),
                      flow.get("resolution_shift", False), flow.get("view", "ve")]
            args[script.args_from:script.args_to] = values
        return args

    def attach_scripts(self, p, runner, args, flow):
        """An API-style pass: `runner`'s scripts on `p`, with the extension's arguments set from `flow`."""
        p.is_api = True
        p.scripts = runner
        p.script_args = self.script_args(runner, args, flow)

    def txt2img(self, sampler="Euler", scheduler="Automatic", steps=20, seed=1, batch=2, size=256, flow=None,
                cfg=1.0, hires=None, overrides=None, second_pass=None, keep_tensors=False):
        from modules import processing, scripts
        kwargs = {}
        if hires:
            kwargs = dict(enable_hr=True, hr_scale=hires.get("scale", 2), hr_upscaler=hires.get("upscaler", "Latent (nearest)"),
                          denoising_strength=hires["strength"], hr_second_pass_steps=hires.get("steps", steps))
        p = processing.StableDiffusionProcessingTxt2Img(
            **_processing_args(sampler, scheduler, steps, seed, batch, size, cfg), **kwargs)
        self.attach_scripts(p, scripts.scripts_txt2img, self.t2i_args, flow)
        if overrides is not None:
            p.flow_sampling_overrides = overrides
        if second_pass is not None:
            p.flow_probe_second_pass = second_pass
        return self.process(p, keep_tensors=keep_tensors)

    def img2img(self, sampler="Euler", scheduler="Automatic", steps=20, seed=1, batch=2, size=256, flow=None,
                strength=0.5, inpaint=False, cfg=1.0):
        from PIL import Image
        from modules import processing, scripts
        kwargs = {}
        if inpaint:
            mask = Image.new("L", (size, size), 0)
            mask.paste(255, (0, 0, size // 2, size))         # repaint the left half
            kwargs = dict(mask=mask, mask_blur=0, inpainting_fill=1, inpaint_full_res=False)
        p = processing.StableDiffusionProcessingImg2Img(
            init_images=[Image.new("RGB", (size, size), (120, 60, 200))], denoising_strength=strength,
            **_processing_args(sampler, scheduler, steps, seed, batch, size, cfg), **kwargs)
        self.attach_scripts(p, scripts.scripts_img2img, self.i2i_args, flow)
        return self.process(p, left_half=inpaint)

    def process(self, p, left_half=False, keep_tensors=False):
        import torch
        from modules import processing
        probe = probe_module()
        probe.reset()
        self.model.timesteps.clear()
        self.model.decoded.clear()
        result = {"error": None, "infotext": "", "comments": ""}
        started = time.perf_counter()
        try:
            processed = processing.process_images(p)
            result["infotext"] = processed.infotexts[0] if processed.infotexts else ""
            result["comments"] = processed.comments
        except BaseException as error:    # the webui shows this text to the user
            result["error"] = f"{type(error).__name__}: {error}"
            result["traceback"] = traceback.format_exc()
        result["seconds"] = round(time.perf_counter() - started, 3)
        passes = probe.samples
        result["passes"] = []
        for index, samples in enumerate(passes):
            values = samples.double()
            if left_half and index == 0:
                values = values[..., : values.shape[-1] // 2]
            result["passes"].append({
                "shape": list(samples.shape), "mean": float(values.mean()), "std": float(values.std()),
                "sha256": hashlib.sha256(samples.float().contiguous().numpy().tobytes()).hexdigest()})
        if self.model.decoded:
            decoded = torch.cat(self.model.decoded).double()
            result["decoded"] = {"shape": list(decoded.shape), "mean": float(decoded.mean()),
                                 "std": float(decoded.std())}
        result["denoisers"] = sorted(set(probe.denoisers))
        if keep_tensors:
            result["tensors"] = {"noise": probe.noises[0] if probe.noises else None,
                                 "samples": passes[0] if passes else None}
        result["max_timestep"] = max(self.model.timesteps) if self.model.timesteps else None
        result["patched"] = patch_state(self.model)
        return result


def probe_module():
    from modules import scripts
    for data in scripts.scripts_data:
        if data.script_class.__name__ == "FlowTestProbe":
            return data.module
    raise RuntimeError("flow test probe extension not loaded")


def patch_state(model):
    """Instance attributes that differ from a fresh model's: empty when unpatched."""
    return sorted(k for k in model.__dict__ if k in ("create_denoiser", "apply_model", "flow_sampling_state"))


# ---- suites ------------------------------------------------------------------------------------
def suite_load(run):
    from modules import scripts, sd_samplers, sd_schedulers, shared, extensions
    out = {}
    out["extensions"] = [e.name for e in extensions.extensions]
    out["txt2img_scripts"] = [s.title() for s in scripts.scripts_txt2img.alwayson_scripts]
    out["img2img_scripts"] = [s.title() for s in scripts.scripts_img2img.alwayson_scripts]
    out["samplers"] = sd_samplers.visible_sampler_names()
    out["schedulers"] = [s.label for s in sd_schedulers.schedulers]
    xyz = [x for x in scripts.scripts_data if x.script_class.__module__ == "xyz_grid.py"]
    out["xyz_axes"] = [o.label for o in xyz[0].module.axis_options] if xyz else []
    out["settings"] = sorted(k for k in shared.opts.data_labels if k.startswith("flow_sampling"))
    script = run.flow_script(scripts.scripts_txt2img)
    out["infotext_fields"] = len(script.infotext_fields or []) if script else 0
    out["args"] = [script.args_from, script.args_to] if script else None
    # the install hook, run the way launch_utils.run_extension_installer runs it
    installer = os.path.join(A1111, "extensions", EXTENSION_NAME, "install.py")
    env = dict(os.environ, PYTHONPATH=f"{A1111}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, installer], capture_output=True, text=True, env=env, cwd=A1111)
    out["install"] = {"exists": os.path.isfile(installer), "returncode": proc.returncode, "stdout": proc.stdout,
                      "stderr": proc.stderr, "seconds": round(time.perf_counter() - started, 3)}
    # registering again (a script reload does) changes nothing
    import webui_extension.a1111 as backend
    before = (len(sd_samplers.all_samplers), len(sd_schedulers.schedulers))
    out["register_again"] = [backend.register_samplers(), backend.register_schedulers()]
    out["counts_unchanged"] = before == (len(sd_samplers.all_samplers), len(sd_schedulers.schedulers))
    return out


def all_samplers():
    from modules import sd_samplers
    return [s.name for s in sd_samplers.all_samplers]


def measure(run, sampler, scheduler, steps):
    # 2 images of 32x32x4 latents: 8192 values per measurement
    r = run.txt2img(sampler=sampler, scheduler=scheduler, steps=steps, seed=11, batch=2, size=256,
                    flow={"mode": "On", "shift": 3.0})
    out = {k: r[k] for k in ("error", "seconds", "denoisers")}
    if r["passes"]:
        out.update(mean=r["passes"][0]["mean"], std=r["passes"][0]["std"])
    return out


def suite_matrix(run):
    """Every sampler x every schedule type (or the lists in FLOW_MATRIX_SAMPLERS / _SCHEDULERS)."""
    from modules import sd_schedulers
    steps = int(os.environ.get("FLOW_MATRIX_STEPS", "256"))
    samplers = json.loads(os.environ["FLOW_MATRIX_SAMPLERS"]) if os.environ.get("FLOW_MATRIX_SAMPLERS") \
        else all_samplers()
    schedulers = json.loads(os.environ["FLOW_MATRIX_SCHEDULERS"]) if os.environ.get("FLOW_MATRIX_SCHEDULERS") \
        else [s.label for s in sd_schedulers.schedulers]
    return {f"{sampler} | {scheduler}": measure(run, sampler, scheduler, steps)
            for sampler in samplers for scheduler in schedulers}


def suite_samplers(run):
    """Every sampler A1111 lists (plus ours) with its own default schedule type, 256 steps."""
    return {f"{sampler} | Automatic": measure(run, sampler, "Automatic", 256) for sampler in all_samplers()}


def suite_schedulers(run):
    """Every schedule type with a deterministic and a stochastic sampler, 256 steps."""
    from modules import sd_schedulers
    return {f"{sampler} | {s.label}": measure(run, sampler, s.label, 256)
            for s in sd_schedulers.schedulers for sampler in ("Euler", "DPM++ 2M SDE")}


TIMESTEP_SAMPLERS = ("DDIM", "DDIM CFG++", "PLMS", "UniPC")


def suite_timesteps(run):
    """A1111's timestep samplers on the exact field at 256, 28 and 20 steps (Euler alongside), their
    distance to the exact ODE endpoint of the webui's own initial noise, img2img, and Off after On."""
    import torch
    from modules import rng
    from model_sampling_flow.oracles import gaussian_field
    field = gaussian_field(MEAN, STD)
    original = {name: getattr(run.model, name) for name in ("alphas_cumprod", "alphas_cumprod_original")}
    out = {}
    seed = 11
    noise = rng.ImageRNG((4, 32, 32), [seed, seed + 1]).next().double()
    endpoint = field.endpoint(noise)
    for steps in (256, 28, 20):
        for sampler in TIMESTEP_SAMPLERS + ("Euler",):
            r = run.txt2img(sampler=sampler, steps=steps, seed=seed, batch=2, size=256, flow={"mode": "On", "shift": 3.0})
            entry = {k: r[k] for k in ("error", "seconds", "denoisers", "max_timestep")}
            if r["passes"]:
                final = torch.cat(run.model.decoded).double() if run.model.decoded else None
                entry.update(mean=r["passes"][0]["mean"], std=r["passes"][0]["std"])
                if final is not None:
                    entry["endpoint_rms"] = float((final - endpoint).pow(2).mean().sqrt())
                    entry["endpoint_max"] = float((final - endpoint).abs().max())
            out[f"{sampler} | {steps}"] = entry
    for sampler in ("DDIM", "UniPC"):
        for strength in (0.3, 0.5, 0.75):
            r = run.img2img(sampler=sampler, steps=256, strength=strength, seed=5, batch=4, flow={"mode": "On"})
            out[f"img2img {sampler} | {strength}"] = {k: r[k] for k in ("error", "denoisers")}
            if r["passes"]:
                out[f"img2img {sampler} | {strength}"].update(mean=r["passes"][-1]["mean"], std=r["passes"][-1]["std"])
    # on -> off restores the very tables; off samples as the plain webui (suite_baseline's "off_ddim")
    out["tables_while_on"] = {name: getattr(run.model, name) is not table for name, table in original.items()}
    out["off_ddim"] = run.txt2img(flow={"mode": "Off"}, sampler="DDIM", steps=12, seed=3, batch=1, size=64)
    out["tables_restored"] = {name: getattr(run.model, name) is table for name, table in original.items()}
    # LCM stays refused: a sampler for consistency-distilled models
    out["lcm"] = run.txt2img(flow={"mode": "On"}, sampler="LCM", steps=6, seed=3, batch=1, size=64)["error"]
    return out


def suite_img2img(run):
    steps = int(os.environ.get("FLOW_IMG2IMG_STEPS", "256"))
    samplers = ["Euler", "Euler a", "DPM++ 2M", "DPM++ 2M SDE", "Flow Euler", "Flow SDE"]
    out = {}
    for sampler in samplers:
        for strength in (0.3, 0.5, 0.75):
            for inpaint in (False, True):
                r = run.img2img(sampler=sampler, steps=steps, strength=strength, inpaint=inpaint, seed=5, batch=4,
                                flow={"mode": "On"})
                out[f"{'inpaint' if inpaint else 'img2img'} | {sampler} | {strength}"] = r
        r = run.txt2img(sampler=sampler, steps=steps, seed=5, batch=2, size=256, flow={"mode": "On"},
                        hires={"strength": 0.5, "scale": 2})
        out[f"hires | {sampler} | 0.5"] = r
    return out


def suite_lifecycle(run):
    """Off / on / off, exception, checkpoint change, Auto, infotext, XYZ, second pass."""
    from modules import infotext_utils, script_callbacks, scripts
    out = {}
    case = dict(sampler="DPM++ 2M SDE", steps=12, seed=3, batch=1, size=64)
    out["off_1"] = run.txt2img(flow={"mode": "Off"}, **case)
    out["on"] = run.txt2img(flow={"mode": "On", "shift": 3.0}, **case)
    out["on_img2img"] = run.img2img(flow={"mode": "On"}, sampler="Euler", steps=12, seed=3, batch=1, size=64)
    out["off_2"] = run.txt2img(flow={"mode": "Off"}, **case)
    out["off_img2img"] = run.img2img(flow={"mode": "Off"}, sampler="Euler", steps=12, seed=3, batch=1, size=64)
    # an exception inside sampling
    run.txt2img(flow={"mode": "On"}, **case)
    run.model.fail_next = True
    out["exception"] = run.txt2img(flow={"mode": "On"}, **case)
    out["after_exception_off"] = run.txt2img(flow={"mode": "Off"}, **case)
    # checkpoint change: new weights into the same model object (A1111 does this for same-config models)
    run.txt2img(flow={"mode": "On"}, **case)
    run.model.set_checkpoint(run.plain_path)
    script_callbacks.model_loaded_callback(run.model)
    out["after_checkpoint_change_patch"] = patch_state(run.model)
    out["auto_plain"] = run.txt2img(flow={"mode": "Auto"}, **case)
    run.model.set_checkpoint(run.rf_path)
    script_callbacks.model_loaded_callback(run.model)
    out["auto_rf"] = run.txt2img(flow={"mode": "Auto"}, **case)
    # refused samplers and schedulers while flow is on
    out["refused"] = {}
    for sampler, scheduler in (("LCM", "Automatic"), ("Euler", "Align Your Steps")):
        r = run.txt2img(flow={"mode": "On"}, sampler=sampler, scheduler=scheduler, steps=6, seed=3, batch=1, size=64)
        out["refused"][f"{sampler} | {scheduler}"] = r["error"]
    # flow samplers / scheduler with flow off
    out["flow_sampler_off"] = run.txt2img(flow={"mode": "Off"}, sampler="Flow Euler", steps=6, seed=3, batch=1, size=64)
    out["flow_scheduler_off"] = run.txt2img(flow={"mode": "Off"}, sampler="Euler", scheduler="Flow shift", steps=6,
                                            seed=3, batch=1, size=64)
    # infotext round trip through A1111's parser and the script's paste fields
    r = run.txt2img(flow={"mode": "On", "shift": 2.5, "timestep_mapping": "floor_999"}, **case)
    out["infotext"] = r["infotext"]
    params = infotext_utils.parse_generation_parameters(r["infotext"])
    script = run.flow_script(scripts.scripts_txt2img)
    pasted = []
    for component, key in script.infotext_fields:
        value = key(params) if callable(key) else params.get(key)
        pasted.append([component.label, value])
    out["pasted"] = pasted
    out["floor_999_timesteps_integral"] = r["max_timestep"] is not None and float(r["max_timestep"]).is_integer()
    # XYZ plot axes: apply them the way xyz_grid does, then generate
    xyz = [x for x in scripts.scripts_data if x.script_class.__module__ == "xyz_grid.py"][0].module
    axes = {o.label: o for o in xyz.axis_options if o.label.startswith("[Flow]")}
    out["xyz"] = {}
    for label, value in (("[Flow] Flow sampling", "On"), ("[Flow] Flow shift", 6.0),
                         ("[Flow] Flow mapping", "floor_1000")):
        from modules import processing
        p_probe = processing.StableDiffusionProcessingTxt2Img()
        axes[label].apply(p_probe, axes[label].type(value), [])
        out["xyz"][label] = getattr(p_probe, "flow_sampling_overrides", None)
    r = run.txt2img(flow={"mode": "Off"}, overrides={"mode": "On", "shift": 6.0, "timestep_mapping": "floor_1000"},
                    **case)
    out["xyz_run"] = {"infotext": r["infotext"], "denoisers": r["denoisers"]}
    # XYZ values are checked when the grid is built (AxisOption.confirm), before any cell generates
    out["xyz_confirm"] = {}
    for label, values in (("[Flow] Flow shift", [3.0, float("nan")]), ("[Flow] Flow shift", [-3.0]),
                          ("[Flow] Flow shift", [1e30]), ("[Flow] Flow mapping", ["continuous", "floor"]),
                          ("[Flow] Flow shift", [2.0, 6.0])):
        try:
            axes[label].confirm(processing.StableDiffusionProcessingTxt2Img(), values)
            out["xyz_confirm"][f"{label} {values}"] = None
        except ValueError as error:
            out["xyz_confirm"][f"{label} {values}"] = str(error)
    # Off with an invalid shift (API ["Off", 0], an XYZ cell) still removes the patch
    run.txt2img(flow={"mode": "On"}, **case)
    out["off_invalid_shift"] = run.txt2img(flow={"mode": "Off", "shift": 0}, **case)
    run.txt2img(flow={"mode": "On"}, **case)
    out["off_xyz_nan"] = run.txt2img(flow={"mode": "On"}, overrides={"mode": "Off", "shift": float("nan")}, **case)
    # On with an invalid value: one message naming it, flow off for that generation
    run.txt2img(flow={"mode": "On"}, **case)
    out["on_invalid_shift"] = run.txt2img(flow={"mode": "On", "shift": float("nan")}, **case)
    # a pasted infotext with one bad field: the others still apply
    bad = infotext_utils.parse_generation_parameters(
        "a flow\nSteps: 12, Sampler: Euler, Flow sampling: on, Flow shift: -3, Flow mapping: floor_999")
    out["pasted_bad_shift"] = [[component.label, key(bad) if callable(key) else bad.get(key)]
                               for component, key in script.infotext_fields]
    # a second processing object made in postprocess, without our script (ADetailer's way)
    out["second_pass_on"] = run.txt2img(flow={"mode": "On"}, sampler="Euler", steps=256, seed=8, batch=4, size=256,
                                        second_pass={"strength": 0.5, "steps": 256})
    out["second_pass_off"] = run.txt2img(flow={"mode": "Off"}, sampler="Euler", steps=12, seed=8, batch=1, size=64,
                                         second_pass={"strength": 0.5, "steps": 12})
    out["final_patch"] = patch_state(run.model)
    return out


# ---- practical step counts: every sampler x schedule type at 20 and 28 steps ----------
PRACTICAL_SHIFT = 3.0


def _sampler_kinds():
    """webui_extension/sampler_views.py of THIS checkout (the installed extension may be older)."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
                        "webui_extension", "sampler_views.py")
    spec = importlib.util.spec_from_file_location("flow_practical_sampler_views", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def practical_reference(run, sampler_label, scheduler_label, steps, noise, field, view, seed):
    """The same A1111 sampler function on A1111's same-named schedule computed over the flow table,
    run outside our backend: in flow coordinates ('flow': what ComfyUI's ModelSamplingSD3 gives a
    sampler) or in the VE view on that schedule mapped sigma / (1 - sigma), top -> the VE cap."""
    import torch
    import k_diffusion.external
    import k_diffusion.sampling as ks
    from modules import rng, sd_samplers, sd_samplers_common
    from model_sampling_flow.model_sampling import FlowModelSampling
    # the step noise A1111 draws for this batch (seeds seed, seed + 1): TorchHijack over the same
    # ImageRNG, whose first draw is the initial noise; Brownian trees on the same seeds
    seeds = [seed + i for i in range(noise.shape[0])]
    image_rng = rng.ImageRNG(noise.shape[1:], seeds)
    same_noise = bool(torch.equal(image_rng.next(), noise))
    ks.torch = sd_samplers_common.TorchHijack(types.SimpleNamespace(rng=image_rng))
    flow_table = FlowModelSampling(shift=PRACTICAL_SHIFT).sigmas
    cap = PRACTICAL_SHIFT * (1 - 1e-4) / (1 + (PRACTICAL_SHIFT - 1) * (1 - 1e-4))
    from model_sampling_flow import registry, ve_bridge
    config = sd_samplers.find_sampler_config(sampler_label)
    sampler = config.constructor(run.model)
    sampler.config = config
    sampler.model_wrap = k_diffusion.external.DiscreteSchedule(flow_table, quantize=False)
    resolved = config.options.get("scheduler") if scheduler_label == "Automatic" else scheduler_label
    from flow_test_support.schedules import registry_flow_sigmas
    # the core's own schedule types (Flow shift, Flow PC, ...), in flow sigma
    flow_sigmas = registry_flow_sigmas(resolved, steps, PRACTICAL_SHIFT,
                                       config.options.get("discard_next_to_last_sigma", False))
    if flow_sigmas is None:
        p = types.SimpleNamespace(scheduler=scheduler_label, hr_scheduler=None, is_hr_pass=False,
                                  extra_generation_params={}, sampler_noise_scheduler_override=None)
        flow_sigmas = sampler.get_sigmas(p, steps).double()
    ours = next((entry for entry in registry.SAMPLERS if entry.label == sampler_label), None)

    def to_ve(values):
        values = values.double().clamp(max=cap)
        return (values / (1 - values)).float()

    if view == "flow":
        sigmas, table = flow_sigmas.float(), flow_table

        def denoiser(x, sigma, **kwargs):
            return field(x.double(), sigma.double().reshape(-1, *[1] * (x.ndim - 1))).to(x.dtype)
    else:
        sigmas, table = to_ve(flow_sigmas), to_ve(flow_table.double())

        def denoiser(x, sigma, **kwargs):
            s = sigma.double().reshape(-1, *[1] * (x.ndim - 1))
            return field(x.double() / (1 + s), s / (1 + s)).to(x.dtype)
    x = noise.float() * sigmas[0]
    if ours is not None:        # the core's own function, natively or through the core's VE bridge
        if view == "flow":
            return ours.function(denoiser, x, sigmas, disable=True).double(), None, same_noise
        noise_sampler = None
        if config.options.get("brownian_noise", False):
            noise_sampler = ks.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=seeds)
        elif ours.takes_noise_sampler:
            noise_sampler = lambda s, t: image_rng.next().to(x)  # noqa: E731
        return ve_bridge.sample_in_ve(ours.function, denoiser, x, sigmas, disable=True,
                                      noise_sampler=noise_sampler).double(), None, same_noise
    from flow_test_support.practical import kdiffusion_kwargs
    kwargs = kdiffusion_kwargs(      # eta 1: A1111's default (Settings: eta for ancestral samplers)
        sampler.func, steps, sigmas, table, config.options, eta=1.0,
        noise_sampler=lambda: ks.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=seeds))
    try:
        out = sampler.func(denoiser, x, extra_args={}, disable=True, **kwargs)
    except Exception as error:  # noqa: BLE001  (reported in the table)
        return None, f"{type(error).__name__}: {error}", same_noise
    finally:
        ks.torch = torch
    return out.double(), None, same_noise


class GuidedEps:
    """The timestep samplers' CFG denoiser, outside the extension: called as `model(x, t, **extra_args)`
    with the DDPM state x (B, C, H, W) at timesteps t (B,) of `table` (the model's alphas_cumprod,
    log-linear in between as UniPC's NoiseScheduleVP reads it), it answers the guided noise
    eps_u + cfg * cond_scale_miltiplier * (eps_c - eps_u) of the exact flow fields `cond` / `uncond`
    (x_vp = sqrt(a) x0 + sqrt(1 - a) noise is the flow state x_vp / (sqrt(a) + sqrt(1 - a)) at
    sigma = sqrt(1 - a) / (sqrt(a) + sqrt(1 - a))), and keeps eps_u for DDIM CFG++ like CFGDenoiser."""

    def __init__(self, table, cond, uncond, cfg):
        self.inner_model = types.SimpleNamespace(inner_model=types.SimpleNamespace(alphas_cumprod=table))
        self.table, self.cond, self.uncond, self.cfg = table.double(), cond, uncond, cfg
        self.cond_scale_miltiplier, self.need_last_noise_uncond, self.last_noise_uncond = 1.0, False, None

    def __call__(self, x, t, **kwargs):
        import torch
        t = torch.as_tensor(t).double().clamp(0, len(self.table) - 1)
        low = t.floor().long()
        high = (low + 1).clamp(max=len(self.table) - 1)
        a = (self.table[low].log() + (t - low) * (self.table[high].log() - self.table[low].log())).exp()
        a = a.reshape(-1, 1, 1, 1)
        root_signal, root_noise = a.sqrt(), (1 - a).sqrt()
        xd = x.double()
        x_flow, sigma = xd / (root_signal + root_noise), root_noise / (root_signal + root_noise)
        eps_c = (xd - root_signal * self.cond(x_flow, sigma)) / root_noise
        eps_u = (xd - root_signal * self.uncond(x_flow, sigma)) / root_noise
        if self.need_last_noise_uncond:
            self.last_noise_uncond = eps_u.to(x.dtype)
        return (eps_u + self.cfg * self.cond_scale_miltiplier * (eps_c - eps_u)).to(x.dtype)


def timestep_reference(run, sampler_label, steps, noise, cond, uncond, cfg):
    """DDIM / DDIM CFG++ / PLMS / UniPC's own A1111 function with A1111's timesteps on the table the
    pass used (the model's alphas_cumprod while flow is on), the model being GuidedEps: the same
    sampler on the exact guided noise, outside the extension. (samples, error)."""
    from modules import sd_samplers
    config = sd_samplers.find_sampler_config(sampler_label)
    sampler = config.constructor(run.model)
    sampler.config = config
    p = types.SimpleNamespace(extra_generation_params={})
    timesteps = sampler.get_timesteps(p, steps)
    model = GuidedEps(run.model.alphas_cumprod, cond, uncond, cfg)
    try:
        return sampler.func(model, noise.float(), timesteps, extra_args={}, callback=lambda state: None,
                            disable=True).double(), None
    except Exception as error:  # noqa: BLE001  (reported in the table)
        return None, f"{type(error).__name__}: {error}"


def suite_practical(run):
    """Every listed sampler x every schedule type, 20 and 28 steps, at CFG practical_cfg()
    (FLOW_PRACTICAL_CFG, default 1), or the lists in FLOW_PRACTICAL_SAMPLERS / _SCHEDULERS / _STEPS /
    _FIELDS: practical_rows. Fields by default: "gaussian" and "mixture" at CFG 1, "gaussian" and
    "two_modes" above."""
    from flow_test_support.practical import default_field_names, practical_cfg
    from modules import sd_schedulers
    cfg = practical_cfg()
    samplers = json.loads(os.environ["FLOW_PRACTICAL_SAMPLERS"]) if os.environ.get("FLOW_PRACTICAL_SAMPLERS") \
        else all_samplers()
    schedulers = json.loads(os.environ["FLOW_PRACTICAL_SCHEDULERS"]) \
        if os.environ.get("FLOW_PRACTICAL_SCHEDULERS") else [s.label for s in sd_schedulers.schedulers]
    steps_list = json.loads(os.environ.get("FLOW_PRACTICAL_STEPS", "[20, 28]"))
    field_names = json.loads(os.environ["FLOW_PRACTICAL_FIELDS"]) if os.environ.get("FLOW_PRACTICAL_FIELDS") \
        else default_field_names(cfg)
    return {"rows": practical_rows(run, cfg, samplers, schedulers, steps_list, field_names),
            "shift": PRACTICAL_SHIFT, "cfg": cfg}


# the tier's CFG case: deterministic and stochastic k-diffusion samplers, the Flow ones, the CFG++ one
CFG_SAMPLERS = ("Euler", "DPM++ 2M", "Euler a", "DPM++ 2M SDE", "Flow Euler", "Flow Multistep", "Flow SDE",
                "Flow PC", "DDIM", "DDIM CFG++")
CFG_SCALE = 5.0


def suite_cfg(run):
    """The tier's CFG case: CFG_SAMPLERS at CFG 5, 20 steps, Automatic schedule, both guided fields
    "gaussian" and "two_modes" (practical_rows)."""
    return {"rows": practical_rows(run, CFG_SCALE, CFG_SAMPLERS, ["Automatic"], [20], ["gaussian", "two_modes"]),
            "cfg": CFG_SCALE}


def practical_rows(run, cfg, samplers, schedulers, steps_list, field_names):
    """`samplers` x `schedulers` x `steps_list` x `field_names` at CFG `cfg`: ours (flow On, shift 3,
    A1111's own process_images, batch 2, seed 31) against the reference for the sampler's kind,
    {"field | steps | sampler | scheduler": row}. At CFG 1 the Gaussian and mixture fields answer every
    row; above 1 the guided pairs (practical_fields) answer the negative prompt's rows with the uncond
    field (the row's `negative_rows` counts them), A1111's CFGDenoiser combines them, the references
    call the exact GuidedField, and the timestep samplers get their own reference (timestep_reference)."""
    import torch
    from flow_test_support.practical import cache_endpoint, practical_fields, reference_figures
    kinds = _sampler_kinds()
    fields = practical_fields(cfg)
    rows = {}
    for field_name in field_names:
        cond, uncond, exact = fields[field_name]
        field = cache_endpoint(exact)
        run.model.field, run.model.uncond = cond, uncond
        for steps in steps_list:
            for sampler in samplers:
                kind = kinds.sampler_kind(sampler) or "stochastic"   # unknown: judged in distribution
                # the reference draws the same noise, so small latents do (2 x 4 x 16 x 16)
                size, batch = 128, 2
                for scheduler in schedulers:
                    seed = 31
                    run.model.negative_rows = 0
                    r = run.txt2img(sampler=sampler, scheduler=scheduler, steps=steps, seed=seed, batch=batch,
                                    size=size, flow={"mode": "On", "shift": PRACTICAL_SHIFT}, keep_tensors=True,
                                    cfg=cfg)
                    row = {"kind": kind, "error": r["error"], "comments": r.get("comments", ""),
                           "seconds": r["seconds"]}
                    if cfg != 1:
                        row["negative_rows"] = run.model.negative_rows
                    tensors = r.pop("tensors", {}) or {}
                    samples, noise = tensors.get("samples"), tensors.get("noise")
                    if r["error"] is None and samples is not None and noise is not None and kind == "timestep":
                        # DDIM / PLMS / UniPC step through alphas_cumprod: at CFG 1 no reference here (the
                        # timesteps suite judges them against Euler at 20 and 28 steps); above 1 the same
                        # sampler on the exact guided noise, held to the deterministic bar
                        samples = samples.double()
                        row.update(mean=float(samples.mean()), std=float(samples.std()),
                                   finite=bool(torch.isfinite(samples).all()))
                        if cfg != 1:
                            reference, ref_error = timestep_reference(run, sampler, steps, noise, cond, uncond, cfg)
                            row["reference_error"] = ref_error
                            if reference is not None:
                                row.update(reference_figures(reference, field, noise, "deterministic", samples))
                    elif r["error"] is None and samples is not None and noise is not None:
                        samples = samples.double()
                        row.update(mean=float(samples.mean()), std=float(samples.std()))
                        view = "flow" if kind == "deterministic" else "ve"
                        reference, ref_error, same_noise = practical_reference(
                            run, sampler, scheduler, steps, noise, field, view, seed)
                        row["reference_error"], row["same_noise"] = ref_error, same_noise
                        if reference is not None:
                            row.update(reference_figures(reference, field, noise, kind, samples))
                        row["finite"] = bool(torch.isfinite(samples).all())
                    rows[f"{field_name} | {steps} | {sampler} | {scheduler}"] = row
    run.model.uncond = None
    return rows


def suite_baseline(run):
    """The lifecycle cases that must match a webui without the extension."""
    case = dict(sampler="DPM++ 2M SDE", steps=12, seed=3, batch=1, size=64)
    return {"off": run.txt2img(flow=None, **case),
            "off_ddim": run.txt2img(flow=None, sampler="DDIM", steps=12, seed=3, batch=1, size=64),
            "off_img2img": run.img2img(flow=None, sampler="Euler", steps=12, seed=3, batch=1, size=64),
            "second_pass_off": run.txt2img(flow=None, sampler="Euler", steps=12, seed=8, batch=1, size=64,
                                           second_pass={"strength": 0.5, "steps": 12}),
            "extensions": [e.name for e in __import__("modules.extensions", fromlist=["x"]).extensions]}


def main():
    suite, out_path = sys.argv[1], sys.argv[2]
    started = time.perf_counter()
    try:
        run = Run()
        results = globals()[f"suite_{suite}"](run)
        payload = {"suite": suite, "results": results, "error": None}
    except BaseException:
        payload = {"suite": suite, "results": None, "error": traceback.format_exc()}
    payload["seconds"] = round(time.perf_counter() - started, 2)
    with open(out_path, "w") as handle:
        json.dump(payload, handle, indent=1, default=str)


if __name__ == "__main__":
    main()
