"""Runs inside Forge's venv: Forge's own process_images with this repository installed as an extension.

Usage: FORGE_PYTHON forge_runner.py SUITE OUT.json
Env:   FORGE_DIR   a writable copy of Forge; FORGE_DATA its data dir (extensions/ is read from there:
                   the suites put this repository in <data>/extensions/<FLOW_EXTENSION>; the reference
                   suite runs with a data dir that has no extension at all)
       FLOW_STEPS  steps of the accuracy runs (default 256); FLOW_ONLY  comma-separated sampler names
Suites: reference, samplers, schedulers, process_images. Each writes a JSON object of measurements;
tests/hosts/forge/test_forge_*.py assert on them.
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

    def txt2img(self, sampler="Euler", scheduler="Automatic", steps=STEPS, size=SIZE, seed=7, flow=ON, cfg=1.0, **extra):
        from modules import processing
        p = processing.StableDiffusionProcessingTxt2Img(
            prompt="flow", negative_prompt="", steps=steps, cfg_scale=cfg, sampler_name=sampler, scheduler=scheduler,
            seed=seed, width=size, height=size, batch_size=1, do_not_save_samples=True, do_not_save_grid=True, **extra)
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

        def title(self):
            return "flow test capture"

        def show(self, is_img2img):
            return scripts.AlwaysVisible

        def process_before_every_sampling(self, p, *args, **kwargs):
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
        for sampler in ("Euler a", "DPM++ 2M SDE", "DDIM", "Flow Euler"):
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


SUITES = {"reference": suite_reference, "samplers": suite_samplers, "schedulers": suite_schedulers,
          "process_images": suite_process_images}

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
