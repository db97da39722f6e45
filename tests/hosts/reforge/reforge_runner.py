"""Runs inside reForge's venv: drives reForge's own sampling code with the extension's backend.

Usage: REFORGE_PYTHON reforge_runner.py SUITE OUT.json
Env:   REFORGE_DIR  a writable copy of reForge with this repository in extensions/<FLOW_EXTENSION>
       FLOW_EXTENSION  the extension folder name, FLOW_STEPS (default 256)
Suites: samplers, schedulers, img2img, lifecycle. Each writes a JSON object of measurements; the
pytest side (tests/hosts/reforge/test_reforge_*.py) asserts on them.
"""
import json
import math
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reforge_host as host  # noqa: E402

REFORGE = os.path.abspath(os.environ["REFORGE_DIR"])
EXTENSION = os.path.join(REFORGE, "extensions", os.environ.get("FLOW_EXTENSION", "model-sampling-flow"))
STEPS = int(os.environ.get("FLOW_STEPS", "256"))
DATA_MEAN, DATA_STD = 0.5, 0.3
SIZE = 512                       # 64 x 64 latent: 16384 elements, std error of the std ~0.002
SMALL_CONDS = (1, 8, 8)


def stats(x):
    x = x.double()
    return {"mean": float(x.mean()), "std": float(x.std()), "finite": bool(x.isfinite().all())}


def start():
    # FLOW_REFORGE_OPTIONS: webui settings (JSON) for this run, e.g. {"sd_sampling": "ldm patched (Comfy)"}
    options = json.loads(os.environ["FLOW_REFORGE_OPTIONS"]) if os.environ.get("FLOW_REFORGE_OPTIONS") else None
    host.start_reforge(REFORGE, options)
    # the webui puts an extension's folder on sys.path when it loads the extension's scripts;
    # the core (oracles for the analytic model) is importable from there, the webui layer is
    # imported only where a check says so
    if EXTENSION not in sys.path:
        sys.path.insert(0, EXTENSION)
    import torch
    torch.manual_seed(0)


def load_backend():
    from webui_extension.reforge import ReforgeBackend
    return ReforgeBackend()


def analytic_model():
    from model_sampling_flow.oracles import gaussian_field
    field = gaussian_field(DATA_MEAN, DATA_STD)
    unet = host.analytic_unet_patcher(field)
    return field, unet, host.StandInSdModel(unet)


def measure_txt2img(backend, sd_model, sampler_name, scheduler="Automatic", steps=STEPS, seed=1):
    """(stats or None, refusal message or None, seconds, error text or None)."""
    from webui_extension.reforge import FlowSamplingRefused
    p = host.Processing(sd_model, sampler_name=sampler_name, scheduler=scheduler, steps=steps,
                        seed=seed, width=SIZE, height=SIZE, cond_size=SMALL_CONDS)
    t0 = time.time()
    try:
        out = host.txt2img(p, before_sampling=backend.before_sampling)
        return stats(out), None, time.time() - t0, None
    except FlowSamplingRefused as refused:
        return None, str(refused), time.time() - t0, None
    except Exception as error:     # recorded, the pytest side decides
        return None, None, time.time() - t0, f"{type(error).__name__}: {error}\n{traceback.format_exc()[-1500:]}"


def measure_unrefused(backend, sd_model, sampler_name, scheduler="Automatic", steps=STEPS):
    """Sample even where flow refuses, to show in the table why it refuses."""
    def before(p):
        func = p.sampler.func
        backend.before_sampling(p)
        p.sampler.func = getattr(p.sampler.func, "unrefused", None) or func     # what the pass would run
    p = host.Processing(sd_model, sampler_name=sampler_name, scheduler=scheduler, steps=steps,
                        width=SIZE, height=SIZE, cond_size=SMALL_CONDS)
    try:
        return stats(host.txt2img(p, before_sampling=before))
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}


# ------------------------------------------------------------------ suites
def register_flow_samplers():
    """What the extension's script does at load where the webui has A1111's k-diffusion layout (reForge
    with its repositories/k-diffusion): list the Flow samplers and the Flow shift schedule type."""
    try:
        from webui_extension import a1111
    except ImportError as error:        # no repositories/k-diffusion: the script lists nothing either
        return f"not listed: {error}"
    a1111.register_samplers()
    a1111.register_schedulers()
    return None


def suite_samplers():
    from model_sampling_flow.settings import FlowSettings
    from modules import sd_samplers
    backend = load_backend()
    flow_samplers_unlisted = register_flow_samplers()
    _, unet, sd_model = analytic_model()
    backend.apply(sd_model, FlowSettings(shift=3.0))
    rows = {}
    only = os.environ.get("FLOW_ONLY")
    for data in sd_samplers.visible_samplers():
        if only and data.name not in only.split(","):
            continue
        result, refusal, seconds, error = measure_txt2img(backend, sd_model, data.name)
        row = {"stats": result, "refusal": refusal, "seconds": round(seconds, 2), "error": error}
        if refusal is not None:
            row["unrefused"] = measure_unrefused(backend, sd_model, data.name)
        rows[data.name] = row
    return {"steps": STEPS, "samplers": rows, "listed": [s.name for s in sd_samplers.visible_samplers()],
            "flow_samplers_unlisted": flow_samplers_unlisted}


def suite_eps_control():
    """The samplers flow excludes, on an exact EPS SDXL model of the same data (flow never on):
    if they miss there too, their dynamics, not flow, are why."""
    from model_sampling_flow.oracles import gaussian_field
    load_backend()
    unet = host.analytic_eps_unet_patcher(gaussian_field(DATA_MEAN, DATA_STD))
    sd_model = host.StandInSdModel(unet)

    class NoBackend:
        def before_sampling(self, p):
            pass
    rows = {}
    for name in os.environ.get("FLOW_ONLY", ",".join(EPS_CONTROL_SAMPLERS)).split(","):
        result, refusal, seconds, error = measure_txt2img(NoBackend(), sd_model, name)
        rows[name] = {"stats": result, "error": error, "seconds": round(seconds, 2)}
    return {"steps": STEPS, "samplers": rows}


# excluded from the flow bar (see docs/reforge.md), plus two that must pass, as controls
EPS_CONTROL_SAMPLERS = ("Euler", "Euler a", "Euler Dy", "Euler SMEA Dy", "Euler Negative", "Euler Negative Dy",
                        "Kohaku_LoNyu_Yog", "DPM++ 2S Ancestral CFG++", "DPM++ 2S Ancestral CFG++ Dyn",
                        "DPM++ 2S Ancestral CFG++ Intern", "Euler DY CFG++", "Euler SMEA DY CFG++",
                        "Euler A DY CFG++", "DPM++ 3M SDE DY", "Euler A Turbo", "DPM++ 2M Turbo",
                        "DPM++ 2M SDE Turbo")


