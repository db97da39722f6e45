"""RMSE to the exact ODE endpoint against model calls (NFE): our sampler x scheduler pairs and the peers'.

    python benchmarks/bench_samplers.py --comfyui DIR --json comfyui.json
    python benchmarks/bench_samplers.py --comfyui DIR --res4lyf DIR --res4lyf-only --json res4lyf.json
    python benchmarks/bench_samplers.py --combine comfyui.json res4lyf.json --text docs/bench.txt --plot docs/bench.png
    python benchmarks/bench_samplers.py --stochastic --comfyui DIR --shifts 3    # sample distributions
    python benchmarks/bench_samplers.py --stochastic --comfyui DIR --peers-only --json peers.json  (then
        --stochastic --json ours.json, and --stochastic --combine peers.json ours.json --text FILE)

Fields (model_sampling_flow.oracles, exact denoiser and exact ODE endpoint): one Gaussian and
five Gaussian mixtures of different separations, widths and weights (mixture_d, sharp modes, and
mixture_e, three modes, are held out: Flow PC was tuned without them); shifts 1, 3 and 6;
latents 1x4x32x32 from one fixed seed; NFE 4, 8, 12, 16, 24, 32. Every deterministic sampler runs
with every scheduler and gets the largest step count whose model calls fit the budget; per
field, shift and NFE the best pair of ours is set against the best peer pair. Peers: ComfyUI's
built-in samplers x built-in schedulers, run in-process through comfy.sample on a ComfyUI SDXL
model whose UNet returns the field's exact velocity, patched by ModelSamplingSD3 (--comfyui or
COMFYUI_DIR); with --res4lyf (or RES4LYF_DIR) RES4LYF's deterministic samplers and schedulers,
loaded as a custom node into a temporary copy of ComfyUI that is deleted afterwards. Ours run
host-free on the same noise. Stochastic samplers aim at the distribution, not the endpoint: the
--stochastic mode compares the mean, std and mode weight of their samples instead, pooled over
STOCHASTIC_SEEDS seeds of 1x4x128x128 latents, and prints the sampling-noise floor of as many
exact draws (a figure below the floor is luck, and the best of many pairs is often below it).
"""
import argparse
import asyncio
import atexit
import contextlib
import io
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import types
import warnings

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests"), os.path.join(ROOT, "tests", "comfyui")]   # the core, test support

from flow_test_support.models import CountedModel  # noqa: E402
from model_sampling_flow import registry, schedulers  # noqa: E402
from model_sampling_flow.model_sampling import FlowModelSampling  # noqa: E402
from model_sampling_flow.oracles import GaussianMixtureField, gaussian_field, mixture_field  # noqa: E402

FIELDS = {
    "gaussian": (gaussian_field(0.5, 0.3), "N(0.5, 0.3^2)"),
    "mixture_a": (mixture_field((-0.6, 0.7), (0.15, 0.25), (0.3, 0.7)), "0.3 N(-0.6, 0.15^2) + 0.7 N(0.7, 0.25^2)"),
    "mixture_b": (mixture_field((-1.0, 1.0), (0.2, 0.2), (0.5, 0.5)), "0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2)"),
    "mixture_c": (mixture_field((-0.2, 1.2), (0.1, 0.3), (0.8, 0.2)), "0.8 N(-0.2, 0.1^2) + 0.2 N(1.2, 0.3^2)"),
    # held out: not used to choose Flow PC's schedule or orders (sharp modes; three modes)
    "mixture_d": (mixture_field((-0.5, 0.6), (0.06, 0.12), (0.55, 0.45)), "0.55 N(-0.5, 0.06^2) + 0.45 N(0.6, 0.12^2)"),
    "mixture_e": (GaussianMixtureField([-0.8, 0.1, 0.9], [0.1, 0.15, 0.12], [0.3, 0.4, 0.3]),
                  "0.3 N(-0.8, 0.1^2) + 0.4 N(0.1, 0.15^2) + 0.3 N(0.9, 0.12^2)"),
}
SHIFTS = (1.0, 3.0, 6.0)
SHAPE = (1, 4, 32, 32)
TARGET_RATIO = 0.5

