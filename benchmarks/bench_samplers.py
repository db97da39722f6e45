"""RMSE to the exact ODE endpoint against model calls (NFE), for our samplers and ComfyUI's.

    python benchmarks/bench_samplers.py [--out docs/bench.png] [--nfe 8 16 32]

Field: exact RF Gaussian N(0.5, 0.3^2); latents 4x4x32x32 float32; shift 3; scheduler simple.
When COMFYUI_DIR is set, ComfyUI's own samplers run in the same process through comfy.sample
on a real ComfyUI SDXL model (analytic UNet) patched by ModelSamplingSD3. Each sampler gets the
largest step count whose model calls fit the NFE budget. Stochastic samplers are listed with
their RMSE for completeness; their target is the distribution, not the endpoint. The first-step
cost of the VE view's sigma cap is printed at the end.
"""
import argparse
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from model_sampling_flow import registry  # noqa: E402
from model_sampling_flow.model_sampling import FlowModelSampling, FlowVEModelSampling  # noqa: E402
from model_sampling_flow.oracles import gaussian_field  # noqa: E402
from model_sampling_flow.schedulers import get_sigmas  # noqa: E402

SHIFT = 3.0
SHAPE = (4, 4, 32, 32)


class Counted:
    def __init__(self, field):
        self.field, self.calls = field, 0

    def __call__(self, x, sigma, **kwargs):
        self.calls += 1
        return self.field(x, sigma)


def fit_budget(run, nfe):
    """Run with the most steps whose model calls fit in nfe; return (rmse, steps, calls)."""
    # model calls grow with steps, so the first fit found counting down is the largest
    for steps in range(nfe, 0, -1):
        rmse, calls = run(steps)
        if calls <= nfe:
            return rmse, steps, calls
    return None


def our_rows(field, noise, exact, budgets):
    ms = FlowModelSampling(shift=SHIFT)
    rows = []
    for entry in registry.SAMPLERS:
        def run(steps, entry=entry):
            model = Counted(field)
            generator = torch.Generator().manual_seed(1)
            options = {"noise_sampler": lambda s, sn: torch.randn(SHAPE, generator=generator)} \
                if entry.stochastic else {}
            out = entry.function(model, noise.clone(), get_sigmas(ms, "simple", steps), disable=True, **options)
            return float(((out - exact) ** 2).mean().sqrt()), model.calls
        rows.append(("ours", entry.name, entry.stochastic, [fit_budget(run, n) for n in budgets]))
    return rows


def comfy_rows(field, noise, exact, budgets):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from conftest import import_comfyui
    import_comfyui()
    import comfy.samplers
    import comfy_support as support
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3

    base = support.analytic_sdxl(field)
    patcher = ModelSamplingSD3().patch(base, SHIFT)[0]
    unet = base.model.diffusion_model
    scale = patcher.get_model_object("latent_format").scale_factor
    stochastic = {"euler_ancestral", "euler_ancestral_cfg_pp", "dpm_2_ancestral", "dpmpp_2s_ancestral",
                  "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
                  "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm",
                  "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "er_sde", "seeds_2", "seeds_3",
                  "sa_solver", "sa_solver_pece", "dpm_adaptive"}
    rows = []
    for name in comfy.samplers.KSampler.SAMPLERS:
        if name.startswith("flow_"):
            continue

        def run(steps, name=name):
            calls_before = len(unet.timesteps_seen)
            out = support.sample(patcher, name, "simple", steps=steps, seed=1, shape=SHAPE, noise=noise.clone())
            # comfy.sample returns process_latent_out(x) (SDXL: x / 0.13025); the field lives inside
            out = out.double() * scale
            return float(((out - exact) ** 2).mean().sqrt()), len(unet.timesteps_seen) - calls_before
        try:
            rows.append(("comfyui", name, name in stochastic, [fit_budget(run, n) for n in budgets]))
        except Exception as error:  # a sampler ComfyUI cannot run here (e.g. needs a GPU)
            print(f"  comfyui {name}: skipped ({type(error).__name__}: {error})")
    return rows


