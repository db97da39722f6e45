"""Practical step counts: every sampler x schedule type a host lists, at 20 and 28 steps,
flow sampling On (shift 3, cfg 1), on the exact RF Gaussian N(0.5, 0.3^2) and two-component mixture
fields (model_sampling_flow/oracles.py), inside the real host. With --cfg C > 1 every host runs at
CFG C (FLOW_PRACTICAL_CFG): the negative prompt's rows get the uncond field of a guided pair
(tests/flow_test_support/guided.py), the host's own CFG combines them, and the references call the
exact guided field (oracles.GuidedField).

Prints, per available host, one line per (field, steps, sampler, schedule):
  deterministic samplers: RMSE to the exact ODE endpoint, ours vs the same sampler on the same-named
    schedule in native flow coordinates (what ComfyUI's ModelSamplingSD3 / reForge's AMS give it);
    bar: ours <= 1.1 x reference + 1e-3;
  stochastic samplers: mean / std, ours vs the same sampler in the VE view on the same-named schedule
    computed over the flow sigma range and mapped to VE (same seeds); bar: both within 0.01;
  A1111's timestep samplers (DDIM, DDIM CFG++, PLMS, UniPC) above CFG 1: RMSE to the exact ODE
    endpoint, ours vs the same A1111 function on the pass's DDPM table with the exact guided noise;
    bar as for deterministic samplers;
  or the refusal. Then the counts, the worst pair per host and the worst deterministic / stochastic.

    A1111_DIR=... A1111_PYTHON=... [REFORGE_DIR=... REFORGE_PYTHON=... FORGE_DIR=... FORGE_PYTHON=...]
        python benchmarks/bench_practical_steps.py [--extension PATH] [--hosts NAME ...] [--cfg C]
        [--save OUT.json] [--load HOST=IN.json ...]

A host is one entry in HOSTS: its environment-variable prefix and a function returning {key: row}.
--extension measures another checkout of this repository (e.g. the code before a change) with this checkout's runner.
"""
import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(ROOT, "tests")] + [os.path.join(ROOT, "tests", "hosts", host) for host in ("a1111", "reforge", "forge")]


def a1111_rows(extension):
    import a1111_host
    if extension:
        a1111_host.ROOT = extension
    base = tempfile.mkdtemp(prefix="bench-practical-a1111-")
    copy = a1111_host.make_host_copy(os.environ["A1111_DIR"], os.path.join(base, "webui"), with_extension=True)
    payload = a1111_host.run_suite(copy, os.environ["A1111_PYTHON"], "practical", base, timeout=7200)
    return payload["results"]["rows"]


def reforge_rows(extension):
    import reforge_harness
    if extension:
        reforge_harness.REPO = extension
    reforge_harness.SUITES = ()     # only this suite, not the test tier's
    return reforge_harness.run_suite("practical")["rows"]


def forge_rows(extension):
    import forge_harness
    if extension:
        forge_harness.REPO = extension
    os.environ["FLOW_PRACTICAL_FULL"] = "1"         # every listed sampler x schedule type, not the tier's subset
    return forge_harness.run_suite("practical")["rows"]


def host_rows(prefix, function, extension):
    """`function`'s rows, or the reason the host is absent (`prefix`_DIR or `prefix`_PYTHON not set)."""
    if not os.environ.get(f"{prefix}_DIR") or not os.environ.get(f"{prefix}_PYTHON"):
        return f"{prefix}_DIR / {prefix}_PYTHON not set"
    return function(extension)


HOSTS = {"A1111 v1.10.1": ("A1111", a1111_rows), "reForge": ("REFORGE", reforge_rows),
         "Forge dfdcbab6": ("FORGE", forge_rows)}


def verdict(row):
    """(text, excess over the bar; > 0 misses it, None when refused or not judged)."""
    if row.get("error"):
        return "refused: " + row["error"].split("\n")[0][:150], None
    if (row.get("kind") == "timestep" and "rmse" not in row) or "ref_mean" not in row:
        return f"mean {row.get('mean', float('nan')):.4f} std {row.get('std', float('nan')):.4f} (not judged)", None
    if row["kind"] in ("deterministic", "timestep"):
        excess = row["rmse"] - (1.1 * row["ref_rmse"] + 1e-3)
        reference = "native flow" if row["kind"] == "deterministic" else "same sampler, exact eps"
        return f"RMSE {row['rmse']:.4f}  {reference} {row['ref_rmse']:.4f}", excess
    excess = max(abs(row["mean"] - row["ref_mean"]), abs(row["std"] - row["ref_std"])) - 0.01
    return (f"mean/std {row['mean']:.4f}/{row['std']:.4f}  VE on flow range "
            f"{row['ref_mean']:.4f}/{row['ref_std']:.4f}"), excess


