"""Overhead of the ComfyUI adapter: flow Euler + Model Sampling Flow vs ComfyUI euler + ModelSamplingSD3.

Both run through comfy.sample.sample on the same real (tiny, random-weight) comfy.model_base.SDXL
with the same noise, steps and cfg, interleaved in one process so machine load hits both alike;
the ratio of the best times is printed (target <= 1.02). No assertion: timings are for reading.

    COMFYUI_DIR=/path/to/ComfyUI python benchmarks/comfyui_overhead.py [--steps 20] [--repeats 7]
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "tests"),
                 os.path.join(os.path.dirname(HERE), "tests", "comfyui")]   # the core, tests' support, ComfyUI test helpers


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--size", type=int, default=32, help="latent height and width")
    parser.add_argument("--cfg", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 = least noisy)")
    args = parser.parse_args()
    if not os.environ.get("COMFYUI_DIR"):
        sys.exit("set COMFYUI_DIR to a ComfyUI checkout")

    from flow_test_support.comfyui import import_comfyui
    import_comfyui()
    import comfy_support as support
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    package = support.load_repo_as_custom_node()
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3

    node = package.NODE_CLASS_MAPPINGS["ModelSamplingFlowSDXL"]()
    shape = (1, 4, args.size, args.size)
    run(support, node, ModelSamplingSD3, support.tiny_sdxl(), shape, args.steps, args.repeats, args.cfg,
        f"tiny real SDXL UNet: {args.steps} steps, latent {shape}, cfg {args.cfg}, {args.repeats} interleaved "
        f"repeats, {args.threads} thread(s)")
    # With the UNet replaced by the exact-velocity stand-in (almost free), what is left is ComfyUI's
    # per-step machinery plus the sampler and adapter code: the adapter's own cost shows directly.
    run(support, node, ModelSamplingSD3, support.analytic_sdxl(), shape, 200, args.repeats, 1.0,
        "UNet replaced by the exact-velocity stand-in: 200 steps, cfg 1 (ms per step = seconds * 5)")


def run(support, node, ModelSamplingSD3, base, shape, steps, repeats, cfg, title):
    cases = {
        "ComfyUI euler + ModelSamplingSD3": (ModelSamplingSD3().patch(base, 3.0)[0], "euler"),
        "flow_euler + Model Sampling Flow (VE view, default)":
            (node.patch(base, 3.0, "continuous", "static", "ve")[0], "flow_euler"),
        "flow_euler + Model Sampling Flow (native view)":
            (node.patch(base, 3.0, "continuous", "static", "flow")[0], "flow_euler"),
    }
    times = {name: [] for name in cases}
    for name, (model, sampler) in cases.items():  # warm-up: model load, first-call caches
        support.sample(model, sampler, "simple", steps=2, shape=shape, cfg=cfg)
    for _ in range(repeats):
        for name, (model, sampler) in cases.items():
            start = time.perf_counter()
            support.sample(model, sampler, "simple", steps=steps, seed=1, shape=shape, cfg=cfg)
            times[name].append(time.perf_counter() - start)
    reference_name = "ComfyUI euler + ModelSamplingSD3"
    reference = times[reference_name]
    print(title)
    print(f"  {'':52s} {'best':>8s} {'median':>8s}  ratio of best  median of paired ratios")
    for name, values in times.items():
        paired = statistics.median(v / r for v, r in zip(values, reference))
        print(f"  {name:52s} {min(values):7.3f}s {statistics.median(values):7.3f}s  "
              f"{min(values) / min(reference):13.3f}  {paired:.3f}")


if __name__ == "__main__":
    main()
