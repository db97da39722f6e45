"""Every ComfyUI sampler x scheduler at the step counts people use, against its flow-sigma reference.

Shared by tests/comfyui/test_comfyui_practical_steps.py (which asserts the bar) and
benchmarks/bench_practical_steps_comfyui.py (which prints the table). No pytest import here;
ComfyUI must already be imported (flow_test_support.comfyui.import_comfyui) and the repository loaded.

For one exact RF field (model_sampling_flow.oracles), one sampler, one scheduler and a step count:
  * ours: our node in its default configuration, through comfy.sample.sample (the KSampler path);
  * deterministic samplers: reference = the same sampler and scheduler under ModelSamplingSD3
    (native flow coordinates); bar: RMSE to the exact ODE endpoint <= 1.1 x reference + 1e-3;
  * stochastic samplers: reference = the same sampler in our VE view on the same-named schedule
    computed over the flow sigma range (ModelSamplingSD3's) and mapped to VE; bar: mean and std
    each within 0.01 of the reference.
A sampler counts as deterministic when two seeds give the same image from the same start noise.

At classifier-free guidance `cfg` > 1 the fields are the CFG pairs of flow_test_support.practical
(practical_fields(cfg)): the model's diffusion_model is models.GuidedVelocityNetwork(cond, uncond), so
the negative prompt's rows (comfy_support.sdxl_conds: zero context) get uncond's velocity and ComfyUI's
own CFG code combines them; both sides sample at `cfg` and the exact endpoint is the GuidedField's.
Each row records `negative_rows`, the rows our run had answered by uncond (0 at cfg 1).
"""
import torch

from flow_test_support import models as test_models
from flow_test_support.practical import practical_fields

import comfy_support as support

SHAPE = (1, 4, 8, 8)          # 256 draws per run; both sides of a comparison share the noise
SEED = 1
SHIFT = 3.0
STEPS = (20, 28)
# the CFG-1 fields of the webui sweeps too: N(0.5, 0.3^2) and the two-component mixture
FIELDS = {name: cond for name, (cond, _, _) in practical_fields(1.0).items()}
RMSE_RATIO = 1.1
RMSE_SLACK = 1e-3
MOMENT_TOLERANCE = 0.01
# lcm is for consistency-distilled models (excluded by the target). dpmpp_2s_ancestral_cfg_pp is
# wrong on an exact VE/EPS model too (a ComfyUI bug; docs/comfyui.md has the measurement).
EXCLUDED = {"lcm": "for consistency-distilled models only",
            "dpmpp_2s_ancestral_cfg_pp": "wrong on any model (ComfyUI reuses a stale uncond)"}


def models(package, field, shift=SHIFT, uncond=None):
    """(ours in the default configuration, ModelSamplingSD3) over one analytic SDXL model (its
    diffusion_model a GuidedVelocityNetwork(field, uncond) when `uncond` is given)."""
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    base = support.analytic_sdxl(field)
    if uncond is not None:
        base.model.diffusion_model = test_models.GuidedVelocityNetwork(field, uncond)
    node = package.NODE_CLASS_MAPPINGS["ModelSamplingFlowSDXL"]()
    defaults = {name: spec[1]["default"] for name, spec in node.INPUT_TYPES()["required"].items() if name != "model"}
    ours = node.patch(base, **dict(defaults, shift=shift))[0]
    sd3 = ModelSamplingSD3().patch(base, shift)[0]
    return ours, sd3


def _noise(shape=SHAPE, seed=SEED):
    import comfy.sample
    return comfy.sample.prepare_noise(torch.zeros(shape), seed)


def _statistics(out, model, exact):
    out = out.double() * model.get_model_object("latent_format").scale_factor
    return {"mean": float(out.mean()), "std": float(out.std()),
            "rmse": float((out - exact).pow(2).mean().sqrt())}


def run_ksampler(model, sampler, scheduler, steps, noise, seed=SEED, cfg=1.0):
    """comfy.sample.sample: the KSampler node's path (scheduler by name)."""
    return support.sample(model, sampler, scheduler, steps=steps, seed=seed, latent=torch.zeros_like(noise),
                          noise=noise, cfg=cfg)


def flow_range_ve_sigmas(ours, sd3, sampler, scheduler, steps):
    """The schedule ModelSamplingSD3 gets for this sampler, mapped to our VE view (as KSampler builds it)."""
    import comfy.samplers
    calculate = getattr(comfy.samplers.calculate_sigmas, "__wrapped__", comfy.samplers.calculate_sigmas)
    discard = sampler in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS
    flow = calculate(sd3.get_model_object("model_sampling"), scheduler, steps + 1 if discard else steps)
    if discard:
        flow = torch.cat([flow[:-2], flow[-1:]])
    return ours.get_model_object("model_sampling").ve_schedule(flow)