# Peers' samplers that are deterministic (an ODE solver); the rest draw noise
# (the *_cfg_pp variants equal their base sampler at CFG 1, figure for figure, and are not repeated;
# dpm_adaptive picks its own step count, so no NFE budget applies)
COMFY_ODE = ("euler", "heun", "heunpp2", "dpm_2", "lms", "dpm_fast", "dpmpp_2m", "ipndm", "ipndm_v", "deis",
             "res_multistep", "gradient_estimation", "ddim", "uni_pc", "uni_pc_bh2")
RES4LYF_ODE = ("res_2m_ode", "res_3m_ode", "res_2s_ode", "res_3s_ode", "res_5s_ode", "res_6s_ode",
               "deis_2m_ode", "deis_3m_ode")
# RES4LYF spends ~0.1 s of its own per model call here, so its samplers get its own two schedulers and the
# three that served them best in a first run (ComfyUI's best pairs were 6-17x better at 8-32 NFE there)
RES4LYF_SCHEDULERS = ("karras", "exponential", "kl_optimal", "bong_tangent", "beta57")
RES4LYF_OWN_SCHEDULERS = ("bong_tangent", "beta57")


def fit_budget(run, nfe, memo):
    """The run with the most steps whose model calls fit in nfe: (rmse, steps, calls) or None.

    run(steps) -> (rmse, calls); calls grow with steps. memo (steps -> result) is shared by the
    budgets of one pair, and the steps are guessed from the calls per step seen so far.
    """
    def get(steps):
        if steps not in memo:
            memo[steps] = run(steps)
        return memo[steps]

    known = sorted(memo.items())
    if len(known) >= 2:
        (s1, (_, c1)), (s2, (_, c2)) = known[-2], known[-1]
        slope = max((c2 - c1) / (s2 - s1), 1e-9)
        steps = max(1, int((nfe - (c2 - slope * s2)) // slope))
    else:
        steps = nfe
    while steps >= 1 and get(steps)[1] > nfe:
        steps -= 1
    if steps < 1:
        return None
    while True:  # more steps may still fit, unless the calls seen so far say one more step cannot
        lower = [c for s, (_, c) in memo.items() if s <= steps]
        higher = [c for s, (_, c) in memo.items() if s > steps]
        if (higher and min(higher) > nfe) or (len(lower) >= 2 and _slope(memo, steps) + get(steps)[1] > nfe):
            break
        if get(steps + 1)[1] > nfe:
            break
        steps += 1
    rmse, calls = get(steps)
    return rmse, steps, calls


def _slope(memo, steps):
    """Fewest extra calls one more step has cost in the runs so far (calls are affine in steps)."""
    points = sorted(memo.items())
    return min((c2 - c1) / (s2 - s1) for (s1, (_, c1)), (s2, (_, c2)) in zip(points, points[1:]))


def our_pairs(field, noise, exact, shift, budgets):
    """{(sampler, scheduler): [fit per budget]} for every deterministic registry sampler x our schedulers."""
    ms = FlowModelSampling(shift=shift)
    out = {}
    for entry in registry.SAMPLERS:
        if entry.stochastic:
            continue
        for scheduler in schedulers.SCHEDULES_BY_NAME:
            def run(steps, entry=entry, scheduler=scheduler):
                model = CountedModel(field)
                result = entry.function(model, noise.clone(), schedulers.get_sigmas(ms, scheduler, steps), disable=True)
                return float(((result - exact) ** 2).mean().sqrt()), model.calls
            memo = {}
            out[(entry.name, scheduler)] = [fit_budget(run, n, memo) for n in budgets]
    return out


def load_comfyui(comfy_dir, res4lyf_dir=None):
    """Import ComfyUI (a temporary copy with RES4LYF in custom_nodes/ when res4lyf_dir is given)."""
    if res4lyf_dir:
        workdir = tempfile.mkdtemp(prefix="bench-comfyui-")
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)
        copy = os.path.join(workdir, "ComfyUI")
        top = os.path.abspath(comfy_dir)

        def skip(directory, names):  # caches, and the top-level model / output / input / user folders
            return [n for n in names if n == "__pycache__"
                    or (os.path.abspath(directory) == top and n in ("models", "output", "input", "user"))]
        shutil.copytree(comfy_dir, copy, ignore=skip)
        for directory, _, _ in os.walk(copy):
            os.chmod(directory, 0o755)
        shutil.copytree(res4lyf_dir, os.path.join(copy, "custom_nodes", "RES4LYF"),
                        ignore=shutil.ignore_patterns(".git", "example_workflows", "workflows"))
        comfy_dir = copy
    os.environ["COMFYUI_DIR"] = comfy_dir
    logging.disable(logging.WARNING)  # ComfyUI's import-time notes about model families CPU torch lacks
    from flow_test_support.comfyui import import_comfyui
    import_comfyui()
    import comfy_support
    nodes = comfy_support.import_comfyui_nodes()
    if res4lyf_dir:
        # what ComfyUI's main.py and server set up before it loads custom nodes, and two modules of
        # newer ComfyUI versions RES4LYF imports (a nested-tensor type, torchvision's submodules)
        saved = list(sys.path)
        sys.path.insert(0, comfy_dir)
        import utils.install_util  # noqa: F401  (ComfyUI's utils package, before comfy/utils.py shadows it)
        sys.path[:] = saved
        import aiohttp.web
        import comfy
        import server
        server.PromptServer.instance = types.SimpleNamespace(
            routes=aiohttp.web.RouteTableDef(), supports={"custom_nodes_from_web"}, client_id=None,
            send_sync=lambda *args, **kwargs: None)
        if "comfy.nested_tensor" not in sys.modules:
            nested = types.ModuleType("comfy.nested_tensor")
            nested.NestedTensor = type("NestedTensor", (), {})
            sys.modules["comfy.nested_tensor"] = comfy.nested_tensor = nested
        from flow_test_support import standins
        # RES4LYF imports torchvision.transforms.v2, and cv2, pywt, matplotlib for nodes off the sampling path
        standins.install("torchvision", "torchaudio", "cv2", "pywt", "matplotlib")
        with contextlib.redirect_stdout(io.StringIO()):
            loaded = asyncio.run(nodes.load_custom_node(os.path.join(comfy_dir, "custom_nodes", "RES4LYF")))
        if not loaded:
            raise RuntimeError("ComfyUI did not load RES4LYF as a custom node")
    return comfy_support


def peer_pairs(support, field, noise, exact, shift, budgets, samplers_, schedulers_of):
    """{(sampler, scheduler): [fit per budget]} through comfy.sample; schedulers_of[sampler] lists its schedulers."""
    import comfy.samplers
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    base = support.analytic_sdxl(field)
    patcher = ModelSamplingSD3().patch(base, shift)[0]
    unet = base.model.diffusion_model
    scale = patcher.get_model_object("latent_format").scale_factor
    out, failures = {}, {}
    for name in samplers_:
        for scheduler in schedulers_of[name]:
            def run(steps, name=name, scheduler=scheduler):
                before = len(unet.timesteps_seen)
                try:
                    with contextlib.redirect_stdout(io.StringIO()):  # RES4LYF prints per run
                        result = support.sample(patcher, name, scheduler, steps=steps, seed=1, shape=SHAPE,
                                                noise=noise.float().clone())
                except Exception as error:  # e.g. RES4LYF's bong_tangent divides by zero below 4 steps
                    failures.setdefault((name, scheduler, type(error).__name__), []).append(steps)
                    return math.inf, steps
                # comfy.sample returns process_latent_out(x) (SDXL: x / 0.13025); the field lives inside
                result = result.double() * scale
                return float(((result - exact) ** 2).mean().sqrt()), len(unet.timesteps_seen) - before
            memo = {}
            out[(name, scheduler)] = [fit_budget(run, n, memo) for n in budgets]
    notes = [f"{name}+{scheduler} raised {error} at {sorted(set(steps))} steps (left out there)"
             for (name, scheduler, error), steps in failures.items()]
    return out, notes


def best_per_budget(pairs, count):
    best = [None] * count
    for pair, fits in pairs.items():
        for k, fit in enumerate(fits):
            if fit is not None and math.isfinite(fit[0]) and (best[k] is None or fit[0] < best[k][0]):
                best[k] = (fit[0], pair, fit[1], fit[2])
    return best

# ------------------------------------------------------------------ stochastic samplers (item: distribution)

COMFY_SDE = ("euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde",
             "dpmpp_2m_sde_heun", "dpmpp_3m_sde", "ddpm", "lcm", "res_multistep_ancestral", "er_sde", "seeds_2",
             "seeds_3", "sa_solver", "sa_solver_pece")
STOCHASTIC_SHAPE = (1, 4, 128, 128)  # 65536 draws a seed
STOCHASTIC_SEEDS = (0, 1, 2, 3)    # initial noise and noise sampler seeds; the statistics pool them
FLOOR_REPEATS = 50                 # exact-draw repeats that estimate the sampling-noise floor


def sample_statistics(field, out):
    """[mean, std, fraction below the component boundary (None unless two components)] of one run."""
    below = None
    if len(field.means) == 2:
        below = float((out < field.component_boundary()).double().mean())
    return [float(out.mean()), float(out.std()), below]


def target_statistics(field):
    """The exact [mean, std, fraction below the component boundary] of the field's data."""
    below = None
    if len(field.means) == 2:
        boundary = field.component_boundary()
        below = sum(w * 0.5 * (1 + math.erf((boundary - m) / (s * math.sqrt(2))))
                    for w, m, s in zip(field.weights, field.means, field.stds))
    return [field.mean, field.std, below]


def distribution_errors(field, per_seed):
    """(|mean - target|, |std - target|, |mode weight - target| or 0), each statistic averaged over the seeds.

    Averaging over seeds before the difference pools the samples: a bias stays, sampling noise
    shrinks like 1 / sqrt(seeds x draws).
    """
    target = target_statistics(field)
    errors = []
    for k in range(3):
        if target[k] is None:
            errors.append(0.0)
        else:
            errors.append(abs(sum(stats[k] for stats in per_seed) / len(per_seed) - target[k]))
    return tuple(errors)


def noise_floor(field, seeds, shape=STOCHASTIC_SHAPE, repeats=FLOOR_REPEATS):
    """Expected (mean, std, weight, max of the three) errors of exact draws, as many as a pair gets.

    An exact sampler scores this on average: figures below it are luck, not accuracy.
    """
    generator = torch.Generator().manual_seed(12345)
    totals = [0.0, 0.0, 0.0, 0.0]
    for _ in range(repeats):
        per_seed = [sample_statistics(field, field.sample(shape, generator=generator, dtype=torch.float64))
                    for _ in range(seeds)]
        errors = distribution_errors(field, per_seed)
        for k, value in enumerate(errors + (max(errors),)):
            totals[k] += value / repeats
    return tuple(totals)


def stochastic_noise(seed):
    return torch.randn(STOCHASTIC_SHAPE, generator=torch.Generator().manual_seed(seed)).double()


def our_stochastic(field, shift, budgets, seeds):
    """{(sampler, scheduler): [[statistics per seed] per budget]} for our stochastic samplers."""
    ms = FlowModelSampling(shift=shift)
    out = {}
    for entry in registry.SAMPLERS:
        if not entry.stochastic:
            continue
        for scheduler in schedulers.SCHEDULES_BY_NAME:
            fits = []
            for nfe in budgets:
                steps = nfe // entry.model_calls_per_step
                sigmas = schedulers.get_sigmas(ms, scheduler, steps).double()
                per_seed = []
                for seed in seeds:
                    generator = torch.Generator().manual_seed(1000 + seed)
                    sampled = entry.function(
                        field, stochastic_noise(seed), sigmas, disable=True,
                        noise_sampler=lambda s, sn: torch.randn(STOCHASTIC_SHAPE, generator=generator).double())
                    per_seed.append(sample_statistics(field, sampled))
                fits.append(per_seed)
            out[(entry.name, scheduler)] = fits
    return out


def peer_stochastic(support, field, shift, budgets, samplers_, seeds):
    """The same through comfy.sample for ComfyUI's stochastic samplers x its schedulers."""
    import comfy.samplers
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    base = support.analytic_sdxl(field)
    patcher = ModelSamplingSD3().patch(base, shift)[0]
    unet = base.model.diffusion_model
    scale = patcher.get_model_object("latent_format").scale_factor

    def run(name, scheduler, steps, seed):
        before = len(unet.timesteps_seen)
        with contextlib.redirect_stdout(io.StringIO()):
            sampled = support.sample(patcher, name, scheduler, steps=steps, seed=1000 + seed,
                                     shape=STOCHASTIC_SHAPE, noise=stochastic_noise(seed).float())
        return sampled.double() * scale, len(unet.timesteps_seen) - before

    out = {}
    for name in samplers_:
        for scheduler in comfy.samplers.SCHEDULER_NAMES:
            fits = []
            for nfe in budgets:
                # the most steps whose calls fit (the first seed's run tells the calls); the other seeds reuse them
                steps, fit = nfe, None
                while steps >= 1:
                    try:
                        sampled, calls = run(name, scheduler, steps, seeds[0])
                    except Exception:
                        break
                    if calls <= nfe:
                        fit = [sample_statistics(field, sampled)]
                        for seed in seeds[1:]:
                            fit.append(sample_statistics(field, run(name, scheduler, steps, seed)[0]))
                        break
                    steps = min(steps - 1, max(1, int(nfe * steps / calls)))
                fits.append(fit)
            out[(name, scheduler)] = fits
    return out


def measure_stochastic(args, say):
    """Run ours (unless --peers-only) and ComfyUI's stochastic samplers; the JSON-able record."""
    budgets = [n for n in args.nfe if 8 <= n <= 16]
    seeds = list(STOCHASTIC_SEEDS)
    record = {"mode": "stochastic", "budgets": budgets, "seeds": seeds, "shape": list(STOCHASTIC_SHAPE),
              "peer_sets": [], "runs": []}
    support, peer_samplers = None, ()
    if args.comfyui:
        support = load_comfyui(args.comfyui)
        import comfy.samplers
        peer_samplers = tuple(n for n in COMFY_SDE if n in comfy.samplers.KSampler.SAMPLERS)
        record["peer_sets"].append(
            f"{len(peer_samplers)} ComfyUI samplers ({', '.join(peer_samplers)}) x "
            f"{len(comfy.samplers.SCHEDULER_NAMES)} schedulers")
    for field_name in args.fields:
        field, _ = FIELDS[field_name]
        for shift in args.shifts:
            say(f"measuring {field_name}, shift {shift:g}")
            pairs = {} if args.peers_only else {("ours",) + k: v for k, v in
                                                 our_stochastic(field, shift, budgets, seeds).items()}
            if support:
                pairs.update({("comfyui",) + k: v for k, v in
                              peer_stochastic(support, field, shift, budgets, peer_samplers, seeds).items()})
            for (source, sampler, scheduler), fits in pairs.items():
                record["runs"].append({"field": field_name, "shift": shift, "source": source, "sampler": sampler,
                                       "scheduler": scheduler, "fits": fits})
    return record


def stochastic_report(records, say):
    """Per field and shift: the best pair of ours and of the peers per NFE, against the noise floor."""
    budgets, seeds = records[0]["budgets"], records[0]["seeds"]
    shape = "x".join(map(str, records[0]["shape"]))
    draws = math.prod(records[0]["shape"]) * len(seeds)
    for record in records:
        for peer_set in record["peer_sets"]:
            say(f"stochastic peers: {peer_set}")
    say(f"ours: {', '.join(e.name for e in registry.SAMPLERS if e.stochastic)} x "
        f"{', '.join(schedulers.SCHEDULES_BY_NAME)}")
    say(f"latents {shape}, {len(seeds)} seeds pooled ({draws} draws a pair); error = max(|mean - target|, "
        f"|std - target|, |mode weight - target|),")
    say("each statistic averaged over the seeds first. floor = the expected error of as many exact draws "
        f"from the field ({FLOOR_REPEATS} repeats): an exact sampler scores about this, the best of many")
    say("pairs scores below it by luck. The best pair per NFE (the minimum over pairs is itself a lucky draw).")
    runs = [run for record in records for run in record["runs"]]
    configs = sorted({(r["field"], r["shift"]) for r in runs}, key=lambda c: (list(FIELDS).index(c[0]), c[1]))
    for field_name, shift in configs:
        field = FIELDS[field_name][0]
        here = [r for r in runs if r["field"] == field_name and r["shift"] == shift]
        floor = noise_floor(field, len(seeds))
        say()
        say(f"{field_name} = {FIELDS[field_name][1]}, shift {shift:g}; floor {floor[3]:.4f} "
            f"(mean {floor[0]:.4f}, std {floor[1]:.4f}, weight {floor[2]:.4f})")
        say(f"{'NFE':>4} | {'best of ours: error (mean, std, weight errors)':>62} | {'best peer':>62} | ratio")
        for k, nfe in enumerate(budgets):
            cells = []
            for mine in (True, False):
                scored = []
                for r in here:
                    if (r["source"] == "ours") == mine and r["fits"][k] is not None:
                        errors = distribution_errors(field, r["fits"][k])
                        scored.append((max(errors), (r["sampler"], r["scheduler"]), errors))
                cells.append(min(scored) if scored else None)
            text = ["-" if c is None else f"{c[0]:.4f} {c[1][0]}+{c[1][1]} ({c[2][0]:.4f}, {c[2][1]:.4f}, {c[2][2]:.4f})"
                    for c in cells]
            ratio = f"{cells[0][0] / cells[1][0]:5.2f}" if cells[0] and cells[1] else ""
            say(f"{nfe:>4} | {text[0]:>62} | {text[1]:>62} | {ratio}")


def measure(args, say):
    """Run ours (unless --peers-only) and the peers; returns the JSON-able record of every pair."""
    budgets = args.nfe
    record = {"budgets": budgets, "peer_sets": [], "runs": [], "notes": []}
    support, peer_samplers, peer_schedulers = None, (), None
    if args.comfyui:
        support = load_comfyui(args.comfyui, args.res4lyf)
        import comfy.samplers
        names = list(comfy.samplers.SCHEDULER_NAMES)
        if args.res4lyf_only:
            # RES4LYF's samplers with its schedulers and the ones that suit them, and ComfyUI's built-in
            # samplers with RES4LYF's two schedulers (the other pairs are the ComfyUI-only run's)
            peer_samplers = tuple(n for n in COMFY_ODE + RES4LYF_ODE if n in comfy.samplers.KSampler.SAMPLERS)
            peer_schedulers = {n: (RES4LYF_SCHEDULERS if n in RES4LYF_ODE else RES4LYF_OWN_SCHEDULERS)
                               for n in peer_samplers}
            record["peer_sets"].append(
                f"RES4LYF: {len(RES4LYF_ODE)} deterministic samplers ({', '.join(RES4LYF_ODE)}) x "
                f"{', '.join(RES4LYF_SCHEDULERS)}; ComfyUI's samplers x {', '.join(RES4LYF_OWN_SCHEDULERS)}; "
                f"shift {', '.join(f'{x:g}' for x in args.shifts)}")
        else:
            peer_samplers = tuple(n for n in COMFY_ODE if n in comfy.samplers.KSampler.SAMPLERS)
            builtin = tuple(x for x in names if x not in RES4LYF_OWN_SCHEDULERS)
            peer_schedulers = {n: builtin for n in peer_samplers}
            record["peer_sets"].append(
                f"ComfyUI: {len(peer_samplers)} deterministic samplers ({', '.join(peer_samplers)}) x "
                f"{len(builtin)} schedulers ({', '.join(builtin)}); "
                f"shift {', '.join(f'{x:g}' for x in args.shifts)}")
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0)).double()
    for field_name in args.fields:
        field, _ = FIELDS[field_name]
        exact = field.endpoint(noise)
        for shift in args.shifts:
            say(f"measuring {field_name}, shift {shift:g}")
            pairs = {} if args.peers_only else {("ours",) + k: v for k, v in
                                                 our_pairs(field, noise, exact, shift, budgets).items()}
            if support:
                peers, notes = peer_pairs(support, field, noise, exact, shift, budgets, peer_samplers,
                                          peer_schedulers)
                pairs.update({("res4lyf" if k[0] in RES4LYF_ODE else "comfyui",) + k: v for k, v in peers.items()})
                record["notes"] += [f"{field_name}, shift {shift:g}: {n}" for n in notes]
            for (source, sampler, scheduler), fits in pairs.items():
                record["runs"].append({"field": field_name, "shift": shift, "source": source, "sampler": sampler,
                                       "scheduler": scheduler, "fits": fits})
    return record