SCHEDULER_SAMPLERS = ("Euler", "Euler a", "DPM++ 2M")
ALTER_SCHEDULER_SAMPLER = "Euler Comfy"
ALTER_SCHEDULERS = ("Normal", "Karras", "Exponential", "SGM Uniform", "Simple", "DDIM", "Align Your Steps",
                    "Align Your Steps GITS", "Align Your Steps 11", "Align Your Steps 32", "KL Optimal",
                    "Beta", "Sinusoidal SF", "Invcosinusoidal SF", "React Cosinusoidal DynSF", "Cosine",
                    "Cosine-exponential Blend", "Phi", "Laplace", "Karras Dynamic", "Uniform",
                    "Polyexponential", "Turbo", "Align Your Steps Custom")


def suite_schedulers():
    from model_sampling_flow.settings import FlowSettings
    from modules import sd_schedulers
    backend = load_backend()
    _, _, sd_model = analytic_model()
    backend.apply(sd_model, FlowSettings(shift=3.0))
    webui = {}
    for scheduler in sd_schedulers.schedulers:
        for sampler in SCHEDULER_SAMPLERS:
            result, refusal, seconds, error = measure_txt2img(backend, sd_model, sampler, scheduler.label)
            row = {"stats": result, "refusal": refusal, "error": error}
            if refusal is not None:
                row["unrefused"] = measure_unrefused(backend, sd_model, sampler, scheduler.label)
            webui[f"{scheduler.label} | {sampler}"] = row
    alter = {}
    for scheduler in ALTER_SCHEDULERS:
        result, refusal, seconds, error = measure_txt2img(backend, sd_model, ALTER_SCHEDULER_SAMPLER, scheduler)
        row = {"stats": result, "refusal": refusal, "error": error}
        if refusal is not None:
            row["unrefused"] = measure_unrefused(backend, sd_model, ALTER_SCHEDULER_SAMPLER, scheduler)
        alter[f"{scheduler} | {ALTER_SCHEDULER_SAMPLER}"] = row
    return {"steps": STEPS, "webui": webui, "alter": alter,
            "listed": [s.label for s in sd_schedulers.schedulers]}


IMG2IMG_SAMPLERS = ("Euler", "Euler a", "DPM++ 2M", "DPM++ 2M SDE", "DDIM", "UniPC", "Euler A Comfy", "ER SDE")


def data_latent(field, height, width, seed):
    import torch
    return field.sample((1, 4, height, width), generator=torch.Generator().manual_seed(seed))