def run_with_sigmas(model, sampler, sigmas, noise, seed=SEED, cfg=1.0):
    """comfy.samplers.sample with explicit sigmas (the SamplerCustom path)."""
    import comfy.samplers
    positive, negative = support.sdxl_conds(noise.shape[0], tokens=1)
    return comfy.samplers.sample(model, noise, positive, negative, cfg, model.load_device,
                                 comfy.samplers.sampler_object(sampler), sigmas, latent_image=torch.zeros_like(noise),
                                 disable_pbar=True, seed=seed)


def is_deterministic(model, sampler, noise, cfg=1.0):
    """Same start noise, two seeds for the sampler's own noise: identical output means deterministic."""
    first = run_ksampler(model, sampler, "simple", 4, noise, seed=SEED, cfg=cfg)
    second = run_ksampler(model, sampler, "simple", 4, noise, seed=SEED + 1000, cfg=cfg)
    return bool(torch.equal(first, second))


def _negative_rows(model):
    return getattr(model.model.diffusion_model, "negative_rows", 0)


def compare(package, field_name, steps, samplers=None, schedulers=None, kinds=None, on_row=None, cfg=1.0):
    """Rows for every sampler x scheduler at CFG `cfg`: ours vs reference and whether the bar holds."""
    import comfy.samplers
    cond, uncond, reference = practical_fields(cfg)[field_name]
    ours, sd3 = models(package, cond, uncond=uncond)
    noise = _noise()
    exact = reference.endpoint(noise.double())
    samplers = list(comfy.samplers.KSampler.SAMPLERS) if samplers is None else samplers
    schedulers = list(comfy.samplers.KSampler.SCHEDULERS) if schedulers is None else schedulers
    kinds = {} if kinds is None else kinds
    rows = []
    for sampler in samplers:
        if sampler not in kinds:
            kinds[sampler] = "deterministic" if is_deterministic(sd3, sampler, noise, cfg) else "stochastic"
        for scheduler in schedulers:
            row = {"field": field_name, "steps": steps, "sampler": sampler, "scheduler": scheduler,
                   "kind": kinds[sampler], "excluded": EXCLUDED.get(sampler), "cfg": cfg}
            before = _negative_rows(ours)
            try:
                row["ours"] = _statistics(run_ksampler(ours, sampler, scheduler, steps, noise, cfg=cfg), ours, exact)
            except ValueError as error:  # a refusal must say why and what to pick
                row["refused"] = str(error)
                rows.append(row)
                continue
            finally:
                row["negative_rows"] = _negative_rows(ours) - before
            if kinds[sampler] == "deterministic":
                row["reference"] = _statistics(run_ksampler(sd3, sampler, scheduler, steps, noise, cfg=cfg), sd3, exact)
                row["passes"] = row["ours"]["rmse"] <= RMSE_RATIO * row["reference"]["rmse"] + RMSE_SLACK
            else:
                sigmas = flow_range_ve_sigmas(ours, sd3, sampler, scheduler, steps)
                row["reference"] = _statistics(run_with_sigmas(ours, sampler, sigmas, noise, cfg=cfg), ours, exact)
                row["passes"] = all(abs(row["ours"][k] - row["reference"][k]) <= MOMENT_TOLERANCE
                                    for k in ("mean", "std"))
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def badness(row):
    """The share of its allowance a row uses (> 1 fails): the RMSE excess over the reference against
    0.1 x reference + 1e-3, or the larger moment gap against 0.01."""
    if "refused" in row:
        return 0.0
    ours, reference = row["ours"], row["reference"]
    if row["kind"] == "deterministic":
        return (ours["rmse"] - reference["rmse"]) / ((RMSE_RATIO - 1) * reference["rmse"] + RMSE_SLACK)
    return max(abs(ours[k] - reference[k]) for k in ("mean", "std")) / MOMENT_TOLERANCE


def format_row(row):
    head = f"| {row['field']} | {row['steps']} | {row['sampler']} | {row['scheduler']} | {row['kind']} |"
    if "refused" in row:
        return f"{head} refused: {row['refused']} | | |"
    ours, reference = row["ours"], row["reference"]
    if row["kind"] == "deterministic":
        figures = f" RMSE {ours['rmse']:.4f} | {reference['rmse']:.4f} |"
    else:
        figures = (f" {ours['mean']:.4f} / {ours['std']:.4f} | "
                   f"{reference['mean']:.4f} / {reference['std']:.4f} |")
    verdict = "pass" if row["passes"] else ("excluded" if row["excluded"] else "FAIL")
    return f"{head}{figures} {verdict} |"