def report(name, rows):
    print(f"== {name} ==")
    if isinstance(rows, str):
        print(f"skipped: {rows}\n")
        return None
    worst, misses, refused, unjudged = None, 0, 0, 0
    worst_of = {}           # "deterministic" / "stochastic" -> (key, excess, text)
    negative_missing = []   # rows above CFG 1 whose negative prompt never reached the network
    for key in rows:
        text, excess = verdict(rows[key])
        mark = "" if excess is None or excess <= 0 else "  MISSES THE BAR"
        refused += text.startswith("refused")
        unjudged += text.endswith("(not judged)")
        misses += bool(mark)
        if not rows[key].get("error") and rows[key].get("negative_rows", 1) == 0:
            negative_missing.append(key)
        print(f"{key:<58} {rows[key].get('kind', ''):<13} {text}{mark}")
        if excess is not None and (worst is None or excess > worst[1]):
            worst = (key, excess, text)
        group = "stochastic" if rows[key].get("kind") == "stochastic" else "deterministic"
        if excess is not None and (group not in worst_of or excess > worst_of[group][1]):
            worst_of[group] = (key, excess, text)
    print(f"{len(rows)} pairs, {misses} miss the bar, {refused} refused, {unjudged} not judged")
    if any("negative_rows" in row for row in rows.values()):
        print(f"rows whose negative prompt never reached the network: {len(negative_missing)}"
              + (f" ({', '.join(negative_missing[:5])})" if negative_missing else ""))
        answered = [row["negative_rows"] for row in rows.values() if not row.get("error") and "negative_rows" in row]
        if answered:
            print(f"negative-prompt rows the network answered per sampled pass: {min(answered)} to {max(answered)}")
    if worst:
        print(f"worst pair: {worst[0]}: {worst[2]} (excess over the bar {worst[1]:+.4f})")
    for group, (key, excess, text) in sorted(worst_of.items()):
        print(f"worst {group}: {key}: {text} (excess {excess:+.4f})")
    print()
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extension", help="measure this checkout of the repository instead of this one")
    parser.add_argument("--save", help="write the raw rows (JSON) here")
    parser.add_argument("--load", nargs="*", help="print saved rows instead of measuring (host=path)")
    parser.add_argument("--hosts", nargs="*", help="measure only these hosts (names as printed)")
    parser.add_argument("--cfg", help="classifier-free guidance scale for every host's run (FLOW_PRACTICAL_CFG; "
                                      "default: the variable's value, else 1)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from flow_test_support.practical import CFG_VARIABLE, practical_cfg
    if args.cfg is not None:
        os.environ[CFG_VARIABLE] = args.cfg
    cfg = practical_cfg()       # ValueError naming FLOW_PRACTICAL_CFG for a bad value
    if args.load:
        results = {}
        for item in args.load:
            host, path = item.split("=", 1)
            with open(path) as handle:
                rows = json.load(handle)
            # a --save file holds {host: rows}; take that host's rows (or its only host's)
            if host in rows and isinstance(rows[host], (dict, str)):
                rows = rows[host]
            elif len(rows) == 1 and isinstance(next(iter(rows.values())), dict) \
                    and "kind" not in next(iter(rows.values())):
                rows = next(iter(rows.values()))
            results[host] = rows
    else:
        results = {name: host_rows(prefix, function, args.extension)
                   for name, (prefix, function) in HOSTS.items() if not args.hosts or name in args.hosts}
    if args.save:
        with open(args.save, "w") as handle:
            json.dump(results, handle)
    if cfg == 1:
        print("Practical step counts: flow On, shift 3, cfg 1; Gaussian N(0.5, 0.3^2) and mixture fields.")
    else:
        print(f"Practical step counts: flow On, shift 3, cfg {cfg:g}; the guided pairs of "
              f"tests/flow_test_support/guided.py, exact answer GuidedField.")
    print("Bars: deterministic RMSE <= 1.1 x native flow + 1e-3; stochastic |d mean|, |d std| <= 0.01.\n")
    for name, rows in results.items():
        report(name, rows)


if __name__ == "__main__":
    main()
