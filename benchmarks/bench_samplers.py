"""RMSE to the exact ODE endpoint against model calls (NFE): our sampler x scheduler pairs and the peers'.

    python benchmarks/bench_samplers.py [--comfyui DIR] [--res4lyf DIR] [--text docs/bench.txt]
                                        [--plot docs/bench.png] [--nfe 4 8 12 16 24 32]

Fields (model_sampling_flow.oracles, exact denoiser and exact ODE endpoint): one Gaussian and
three two-component Gaussian mixtures of different separations and weights; shifts 1, 3 and 6;
latents 1x4x32x32 from one fixed seed. Every deterministic sampler is run with every scheduler
and gets the largest step count whose model calls fit the NFE budget; per field, shift and NFE
the best pair of ours is set against the best peer pair. Peers: ComfyUI's built-in samplers x
built-in schedulers, run in-process through comfy.sample on a ComfyUI SDXL model whose UNet
returns the field's exact velocity, patched by ModelSamplingSD3 (--comfyui or COMFYUI_DIR);
with --res4lyf (or RES4LYF_DIR) also RES4LYF's deterministic samplers and schedulers, loaded as
a custom node into a temporary copy of ComfyUI (nothing of it is kept). Ours run host-free on
the same noise. Stochastic samplers aim at the distribution, not the endpoint, and are left out.
"""
import argparse
import asyncio
import contextlib
import importlib.abc
import importlib.machinery
import io
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
sys.path.insert(0, ROOT)

from model_sampling_flow import registry, schedulers  # noqa: E402
from model_sampling_flow.model_sampling import FlowModelSampling  # noqa: E402
from model_sampling_flow.oracles import gaussian_field, mixture_field  # noqa: E402

FIELDS = {
    "gaussian": (gaussian_field(0.5, 0.3), "N(0.5, 0.3^2)"),
    "mixture_a": (mixture_field((-0.6, 0.7), (0.15, 0.25), (0.3, 0.7)), "0.3 N(-0.6, 0.15^2) + 0.7 N(0.7, 0.25^2)"),
    "mixture_b": (mixture_field((-1.0, 1.0), (0.2, 0.2), (0.5, 0.5)), "0.5 N(-1, 0.2^2) + 0.5 N(1, 0.2^2)"),
    "mixture_c": (mixture_field((-0.2, 1.2), (0.1, 0.3), (0.8, 0.2)), "0.8 N(-0.2, 0.1^2) + 0.2 N(1.2, 0.3^2)"),
}
SHIFTS = (1.0, 3.0, 6.0)
SHAPE = (1, 4, 32, 32)
TARGET_RATIO = 0.5

# Peers' samplers that are deterministic (an ODE solver); the rest draw noise
COMFY_ODE = ("euler", "euler_cfg_pp", "heun", "heunpp2", "dpm_2", "lms", "dpm_fast", "dpmpp_2m", "dpmpp_2m_cfg_pp",
             "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "gradient_estimation",
             "gradient_estimation_cfg_pp", "ddim", "uni_pc", "uni_pc_bh2")
RES4LYF_ODE = ("res_2m_ode", "res_3m_ode", "res_2s_ode", "res_3s_ode", "res_5s_ode", "res_6s_ode",
               "deis_2m_ode", "deis_3m_ode")


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
    while get(steps + 1)[1] <= nfe:  # more steps may still fit (calls per step < 1 never happens for these)
        steps += 1
    rmse, calls = get(steps)
    return rmse, steps, calls


class Counted:
    def __init__(self, field):
        self.field, self.calls = field, 0

    def __call__(self, x, sigma, **kwargs):
        self.calls += 1
        return self.field(x, sigma)


