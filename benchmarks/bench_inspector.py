"""Memory and CPU time of the checkpoint inspector on crafted worst-case safetensors headers.

    python benchmarks/bench_inspector.py [--mb 99] [--out docs/bench_inspector.txt]

Each case is a file whose header is about --mb MB (the format allows 100 MB), written to a
temporary folder; a fresh child process (standard library only, torch never imported) runs
`inspect_checkpoint` on it and reports its CPU time (time.process_time, so other load on the
machine does not count) and its peak resident memory above the same child's before reading.
Every case is a file safetensors itself accepts (checked with safe_open when it is installed).
The stated bound is checked for every case, and the cached Auto call on a real-size SDXL header
is timed in this process.
"""
import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from model_sampling_flow.checkpoint import inspect_cached, inspect_checkpoint  # noqa: E402

# the bound README states; checked below for every case
BOUND_MEMORY_FACTOR = 8            # peak memory <= 8 x header bytes + 50 MB
BOUND_MEMORY_EXTRA_MB = 50
BOUND_CPU_PER_10MB = 2.0           # CPU seconds per 10 MB of header

CHILD = r"""
import json, sys, time
sys.modules["torch"] = sys.modules["numpy"] = None      # importing either now fails: stdlib only
sys.path.insert(0, sys.argv[1])
from model_sampling_flow.checkpoint import inspect_checkpoint

def high_water_kb():
    # VmHWM: this process's peak RSS since exec (ru_maxrss would include the parent's before exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

before = high_water_kb()
start = time.process_time()
report = inspect_checkpoint(sys.argv[2])
cpu = time.process_time() - start
peak = high_water_kb()
print(json.dumps({"cpu": cpu, "peak_kb": peak - before, "tensors": report.facts.tensor_count,
                  "metadata": report.facts.metadata_count, "kind": report.facts.kind,
                  "torch": sys.modules["torch"] is not None}))
"""


def write(path, header_text, data_bytes=0):
    raw = header_text.encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)))
        handle.write(raw)
        handle.write(b"\0" * data_bytes)
    return len(raw)


def entries(budget, make, separator=","):
    parts, size, index = [], 24, 0
    while size < budget:
        part = make(index)
        parts.append(part)
        size += len(part.encode("utf-8")) + len(separator)
        index += 1
    return separator.join(parts)


def real_sdxl_header():
    """A header shaped like a real SDXL checkpoint's: ~2,500 tensors, kohya metadata (~250 KB)."""
    tensors, offset = {}, 0
    for block in range(2515):
        name = f"model.diffusion_model.output_blocks.{block // 40}.{block % 40}.transformer_blocks.0.attn1.to_q.weight"
        tensors[name] = {"dtype": "F16", "shape": [64, 64], "data_offsets": [offset, offset + 8192]}
        offset += 8192
    metadata = {"modelspec.prediction_type": "epsilon", "modelspec.title": "ChenkinNoob-XL-v0.3-Rectified-Flow",
                "ss_training_comment": "rectified flow conversion " * 20}
    return json.dumps({"__metadata__": metadata, **tensors}, separators=(",", ":")), offset


def cases(budget):
    yield ("zero-size tensors, compact (as safetensors writes)",
           "{" + entries(budget, lambda i: '"%x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}' % i) + "}", 0)
    yield ("zero-size tensors, spaced and with an extra field (json module path)",
           "{" + entries(budget, lambda i: '"%x": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0], "x": 0}' % i,
                         ", ") + "}", 0)
    yield ("tiny metadata entries",
           '{"__metadata__":{' + entries(budget, lambda i: '"%x":""' % i) + "}}", 0)
    yield ("tiny metadata entries with escapes",
           '{"__metadata__":{' + entries(budget, lambda i: '"\\u00%02x%x":"\\n"' % (0x41 + i % 26, i)) + "}}", 0)
    yield ("one kept metadata value, ASCII",
           json.dumps({"__metadata__": {"ss_training_comment": "a" * (budget - 64)}}), 0)
    yield ("one kept metadata value, one 4-byte character (widest Python string)",
           json.dumps({"__metadata__": {"ss_training_comment": "a" * (budget - 64) + "\U0001F600"}},
                      ensure_ascii=False), 0)
    yield ("the same with escapes (json module path)",
           json.dumps({"__metadata__": {"ss_training_comment": "a\n" * ((budget - 64) // 3) + "\U0001F600"}},
                      ensure_ascii=False), 0)


def run_case(path):
    out = subprocess.run([sys.executable, "-c", CHILD, ROOT, path], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    if out.returncode:
        raise SystemExit(f"the inspector failed on a case:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def safe_open_accepts(path):
    try:
        from safetensors import safe_open
    except ImportError:
        return None
    try:
        with safe_open(path, framework="numpy"):
            return True
    except Exception:
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=99.0, help="header size of the crafted cases in MB")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    budget = int(args.mb * 1e6)
    lines = [f"Checkpoint inspector on crafted headers of {args.mb:g} MB (safetensors' limit is 100 MB)",
             f"python {platform.python_version()}, {platform.machine()}; CPU = process time of a fresh child; "
             "memory = its peak RSS (VmHWM) above that before reading",
             f"bound: peak memory <= {BOUND_MEMORY_FACTOR} x header bytes + {BOUND_MEMORY_EXTRA_MB} MB; "
             f"CPU <= {BOUND_CPU_PER_10MB:g} s per 10 MB of header", "",
             f"{'case':72s} {'header MB':>9s} {'CPU s':>6s} {'s/10MB':>6s} {'peak MB':>7s} {'x hdr':>5s} "
             f"{'safe_open':>9s} {'bound':>5s}"]
    failures = 0
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "case.safetensors")
        text, data = real_sdxl_header()
        header = write(path, text, data)
        rows = [("real-size SDXL header (2,515 tensors, kohya metadata)", header, run_case(path),
                 safe_open_accepts(path))]
        start = time.perf_counter()
        for _ in range(5):
            inspect_checkpoint(path)
        uncached = (time.perf_counter() - start) / 5
        inspect_cached(path)
        start = time.perf_counter()
        for _ in range(100):
            inspect_cached(path)
        cached = (time.perf_counter() - start) / 100
        for name, text, data in cases(budget):
            header = write(path, text, data)
            del text
            rows.append((name, header, run_case(path), safe_open_accepts(path)))
        for name, header, result, accepted in rows:
            header_mb, peak_mb = header / 1e6, result["peak_kb"] / 1024
            per_10mb = result["cpu"] / max(header_mb / 10, 1e-9)
            ok = (peak_mb <= BOUND_MEMORY_FACTOR * header_mb + BOUND_MEMORY_EXTRA_MB
                  and (result["cpu"] <= BOUND_CPU_PER_10MB * header_mb / 10 or result["cpu"] < 0.1)
                  and not result["torch"])
            failures += not ok
            lines.append(f"{name:72s} {header_mb:9.2f} {result['cpu']:6.2f} {per_10mb:6.2f} {peak_mb:7.0f} "
                         f"{peak_mb / header_mb:5.1f} {'yes' if accepted else '-' if accepted is None else 'NO':>9s} "
                         f"{'ok' if ok else 'OVER':>5s}")
    lines += ["", f"Auto on the real-size header: {uncached * 1000:.1f} ms per inspection, "
                  f"{cached * 1e6:.0f} us per cached call (the file unchanged)",
              "every child ran with torch and numpy made unimportable"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
