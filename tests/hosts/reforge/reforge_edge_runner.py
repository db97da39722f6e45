"""Edge checks of the reForge backend's per-pass views, from a hostile pass (run inside reForge's venv).

Usage: REFORGE_DIR=<writable copy with this repo in extensions/model-sampling-flow> REFORGE_PYTHON \
       reforge_edge_runner.py CHECK[,CHECK...] OUT.json
Prints and writes a JSON of measurements; test_reforge_edges.py asserts on them.
"""
import json
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reforge_runner as runner  # noqa: E402
import reforge_host as host  # noqa: E402

STEPS = 20
SIZE = 256        # 32 x 32 latent, 4096 elements: std error of the std ~0.003


def sample(backend, sd_model, sampler, scheduler="Automatic", steps=STEPS, seed=1, before=None):
    p = host.Processing(sd_model, sampler_name=sampler, scheduler=scheduler, steps=steps, seed=seed,
                        width=SIZE, height=SIZE, cond_size=runner.SMALL_CONDS)
    try:
        out = host.txt2img(p, before_sampling=before or backend.before_sampling)
        return runner.stats(out), p
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()[-1200:]}, p


def check_churn():
    """Settings > Sampler parameters > sigma churn (A1111 sampling backend): Euler / Heun / DPM2 with churn
    on a flow model. Flow coordinates (what txt2img now uses) vs the VE view (the control)."""
    from model_sampling_flow.settings import FlowSettings
    from modules import shared
    from webui_extension import sampler_views
    backend = runner.load_backend()
    _, _, sd_model = runner.analytic_model()
    backend.apply(sd_model, FlowSettings(shift=3.0))
    rows = {}
    for churn in (0.0, 10.0):
        shared.opts.s_churn = churn
        for name in ("Euler", "Heun", "DPM2"):
            on, p = sample(backend, sd_model, name)
            on["infotext_churn"] = p.extra_generation_params.get("Sigma churn")
            # control: the same pass without the flow-coordinates wrapper (the VE view)
            real = sampler_views.integrate_in_flow_coordinates
            import webui_extension.reforge as reforge_module
            reforge_module.sampler_views.integrate_in_flow_coordinates = lambda sampler: None
            try:
                ve, _ = sample(backend, sd_model, name)
            finally:
                reforge_module.sampler_views.integrate_in_flow_coordinates = real
            rows[f"{name} churn={churn}"] = {"flow_coordinates": on, "ve_view": ve}
    shared.opts.s_churn = 0.0
    return rows


def check_comfy_churn():
    """reForge's own 'Euler Comfy' reads Settings 'Euler - s_churn' (euler_og_s_churn) inside the function."""
    from model_sampling_flow.settings import FlowSettings
    from modules import shared
    backend = runner.load_backend()
    _, _, sd_model = runner.analytic_model()
    backend.apply(sd_model, FlowSettings(shift=3.0))
    rows = {}
    for sampler, option in (("Euler Comfy", "euler_og_s_churn"), ("Heun Comfy", "heun_og_s_churn"),
                            ("HeunPP2", "heunpp2_s_churn")):
        for churn in (0.0, 1.0):
            setattr(shared.opts, option, churn)
            label = "Euler Comfy" if sampler == "Euler Comfy" else sampler
            rows[f"{label} churn={churn}"], _ = sample(backend, sd_model, sampler)
            import webui_extension.reforge as reforge_module      # control: the VE view
            real = reforge_module.sampler_views.integrate_in_flow_coordinates
            reforge_module.sampler_views.integrate_in_flow_coordinates = lambda sampler: None
            try:
                rows[f"{label} churn={churn} ve_view"], _ = sample(backend, sd_model, sampler)
            finally:
                reforge_module.sampler_views.integrate_in_flow_coordinates = real
        setattr(shared.opts, option, 0.0)
    return rows


