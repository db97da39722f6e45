"""Runs inside Forge's venv: Forge's own process_images with this repository installed as an extension.

Usage: FORGE_PYTHON forge_runner.py SUITE OUT.json
Env:   FORGE_DIR   a writable copy of Forge; FORGE_DATA its data dir (extensions/ is read from there:
                   the suites put this repository in <data>/extensions/<FLOW_EXTENSION>; the reference
                   suite runs with a data dir that has no extension at all)
       FLOW_STEPS  steps of the accuracy runs (default 256); FLOW_ONLY  comma-separated sampler names
Suites: reference, samplers, schedulers, process_images, practical (FLOW_PRACTICAL_*: see suite_practical).
Each writes a JSON object of measurements; tests/hosts/forge/test_forge_*.py assert on them.
"""
import hashlib
import json
import math
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import forge_host as host  # noqa: E402

FORGE = os.path.abspath(os.environ["FORGE_DIR"])
DATA = os.path.abspath(os.environ.get("FORGE_DATA") or FORGE)
EXTENSION = os.path.join(DATA, "extensions", os.environ.get("FLOW_EXTENSION", "model-sampling-flow"))
STEPS = int(os.environ.get("FLOW_STEPS", "256"))
DATA_MEAN, DATA_STD = 0.5, 0.3
SIZE = 512                       # 64 x 64 latent: 16384 elements, standard error of the mean ~0.002
FLOW_TITLE = "Flow sampling"
ON = ["On", 3.0, "continuous", False, "ve"]
OFF = ["Off", 3.0, "continuous", False, "ve"]
REFERENCE_CASES = (("Euler a", "Automatic"), ("Euler", "Simple"), ("DDIM", "Automatic"), ("DPM++ 2M SDE", "Karras"))


def stats(x):
    x = x.double()
    return {"mean": float(x.mean()), "std": float(x.std()), "finite": bool(x.isfinite().all())}


def digest(x):
    return hashlib.sha256(x.detach().float().contiguous().cpu().numpy().tobytes()).hexdigest()


class Session:
    """Forge started once; the scripts of txt2img / img2img with their default args."""

    def __init__(self):
        self.t2i_args, self.i2i_args = host.start_forge(FORGE, DATA if DATA != FORGE else None)
        from modules import scripts
        self.scripts = scripts
        found = [s for s in scripts.scripts_txt2img.alwayson_scripts if s.title() == FLOW_TITLE]
        self.flow_t2i = found[0] if found else None
        found = [s for s in scripts.scripts_img2img.alwayson_scripts if s.title() == FLOW_TITLE]
        self.flow_i2i = found[0] if found else None
        if EXTENSION not in sys.path:
            sys.path.insert(0, EXTENSION)
        self.capture = None

    def args(self, img2img, flow, steps, sampler, scheduler, seed):
        """The UI's script args with these values: Forge's built-in Sampler and Seed scripts set p.steps,
        p.sampler_name, p.scheduler and p.seed from their args in setup(), overriding the constructor's."""
        runner = self.scripts.scripts_img2img if img2img else self.scripts.scripts_txt2img
        args = list(self.i2i_args if img2img else self.t2i_args)
        for script in runner.alwayson_scripts:
            title = script.title()
            if title == "Sampler":
                args[script.args_from:script.args_from + 3] = [steps, sampler, scheduler]
            elif title == "Seed":
                args[script.args_from:script.args_from + 6] = [seed, False, -1, 0, 0, 0]
            elif title == FLOW_TITLE and flow is not None:
                args[script.args_from:script.args_to] = flow
        return args

    def txt2img(self, sampler="Euler", scheduler="Automatic", steps=STEPS, size=SIZE, seed=7, flow=ON, cfg=1.0, batch=1,
                **extra):
        from modules import processing
        p = processing.StableDiffusionProcessingTxt2Img(
            prompt="flow", negative_prompt="", steps=steps, cfg_scale=cfg, sampler_name=sampler, scheduler=scheduler,
            seed=seed, width=size, height=size, batch_size=batch, do_not_save_samples=True, do_not_save_grid=True,
            **extra)
        p.scripts, p.script_args = self.scripts.scripts_txt2img, self.args(False, flow, steps, sampler, scheduler, seed)
        return p

    def img2img(self, strength, sampler="Euler a", steps=STEPS, size=SIZE, seed=9, flow=ON, mask=None, scheduler="Automatic"):
        from modules import processing
        from PIL import Image
        p = processing.StableDiffusionProcessingImg2Img(
            init_images=[Image.new("RGB", (size, size), (90, 160, 200))], denoising_strength=strength, mask=mask,
            inpainting_fill=1, inpaint_full_res=False, prompt="flow", negative_prompt="", steps=steps, cfg_scale=1.0,
            sampler_name=sampler, scheduler=scheduler, seed=seed, width=size, height=size, do_not_save_samples=True,
            do_not_save_grid=True)
        p.scripts, p.script_args = self.scripts.scripts_img2img, self.args(True, flow, steps, sampler, scheduler, seed)
        p.flow_test_init_latent = data_latent(size, seed + 100)
        return p


