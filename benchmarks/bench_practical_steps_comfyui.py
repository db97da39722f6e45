"""ComfyUI at 20 and 28 steps: every sampler x scheduler, ours (default node settings) vs the flow-sigma reference.

Deterministic samplers: RMSE to the exact ODE endpoint, ours vs the same sampler and scheduler
under ModelSamplingSD3 (bar: <= 1.1 x + 1e-3). Stochastic samplers: mean / std, ours vs the same
sampler in the VE view on the same-named schedule over the flow sigma range mapped to VE (bar:
each within 0.01). Exact RF Gaussian N(0.5, 0.3^2) and two-component mixture, shift 3, cfg 1, a
(1, 4, 8, 8) latent. Prints a markdown table and the worst pair; no assertions (the test
tests/comfyui/test_comfyui_practical_steps.py asserts the bar).

--cfg N (> 1) samples both sides at classifier-free guidance N with a negative prompt whose data is
another field (the CFG pairs of tests/flow_test_support/guided.py: gaussian, two_modes, three_modes);
the exact endpoint is that of oracles.GuidedField(cond, uncond, N). --sampler / --scheduler restrict
the sweep.

    COMFYUI_DIR=/path/to/ComfyUI python benchmarks/bench_practical_steps_comfyui.py [--repo PATH] [--failures-only]
    COMFYUI_DIR=/path/to/ComfyUI python benchmarks/bench_practical_steps_comfyui.py --cfg 5 --field two_modes
    COMFYUI_DIR=/path/to/ComfyUI python benchmarks/bench_practical_steps_comfyui.py --align-your-steps

--repo loads another checkout of this repository as the custom node (for a before/after figure).
"""
import argparse
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "tests"),
                 os.path.join(os.path.dirname(HERE), "tests", "comfyui")]   # the core, tests' support, ComfyUI test helpers


def comfyui_practical_steps(repo=None, fields=None, steps=None, on_row=None, cfg=1.0, samplers=None, schedulers=None):
    """Rows of the practical-steps comparison in the ComfyUI at COMFYUI_DIR (see the module docstring)."""
    from flow_test_support.comfyui import import_comfyui
    import_comfyui()
    import comfy_practical_steps as practical
    import comfy_support as support
    package = support.load_repo_as_custom_node(*(() if repo is None else (os.path.abspath(repo),)))
    import comfy.samplers   # KSampler silently swaps an unknown name for its first entry: refuse it here
    for option, given, known in (("--sampler", samplers, comfy.samplers.KSampler.SAMPLERS),
                                 ("--scheduler", schedulers, comfy.samplers.KSampler.SCHEDULERS)):
        unknown = [name for name in given or () if name not in known]
        if unknown:
            raise ValueError(f"{option} {unknown[0]!r} is not one ComfyUI lists (choose from {', '.join(known)})")
    kinds, rows = {}, []
    for field in fields or practical.practical_fields(cfg):
        for count in steps or practical.STEPS:
            rows += practical.compare(package, field, count, samplers, schedulers, kinds=kinds, on_row=on_row, cfg=cfg)
    return rows