def our_pairs(field, noise, exact, shift, budgets):
    """{(sampler, scheduler): [fit per budget]} for every deterministic registry sampler x our schedulers."""
    ms = FlowModelSampling(shift=shift)
    out = {}
    for entry in registry.SAMPLERS:
        if entry.stochastic:
            continue
        for scheduler in schedulers.SCHEDULERS:
            def run(steps, entry=entry, scheduler=scheduler):
                model = Counted(field)
                result = entry.function(model, noise.clone(), schedulers.get_sigmas(ms, scheduler, steps), disable=True)
                return float(((result - exact) ** 2).mean().sqrt()), model.calls
            memo = {}
            out[(entry.name, scheduler)] = [fit_budget(run, n, memo) for n in budgets]
    return out


class _TorchvisionStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers torchvision submodule imports with empty modules (RES4LYF imports transforms.v2 at load)."""

    def find_spec(self, name, path=None, target=None):
        if name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)

    def create_module(self, spec):
        from conftest import make_stand_in
        return make_stand_in(spec.name)

    def exec_module(self, module):
        pass


def load_comfyui(comfy_dir, res4lyf_dir=None):
    """Import ComfyUI (a temporary copy with RES4LYF in custom_nodes/ when res4lyf_dir is given)."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    if res4lyf_dir:
        workdir = tempfile.mkdtemp(prefix="bench-comfyui-")
        copy = os.path.join(workdir, "ComfyUI")
        shutil.copytree(comfy_dir, copy, ignore=shutil.ignore_patterns("__pycache__", "models", "output", "input"))
        for directory, _, _ in os.walk(copy):
            os.chmod(directory, 0o755)
        shutil.copytree(res4lyf_dir, os.path.join(copy, "custom_nodes", "RES4LYF"),
                        ignore=shutil.ignore_patterns(".git", "example_workflows", "workflows"))
        comfy_dir = copy
    os.environ["COMFYUI_DIR"] = comfy_dir
    logging.disable(logging.WARNING)  # ComfyUI's import-time notes about model families CPU torch lacks
    from conftest import import_comfyui
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
        sys.meta_path.insert(0, _TorchvisionStandIn())
        with contextlib.redirect_stdout(io.StringIO()):
            loaded = asyncio.run(nodes.load_custom_node(os.path.join(comfy_dir, "custom_nodes", "RES4LYF")))
        if not loaded:
            raise RuntimeError("ComfyUI did not load RES4LYF as a custom node")
    return comfy_support


def peer_pairs(support, field, noise, exact, shift, budgets, samplers_):
    """{(sampler, scheduler): [fit per budget]} through comfy.sample, every scheduler ComfyUI lists."""
    import comfy.samplers
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    base = support.analytic_sdxl(field)
    patcher = ModelSamplingSD3().patch(base, shift)[0]
    unet = base.model.diffusion_model
    scale = patcher.get_model_object("latent_format").scale_factor
    out = {}
    for name in samplers_:
        for scheduler in comfy.samplers.SCHEDULER_NAMES:
            def run(steps, name=name, scheduler=scheduler):
                before = len(unet.timesteps_seen)
                with contextlib.redirect_stdout(io.StringIO()):  # RES4LYF prints per run
                    result = support.sample(patcher, name, scheduler, steps=steps, seed=1, shape=SHAPE,
                                            noise=noise.float().clone())
                # comfy.sample returns process_latent_out(x) (SDXL: x / 0.13025); the field lives inside
                result = result.double() * scale
                return float(((result - exact) ** 2).mean().sqrt()), len(unet.timesteps_seen) - before
            memo = {}
            out[(name, scheduler)] = [fit_budget(run, n, memo) for n in budgets]
    return out


