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

    python benchmarks/bench_cfg.py --schedules

compares Flow PC with Flow Euler instead on every schedule of ours at equal steps (CFG 3, 5, 7; shifts
3 and 6; 8, 20 and 28 steps; the three pairs): per schedule and step count the largest Flow PC / Flow Euler
RMSE ratio, and the cases where Flow PC is more than 1.5x Flow Euler's error (unless both are below 0.01).
"""
import argparse
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__)), os.path.join(ROOT, "tests")]

from bench_samplers import SHAPE, our_pairs  # noqa: E402
from flow_test_support.guided import GUIDED_PAIRS  # noqa: E402
from model_sampling_flow import registry, schedulers  # noqa: E402
from model_sampling_flow.model_sampling import FlowModelSampling  # noqa: E402
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


SCHEDULE_SCALES = (3.0, 5.0, 7.0)
SCHEDULE_STEPS = (8, 20, 28)
WORSE = 1.5         # Flow PC counted as worse than Flow Euler beyond this ratio ...
BOTH_GOOD = 0.01    # ... unless both RMSEs are below this


def compare_schedules(pairs, scales, shifts, steps_list, say):
    """Flow PC / Flow Euler RMSE ratio on every schedule of ours, equal steps (= equal model calls)."""
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    names = list(schedulers.SCHEDULES_BY_NAME)
    pc, euler = registry.SAMPLERS_BY_NAME["flow_pc"].function, registry.SAMPLERS_BY_NAME["flow_euler"].function
    say("Flow PC against Flow Euler on each schedule, equal steps; cell = the largest Flow PC / Flow Euler RMSE "
        "ratio over the fields and shifts")
    say(f"({', '.join(pairs)}; shifts {', '.join(f'{s:g}' for s in shifts)}), with Flow PC's RMSE there in brackets. "
        f"Worse = Flow PC > {WORSE:g} x Flow Euler and not both < {BOTH_GOOD:g}.")
    worse = []
    for scale in scales:
        ratios = {}
        for name, (cond, uncond, _) in pairs.items():
            field = GuidedField(cond, uncond, scale)
            exact = field.endpoint(noise.double()).float()
            for shift in shifts:
                ms = FlowModelSampling(shift=shift)
                for steps in steps_list:
                    for scheduler in names:
                        sigmas = schedulers.get_sigmas(ms, scheduler, steps)
                        errors = [float(((f(field, noise.clone(), sigmas, disable=True) - exact) ** 2).mean().sqrt())
                                  for f in (pc, euler)]
                        ratio = errors[0] / errors[1]
                        key = (scheduler, steps)
                        if key not in ratios or ratio > ratios[key][0]:
                            ratios[key] = (ratio, errors[0])
                        if errors[0] > WORSE * errors[1] and max(errors) >= BOTH_GOOD:
                            worse.append((scale, name, shift, steps, scheduler, *errors))
        say(f"\nCFG {scale:g}")
        say(f"{'schedule':>14s} | " + " | ".join(f"{steps:>2d} steps        " for steps in steps_list))
        for scheduler in names:
            say(f"{scheduler:>14s} | " + " | ".join(
                f"{ratios[(scheduler, steps)][0]:5.2f} ({ratios[(scheduler, steps)][1]:.2e})" for steps in steps_list))
    for steps_group in (tuple(s for s in steps_list if s < 20), tuple(s for s in steps_list if s >= 20)):
        if not steps_group:
            continue
        cases = [w for w in worse if w[3] in steps_group]
        total = len(scales) * len(pairs) * len(shifts) * len(steps_group) * len(names)
        say(f"\n{'/'.join(map(str, steps_group))} steps: Flow PC worse than Flow Euler in {len(cases)} of {total} cases")
        for scale, name, shift, steps, scheduler, e_pc, e_euler in sorted(cases, key=lambda w: -w[5] / w[6])[:8]:
            say(f"  {name}, CFG {scale:g}, shift {shift:g}, {steps} steps, {scheduler}: Flow PC {e_pc:.3f}, "
                f"Flow Euler {e_euler:.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--scales", type=float, nargs="+", default=None,
                        help=f"CFG scales (default {SCALES}; with --schedules {SCHEDULE_SCALES})")
    parser.add_argument("--shifts", type=float, nargs="+", default=list(SHIFTS))
    parser.add_argument("--nfe", type=int, nargs="+", default=None,
                        help=f"model-call budgets (default {BUDGETS}; with --schedules, steps {SCHEDULE_STEPS})")
    parser.add_argument("--text", default=None, help="also write the report to this file")
    parser.add_argument("--schedules", action="store_true",
                        help="compare Flow PC with Flow Euler on every schedule instead (see the module docstring)")
    args = parser.parse_args(argv)
    lines = []

    def say(line=""):
        print(line, flush=True)
        lines.append(line)

    if args.schedules:
        compare_schedules({name: PAIRS[name] for name in args.fields}, args.scales or SCHEDULE_SCALES, args.shifts,
                          args.nfe or SCHEDULE_STEPS, say)
    else:
        say("RMSE to the guided ODE's endpoint (float64 reference solve) against model calls; latents "
            f"{'x'.join(map(str, SHAPE))}, one seed. Columns: each deterministic Flow sampler on the schedule the")
        say("webuis' Automatic gives it (steps in brackets), Flow PC and Flow Euler on `simple`; the best of every Flow")
        say("sampler x every schedule of ours;")
        say(f"ratio = {RECOMMENDED[0]} + {RECOMMENDED[1]} / that best pair.")
        measure({name: PAIRS[name] for name in args.fields}, args.scales or SCALES, args.shifts, args.nfe or BUDGETS, say)
    if args.text:
        with open(args.text, "w") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