def recording(backend, record):
    """before_sampling, then record the sigmas the pass's get_sigmas returns."""
    def before(p):
        backend.before_sampling(p)
        sampler = p.sampler
        inner = sampler.get_sigmas

        def get_sigmas(p_, steps):
            sigmas = inner(p_, steps)
            record.append([round(float(s), 5) for s in sigmas])
            return sigmas
        sampler.get_sigmas = get_sigmas
    return before


def check_schedules():
    """The Flow PC / Flow shift schedule types with each kind of reForge sampler, flow On (shift 3), and
    the schedule each pass really uses. reForge's own samplers (AlterSampler) look their schedule type up
    in a fixed table and fall back to Normal for a name they do not know."""
    from model_sampling_flow.settings import FlowSettings
    flow_unlisted = runner.register_flow_samplers()
    backend = runner.load_backend()
    _, _, sd_model = runner.analytic_model()
    backend.apply(sd_model, FlowSettings(shift=3.0))
    rows = {"flow_samplers_unlisted": flow_unlisted}
    for sampler in ("Euler", "Euler a", "DPM++ 2M", "Euler Comfy", "DPM++ 2M CFG++", "Flow Euler", "Flow PC", "DDIM"):
        for scheduler in ("Flow shift", "Flow PC", "Normal", "Automatic"):
            record = []
            result, _ = sample(backend, sd_model, sampler, scheduler=scheduler, steps=8,
                               before=recording(backend, record))
            result.pop("trace", None)
            rows[f"{sampler} / {scheduler}"] = {"stats": result, "sigmas": record[-1] if record else None}
    # flow Off: the Flow schedule types with a webui sampler and with a reForge sampler
    backend.remove(sd_model)
    for sampler in ("Euler", "Euler Comfy"):
        record = []
        result, p = sample(backend, sd_model, sampler, scheduler="Flow PC", steps=8, before=recording(backend, record))
        result.pop("trace", None)
        rows[f"off: {sampler} / Flow PC"] = {"stats": result, "sigmas": record[-1] if record else None}
    return rows


def _out(backend, sd_model, sampler, flow=True, **kw):
    import torch
    p = host.Processing(sd_model, sampler_name=sampler, steps=kw.pop("steps", 6), seed=kw.pop("seed", 4),
                        width=128, height=128, cond_size=runner.SMALL_CONDS, **kw)
    return host.txt2img(p, before_sampling=backend.before_sampling if flow else None).clone()


