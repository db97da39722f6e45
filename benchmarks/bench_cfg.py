"""Our deterministic samplers under classifier-free guidance, at the settings people use.

    python benchmarks/bench_cfg.py --text docs/bench_cfg.txt

bench_samplers.py measures at CFG 1, where the model's field is one data distribution. At CFG 3-6
the sampler follows uncond + scale * (cond - uncond), which is not the velocity of any data
distribution (sharper, and pushed past the cond modes). Fields: model_sampling_flow.oracles.GuidedField
of a positive-prompt field and a negative-prompt field (a Gaussian pair, a two-mode pair whose cond
favours one mode, a three-mode pair); the exact answer is the converged float64 reference solve of
the guided ODE. Every deterministic registry sampler x every scheduler of ours gets the most steps
whose model calls fit each budget (8, 12, 20, 28: steps for the one-call samplers), shifts 3 and 6,
CFG 1, 3, 5 and 7, latents 1x4x32x32 from one seed. Peers are not run here (the ComfyUI harness
of bench_samplers.py feeds one field to cond and uncond alike). Printed per case: each sampler on
the schedule the webuis' Automatic gives it, Flow PC and Flow Euler on `simple`, the best pair of
ours, and per budget how Flow PC on its schedule compares with the best pair (ratio).
"""
import argparse
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__)), os.path.join(ROOT, "tests")]

from bench_samplers import SHAPE, our_pairs  # noqa: E402
from flow_test_support.guided import GUIDED_PAIRS  # noqa: E402
from model_sampling_flow import registry  # noqa: E402
from model_sampling_flow.oracles import GuidedField  # noqa: E402

PAIRS = GUIDED_PAIRS         # (cond, uncond, description) per name
SCALES = (1.0, 3.0, 5.0, 7.0)       # 7: A1111's default CFG
SHIFTS = (3.0, 6.0)
BUDGETS = (8, 12, 20, 28)
RECOMMENDED = ("flow_pc", registry.SAMPLERS_BY_NAME["flow_pc"].scheduler)
# besides each sampler on its own schedule: ComfyUI's everyday `simple` scheduler (shifted time, long last step)
ALSO = (("flow_pc", "simple"), ("flow_euler", "simple"))


def measure(pairs, scales, shifts, budgets, say):
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    for name, (cond, uncond, description) in pairs.items():
        for scale in scales:
            field = GuidedField(cond, uncond, scale)
            exact = field.endpoint(noise.double()).float()
            for shift in shifts:
                results = our_pairs(field, noise, exact, shift, budgets)
                report(name, description, scale, shift, budgets, results, say)


def report(name, description, scale, shift, budgets, results, say):
    say(f"\n{name}, CFG {scale:g}, shift {shift:g}: {description}")
    columns = [(entry.name, entry.scheduler) for entry in registry.SAMPLERS if not entry.stochastic] + list(ALSO)
    say(" NFE | " + " | ".join(f"{sampler + ' + ' + scheduler:>26s}" for sampler, scheduler in columns)
        + " |                   best pair of ours | ratio")
    for k, nfe in enumerate(budgets):
        cells = []
        for pair in columns:
            fit = results[pair][k]
            cells.append(f"{fit[0]:17.2e} ({fit[1]:2d})" + " " * 4 if fit else f"{'-':>26s}")
        fitted = {pair: fits[k] for pair, fits in results.items() if fits[k]}
        best = min(fitted, key=lambda pair: fitted[pair][0])
        ratio = fitted[RECOMMENDED][0] / fitted[best][0]
        say(f"{nfe:4d} | " + " | ".join(cells) +
            f" | {fitted[best][0]:.2e} {best[0] + '+' + best[1]:>24s} | {ratio:5.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--scales", type=float, nargs="+", default=list(SCALES))
    parser.add_argument("--shifts", type=float, nargs="+", default=list(SHIFTS))
    parser.add_argument("--nfe", type=int, nargs="+", default=list(BUDGETS))
    parser.add_argument("--text", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)
    lines = []

    def say(line=""):
        print(line, flush=True)
        lines.append(line)

    say("RMSE to the guided ODE's endpoint (float64 reference solve) against model calls; latents "
        f"{'x'.join(map(str, SHAPE))}, one seed. Columns: each deterministic Flow sampler on the schedule the")
    say("webuis' Automatic gives it (steps in brackets), Flow PC and Flow Euler on `simple`; the best of every Flow")
    say("sampler x every schedule of ours;")
    say(f"ratio = {RECOMMENDED[0]} + {RECOMMENDED[1]} / that best pair.")
    measure({name: PAIRS[name] for name in args.fields}, args.scales, args.shifts, args.nfe, say)
    if args.text:
        with open(args.text, "w") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