def data_latent(size, seed):
    import torch
    g = torch.Generator().manual_seed(seed)
    return DATA_MEAN + DATA_STD * torch.randn(1, 4, size // 8, size // 8, generator=g)


def run(p):
    """process_images; (the sampled latent, the Processed result)."""
    from modules import processing
    result = processing.process_images(p)
    return p.latents_after_sampling[-1], result


def attempt(p):
    """(stats, error text, infotext, comments)."""
    try:
        latent, result = run(p)
        return stats(latent), None, result.infotexts[0], result.comments
    except Exception as error:
        return None, f"{type(error).__name__}: {error}", None, None


def add_capture(session):
    """An always-on script (no args) that puts a data-distributed latent in place of the encoded init
    image (the tiny VAE is random) and, when asked, runs a second img2img processing object in
    postprocess with its own script runner, the way ADetailer does."""
    from modules import processing, scripts
    from PIL import Image

    class Capture(scripts.Script):
        second = None              # (strength, sampler) to run
        second_results = []
        keep_noise = False

        def title(self):
            return "flow test capture"

        def show(self, is_img2img):
            return scripts.AlwaysVisible

        def process_before_every_sampling(self, p, *args, **kwargs):
            if Capture.keep_noise and kwargs.get("x") is not None:
                # the practical suite: the initial noise, and DDPM's step noise from the same ImageRNG as
                # k-diffusion's (Forge's k_diffusion_extra draws from the global torch RNG otherwise)
                p.flow_test_noise = kwargs["x"].detach().clone()
                from backend.modules import k_diffusion_extra
                from modules import sd_samplers_common
                k_diffusion_extra.torch = sd_samplers_common.TorchHijack(p)
            if getattr(p, "is_hr_pass", False):
                # txt2img returns the decoded hires images: keep the hires pass's latent for the checks
                sample_img2img = p.sampler.sample_img2img

                def keep(*a, **k):
                    p.flow_test_hr_latent = sample_img2img(*a, **k)
                    return p.flow_test_hr_latent
                p.sampler.sample_img2img = keep
            latent = getattr(p, "flow_test_init_latent", None)
            if latent is not None and getattr(p, "init_latent", None) is not None and not getattr(p, "is_hr_pass", False):
                p.init_latent = latent.to(p.init_latent)

        def postprocess(self, p, processed, *args):
            if Capture.second is None or getattr(p, "flow_test_second", False):
                return
            strength, sampler = Capture.second
            q = processing.StableDiffusionProcessingImg2Img(
                init_images=[Image.new("RGB", (p.width, p.height), (128, 128, 128))], denoising_strength=strength,
                prompt=p.prompt, negative_prompt="", steps=p.steps, cfg_scale=1.0, sampler_name=sampler,
                scheduler="Automatic", seed=p.seed + 1, width=p.width, height=p.height, do_not_save_samples=True,
                do_not_save_grid=True)
            q.flow_test_second, q.flow_test_init_latent = True, data_latent(p.width, 55)
            own = scripts.ScriptRunner()
            own.alwayson_scripts.append(self)
            own.scripts.append(self)
            q.scripts, q.script_args = own, []
            result = processing.process_images(q)
            Capture.second_results.append((stats(q.latents_after_sampling[-1]), result.infotexts[0]))

    for runner, args in ((session.scripts.scripts_txt2img, session.t2i_args),
                         (session.scripts.scripts_img2img, session.i2i_args)):
        capture_for = Capture()
        capture_for.args_from = capture_for.args_to = len(args)
        capture_for.filename, capture_for.name = "flow_test_capture", "flow test capture"
        runner.alwayson_scripts.append(capture_for)
        runner.scripts.append(capture_for)
    session.capture = Capture
    return Capture


def setup(name="exact-rf-sdxl"):
    session = Session()
    sd_model = host.build_exact_flow_sdxl(FORGE, DATA, DATA_MEAN, DATA_STD, name=name)
    host.make_loaded(sd_model)
    from modules import shared
    # what a checkpoint load leaves in the settings (infotext parsing compares against it)
    shared.opts.data["sd_model_checkpoint"] = sd_model.sd_checkpoint_info.title
    add_capture(session)
    return session, sd_model


# ------------------------------------------------------------------ suites
def suite_reference():
    """Forge with no extension installed at all: the outputs Off must reproduce bit for bit."""
    session, sd_model = setup()
    out = {"extension_loaded": session.flow_t2i is not None,
           "extension_modules": sorted(m for m in sys.modules if m.startswith(("webui_extension", "model_sampling_flow")))}
    for sampler, scheduler in REFERENCE_CASES:
        latent, _ = run(session.txt2img(sampler, scheduler, steps=12, size=128, flow=None))
        out[f"{sampler} | {scheduler}"] = digest(latent)
    latent, _ = run(session.img2img(0.5, "Euler a", steps=12, size=128, flow=None))
    out["img2img Euler a 0.5"] = digest(latent)
    return out


def _without_refusal(func):
    from webui_extension.forge import ForgeBackend
    saved = ForgeBackend.refusal
    ForgeBackend.refusal = lambda self, p: None
    try:
        return func()
    finally:
        ForgeBackend.refusal = saved


def suite_samplers():
    session, sd_model = setup()
    from modules import sd_samplers
    only = os.environ.get("FLOW_ONLY")
    rows = {}
    listed = [s.name for s in sd_samplers.visible_samplers()]
    for name in listed:
        if only and name not in only.split(","):
            continue
        t0 = time.time()
        result, error, infotext, comments = attempt(session.txt2img(name))
        row = {"stats": result, "error": error, "seconds": round(time.time() - t0, 1)}
        if error is not None:
            row["unrefused"] = _without_refusal(lambda: attempt(session.txt2img(name))[:2])
        rows[name] = row
    # DDIM CFG++ is refused at CFG 1 only (Forge's CFG-1 shortcut); at CFG 2 the analytic network (it
    # ignores the prompt) gives cond = uncond, so the result must be the same distribution
    if not only or "DDIM CFG++" in only.split(","):
        result, error, _, _ = attempt(session.txt2img("DDIM CFG++", cfg=2.0))
        rows_cfg2 = {"DDIM CFG++": {"stats": result, "error": error}}
    else:
        rows_cfg2 = {}
    return {"steps": STEPS, "samplers": rows, "listed": listed, "cfg2": rows_cfg2}


SCHEDULER_SAMPLERS = ("Euler", "Euler a", "DPM++ 2M")


def suite_schedulers():
    session, sd_model = setup()
    from modules import sd_schedulers
    rows = {}
    for scheduler in sd_schedulers.schedulers:
        for sampler in SCHEDULER_SAMPLERS:
            result, error, _, _ = attempt(session.txt2img(sampler, scheduler.label))
            row = {"stats": result, "error": error}
            if error is not None:
                row["unrefused"] = _without_refusal(lambda: attempt(session.txt2img(sampler, scheduler.label))[:2])
            rows[f"{scheduler.label} | {sampler}"] = row
    return {"steps": STEPS, "rows": rows, "listed": [s.label for s in sd_schedulers.schedulers]}


OUT = {}       # what a suite measured so far (written even when a later step fails)


def suite_process_images():
    import torch
    from PIL import Image
    session, sd_model = setup()
    from modules import infotext_utils, script_callbacks, shared
    out = OUT
    out["extension_loaded"] = session.flow_t2i is not None
    kmodel = sd_model.forge_objects.unet.model
    network = kmodel.diffusion_model
    eps_predictor = kmodel.predictor
    from webui_extension import backend as contract
    from webui_extension.forge import ForgeBackend, ForgeFlowPredictor
    chosen = contract.select_backend(sd_model)
    out["backend"] = None if chosen is None else chosen.name
    out["reforge_detects_forge"] = bool(__import__("webui_extension.reforge", fromlist=["x"]).ReforgeBackend.detect(sd_model))
    out["a1111_detects_forge"] = bool(__import__("webui_extension.a1111", fromlist=["x"]).A1111Backend.detect(sd_model))

    # 1. Off: bit-identical to Forge without the extension (the reference suite), also after On
    def reference_runs(tag):
        digests = {}
        for sampler, scheduler in REFERENCE_CASES:
            latent, _ = run(session.txt2img(sampler, scheduler, steps=12, size=128, flow=OFF))
            digests[f"{sampler} | {scheduler}"] = digest(latent)
        latent, _ = run(session.img2img(0.5, "Euler a", steps=12, size=128, flow=OFF))
        digests["img2img Euler a 0.5"] = digest(latent)
        out[tag] = digests
    reference_runs("off_before_on")
    run(session.txt2img("Euler a", steps=12, size=128))
    out["predictor_while_on"] = type(kmodel.predictor).__name__
    reference_runs("off_after_on")
    out["predictor_restored"] = kmodel.predictor is eps_predictor

    # 6. infotext and the XYZ axes
    latent_on, result = run(session.txt2img("Euler a", steps=24, size=128))
    out["infotext"] = result.infotexts[0]
    parsed = infotext_utils.parse_generation_parameters(result.infotexts[0])
    from model_sampling_flow.settings import FlowSettings
    from webui_extension import control
    pasted = FlowSettings.from_infotext(parsed)
    out["infotext_pasted"] = None if pasted is None else [pasted.shift, pasted.timestep_mapping]
    axes = {label: control.xyz_setter(key, convert) for label, _, key, convert, _ in control.XYZ_AXES}
    p = session.txt2img("Euler a", steps=24, size=128)
    axes["[Flow] Flow shift"](p, "6", None)
    shifted, result = run(p)
    out["xyz_shift_infotext"] = result.infotexts[0]
    out["xyz_shift_changes_output"] = not torch.equal(shifted, latent_on)
    p = session.txt2img("Euler a", steps=12, size=128)
    axes["[Flow] Flow sampling"](p, "Off", None)
    out["xyz_off_digest"] = digest(run(p)[0])
    out["xyz_axes_present"] = sorted(label for label, *_ in control.XYZ_AXES)

    # 7. resolution-dependent shift: the predictor follows the pass size
    p = session.txt2img("Euler", steps=8, size=256, flow=["On", 3.0, "continuous", True, "ve"])
    run(p)
    out["resolution_shift_256"] = float(kmodel.predictor.shift)

    # 8. refusals: a listed schedule type that cannot be right
    result, error, _, _ = attempt(session.txt2img("Euler", "Align Your Steps", steps=8, size=128))
    out["ays_error"] = error

    # 9. an exception inside sampling, then Off
    run(session.txt2img("Euler a", steps=12, size=128))
    network.fail_at_call = network.calls + 4
    out["exception_propagated"] = attempt(session.txt2img("Euler a", steps=12, size=128))[1] is not None
    network.fail_at_call = None
    out["after_exception_off_digest"] = digest(run(session.txt2img("Euler a", "Automatic", steps=12, size=128, flow=OFF))[0])

    # 10. checkpoint change: the model-loaded callback restores the model; flow applies to the new one
    run(session.txt2img("Euler a", steps=12, size=128))
    other = host.build_exact_flow_sdxl(FORGE, DATA, DATA_MEAN, DATA_STD, name="other-rf-sdxl", seed=3)
    host.make_loaded(other)
    latent, _ = run(session.txt2img("Euler", steps=STEPS))
    out["second_checkpoint_flow"] = stats(latent)
    out["second_checkpoint_predictor"] = type(other.forge_objects.unet.model.predictor).__name__
    # the new checkpoint's first flow generation restores the previous model
    out["first_restored_after_new_checkpoint_generates"] = kmodel.predictor is eps_predictor and \
        ForgeBackend().active(sd_model) is None
    script_callbacks.model_loaded_callback(other)
    out["second_checkpoint_restored"] = not isinstance(other.forge_objects.unet.model.predictor, ForgeFlowPredictor)
    host.make_loaded(sd_model)

    # 11. no backend applies: the model is not SDXL -> flow On samples as without the extension and says why
    sd_model.is_sdxl = False
    try:
        latent, result = run(session.txt2img("Euler a", "Automatic", steps=12, size=128))
        off, _ = run(session.txt2img("Euler a", "Automatic", steps=12, size=128, flow=OFF))
        out["not_sdxl"] = {"digest": digest(latent), "off_digest": digest(off), "comments": result.comments,
                           "infotext": result.infotexts[0]}
    finally:
        sd_model.is_sdxl = True

    # 12. no backend applies: a future Forge whose samplers no longer take the schedule from `predictor`
    from modules import sd_samplers_kdiffusion
    import k_diffusion.external
    original_property = sd_samplers_kdiffusion.CFGDenoiserKDiffusion.inner_model
    k_diffusion.external.FutureScheduleLink = k_diffusion.external.ForgeScheduleLinker

    def future_inner_model(self):
        if self.model_wrap is None:
            self.model_wrap = k_diffusion.external.FutureScheduleLink(shared.sd_model.forge_objects.unet.model.predictor)
            self.model_wrap.inner_model = shared.sd_model
        return self.model_wrap
    sd_samplers_kdiffusion.CFGDenoiserKDiffusion.inner_model = property(future_inner_model)
    try:
        out["future_forge_backend"] = getattr(contract.select_backend(sd_model), "name", None)
        latent, result = run(session.txt2img("Euler a", "Automatic", steps=12, size=128))
        off, _ = run(session.txt2img("Euler a", "Automatic", steps=12, size=128, flow=OFF))
        out["future_forge"] = {"digest": digest(latent), "off_digest": digest(off), "comments": result.comments,
                               "infotext": result.infotexts[0]}
    finally:
        sd_samplers_kdiffusion.CFGDenoiserKDiffusion.inner_model = original_property

    # 13. the model already samples as a flow (Forge Neo's own RF option sets a flow predictor): defer
    from backend.modules.k_prediction import PredictionDiscreteFlow
    native = PredictionDiscreteFlow(shift=3.0)
    kmodel.predictor = native
    try:
        latent_native_off, _ = run(session.txt2img("Euler", "Simple", steps=12, size=128, flow=OFF))
        latent, result = run(session.txt2img("Euler", "Simple", steps=12, size=128))
        out["native_flow"] = {"identical": bool(torch.equal(latent, latent_native_off)), "comments": result.comments,
                              "infotext": result.infotexts[0], "predictor_kept": kmodel.predictor is native}
    finally:
        kmodel.predictor = eps_predictor
    # 2. txt2img, the Flow samplers and the Flow shift schedule type
    out["txt2img"] = {}
    for sampler, scheduler in (("Euler", "Automatic"), ("Euler a", "Automatic"), ("DPM++ 2M", "Karras"),
                               ("DDIM", "Automatic"), ("UniPC", "Automatic"), ("Flow Euler", "Automatic"),
                               ("Flow Euler a", "Automatic"), ("Flow Heun", "Automatic"), ("Flow SDE", "Automatic"),
                               ("Flow Multistep", "Automatic"), ("Euler", "Flow shift")):
        result, error, infotext, comments = attempt(session.txt2img(sampler, scheduler))
        out["txt2img"][f"{sampler} | {scheduler}"] = {"stats": result, "error": error, "infotext": infotext}
    result, error, _, _ = attempt(session.txt2img("Flow Euler", flow=OFF, steps=8, size=128))
    out["flow_sampler_with_flow_off"] = error

    # 3. hires fix (latent upscale: the second pass is sample_img2img on the upscaled first pass)
    out["hires"] = {}
    for strength in (0.3, 0.5, 0.75):
        p = session.txt2img("Euler a", size=SIZE // 2, enable_hr=True, hr_scale=2, hr_upscaler="Latent (nearest)",
                            denoising_strength=strength, hr_second_pass_steps=STEPS,
                            hr_additional_modules=["Use same choices"])
        result, error, infotext, _ = attempt(p)
        latent = getattr(p, "flow_test_hr_latent", None)
        out["hires"][str(strength)] = {"stats": None if latent is None else stats(latent), "error": error,
                                       "shape": None if latent is None else list(latent.shape)}

    # 4. img2img and inpaint
    out["img2img"], out["inpaint"] = {}, {}
    for strength in (0.3, 0.5, 0.75):
        for sampler in ("Euler a", "DPM++ 2M SDE", "DDIM", "Flow Euler", "DPM++ 2M"):   # DPM++ 2M: in flow coordinates
            result, error, _, _ = attempt(session.img2img(strength, sampler))
            out["img2img"][f"{sampler} | {strength}"] = {"stats": result, "error": error}
        mask = Image.new("L", (SIZE, SIZE), 0)
        mask.paste(255, (SIZE // 2, 0, SIZE, SIZE))           # repaint the right half
        try:
            latent, _ = run(session.img2img(strength, "Euler a", mask=mask))
            out["inpaint"][str(strength)] = {"stats": stats(latent[..., SIZE // 16 + 2:]), "error": None}
        except Exception as error:
            out["inpaint"][str(strength)] = {"stats": None, "error": f"{type(error).__name__}: {error}"}

    # 5. a second processing object started by another extension in postprocess (ADetailer's way)
    session.capture.second = (0.5, "Euler a")
    session.capture.second_results.clear()
    attempt(session.txt2img("Euler a"))
    session.capture.second = None
    second = session.capture.second_results[-1] if session.capture.second_results else (None, None)
    out["second_pass"] = {"stats": second[0], "infotext": second[1]}

    out["reported_errors"] = [m for m in host.REPORTED if "flow" in m.lower() or "Flow" in m]
    return out


# ------------------------------------------------------------------ practical step counts (the bar)
PRACTICAL_SHIFT = 3.0
PRACTICAL_SIZE, PRACTICAL_BATCH, PRACTICAL_SEED = 128, 2, 31    # 2 x 4 x 16 x 16; the references draw the same noise


def _sampler_kinds():
    """webui_extension/sampler_views.py of THIS checkout (the installed extension may be older)."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(HERE)), "webui_extension", "sampler_views.py")
    if not os.path.exists(path):
        path = os.path.join(EXTENSION, "webui_extension", "sampler_views.py")
    spec = importlib.util.spec_from_file_location("flow_practical_sampler_views", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _forge_flow_linker():
    """Forge's own flow predictor (PredictionDiscreteFlow, what Forge gives SD3) at the practical shift, in
    a ForgeScheduleLinker: the same-named schedule in native flow sigma. Its sigma(0) is floored at the
    table's smallest sigma (natively "Automatic" / "Uniform" end in two zero sigmas and give NaN for any
    model, ../shared/hosts/README.md); Turbo reads the predictor through inner_model."""
    import types
    import torch
    import k_diffusion.external
    from backend.modules.k_prediction import PredictionDiscreteFlow

    class FlooredFlow(PredictionDiscreteFlow):
        def sigma(self, timestep):
            sigma = super().sigma(timestep)
            floor = getattr(self, "sigmas", None)
            return sigma if floor is None else torch.maximum(torch.as_tensor(sigma), floor[0])

    predictor = FlooredFlow(shift=PRACTICAL_SHIFT)
    linker = k_diffusion.external.ForgeScheduleLinker(predictor)
    unet = types.SimpleNamespace(model=types.SimpleNamespace(predictor=predictor))
    linker.inner_model = types.SimpleNamespace(forge_objects=types.SimpleNamespace(unet=unet))
    return linker, predictor


def practical_reference(sd_model, sampler_name, scheduler, steps, field, view, noise):
    """Forge's sampler function on Forge's same-named schedule computed over the flow table (its own
    flow predictor's), on the exact field (a GuidedField at cfg > 1), outside our backend: natively in
    flow coordinates ('flow') or in the VE view on that schedule mapped sigma / (1 - sigma), top -> the VE cap ('ve'). The same
    noise as the pass: `noise` is its first ImageRNG draw, step noise comes from the same ImageRNG
    (TorchHijack) or Brownian trees on the same seeds. Returns (samples, error)."""
    import types
    import torch
    import k_diffusion.sampling as ks
    from modules import rng, sd_samplers, sd_samplers_common
    from model_sampling_flow import registry, ve_bridge
    linker, predictor = _forge_flow_linker()
    flow_table = predictor.sigmas.double()
    cap = PRACTICAL_SHIFT * (1 - 1e-4) / (1 + (PRACTICAL_SHIFT - 1) * (1 - 1e-4))
    seeds = [PRACTICAL_SEED + i for i in range(noise.shape[0])]
    image_rng = rng.ImageRNG(noise.shape[1:], seeds)
    same = bool(torch.equal(image_rng.next(), noise))
    sampler = sd_samplers.create_sampler(sampler_name, sd_model)
    sampler.model_wrap = linker
    resolved = sampler.config.options.get("scheduler") if scheduler == "Automatic" else scheduler
    from flow_test_support.schedules import registry_flow_sigmas
    # the core's own schedule types (Flow shift, Flow PC, ...), in flow sigma
    flow_sigmas = registry_flow_sigmas(resolved, steps, PRACTICAL_SHIFT,
                                       sampler.config.options.get("discard_next_to_last_sigma", False))
    if flow_sigmas is None:
        p = types.SimpleNamespace(scheduler=scheduler, hr_scheduler=None, is_hr_pass=False, extra_generation_params={},
                                  sampler_noise_scheduler_override=None)
        flow_sigmas = sampler.get_sigmas(p, steps).double()

    def to_ve(values):
        values = values.double().clamp(max=cap)
        return (values / (1 - values)).float()

    class Denoiser:
        inner_model = types.SimpleNamespace(predictor=predictor)   # Euler a / DPM2 a read it (not Flux: VE branch)

        def __call__(self, x, sigma, **kwargs):
            s = sigma.double().reshape(-1, *[1] * (x.ndim - 1))
            if view == "flow":
                return field(x.double(), s).to(x.dtype)
            return field(x.double() / (1 + s), s / (1 + s)).to(x.dtype)

    sigmas, table = (flow_sigmas.float(), flow_table) if view == "flow" else (to_ve(flow_sigmas), to_ve(flow_table))
    x = noise.float() * sigmas[0]
    hijack = sd_samplers_common.TorchHijack(types.SimpleNamespace(rng=image_rng))
    ours = next((entry for entry in registry.SAMPLERS if entry.label == sampler_name), None)
    brownian = sampler.config.options.get("brownian_noise", False)
    try:
        if ours is not None:        # the core's own function, natively or through the core's VE bridge
            if view == "flow":
                return ours.function(Denoiser(), x, sigmas, disable=True).double(), None, same
            noise_sampler = None
            if brownian:
                noise_sampler = ks.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=seeds)
            elif "noise_sampler" in ours.options:
                noise_sampler = lambda s, t: image_rng.next().to(x)  # noqa: E731
            return ve_bridge.sample_in_ve(ours.function, Denoiser(), x, sigmas, disable=True,
                                          noise_sampler=noise_sampler).double(), None, same
        from flow_test_support.practical import kdiffusion_kwargs
        kwargs = kdiffusion_kwargs(     # eta: what Forge's Sampler.initialize passes (Settings: eta, default 1)
            sampler.func, steps, sigmas, table, sampler.config.options,
            eta=getattr(__import__("modules.shared", fromlist=["opts"]).opts, "eta_ancestral", 1.0),
            noise_sampler=lambda: ks.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=seeds))
        module = sys.modules[sampler.func.__module__]
        saved = {m: m.torch for m in {ks, module} if hasattr(m, "torch")}
        for m in saved:
            m.torch = hijack
        try:
            return sampler.func(Denoiser(), x, extra_args={}, disable=True, **kwargs).double(), None, same
        finally:
            for m, value in saved.items():
                m.torch = value
    except Exception as error:  # noqa: BLE001  (reported in the table)
        return None, f"{type(error).__name__}: {error}", same


def ddim_cfgpp_reference(field, noise, steps):
    """DDIM CFG++ at cfg > 1 (a timestep sampler: no k-diffusion schedule, so no same-named native reference):
    Forge's own `ddim_cfgpp` on Forge's DDIM timesteps over alphas_cumprod = 1 / (1 + sigma^2) of the VE view's
    table (what Forge derives from the flow predictor while flow is on), outside our backend, with a model
    answering as Forge's CFGDenoiserTimesteps does on the exact guided `field` (oracles.GuidedField): the
    guided eps (x_ve - D) / sigma, D = uncond + scale (cond - uncond) at the flow point, and the unconditional
    eps in `last_noise_uncond` (Forge sets the sampler's 1 / 12.5 CFG multiplier but never applies it, so
    the full scale). Returns the samples (float64) or raises."""
    import types
    import torch
    from modules import sd_samplers_timesteps_impl
    from model_sampling_flow.model_sampling import FlowVEModelSampling
    table = FlowVEModelSampling(shift=PRACTICAL_SHIFT).sigmas.double()

    class TimestepModel:
        inner_model = types.SimpleNamespace(inner_model=types.SimpleNamespace(alphas_cumprod=1.0 / (table ** 2 + 1.0)))
        last_noise_uncond = None

        def __call__(self, x, timesteps, **kwargs):
            s = table[timesteps.round().long()].reshape(-1, *[1] * (x.ndim - 1))
            x_ve = x.double() * (s ** 2 + 1).sqrt()
            x_flow, sigma = x_ve / (1 + s), s / (1 + s)
            uncond = field.uncond(x_flow, sigma)
            denoised = uncond + field.scale * (field.cond(x_flow, sigma) - uncond)
            self.last_noise_uncond = ((x_ve - uncond) / s).to(x.dtype)
            return ((x_ve - denoised) / s).to(x.dtype)

    timesteps = torch.clip(torch.arange(0, 1000, 1000 // steps) + 1, 0, 999)
    return sd_samplers_timesteps_impl.ddim_cfgpp(TimestepModel(), noise.float(), timesteps, disable=True).double()


def _env_list(name, default):
    value = os.environ.get(name)
    return json.loads(value) if value else default


def _tier_schedulers(sampler, schedulers):
    """FLOW_PRACTICAL_TIER (tests/hosts/forge/forge_harness.py): the forge tier's subset of the product."""
    tier = os.environ.get("FLOW_PRACTICAL_TIER")
    if not tier:
        return schedulers
    tier = json.loads(tier)
    if sampler in tier["samplers_for_all_schedulers"]:
        return schedulers
    return [s for s in schedulers if s in tier["schedulers_for_all"]]


def suite_practical():
    """Every listed sampler (ours included) x every listed schedule type, 20 and 28 steps, through Forge's
    process_images with flow On (shift 3) at the CFG scale FLOW_PRACTICAL_CFG (default 1: the Gaussian and
    mixture fields, one field answering every row; above 1: the guided pairs "gaussian" and "two_modes" by
    default, the empty negative prompt's rows - Forge's SDXL engine zeroes that conditioning - answered by
    the uncond field, judged against the exact guided field); each row with the reference for its kind and
    the negative-prompt rows the network answered. FLOW_PRACTICAL_{SAMPLERS,SCHEDULERS,STEPS,FIELDS}
    (JSON lists) narrow it."""
    import torch
    from flow_test_support.practical import (cache_endpoint, default_field_names, practical_cfg, practical_fields,
                                             reference_figures)
    session, sd_model = setup()        # puts the extension (model_sampling_flow) on sys.path
    from flow_test_support.models import ExactVelocityNetwork, GuidedVelocityNetwork
    from modules import sd_samplers, sd_schedulers
    session.capture.keep_noise = True
    if os.environ.get("FLOW_PRACTICAL_UNREFUSED"):      # measure what a refusal prevents (docs only)
        from webui_extension.forge import ForgeBackend
        ForgeBackend.refusal = lambda self, p: None
    kinds = _sampler_kinds()
    kmodel = sd_model.forge_objects.unet.model
    listed = [s.name for s in sd_samplers.visible_samplers()]
    all_schedulers = [s.label for s in sd_schedulers.schedulers]
    samplers = _env_list("FLOW_PRACTICAL_SAMPLERS", listed)
    schedulers = _env_list("FLOW_PRACTICAL_SCHEDULERS", all_schedulers)
    steps_list = _env_list("FLOW_PRACTICAL_STEPS", [20, 28])
    cfg = practical_cfg()
    fields = practical_fields(cfg)
    flow = ["On", PRACTICAL_SHIFT, "continuous", False, "ve"]
    rows = OUT.setdefault("rows", {})
    OUT["cfg"] = cfg
    for field_name in _env_list("FLOW_PRACTICAL_FIELDS", default_field_names(cfg)):
        cond, uncond, field = fields[field_name]
        if uncond is None:
            network = ExactVelocityNetwork(cond)
        else:
            network = GuidedVelocityNetwork(cond, uncond)
            cache_endpoint(field)
        kmodel.diffusion_model = network
        for steps in steps_list:
            for sampler in samplers:
                kind = kinds.sampler_kind(sampler) or "stochastic"      # unknown: judged in distribution
                for scheduler in _tier_schedulers(sampler, schedulers):
                    t0 = time.time()
                    p = session.txt2img(sampler, scheduler, steps=steps, size=PRACTICAL_SIZE, seed=PRACTICAL_SEED,
                                        flow=flow, batch=PRACTICAL_BATCH, cfg=cfg)
                    row = {"kind": kind, "error": None}
                    negative_before, calls_before = getattr(network, "negative_rows", None), network.calls
                    try:
                        run(p)
                        samples = torch.stack(list(p.latents_after_sampling)).double()   # one per image
                    except Exception as error:     # a refusal's message, or a failure for the table
                        row["error"] = f"{type(error).__name__}: {error}"
                        samples = None
                    if negative_before is not None:     # a batch of 2 images: two negative rows per call
                        row["negative_rows"] = network.negative_rows - negative_before
                        row["network_calls"] = network.calls - calls_before
                    noise = getattr(p, "flow_test_noise", None)
                    if samples is not None:
                        row.update(mean=float(samples.mean()), std=float(samples.std()),
                                   finite=bool(torch.isfinite(samples).all()))
                        if noise is not None:
                            exact = field.endpoint(noise.double())
                            row["rmse"] = float(((samples - exact) ** 2).mean().sqrt())
                    if samples is not None and noise is not None and kind != "timestep":
                        view = "flow" if kind == "deterministic" else "ve"
                        reference, ref_error, same = practical_reference(sd_model, sampler, scheduler, steps, field,
                                                                         view, noise)
                        row["reference_error"], row["same_noise"] = ref_error, same
                        if reference is not None:
                            row.update(reference_figures(reference, field, noise, kind, samples))
                    if samples is not None and noise is not None and sampler == "DDIM CFG++" and uncond is not None:
                        try:        # judged like a deterministic sampler against Forge's own ddim_cfgpp (above)
                            row.update(reference_figures(ddim_cfgpp_reference(field, noise, steps), field, noise,
                                                         "deterministic", samples), reference_error=None,
                                       same_noise=True)
                        except Exception as error:  # noqa: BLE001  (reported in the table)
                            row["reference_error"] = f"{type(error).__name__}: {error}"
                    row["seconds"] = round(time.time() - t0, 2)
                    rows[f"{field_name} | {steps} | {sampler} | {scheduler}"] = row
    return {"rows": rows, "listed": listed, "schedulers": all_schedulers, "shift": PRACTICAL_SHIFT, "cfg": cfg}


# The forge tier's CFG case (test_forge_practical.py): CFG 5 on the guided pairs, the empty negative prompt's rows
# answered by the uncond field through Forge's own CFG (its sampling_function's cond / uncond batch, DDIM CFG++'s
# unconditional eps): the shared samplers, DDIM CFG++ and three Flow samplers, on Automatic and Karras, 20 and
# 28 steps. The full CFG sweep is benchmarks/bench_practical_steps.py with FLOW_PRACTICAL_CFG.
TIER_PRACTICAL_CFG = {
    "FLOW_PRACTICAL_CFG": "5", "FLOW_PRACTICAL_STEPS": "[20, 28]", "FLOW_PRACTICAL_FIELDS": '["gaussian", "two_modes"]',
    "FLOW_PRACTICAL_SCHEDULERS": '["Automatic", "Karras"]',
    "FLOW_PRACTICAL_SAMPLERS": json.dumps(["Euler", "DPM++ 2M", "Euler a", "DPM++ 2M SDE", "DDIM CFG++", "Flow Euler",
                                           "Flow Multistep", "Flow Euler a"]),
}


def suite_practical_cfg_tier():
    os.environ.update(TIER_PRACTICAL_CFG)       # this case is CFG 5 whatever the environment asks
    os.environ.pop("FLOW_PRACTICAL_TIER", None)
    result = suite_practical()
    result["samplers"] = json.loads(TIER_PRACTICAL_CFG["FLOW_PRACTICAL_SAMPLERS"])
    return result


SUITES = {"reference": suite_reference, "practical": suite_practical, "practical_cfg_tier": suite_practical_cfg_tier,
          "samplers": suite_samplers, "schedulers": suite_schedulers, "process_images": suite_process_images}

if __name__ == "__main__":
    suite, out_path = sys.argv[1], sys.argv[2]
    t0 = time.time()
    try:
        result = SUITES[suite]()
    except Exception:
        traceback.print_exc()
        OUT["suite_error"] = traceback.format_exc()[-3000:]
        with open(out_path, "w") as f:
            json.dump(OUT, f, indent=1, default=str)
        raise
    result["seconds"] = round(time.time() - t0, 1)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1, default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o))