def align_your_steps_rows(steps=10):
    """Fixed eps-SDXL sigmas (AlignYourStepsScheduler, SDXL) with our node in both views: mean, std, RMSE."""
    from flow_test_support.comfyui import import_comfyui
    import_comfyui()
    import comfy_practical_steps as practical
    import comfy_support as support
    import torch
    from comfy_extras.nodes_align_your_steps import AlignYourStepsScheduler
    package = support.load_repo_as_custom_node()
    field = practical.FIELDS["gaussian"]
    result = AlignYourStepsScheduler().get_sigmas("SDXL", steps, 1.0)
    sigmas = result[0] if isinstance(result, tuple) else result.result[0]  # V1 tuple or V3 NodeOutput
    noise = practical._noise(shape=(1, 4, 32, 32))
    exact = field.endpoint(noise.double())
    rows = []
    for view in ("ve", "flow"):
        model = package.NODE_CLASS_MAPPINGS["ModelSamplingFlowSDXL"]().patch(
            support.analytic_sdxl(field), practical.SHIFT, "continuous", "static", view)[0]
        for sampler in ("euler", "dpmpp_2m", "euler_ancestral"):
            out = practical.run_with_sigmas(model, sampler, sigmas, noise).double() * 0.13025
            rows.append((view, sampler, float(out.mean()), float(out.std()),
                         float((out - exact).pow(2).mean().sqrt())))
    return [float(s) for s in sigmas], rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", help="checkout of this repository to load as the custom node")
    parser.add_argument("--failures-only", action="store_true", help="print only rows that miss the bar")
    parser.add_argument("--field", action="append", choices=("gaussian", "mixture", "two_modes", "three_modes"))
    parser.add_argument("--steps", action="append", type=int)
    parser.add_argument("--cfg", type=float, default=1.0, help="classifier-free guidance scale (default 1)")
    parser.add_argument("--sampler", action="append", help="only these samplers (default: every one ComfyUI lists)")
    parser.add_argument("--scheduler", action="append", help="only these schedulers (default: every one)")
    parser.add_argument("--align-your-steps", action="store_true",
                        help="print only AlignYourStepsScheduler (SDXL, 10 steps) in both views")
    args = parser.parse_args()
    if not math.isfinite(args.cfg) or args.cfg < 1:      # nan / inf would reach GuidedField unnamed
        parser.error(f"--cfg must be a finite number >= 1, got {args.cfg}")
    if not os.environ.get("COMFYUI_DIR"):
        sys.exit("set COMFYUI_DIR to a ComfyUI checkout")
    import comfy_practical_steps as practical
    import torch
    torch.set_num_threads(1)
    names = practical.practical_fields(args.cfg)
    unknown = [name for name in args.field or () if name not in names]
    if unknown:
        parser.error(f"--field {unknown[0]!r} is not a field at cfg {args.cfg:g} (choose from {', '.join(names)})")
    if args.align_your_steps:
        sigmas, rows = align_your_steps_rows()
        print("AlignYourStepsScheduler SDXL, 10 steps: sigmas " + ", ".join(f"{s:.3f}" for s in sigmas))
        print("exact RF Gaussian N(0.5, 0.3^2), shift 3, latent 1x4x32x32, seed 1, SamplerCustom path\n")
        print("| view | sampler | mean | std | RMSE to exact endpoint |")
        print("|---|---|---|---|---|")
        for view, sampler, mean, std, rmse in rows:
            print(f"| {view} | {sampler} | {mean:.4f} | {std:.4f} | {rmse:.4f} |")
        return

    if args.cfg != 1:
        from flow_test_support.comfyui import import_comfyui
        import_comfyui()
        import comfyui_version
        print(f"ComfyUI {comfyui_version.__version__}, cfg {args.cfg:g}, shift {practical.SHIFT:g}, "
              f"latent {'x'.join(map(str, practical.SHAPE))}, seed {practical.SEED}\n")
    print("| field | steps | sampler | scheduler | kind | ours | reference | bar |")
    print("|---|---|---|---|---|---|---|---|")

    def show(row):
        if not args.failures_only or not row.get("passes", False):
            print(practical.format_row(row), flush=True)

    rows = comfyui_practical_steps(args.repo, args.field, args.steps, on_row=show, cfg=args.cfg,
                                   samplers=args.sampler, schedulers=args.scheduler)
    judged = [row for row in rows if "refused" not in row and not row["excluded"]]
    failing = [row for row in judged if not row["passes"]]
    print(f"\n{len(judged) - len(failing)} of {len(judged)} pairs meet the bar "
          f"({sum(1 for row in rows if row['excluded'])} excluded, {sum(1 for row in rows if 'refused' in row)} refused)")
    if args.cfg != 1:
        unguided = [row for row in rows if row["negative_rows"] == 0]
        print(f"negative-prompt rows answered by the uncond field: {sum(row['negative_rows'] for row in rows)}; "
              f"pairs with none: {len(unguided)}")
    for kind in ("deterministic", "stochastic"):
        of_kind = [row for row in judged if row["kind"] == kind]
        if of_kind:
            print(f"worst {kind}: {practical.format_row(max(of_kind, key=practical.badness))}")


if __name__ == "__main__":
    main()