def report(records, say):
    """The per field and shift tables and the summary, from one or more measure() records."""
    budgets = records[0]["budgets"]
    say("Every pair gets the most steps whose model calls fit the NFE budget; RMSE to the exact ODE endpoint,")
    say(f"latents {'x'.join(map(str, SHAPE))}. Best pair per NFE (sampler+scheduler, steps in brackets).")
    say(f"ours: {', '.join(e.name for e in registry.SAMPLERS if not e.stochastic)} x "
        f"{', '.join(schedulers.SCHEDULES_BY_NAME)}")
    for record in records:
        for peer_set in record["peer_sets"]:
            say(f"peers: {peer_set}")
    runs = [run for record in records for run in record["runs"]]
    configs = sorted({(r["field"], r["shift"]) for r in runs}, key=lambda c: (list(FIELDS).index(c[0]), c[1]))
    summary, curves = [], {}
    for field_name, shift in configs:
        here = [r for r in runs if r["field"] == field_name and r["shift"] == shift]
        ours = {(r["sampler"], r["scheduler"]): r["fits"] for r in here if r["source"] == "ours"}
        peers = {(r["sampler"], r["scheduler"]): r["fits"] for r in here if r["source"] != "ours"}
        if not ours:
            continue
        best_ours, best_peer = best_per_budget(ours, len(budgets)), best_per_budget(peers, len(budgets))
        default, old = ours[("flow_pc", "flow_pc")], ours[("flow_multistep", "simple")]
        sources = sorted({r["source"] for r in here if r["source"] != "ours"})
        say()
        say(f"{field_name} = {FIELDS[field_name][1]}, shift {shift:g} (peers: {', '.join(sources) or 'none'})")
        say(f"{'NFE':>4} | {'Flow PC + flow_pc':>17} | {'best of ours':>40} | {'best peer':>44} | ratio")
        for k, nfe in enumerate(budgets):
            mine, peer = best_ours[k], best_peer[k]
            pc = "-" if default[k] is None else f"{default[k][0]:.2e} ({default[k][1]})"
            cell = f"{mine[0]:.2e} {mine[1][0]}+{mine[1][1]} ({mine[2]})"
            if peer is None:
                say(f"{nfe:>4} | {pc:>17} | {cell:>40} | {'-':>44} |")
                continue
            ratio = default[k][0] / peer[0] if default[k] else math.inf
            peer_cell = f"{peer[0]:.2e} {peer[1][0]}+{peer[1][1]} ({peer[2]})"
            say(f"{nfe:>4} | {pc:>17} | {cell:>40} | {peer_cell:>44} | {ratio:5.2f}")
            summary.append((field_name, shift, nfe, ratio, mine[0] / peer[0]))
        curves[(field_name, shift)] = (budgets, default, old, best_peer)
    if summary:
        say()
        say(f"ratio = Flow PC with the flow_pc schedule / best peer pair (target <= {TARGET_RATIO}), per NFE over "
            f"{len({(r[0], r[1]) for r in summary})} field x shift cases:")
        for nfe in budgets:
            rows = [r for r in summary if r[2] == nfe]
            worst = max(rows, key=lambda r: r[3])
            held = sum(r[3] <= TARGET_RATIO for r in rows)
            median = sorted(r[3] for r in rows)[len(rows) // 2]
            say(f"  NFE {nfe:>2}: <= {TARGET_RATIO} in {held:>2} of {len(rows)}; median {median:.2f}; "
                f"worst {worst[3]:.2f} ({worst[0]}, shift {worst[1]:g})")
        say("best pair of ours (any of our samplers and schedulers) / best peer pair, worst case per NFE:")
        say("  " + "; ".join(f"NFE {nfe}: {max(r[4] for r in summary if r[2] == nfe):.2f}" for nfe in budgets))
    notes = [note for record in records for note in record["notes"]]
    if notes:
        say()
        say(f"{len(notes)} peer pairs raised at some step counts and are left out there, e.g.: {notes[0]}")
    return curves


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nfe", type=int, nargs="+", default=[4, 8, 12, 16, 24, 32])
    parser.add_argument("--comfyui", default=os.environ.get("COMFYUI_DIR"), help="ComfyUI checkout (peers)")
    parser.add_argument("--res4lyf", default=os.environ.get("RES4LYF_DIR"), help="RES4LYF checkout (more peers)")
    parser.add_argument("--res4lyf-only", action="store_true",
                        help="with --res4lyf: measure only the pairs RES4LYF adds (and not ours)")
    parser.add_argument("--peers-only", action="store_true", help="measure only the peers (not ours)")
    parser.add_argument("--fields", nargs="+", default=list(FIELDS), choices=list(FIELDS))
    parser.add_argument("--shifts", type=float, nargs="+", default=list(SHIFTS))
    parser.add_argument("--stochastic", action="store_true",
                        help="compare the stochastic samplers' sample distributions instead (NFE 8, 12, 16)")
    parser.add_argument("--json", help="write every pair's figures to this file")
    parser.add_argument("--combine", nargs="+", metavar="JSON", help="report from files --json wrote, no run")
    parser.add_argument("--text", default=None, help="also write the report to this file")
    parser.add_argument("--plot", default=None, help="plot path (needs matplotlib)")
    args = parser.parse_args(argv)
    args.peers_only = args.peers_only or args.res4lyf_only
    warnings.filterwarnings("ignore", module="torchsde")
    warnings.filterwarnings("ignore", message="To copy construct from a tensor")  # ComfyUI's dpm_fast
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    def write_text():
        if args.text:
            with open(args.text, "w") as handle:
                handle.write("\n".join(lines) + "\n")

    if args.combine:
        records = []
        for path in args.combine:
            with open(path) as handle:
                records.append(json.load(handle))
    else:
        records = [(measure_stochastic if args.stochastic else measure)(args, print)]
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(records[0], handle)
    if args.stochastic:
        stochastic_report(records, say)
        write_text()
        return
    curves = report(records, say)
    write_text()
    if args.plot and any(key[1] == 3.0 for key in curves):
        plot(curves, args.plot, [f for f in FIELDS if (f, 3.0) in curves])


def plot(curves, path, fields):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    fig, axes = plt.subplots(1, len(fields), figsize=(4 * len(fields), 4), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, field_name in zip(axes, fields):
        budgets, default, old, best_peer = curves[(field_name, 3.0)]
        for fits, label, style in ((default, "Flow PC + flow_pc", "-"), (old, "Flow Multistep + simple", "--")):
            points = [(n, f[0]) for n, f in zip(budgets, fits) if f is not None]
            ax.loglog(*zip(*points), marker="o", linestyle=style, label=label)
        points = [(n, f[0]) for n, f in zip(budgets, best_peer) if f is not None]
        if points:
            ax.loglog(*zip(*points), marker="s", linestyle=":", color="black", label="best peer pair per NFE")
        ax.set_title(f"{field_name}, shift 3", fontsize=9)
        ax.set_xlabel("model calls (NFE)")
    axes[0].set_ylabel("RMSE to exact ODE endpoint")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {os.path.basename(path)}")


if __name__ == "__main__":
    main()