def check_lifecycle():
    """Off after On, an exception mid-sampling, a shift change, a noise-schedule override script,
    refusals with reForge's own samplers."""
    import torch
    from model_sampling_flow.settings import FlowSettings
    from webui_extension.reforge import FlowSamplingRefused
    samplers = ("Euler", "DPM++ 2M", "Heun", "Euler Comfy", "DPM++ 2M CFG++", "Euler a")
    rows = {}
    backend = runner.load_backend()
    _, unet, sd_model = runner.analytic_model()
    network = unet.model.diffusion_model
    never = {name: _out(backend, sd_model, name, flow=False) for name in samplers}

    # an exception on the 3rd model call of a flow-coordinates pass, then Off
    backend.apply(sd_model, FlowSettings(shift=3.0))
    forward = network.forward
    calls = [0]

    def failing(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("interrupted")
        return forward(*args, **kwargs)
    for name in samplers:
        calls[0] = 0
        network.forward = failing
        try:
            _out(backend, sd_model, name)
            rows[f"interrupt {name}"] = "no exception"
        except RuntimeError as error:
            rows[f"interrupt {name}"] = str(error)
        finally:
            network.forward = forward
    fresh_on = {name: _out(backend, sd_model, name) for name in samplers}
    backend.remove(sd_model)
    off = {name: _out(backend, sd_model, name, flow=False) for name in samplers}
    rows["off_identical_after_interrupt"] = {n: bool(torch.equal(off[n], never[n])) for n in samplers}

    # a shift change between generations (XYZ over shift): same as a fresh On at the new shift
    backend.apply(sd_model, FlowSettings(shift=3.0))
    [_out(backend, sd_model, name) for name in samplers]
    backend.apply(sd_model, FlowSettings(shift=6.0))
    changed = {name: _out(backend, sd_model, name) for name in samplers}
    backend.remove(sd_model)
    backend.apply(sd_model, FlowSettings(shift=6.0))
    fresh6 = {name: _out(backend, sd_model, name) for name in samplers}
    rows["shift_change_identical_to_fresh"] = {n: bool(torch.equal(changed[n], fresh6[n])) for n in samplers}
    backend.remove(sd_model)
    backend.apply(sd_model, FlowSettings(shift=3.0))
    again = {name: _out(backend, sd_model, name) for name in samplers}
    rows["on_repeatable_after_interrupt"] = {n: bool(torch.equal(again[n], fresh_on[n])) for n in samplers}

    # a sampler_noise_scheduler_override script: its VE sigmas are used as given
    override = torch.tensor([80.0, 10.0, 3.0, 1.0, 0.3, 0.05, 0.0])
    for name in ("Euler", "Euler Comfy", "Euler a"):
        record = []
        p = host.Processing(sd_model, sampler_name=name, steps=6, seed=4, width=128, height=128,
                            cond_size=runner.SMALL_CONDS)
        p.sampler_noise_scheduler_override = lambda steps: override.clone()
        try:
            host.txt2img(p, before_sampling=recording(backend, record))
            rows[f"override {name}"] = record[-1] if record else None
        except Exception as error:
            rows[f"override {name}"] = f"{type(error).__name__}: {error}"

    # refusals: a refused schedule type with reForge's own samplers; a refused hires sampler
    for name, scheduler in (("Euler Comfy", "Align Your Steps"), ("DPM++ 2M CFG++", "Laplace"),
                            ("Euler", "Align Your Steps"), ("LCM", "Automatic")):
        try:
            _out(backend, sd_model, name, scheduler=scheduler)
            rows[f"refuse {name} / {scheduler}"] = "sampled"
        except FlowSamplingRefused as refused:
            rows[f"refuse {name} / {scheduler}"] = "refused: " + str(refused)[:80]
        except Exception as error:
            rows[f"refuse {name} / {scheduler}"] = f"{type(error).__name__}: {str(error)[:200]}"
    backend.remove(sd_model)
    return rows


def check_process_images():
    """Through processing.process_images with the extension's script: hires fix after a flow-coordinates
    first pass (other hires samplers / schedule types, resolution-dependent shift), a refused hires
    sampler, and Settings 'sigma churn' end to end."""
    from modules import processing, shared
    rows = {}
    field, unet, sd_model = runner.analytic_model()
    host.make_processable(sd_model, field)
    host.use_as_loaded_model(sd_model)
    runner.register_flow_samplers()
    flow = host.load_extension_script(runner.EXTENSION, "flow_sampling.py", "FlowSamplingScript", 0,
                                      len(runner.FLOW_ON))
    capture = runner._capture_script(len(runner.FLOW_ON))
    script_runner = runner._runner(flow, capture)

    def run(p):
        capture.samples.clear()
        try:
            result = processing.process_images(p)
        except Exception as error:
            return {"error": f"{type(error).__name__}: {str(error)[:300]}"}
        return {**runner.stats(capture.samples[-1]), "infotext": result.infotexts[0][-400:],
                "comments": result.comments[:300] if isinstance(result.comments, str) else str(result.comments)[:300]}

    for resolution in (False, True):
        args = ["On", 3.0, "continuous", resolution, "ve"]
        for hr_sampler, hr_scheduler in ((None, None), ("Euler Comfy", "Flow PC"),
                                         ("DPM++ 2M", "Flow PC"), ("Flow Euler", "Use same scheduler")):
            p = runner._pi_txt2img(script_runner, args, "Euler", steps=STEPS, size=SIZE, enable_hr=True, hr_scale=2,
                                   hr_upscaler="Latent (nearest)", denoising_strength=0.5,
                                   hr_second_pass_steps=STEPS, hr_sampler_name=hr_sampler, hr_scheduler=hr_scheduler)
            rows[f"hires res={resolution} {hr_sampler} / {hr_scheduler}"] = run(p)
    p = runner._pi_txt2img(script_runner, runner.FLOW_ON, "Euler", steps=STEPS, size=SIZE, enable_hr=True, hr_scale=2,
                           hr_upscaler="Latent (nearest)", denoising_strength=0.5, hr_second_pass_steps=STEPS,
                           hr_sampler_name="LCM")
    rows["hires refused LCM"] = run(p)
    shared.opts.s_churn = 10.0
    rows["churn Euler"] = run(runner._pi_txt2img(script_runner, runner.FLOW_ON, "Euler", steps=STEPS, size=SIZE))
    shared.opts.s_churn = 0.0
    rows["no churn Euler"] = run(runner._pi_txt2img(script_runner, runner.FLOW_ON, "Euler", steps=STEPS, size=SIZE))
    return rows


def check_reload():
    """The extension's script loaded twice (a script reload) and registration called again: no dropdown
    entry appears twice."""
    from modules import sd_samplers, sd_schedulers, script_callbacks
    for _ in range(2):
        host.load_extension_script(runner.EXTENSION, "flow_sampling.py", "FlowSamplingScript", 0, 5)
    runner.register_flow_samplers()
    runner.register_flow_samplers()
    samplers = [s.name for s in sd_samplers.visible_samplers()]
    all_samplers = [s.name for s in sd_samplers.all_samplers]
    schedulers = [s.label for s in sd_schedulers.schedulers]
    img2img = [s.name for s in getattr(sd_samplers, "samplers_for_img2img", [])]
    dup = lambda names: sorted({n for n in names if names.count(n) > 1})  # noqa: E731
    return {"visible": dup(samplers), "all": dup(all_samplers), "schedulers": dup(schedulers), "img2img": dup(img2img),
            "flow_listed": [n for n in samplers if n.startswith("Flow")],
            "flow_schedulers": [n for n in schedulers if n.startswith("Flow")],
            "cfg_denoiser_callbacks": len(script_callbacks.callback_map.get("callbacks_cfg_denoiser", []))}


def check_all_schedules():
    """Every listed schedule type with a flow-coordinates sampler, a stochastic one and one of reForge's
    own, flow On, 10 steps: refused with a clear message or sampled near the data mean."""
    from model_sampling_flow.settings import FlowSettings
    from modules import sd_schedulers
    from webui_extension.reforge import FlowSamplingRefused
    runner.register_flow_samplers()
    backend = runner.load_backend()
    _, _, sd_model = runner.analytic_model()
    backend.apply(sd_model, FlowSettings(shift=3.0))
    rows = {}
    for scheduler in [s.label for s in sd_schedulers.schedulers]:
        for sampler in ("Euler", "DPM++ 2M SDE", "Euler Comfy", "Flow Euler"):
            p = host.Processing(sd_model, sampler_name=sampler, scheduler=scheduler, steps=10, seed=2,
                                width=SIZE, height=SIZE, cond_size=runner.SMALL_CONDS)
            try:
                out = runner.stats(host.txt2img(p, before_sampling=backend.before_sampling))
                rows[f"{sampler} / {scheduler}"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}
            except FlowSamplingRefused:
                rows[f"{sampler} / {scheduler}"] = "refused"
            except Exception as error:
                rows[f"{sampler} / {scheduler}"] = f"{type(error).__name__}: {str(error)[:200]}"
    return rows


CHECKS = {"all_schedules": check_all_schedules, "reload": check_reload, "process_images": check_process_images, "lifecycle": check_lifecycle, "schedules": check_schedules, "churn": check_churn, "comfy_churn": check_comfy_churn}

if __name__ == "__main__":
    names, out = sys.argv[1].split(","), sys.argv[2]
    runner.start()
    result = {}
    for name in names:
        try:
            result[name] = CHECKS[name]()
        except Exception:
            result[name] = {"crash": traceback.format_exc()[-2000:]}
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))