def best_per_budget(pairs, count):
    best = [None] * count
    for pair, fits in pairs.items():
        for k, fit in enumerate(fits):
            if fit is not None and math.isfinite(fit[0]) and (best[k] is None or fit[0] < best[k][0]):
                best[k] = (fit[0], pair, fit[1], fit[2])
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nfe", type=int, nargs="+", default=[4, 8, 12, 16, 24, 32])
    parser.add_argument("--comfyui", default=os.environ.get("COMFYUI_DIR"), help="ComfyUI checkout (peers)")
    parser.add_argument("--res4lyf", default=os.environ.get("RES4LYF_DIR"), help="RES4LYF checkout (more peers)")
    parser.add_argument("--text", default=None, help="also write the report to this file")
    parser.add_argument("--plot", default=None, help="plot path (needs matplotlib)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", module="torchsde")
    warnings.filterwarnings("ignore", message="To copy construct from a tensor")  # ComfyUI's dpm_fast
    budgets = args.nfe
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    support, peer_samplers = None, ()
    if args.comfyui:
        support = load_comfyui(args.comfyui, args.res4lyf)
        import comfy.samplers
        peer_samplers = tuple(n for n in COMFY_ODE + (RES4LYF_ODE if args.res4lyf else ())
                              if n in comfy.samplers.KSampler.SAMPLERS)
        say(f"peers: {len(peer_samplers)} deterministic samplers ({'ComfyUI + RES4LYF' if args.res4lyf else 'ComfyUI'})"
            f" x {len(comfy.samplers.SCHEDULER_NAMES)} schedulers: {', '.join(comfy.samplers.SCHEDULER_NAMES)}")
    else:
        say("no ComfyUI given (--comfyui / COMFYUI_DIR): our samplers only")
    ours_count = sum(not e.stochastic for e in registry.SAMPLERS)
    say(f"ours: {ours_count} deterministic samplers x {len(schedulers.SCHEDULERS)} schedulers: "
        f"{', '.join(schedulers.SCHEDULERS)}")
    say(f"latents {'x'.join(map(str, SHAPE))}, RMSE to the exact ODE endpoint; best pair per NFE (steps in brackets)")
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0)).double()
    summary, curves = [], {}
    for field_name, (field, description) in FIELDS.items():
        exact = field.endpoint(noise)
        for shift in SHIFTS:
            ours = our_pairs(field, noise, exact, shift, budgets)
            peers = peer_pairs(support, field, noise, exact, shift, budgets, peer_samplers) if support else {}
            best_ours, best_peer = best_per_budget(ours, len(budgets)), best_per_budget(peers, len(budgets))
            default = ours[("flow_pc", "flow_pc")]
            old = ours[("flow_multistep", "simple")]
            say()
            say(f"{field_name} = {description}, shift {shift:g}")
            say(f"{'NFE':>4} | {'Flow PC + flow_pc':>17} | {'best of ours':>40} | {'best peer':>44} | ratio")
            for k, nfe in enumerate(budgets):
                mine = best_ours[k]
                cell = f"{mine[0]:.2e} {mine[1][0]}+{mine[1][1]} ({mine[2]})"
                pc = "-" if default[k] is None else f"{default[k][0]:.2e} ({default[k][1]})"
                peer = best_peer[k]
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
        say(f"ratio = Flow PC with the flow_pc schedule / best peer pair (target <= {TARGET_RATIO}); "
            f"worst case per NFE over {len(FIELDS)} fields x {len(SHIFTS)} shifts:")
        for nfe in budgets:
            rows = [r for r in summary if r[2] == nfe]
            worst = max(rows, key=lambda r: r[3])
            held = sum(r[3] <= TARGET_RATIO for r in rows)
            say(f"  NFE {nfe:>2}: worst {worst[3]:.2f} ({worst[0]}, shift {worst[1]:g}); "
                f"<= {TARGET_RATIO} in {held} of {len(rows)}")
    if args.text:
        with open(args.text, "w") as handle:
            handle.write("\n".join(lines) + "\n")
    if args.plot:
        plot(curves, args.plot)


def plot(curves, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    fig, axes = plt.subplots(1, len(FIELDS), figsize=(4 * len(FIELDS), 4), sharey=True)
    for ax, field_name in zip(axes, FIELDS):
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
    print(f"plot: {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