def ve_cap_cost(field, noise):
    """What the VE view's sigma cap costs: the same deterministic sampler started at the capped
    sigma from pure noise (as a VE host does) versus from sigma = 1."""
    flow_ms, ve_ms = FlowModelSampling(SHIFT), FlowVEModelSampling(SHIFT)
    sigmas = get_sigmas(flow_ms, "simple", 32).double()
    capped = sigmas.clone()
    capped[0] = ve_ms.sigma_cap
    entry = registry.SAMPLERS_BY_NAME["flow_euler"]
    full = entry.function(field, noise.double(), sigmas, disable=True)
    # a VE host starts x_ve = sigma_ve_max * noise, i.e. flow x = sigma_cap * noise
    start = capped[0] * noise.double()
    from_cap = entry.function(field, start, capped, disable=True)
    first_full = field(noise.double(), 1.0)
    first_cap = field(start, capped[0])
    return (1 - ve_ms.sigma_cap, float((full - from_cap).abs().max()), float((first_full - first_cap).abs().max()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nfe", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "bench.png"),
                        help="plot path (needs matplotlib; skipped without it)")
    args = parser.parse_args(argv)
    field = gaussian_field(0.5, 0.3)
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    exact = field.endpoint(noise.double())

    rows = our_rows(field, noise, exact, args.nfe)
    if os.environ.get("COMFYUI_DIR"):
        rows += comfy_rows(field, noise, exact, args.nfe)
    else:
        print("COMFYUI_DIR is not set: ComfyUI's samplers are not in this run")

    header = f"{'source':8} {'sampler':28} {'kind':6} " + " ".join(f"{'NFE ' + str(n):>18}" for n in args.nfe)
    print(header)
    print("-" * len(header))
    for source, name, stochastic, results in rows:
        cells = " ".join(f"{'-':>18}" if r is None else f"{r[0]:10.5f} ({r[1]:>3}st)" for r in results)
        print(f"{source:8} {name:28} {'sde' if stochastic else 'ode':6} {cells}")

    def best(source):
        out = []
        for k in range(len(args.nfe)):
            candidates = [(r[3][k][0], r[1]) for r in rows if r[0] == source and not r[2] and r[3][k] is not None]
            out.append(min(candidates) if candidates else None)
        return out

    ours_best, comfy_best = best("ours"), best("comfyui")
    print()
    for k, n in enumerate(args.nfe):
        line = f"NFE {n:>3}: best ours {ours_best[k][1]} {ours_best[k][0]:.5f}"
        if comfy_best[k] is not None:
            ratio = ours_best[k][0] / comfy_best[k][0]
            line += f" | best ComfyUI {comfy_best[k][1]} {comfy_best[k][0]:.5f} | ratio {ratio:.2f} (target <= 0.5)"
        print(line)
    gap, endpoint_change, first_denoised_change = ve_cap_cost(field, noise)
    print(f"\nVE view sigma cap: 1 - sigma_cap = {gap:.2e}; first denoised changes by {first_denoised_change:.2e}, "
          f"the 32-step flow Euler endpoint by {endpoint_change:.2e} (max abs)")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for source, name, stochastic, results in rows:
        if stochastic:
            continue
        points = [(n, r[0]) for n, r in zip(args.nfe, results) if r is not None]
        if points:
            ax.loglog(*zip(*points), marker="o", linestyle="-" if source == "ours" else ":",
                      linewidth=2.2 if source == "ours" else 1.0, label=f"{source}: {name}")
    ax.set_xlabel("model calls (NFE)")
    ax.set_ylabel("RMSE to exact ODE endpoint")
    ax.set_title(f"Exact RF Gaussian field, shift {SHIFT:g}, scheduler simple")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