def suite_img2img():
    import torch
    from model_sampling_flow.settings import FlowSettings
    backend = load_backend()
    field, _, sd_model = analytic_model()
    backend.apply(sd_model, FlowSettings(shift=3.0))
    init = data_latent(field, SIZE // 8, SIZE // 8, seed=11)
    out = {"img2img": {}, "inpaint": {}, "hires": {}, "second_pass": {}}
    for sampler in IMG2IMG_SAMPLERS:
        for strength in (0.3, 0.5, 0.75):
            p = host.Processing(sd_model, sampler_name=sampler, steps=STEPS, width=SIZE, height=SIZE,
                                denoising_strength=strength, cond_size=SMALL_CONDS)
            try:
                samples = host.img2img(p, init, before_sampling=backend.before_sampling)
                out["img2img"][f"{sampler} | {strength}"] = {
                    "stats": stats(samples), "changed": float((samples - init).abs().mean())}
            except Exception as error:
                out["img2img"][f"{sampler} | {strength}"] = {"error": f"{type(error).__name__}: {error}"}
    # inpaint: the left half is kept (mask 1), the right half resampled
    mask = torch.zeros(1, 4, SIZE // 8, SIZE // 8)
    mask[..., : SIZE // 16] = 1.0
    for sampler in ("Euler", "Euler a", "DPM++ 2M SDE"):
        for strength in (0.3, 0.5, 0.75):
            p = host.Processing(sd_model, sampler_name=sampler, steps=STEPS, width=SIZE, height=SIZE,
                                denoising_strength=strength, cond_size=SMALL_CONDS)
            samples = host.img2img(p, init, before_sampling=backend.before_sampling, mask=mask)
            out["inpaint"][f"{sampler} | {strength}"] = {
                "stats": stats(samples[..., SIZE // 16:]),
                "kept_exactly": bool(torch.equal(samples[..., : SIZE // 16], init[..., : SIZE // 16])),
                "changed": float((samples[..., SIZE // 16:] - init[..., SIZE // 16:]).abs().mean())}
    # hires fix: processing's second pass is sample_img2img on the upscaled first-pass latent
    low = data_latent(field, SIZE // 16, SIZE // 16, seed=12)
    upscaled = torch.nn.functional.interpolate(low, scale_factor=2, mode="nearest")
    for sampler in ("Euler", "Euler a", "DPM++ 2M SDE"):
        for strength in (0.3, 0.5, 0.75):
            p = host.Processing(sd_model, sampler_name=sampler, steps=STEPS, width=SIZE // 2,
                                height=SIZE // 2, denoising_strength=strength, cond_size=SMALL_CONDS)
            p.is_hr_pass, p.hr_upscale_to_x, p.hr_upscale_to_y = True, SIZE, SIZE
            from modules import rng
            p.rng = rng.ImageRNG(upscaled.shape[1:], p.seeds)
            samples = host.img2img(p, upscaled, before_sampling=backend.before_sampling)
            # nearest upscaling repeats each value 4x; the noise decorrelates them as strength grows
            out["hires"][f"{sampler} | {strength}"] = {"stats": stats(samples)}
    # a second processing object made by another extension during postprocess (ADetailer): no
    # script args, no before_sampling from us; forge_objects rebuilt by processing as usual
    for sampler in ("Euler a", "DPM++ 2M SDE", "DDIM"):
        for strength in (0.3, 0.5):
            p = host.Processing(sd_model, sampler_name=sampler, steps=STEPS, width=SIZE, height=SIZE,
                                denoising_strength=strength, cond_size=SMALL_CONDS, scripts=None)
            samples = host.img2img(p, init)
            out["second_pass"][f"{sampler} | {strength}"] = {"stats": stats(samples)}
        p = host.Processing(sd_model, sampler_name=sampler, steps=STEPS, width=SIZE, height=SIZE,
                            cond_size=SMALL_CONDS, scripts=None)
        out["second_pass"][f"{sampler} | txt2img"] = {"stats": stats(host.txt2img(p))}
    return out


_last_p = []


def _run(sd_model, sampler="Euler a", steps=24, seed=5, before=None):
    p = host.Processing(sd_model, sampler_name=sampler, steps=steps, seed=seed, width=128, height=128,
                        cond_size=SMALL_CONDS)
    _last_p[:] = [p]
    return host.txt2img(p, before_sampling=before)


def suite_lifecycle():
    import torch
    results = {}
    field, unet, sd_model = analytic_model()
    network = unet.model.diffusion_model
    original_sampling = unet.model.model_sampling
    original_alphas = sd_model.alphas_cumprod
    samplers = ("Euler a", "DPM++ 2M SDE", "DDIM", "Euler A Comfy")

    # 1. before the extension is even imported: the reference outputs
    never = {name: _run(sd_model, name) for name in samplers}
    results["sys_modules_before"] = any(m.startswith("webui_extension") for m in sys.modules)

    from model_sampling_flow.settings import FlowSettings
    from webui_extension import reforge
    backend = reforge.ReforgeBackend()
    results["detect_reforge_model"] = backend.detect(sd_model)
    results["detect_plain_module"] = backend.detect(torch.nn.Module())
    results["remove_when_never_applied"] = _ok(lambda: backend.remove(sd_model))

    # 2. on: the model samples the flow way, for our own passes and without our hook
    settings = FlowSettings(shift=3.0)
    backend.apply(sd_model, settings)
    backend.apply(sd_model, settings)        # idempotent
    results["active_after_apply"] = backend.active(sd_model) == settings
    on = {name: _run(sd_model, name, before=backend.before_sampling) for name in samplers}
    results["on_differs"] = {n: not torch.equal(on[n], never[n]) for n in samplers}
    results["model_sampling_during"] = _kind(unet.model.model_sampling)
    results["network_timestep_max"] = float(network.last_timesteps.max()) if network.last_timesteps is not None else None
    results["forge_unets_patched"] = {
        name: _kind(getattr(sd_model, name).unet.get_model_object("model_sampling"))
        for name in reforge.FORGE_CONTAINERS}

    # 3. off: bit-identical to never enabled, every replaced object back
    backend.remove(sd_model)
    backend.remove(sd_model)                 # idempotent
    results["active_after_remove"] = backend.active(sd_model)
    results["base_unet_restored"] = all(getattr(sd_model, n).unet is unet for n in reforge.FORGE_CONTAINERS)
    results["model_sampling_restored"] = unet.model.model_sampling is original_sampling
    results["alphas_restored"] = sd_model.alphas_cumprod is original_alphas
    results["create_denoiser_gone"] = "create_denoiser" not in sd_model.__dict__
    off = {name: _run(sd_model, name) for name in samplers}
    results["off_identical"] = {n: bool(torch.equal(off[n], never[n])) for n in samplers}

    # 4. on -> off again, with a shift change in between (XYZ plot over shift)
    backend.apply(sd_model, settings)
    backend.apply(sd_model, settings.with_changes(shift=6.0))
    results["shift_change_applied"] = float(backend.model_sampling(sd_model).shift)
    shifted = _run(sd_model, "Euler a", before=backend.before_sampling)
    results["shift_change_differs"] = not torch.equal(shifted, on["Euler a"])
    backend.apply(sd_model, settings)
    results["shift_back_identical"] = bool(torch.equal(_run(sd_model, "Euler a", before=backend.before_sampling),
                                                       on["Euler a"]))
    backend.remove(sd_model)
    results["on_off_on_off_identical"] = bool(torch.equal(_run(sd_model, "Euler a"), never["Euler a"]))

    # 5. exception inside sampling: nothing of ours may survive remove()
    backend.apply(sd_model, settings)
    network.fail_at_call = network.calls + 5
    results["exception_raised"] = not _ok(lambda: _run(sd_model, "Euler a", before=backend.before_sampling))
    network.fail_at_call = None
    results["model_sampling_left_by_exception"] = _kind(unet.model.model_sampling)
    backend.remove(sd_model)
    results["model_sampling_after_exception_remove"] = unet.model.model_sampling is original_sampling
    results["after_exception_identical"] = bool(torch.equal(_run(sd_model, "Euler a"), never["Euler a"]))

    # 6. checkpoint change: flow on for model A, then model B loads and gets flow; A is restored
    _, unet_b, model_b = analytic_model()
    never_b = _run(model_b, "Euler a")
    backend.apply(sd_model, settings)
    backend.apply(model_b, settings)
    results["switch_a_restored"] = backend.active(sd_model) is None and \
        all(getattr(sd_model, n).unet is unet for n in reforge.FORGE_CONTAINERS)
    results["switch_a_identical"] = bool(torch.equal(_run(sd_model, "Euler a"), never["Euler a"]))
    backend.remove(model_b)
    results["switch_b_identical"] = bool(torch.equal(_run(model_b, "Euler a"), never_b))

    # 7. Lora: networks.py rebuilds forge_objects from forge_objects_original.unet + clones
    backend.apply(sd_model, settings)
    sd_model.forge_objects.unet = sd_model.forge_objects_original.unet
    lora_like = sd_model.forge_objects.unet.clone()
    lora_like.add_patches({}, 1.0)
    sd_model.forge_objects.unet = lora_like
    sd_model.forge_objects_after_applying_lora = sd_model.forge_objects.shallow_copy()
    lora_on = _run(sd_model, "Euler a", before=backend.before_sampling)
    results["lora_rebuild_keeps_flow"] = bool(torch.equal(lora_on, on["Euler a"]))
    backend.remove(sd_model)
    results["lora_rebuild_patch_removed"] = "model_sampling" not in lora_like.object_patches
    results["lora_rebuild_off_identical"] = bool(torch.equal(_run(sd_model, "Euler a"), never["Euler a"]))
    sd_model.forge_objects_after_applying_lora = sd_model.forge_objects_original.shallow_copy()

    # 8. refusals and conflicts
    backend.apply(sd_model, settings)
    p = host.Processing(sd_model, sampler_name="Euler", scheduler="Align Your Steps", steps=8,
                        width=128, height=128, cond_size=SMALL_CONDS)
    results["ays_refusal"] = _error_text(lambda: host.txt2img(p, before_sampling=backend.before_sampling))
    p = host.Processing(sd_model, sampler_name="LCM", steps=8, width=128, height=128, cond_size=SMALL_CONDS)
    results["lcm_refusal"] = _error_text(lambda: host.txt2img(p, before_sampling=backend.before_sampling))
    results.update(ams_checks(backend, sd_model, settings, never))
    backend.remove(sd_model)
    results["after_ams_off_identical"] = bool(torch.equal(_run(sd_model, "Euler a"), never["Euler a"]))

    # 9. a real (tiny, random) ldm_patched SDXL UNet with the patch
    results.update(tiny_sdxl_checks(backend, settings))
    return results


def ams_checks(backend, sd_model, settings, never):
    import torch
    from modules import scripts
    out = {}
    ams = host.load_builtin_script(REFORGE, "reForge-advanced_model_sampling",
                                   "advanced_model_sampling_script.py", "AdvancedModelSamplingScript",
                                   "advanced model sampling for reforge", 0, 16)
    runner = scripts.ScriptRunner()
    runner.alwayson_scripts.append(ams)
    runner.scripts.append(ams)
    ams_on = (True, "SD3", "eps", False, "v_prediction", 120.0, 0.002, 500.0, 0.03, 2.0, 3.0, 1.73,
              1.15, 0.5, 1024, 1024)
    ams_off = (False,) + ams_on[1:]
    p = host.Processing(sd_model, scripts=runner, script_args=ams_on, cond_size=SMALL_CONDS)
    out["ams_conflict_message"] = backend.conflict(p)
    p = host.Processing(sd_model, scripts=runner, script_args=ams_off, cond_size=SMALL_CONDS)
    out["ams_disabled_conflict"] = backend.conflict(p)
    out["no_runner_conflict"] = backend.conflict(host.Processing(sd_model, cond_size=SMALL_CONDS))
    # AMS leaves its create_denoiser on the model after it ran once; flow must not use it
    backend.remove(sd_model)
    p = host.Processing(sd_model, sampler_name="Euler a", steps=24, seed=5, width=128, height=128,
                        scripts=runner, script_args=ams_on, cond_size=SMALL_CONDS)
    host.txt2img(p)
    leftover = sd_model.__dict__.get("create_denoiser")
    out["ams_left_create_denoiser"] = leftover is not None
    sd_model.forge_objects_after_applying_lora = sd_model.forge_objects_original.shallow_copy()
    backend.apply(sd_model, settings)
    flow = _run(sd_model, "Euler a", before=backend.before_sampling)
    out["flow_over_ams_leftover_wrap"] = type(_last_p[0].sampler.model_wrap).__name__
    backend.remove(sd_model)
    out["ams_leftover_restored"] = sd_model.__dict__.get("create_denoiser") is leftover
    del sd_model.create_denoiser             # a webui restart would not have it either
    backend.apply(sd_model, settings)
    clean = _run(sd_model, "Euler a", before=backend.before_sampling)
    out["flow_over_ams_leftover_matches_clean"] = bool(torch.equal(flow, clean))
    return out


def tiny_sdxl_checks(backend, settings):
    import torch
    import ldm_patched.modules.sample as ldm_sample
    out = {}
    unet = host.tiny_sdxl_unet_patcher(seed=1)
    sd_model = host.StandInSdModel(unet)
    seen = []
    network = unet.model.diffusion_model
    original_forward = network.forward

    def recording_forward(x, timesteps=None, *args, **kwargs):
        seen.append((float(timesteps.max()), float(timesteps.min()), float(x.abs().max())))
        return original_forward(x, timesteps, *args, **kwargs)
    network.forward = recording_forward

    def run(before=None):
        p = host.Processing(sd_model, sampler_name="Euler", steps=8, seed=2, width=128, height=128)
        return host.txt2img(p, before_sampling=before)

    never = run()
    backend.apply(sd_model, settings)
    seen.clear()
    on = run(backend.before_sampling)
    out["tiny_finite"] = bool(torch.isfinite(on).all())
    out["tiny_differs"] = not torch.equal(on, never)
    out["tiny_first_timestep"] = seen[0][0] if seen else None
    out["tiny_last_timestep"] = seen[-1][1] if seen else None
    out["tiny_input_abs_max"] = max(s[2] for s in seen) if seen else None
    # ldm_patched's own KSampler on the patched unet (what the Comfy-side samplers run on)
    patched = sd_model.forge_objects.unet
    cross = torch.randn(1, 77, 2048) * 0.1
    positive = [[cross, {"pooled_output": torch.randn(1, 1280) * 0.1}]]
    negative = [[torch.zeros_like(cross), {"pooled_output": torch.zeros(1, 1280)}]]
    noise = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    seen.clear()
    k_out = ldm_sample.sample(patched, noise, 8, 1.0, "euler", "simple", positive, negative,
                              torch.zeros(1, 4, 16, 16), seed=3, disable_pbar=True)
    out["tiny_ksampler_finite"] = bool(torch.isfinite(k_out).all())
    out["tiny_ksampler_first_timestep"] = seen[0][0] if seen else None
    backend.remove(sd_model)
    out["tiny_off_identical"] = bool(torch.equal(run(), never))
    return out


def _kind(model_sampling):
    """'FlowVEModelSampling' for the core's VE view (or a subclass), else the class name."""
    from model_sampling_flow.model_sampling import FlowVEModelSampling
    return "FlowVEModelSampling" if isinstance(model_sampling, FlowVEModelSampling) else type(model_sampling).__name__


def _ok(func):
    try:
        func()
        return True
    except Exception:
        return False


def _error_text(func):
    try:
        func()
        return None
    except Exception as error:
        return f"{type(error).__name__}: {error}"


def suite_ams_baseline():
    """For the docs: the same sweep with reForge's built-in Advanced Model Sampling (SD3, shift 3)
    instead of flow sampling, run through its real script in a ScriptRunner."""
    from modules import scripts, sd_samplers
    _, _, sd_model = analytic_model()
    ams = host.load_builtin_script(REFORGE, "reForge-advanced_model_sampling", "advanced_model_sampling_script.py",
                                   "AdvancedModelSamplingScript", "advanced model sampling for reforge", 0, 16)
    runner = scripts.ScriptRunner()
    runner.alwayson_scripts.append(ams)
    runner.scripts.append(ams)
    args = (True, "SD3", "eps", False, "v_prediction", 120.0, 0.002, 500.0, 0.03, 2.0, 3.0, 1.73, 1.15, 0.5, 1024, 1024)
    rows = {}
    for data in sd_samplers.visible_samplers():
        p = host.Processing(sd_model, sampler_name=data.name, steps=STEPS, width=SIZE, height=SIZE,
                            cond_size=SMALL_CONDS, scripts=runner, script_args=args)
        try:
            rows[data.name] = {"stats": stats(host.txt2img(p))}
        except Exception as error:
            rows[data.name] = {"error": f"{type(error).__name__}: {error}"[:300]}
        sd_model.forge_objects_after_applying_lora = sd_model.forge_objects_original.shallow_copy()
    return {"steps": STEPS, "samplers": rows}


# ------------------------------------------------------------------ full process_images
PI_SAMPLERS = ("Euler", "Euler a", "DPM++ 2M", "DPM++ 2M SDE", "DPM++ 3M SDE", "DDIM", "UniPC", "Euler A Comfy",
               "ER SDE")
FLOW_ON = ["On", 3.0, "continuous", False, "ve"]
FLOW_OFF = ["Off", 3.0, "continuous", False, "ve"]


def _capture_script(args_from):
    """An always-on script recording the samples process_images produced (post_sample), and able
    to run a foreign second pass in postprocess the way ADetailer does: its own img2img processing
    object, its own script runner without our script, process_images on it."""
    from modules import processing, scripts
    from PIL import Image

    class Capture(scripts.Script):
        samples, second_pass, second_infotexts = [], [], []
        foreign_pass = None          # (strength, sampler) to run one

        def title(self):
            return "flow test capture"

        def show(self, is_img2img):
            return scripts.AlwaysVisible

        def post_sample(self, p, ps, *args):
            import torch
            samples = ps.samples       # a tensor, or after hires fix the decoded images as a list
            samples = samples if isinstance(samples, torch.Tensor) else torch.stack(list(samples))
            (Capture.second_pass if getattr(p, "_foreign", False) else Capture.samples).append(samples.detach().clone())

        def postprocess(self, p, processed, *args):
            if Capture.foreign_pass is None or getattr(p, "_foreign", False):
                return
            strength, sampler = Capture.foreign_pass
            i2i = processing.StableDiffusionProcessingImg2Img(
                init_images=[Image.new("RGB", (p.width, p.height), (128, 128, 128))], denoising_strength=strength,
                prompt=p.prompt, negative_prompt="", steps=p.steps, cfg_scale=p.cfg_scale, sampler_name=sampler,
                scheduler="Automatic", seed=p.seed + 1, width=p.width, height=p.height,
                do_not_save_samples=True, do_not_save_grid=True)
            i2i._foreign = True
            own = scripts.ScriptRunner()
            own.alwayson_scripts.append(self)
            own.scripts.append(self)
            i2i.scripts, i2i.script_args = own, []
            result = processing.process_images(i2i)
            Capture.second_infotexts.append(result.infotexts[0])

    capture = Capture()
    capture.filename, capture.name, capture.args_from, capture.args_to = "capture", "flow test capture", args_from, args_from
    return capture


def subprocess_torch_version():
    import subprocess
    return subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                          text=True).stdout.strip()


def _runner(*script_list):
    from modules import scripts
    runner = scripts.ScriptRunner()
    for script in script_list:
        runner.alwayson_scripts.append(script)
        runner.scripts.append(script)
    return runner


def _pi_txt2img(runner, args, sampler="Euler a", steps=24, size=128, seed=7, **extra):
    from modules import processing
    p = processing.StableDiffusionProcessingTxt2Img(
        prompt="flow", negative_prompt="", steps=steps, cfg_scale=1.0, sampler_name=sampler,
        scheduler="Automatic", seed=seed, width=size, height=size, batch_size=1,
        do_not_save_samples=True, do_not_save_grid=True, **extra)
    p.scripts, p.script_args = runner, list(args)
    return p


def _pi_img2img(runner, args, strength, sampler="Euler a", size=SIZE, mask=None):
    from modules import processing
    from PIL import Image
    p = processing.StableDiffusionProcessingImg2Img(
        init_images=[Image.new("RGB", (size, size), (90, 160, 200))], denoising_strength=strength, mask=mask,
        inpainting_fill=1, inpaint_full_res=False, prompt="flow", negative_prompt="", steps=STEPS,
        cfg_scale=1.0, sampler_name=sampler, scheduler="Automatic", seed=9, width=size, height=size,
        do_not_save_samples=True, do_not_save_grid=True)
    p.scripts, p.script_args = runner, list(args)
    return p


def suite_process_images():
    import torch
    from modules import processing, infotext_utils
    from PIL import Image
    out = {}
    field, unet, sd_model = analytic_model()
    network = unet.model.diffusion_model
    host.make_processable(sd_model, field)
    host.use_as_loaded_model(sd_model)

    def run(p):
        capture.samples.clear()
        result = processing.process_images(p)
        return capture.samples[-1], result

    # 1. the reference: the webui before the extension's script was ever loaded
    capture = _capture_script(0)
    absent_runner = _runner(capture)
    absent = {name: run(_pi_txt2img(absent_runner, [], name))[0] for name in ("Euler a", "DDIM", "DPM++ 2M SDE")}
    out["extension_imported_before_reference"] = any(m.startswith("webui_extension") for m in sys.modules)

    # the extension's install hook, run the way reForge's launch runs it (its Python, a subprocess)
    import io
    import contextlib
    import torch as torch_module
    from modules import errors, launch_utils
    records_before = list(errors.exception_records)     # errors.report() records here (last 5 kept)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        launch_utils.run_extension_installer(EXTENSION)
    out["install_hook_errors"] = 0 if errors.exception_records == records_before else 1
    out["install_hook_output"] = printed.getvalue()
    out["install_hook_found"] = os.path.isfile(os.path.join(EXTENSION, "install.py"))
    out["torch_version_after_install"] = subprocess_torch_version()
    out["torch_version_before_install"] = torch_module.__version__

    flow = host.load_extension_script(EXTENSION, "flow_sampling.py", "FlowSamplingScript", 0, len(FLOW_ON))
    capture = _capture_script(len(FLOW_ON))
    runner = _runner(flow, capture)
    out["script_title"] = flow.title()
    off = {name: run(_pi_txt2img(runner, FLOW_OFF, name))[0] for name in absent}
    out["off_identical_to_absent"] = {n: bool(torch.equal(off[n], absent[n])) for n in absent}

    # 2. the bar through process_images (txt2img)
    out["txt2img"] = {}
    for name in PI_SAMPLERS:
        samples, result = run(_pi_txt2img(runner, FLOW_ON, name, steps=STEPS, size=SIZE))
        out["txt2img"][name] = {"stats": stats(samples), "infotext": result.infotexts[0]}

    # 3. hires fix (latent upscale, second pass = sample_img2img through process_images)
    out["hires"] = {}
    for strength in (0.3, 0.5, 0.75):
        samples, result = run(_pi_txt2img(runner, FLOW_ON, "Euler a", steps=STEPS, size=SIZE // 2, enable_hr=True,
                                           hr_scale=2, hr_upscaler="Latent (nearest)", denoising_strength=strength,
                                           hr_second_pass_steps=STEPS))
        out["hires"][str(strength)] = {"stats": stats(samples), "shape": list(samples.shape)}

    # 4. img2img and inpaint (the stand-in VAE encodes any picture to exact data draws)
    out["img2img"], out["inpaint"] = {}, {}
    for strength in (0.3, 0.5, 0.75):
        for sampler in ("Euler a", "DPM++ 2M SDE", "DDIM"):
            samples, _ = run(_pi_img2img(runner, FLOW_ON, strength, sampler))
            out["img2img"][f"{sampler} | {strength}"] = {"stats": stats(samples)}
        mask = Image.new("L", (SIZE, SIZE), 0)
        mask.paste(255, (SIZE // 2, 0, SIZE, SIZE))          # repaint the right half
        samples, _ = run(_pi_img2img(runner, FLOW_ON, strength, "Euler a", mask=mask))
        out["inpaint"][str(strength)] = {"stats": stats(samples[..., SIZE // 16 + 2:])}

    # 5. a foreign second pass (ADetailer's way) while flow is on for the loaded checkpoint
    capture.second_pass.clear()
    type(capture).foreign_pass = (0.5, "Euler a")
    run(_pi_txt2img(runner, FLOW_ON, "Euler a", steps=STEPS, size=SIZE))
    type(capture).foreign_pass = None
    out["foreign_pass"] = {"stats": stats(capture.second_pass[-1]) if capture.second_pass else None,
                           "infotext": capture.second_infotexts[-1] if capture.second_infotexts else None}

    # 6. infotext round trip and the XYZ axes
    _, result = run(_pi_txt2img(runner, FLOW_ON, "Euler a"))
    parsed = infotext_utils.parse_generation_parameters(result.infotexts[0])
    from model_sampling_flow.settings import FlowSettings
    from webui_extension import control
    pasted = FlowSettings.from_infotext(parsed)
    out["infotext_pasted"] = None if pasted is None else [pasted.shift, pasted.timestep_mapping, pasted.view]
    out["infotext_mode_pasted"] = control.mode_from_infotext(parsed)
    base_on, _ = run(_pi_txt2img(runner, FLOW_ON, "Euler a"))
    p = _pi_txt2img(runner, FLOW_ON, "Euler a")
    axis = {label: setter for label, _, key, convert, _ in control.XYZ_AXES
            for setter in [control.xyz_setter(key, convert)]}
    axis["[Flow] Flow shift"](p, "6", None)
    shifted, result = run(p)
    out["xyz_shift_infotext"] = result.infotexts[0]
    out["xyz_shift_changes_output"] = not torch.equal(shifted, base_on)
    p = _pi_txt2img(runner, FLOW_ON, "Euler a")
    axis["[Flow] Flow sampling"](p, "Off", None)
    out["xyz_off_identical_to_absent"] = bool(torch.equal(run(p)[0], absent["Euler a"]))

    # 7. on -> off again, and after an exception inside sampling
    out["on_then_off_identical"] = bool(torch.equal(run(_pi_txt2img(runner, FLOW_OFF, "Euler a"))[0], absent["Euler a"]))
    run(_pi_txt2img(runner, FLOW_ON, "Euler a"))
    network.fail_at_call = network.calls + 4
    try:
        processing.process_images(_pi_txt2img(runner, FLOW_ON, "Euler a"))
        out["exception_propagated"] = False
    except Exception:
        out["exception_propagated"] = True
    network.fail_at_call = None
    out["after_exception_off_identical"] = bool(torch.equal(run(_pi_txt2img(runner, FLOW_OFF, "Euler a"))[0],
                                                            absent["Euler a"]))

    # 8. checkpoint change: the webui's model-loaded callback
    from modules import script_callbacks
    run(_pi_txt2img(runner, FLOW_ON, "Euler a"))
    script_callbacks.model_loaded_callback(sd_model)
    from webui_extension.backend import select_backend
    out["after_model_loaded_active"] = select_backend(sd_model).active(sd_model) is not None
    out["after_model_loaded_restored"] = all(getattr(sd_model, n).unet is unet for n in
                                             ("forge_objects_original", "forge_objects_after_applying_lora"))

    # 9. reForge's Advanced Model Sampling also on: refused, not stacked
    ams = host.load_builtin_script(REFORGE, "reForge-advanced_model_sampling", "advanced_model_sampling_script.py",
                                   "AdvancedModelSamplingScript", "advanced model sampling for reforge",
                                   len(FLOW_ON), len(FLOW_ON) + 16)
    ams_args = [True, "SD3", "eps", False, "v_prediction", 120.0, 0.002, 500.0, 0.03, 2.0, 3.0, 1.73, 1.15, 0.5,
                1024, 1024]
    capture.args_from = capture.args_to = len(FLOW_ON) + 16
    both = _runner(flow, ams, capture)
    _, result = run(_pi_txt2img(both, FLOW_ON + ams_args, "Euler a"))
    out["ams_both_infotext"] = result.infotexts[0]
    out["ams_both_comments"] = result.comments
    sd_model.__dict__.pop("create_denoiser", None)          # AMS leaves its denoiser factory behind
    return out


# ---- practical step counts (the practical-step bar)-------------------------------------------------------------
PRACTICAL_SHIFT = 3.0
PRACTICAL_SIZE = 128             # 16 x 16 latent; the references draw the same noise
FULL_PRODUCT_SAMPLERS = ("DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE",
                         "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart")
PRACTICAL_SCHEDULERS = ("Automatic", "Karras", "Exponential", "Simple", "Beta")
GLOBAL_NOISE_SEED = 1234


def _sampler_kinds():
    """webui_extension/sampler_views.py of THIS checkout (the installed extension may be older)."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(HERE))), "webui_extension", "sampler_views.py")
    spec = importlib.util.spec_from_file_location("flow_practical_sampler_views", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def practical_reference(sd_model, sampler_name, scheduler, steps, field, view, seed, cfg=1.0):
    """reForge's sampler function on reForge's same-named schedule computed over the flow table, run
    on the exact field (at cfg > 1 the oracles.GuidedField, its cond / uncond parts for the CFG++ samplers'
    post-CFG hook) outside our backend: natively in flow coordinates, or in the VE view on that
    schedule mapped sigma / (1 - sigma) (top -> the VE cap). Same seeds as the webui pass:
    the initial noise is the pass's first ImageRNG draw, step noise comes from the same ImageRNG
    (k-diffusion's TorchHijack) or Brownian trees on the same seeds."""
    import types
    import torch
    from modules import rng, sd_samplers, sd_samplers_common
    from model_sampling_flow.model_sampling import FlowModelSampling
    from webui_extension.reforge import _discrete_schedule_class
    flow_table = FlowModelSampling(shift=PRACTICAL_SHIFT).sigmas
    cap = PRACTICAL_SHIFT * (1 - 1e-4) / (1 + (PRACTICAL_SHIFT - 1) * (1 - 1e-4))
    from model_sampling_flow.model_sampling import FlowVEModelSampling
    sampler = sd_samplers.create_sampler(sampler_name, sd_model)
    from webui_extension.reforge import _FlowSdModelView
    wrap = _discrete_schedule_class()(flow_table.clone(), False)
    # Turbo reads inner_model.inner_model.forge_objects.unet.model.model_sampling: the flow view's
    wrap.inner_model = _FlowSdModelView(sd_model, FlowModelSampling(shift=PRACTICAL_SHIFT))
    sampler.model_wrap = wrap
    if type(sampler).__name__ == "AlterSampler":
        # reForge's own samplers take the schedule type from sample() and their sigmas from
        # ldm_patched's unet.model.model_sampling: the flow view's, here
        sampler.scheduler_name = scheduler
        sampler.unet = types.SimpleNamespace(model=types.SimpleNamespace(model_sampling=FlowModelSampling(
            shift=PRACTICAL_SHIFT)), load_device=torch.device("cpu"))
    p = host.Processing(sd_model, sampler_name=sampler_name, scheduler=scheduler, steps=steps, seed=seed,
                        width=PRACTICAL_SIZE, height=PRACTICAL_SIZE, cond_size=SMALL_CONDS, cfg_scale=cfg)
    from model_sampling_flow import registry, ve_bridge
    ours = next((entry for entry in registry.SAMPLERS if entry.label == sampler_name), None)
    resolved = sampler.config.options.get("scheduler") if scheduler == "Automatic" else scheduler
    from flow_test_support.schedules import registry_flow_sigmas
    # the core's own schedule types (Flow shift, Flow PC, ...), in flow sigma
    flow_sigmas = registry_flow_sigmas(resolved, steps, PRACTICAL_SHIFT,
                                       sampler.config.options.get("discard_next_to_last_sigma", False))
    if flow_sigmas is None:
        flow_sigmas = sampler.get_sigmas(p, steps).double().cpu()

    def to_ve(values):
        values = values.double().clamp(max=cap)
        return (values / (1 - values)).float()

    class Denoiser:
        # ldm_patched's SDE samplers read model.inner_model.model_patcher.get_model_object("model_sampling")
        # (non-CONST: their VE formulas); the flow reference is used for deterministic samplers only
        inner_model = types.SimpleNamespace(model_patcher=types.SimpleNamespace(
            get_model_object=lambda name: FlowVEModelSampling(shift=PRACTICAL_SHIFT)))
        def __init__(self, function):
            self.function = function
            self.init_latent = self.mask = self.nmask = None    # read (and deleted) by the SMEA / Dy samplers

        def __call__(self, x, sigma, model_options=None, **kwargs):
            hooks = (model_options or {}).get("sampler_post_cfg_function", [])
            if guided is None:          # cfg 1: cond = uncond = the field
                denoised = cond_denoised = uncond_denoised = self.function(field, x, sigma)
                scale = 1.0
            elif hooks:                 # ldm_patched's cfg_function: uncond + scale * (cond - uncond)
                cond_denoised = self.function(guided.cond, x, sigma)
                uncond_denoised = self.function(guided.uncond, x, sigma)
                scale = guided.scale
                denoised = uncond_denoised + scale * (cond_denoised - uncond_denoised)
            else:                       # no hook reads the parts: the guided field itself
                denoised = self.function(field, x, sigma)
            # the CFG++ samplers read the unconditional prediction through ldm_patched's post-CFG hook
            # (sampling_function's arguments)
            for hook in hooks:
                denoised = hook({"denoised": denoised, "cond": None, "uncond": None, "cond_scale": scale,
                                 "model": None, "uncond_denoised": uncond_denoised, "cond_denoised": cond_denoised,
                                 "sigma": sigma, "model_options": model_options, "input": x})
            return denoised

    # a GuidedField (cfg > 1): its cond / uncond fields, for the post-CFG hook
    guided = field if hasattr(field, "uncond") and hasattr(field, "scale") else None
    if view == "flow":
        sigmas, table = flow_sigmas.float(), flow_table

        def flow_field(f, x, sigma):
            return f(x.double(), sigma.double().reshape(-1, *[1] * (x.ndim - 1))).to(x.dtype)
        denoiser = Denoiser(flow_field)
    else:
        sigmas, table = to_ve(flow_sigmas), to_ve(flow_table.double())

        def ve_field(f, x, sigma):
            s = sigma.double().reshape(-1, *[1] * (x.ndim - 1))
            return f(x.double() / (1 + s), s / (1 + s)).to(x.dtype)
        denoiser = Denoiser(ve_field)
    image_rng = rng.ImageRNG((4, PRACTICAL_SIZE // 8, PRACTICAL_SIZE // 8), p.seeds)
    noise = image_rng.next()
    x = noise * sigmas[0]
    hijack = sd_samplers_common.TorchHijack(types.SimpleNamespace(rng=image_rng))
    if ours is not None:        # the core's own function, natively or through the core's VE bridge
        if view == "flow":
            return noise, ours.function(denoiser, x, sigmas, disable=True).double(), None
        noise_sampler = None
        if sampler.config.options.get("brownian_noise", False):
            noise_sampler = sampler.create_noise_sampler(x, sigmas, p)
        elif "noise_sampler" in ours.options:
            noise_sampler = lambda s, t: image_rng.next().to(x)  # noqa: E731
        return noise, ve_bridge.sample_in_ve(ours.function, denoiser, x, sigmas, disable=True,
                                             noise_sampler=noise_sampler).double(), None
    from flow_test_support.practical import kdiffusion_kwargs
    kwargs = kdiffusion_kwargs(sampler.func, steps, sigmas, table, sampler.config.options, eta=1.0,
                               noise_sampler=lambda: sampler.create_noise_sampler(x, sigmas, p))
    # the pass hijacks only the k-diffusion module the webui samples with (sd_samplers_common.sampling);
    # ldm_patched's, the SMEA and the Restart samplers draw from the global generator, seeded as in the pass
    module = sd_samplers_common.sampling
    had_torch = getattr(module, "torch", None)
    module.torch = hijack
    torch.manual_seed(GLOBAL_NOISE_SEED)
    try:
        out = sampler.func(denoiser, x, extra_args={}, disable=True, **kwargs)
    except Exception as error:  # noqa: BLE001  (reported in the table)
        return None, None, f"{type(error).__name__}: {error}"
    finally:
        if had_torch is not None:
            module.torch = had_torch
    return noise, out.double(), None


def suite_practical():
    """Known k-diffusion samplers x every schedule type, every other listed sampler x Automatic,
    20 and 28 steps, at the CFG scale FLOW_PRACTICAL_CFG (default 1: the Gaussian and mixture fields, one
    field answering every row; above 1: the guided pairs "gaussian" and "two_modes" by default, the
    negative prompt's rows answered by the uncond field, judged against the exact guided field); the other
    FLOW_PRACTICAL_* narrow it. Each row records the negative-prompt rows the network answered."""
    import torch
    from flow_test_support.practical import (cache_endpoint, default_field_names, practical_cfg, practical_fields,
                                             reference_figures)
    from modules import sd_samplers, sd_schedulers
    from model_sampling_flow.settings import FlowSettings
    kinds = _sampler_kinds()
    backend = load_backend()
    register_flow_samplers()        # the Flow samplers are listed too (reForge with repositories/k-diffusion)
    cfg = practical_cfg()
    fields = practical_fields(cfg)
    listed = [s.name for s in sd_samplers.visible_samplers()]
    samplers = json.loads(os.environ["FLOW_PRACTICAL_SAMPLERS"]) if os.environ.get("FLOW_PRACTICAL_SAMPLERS") \
        else listed
    all_schedulers = [s.label for s in sd_schedulers.schedulers]
    steps_list = json.loads(os.environ.get("FLOW_PRACTICAL_STEPS", "[20, 28]"))
    field_names = json.loads(os.environ["FLOW_PRACTICAL_FIELDS"]) if os.environ.get("FLOW_PRACTICAL_FIELDS") \
        else default_field_names(cfg)
    rows = {}
    for field_name in field_names:
        cond, uncond, field = fields[field_name]
        if uncond is None:
            unet = host.analytic_unet_patcher(cond)
        else:
            unet = host.analytic_guided_unet_patcher(cond, uncond)
            cache_endpoint(field)
        network = unet.model.diffusion_model
        sd_model = host.StandInSdModel(unet)
        backend.apply(sd_model, FlowSettings(shift=PRACTICAL_SHIFT))
        for steps in steps_list:
            for sampler in samplers:
                kind = kinds.sampler_kind(sampler)
                # lean: the samplers both webuis share get every schedule type, the rest a spread
                schedulers = all_schedulers if sampler in FULL_PRODUCT_SAMPLERS else \
                    [s for s in PRACTICAL_SCHEDULERS if s in all_schedulers]
                if os.environ.get("FLOW_PRACTICAL_SCHEDULERS"):
                    schedulers = json.loads(os.environ["FLOW_PRACTICAL_SCHEDULERS"])
                kind = kind or "stochastic"
                for scheduler in schedulers:
                    seed = 31
                    p = host.Processing(sd_model, sampler_name=sampler, scheduler=scheduler, steps=steps, seed=seed,
                                        width=PRACTICAL_SIZE, height=PRACTICAL_SIZE, cond_size=SMALL_CONDS,
                                        cfg_scale=cfg)
                    row = {"kind": kind, "error": None}
                    t0 = time.time()
                    def before(p):
                        backend.before_sampling(p)
                        torch.manual_seed(GLOBAL_NOISE_SEED)    # the samplers drawing from the global generator
                    negative_before, calls_before = getattr(network, "negative_rows", None), network.calls
                    try:
                        samples = host.txt2img(p, before_sampling=before).double()
                    except Exception as error:     # a refusal's message, or a failure for the table
                        row["error"] = f"{type(error).__name__}: {error}"
                        samples = None
                    row["seconds"] = round(time.time() - t0, 3)
                    if negative_before is not None:     # a batch of one image: one negative row per call
                        row["negative_rows"] = network.negative_rows - negative_before
                        row["network_calls"] = network.calls - calls_before
                    if samples is not None:
                        row.update(mean=float(samples.mean()), std=float(samples.std()),
                                   finite=bool(torch.isfinite(samples).all()))
                    if samples is not None and kind != "timestep":
                        view = "flow" if kind == "deterministic" else "ve"
                        try:
                            noise, reference, ref_error = practical_reference(sd_model, sampler, scheduler, steps,
                                                                              field, view, seed, cfg)
                        except Exception as error:  # noqa: BLE001  (reported in the table)
                            noise, reference, ref_error = None, None, f"{type(error).__name__}: {error}"
                        row["reference_error"] = ref_error
                        if reference is not None:
                            row.update(reference_figures(reference, field, noise, kind, samples))
                    rows[f"{field_name} | {steps} | {sampler} | {scheduler}"] = row
    return {"rows": rows, "listed": listed, "schedulers": all_schedulers, "shift": PRACTICAL_SHIFT, "cfg": cfg}


# The tier's share of the practical sweep (tests/hosts/reforge/test_reforge_practical.py): every listed sampler at 20
# and 28 steps on both fields with the schedule types below, Automatic (each sampler's own default) and
# Karras (sigma-spaced, the worst before); FLOW_PRACTICAL_* still override it
TIER_PRACTICAL = {"FLOW_PRACTICAL_STEPS": "[20, 28]", "FLOW_PRACTICAL_FIELDS": '["gaussian", "mixture"]',
                  "FLOW_PRACTICAL_SCHEDULERS": '["Automatic", "Karras"]'}


def suite_practical_tier():
    for name, value in TIER_PRACTICAL.items():
        os.environ.setdefault(name, value)
    os.environ["FLOW_PRACTICAL_CFG"] = "1"     # the tier's CFG case is suite_practical_cfg_tier
    return suite_practical()


# The tier's CFG case (test_reforge_practical.py): CFG 5 on the guided pairs, the negative prompt's rows answered
# by the uncond field through reForge's own CFG (sampling_function's cond / uncond batch, cfg_function, the
# CFG++ samplers' post-CFG hook): the shared samplers, three CFG++ ones and three Flow ones, on Automatic and
# Karras, 20 and 28 steps. The full CFG sweep is benchmarks/bench_practical_steps.py with FLOW_PRACTICAL_CFG.
TIER_PRACTICAL_CFG = {
    "FLOW_PRACTICAL_CFG": "5", "FLOW_PRACTICAL_STEPS": "[20, 28]", "FLOW_PRACTICAL_FIELDS": '["gaussian", "two_modes"]',
    "FLOW_PRACTICAL_SCHEDULERS": '["Automatic", "Karras"]',
    "FLOW_PRACTICAL_SAMPLERS": json.dumps(["Euler", "DPM++ 2M", "Euler a", "DPM++ 2M SDE", "Euler CFG++",
                                           "DPM++ 2M CFG++", "Euler Ancestral CFG++", "Flow Euler", "Flow Multistep",
                                           "Flow Euler a"]),
}


def suite_practical_cfg_tier():
    os.environ.update(TIER_PRACTICAL_CFG)       # this case is CFG 5 whatever the environment asks
    result = suite_practical()
    result["samplers"] = json.loads(TIER_PRACTICAL_CFG["FLOW_PRACTICAL_SAMPLERS"])
    return result


SUITES = {"practical": suite_practical, "practical_tier": suite_practical_tier,
          "practical_cfg_tier": suite_practical_cfg_tier,
          "samplers": suite_samplers, "schedulers": suite_schedulers, "img2img": suite_img2img,
          "lifecycle": suite_lifecycle, "eps_control": suite_eps_control,
          "process_images": suite_process_images, "ams_baseline": suite_ams_baseline}

if __name__ == "__main__":
    suite, out_path = sys.argv[1], sys.argv[2]
    t0 = time.time()
    start()
    result = SUITES[suite]()
    result["seconds"] = round(time.time() - t0, 1)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1, default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o))
