"""A1111 1.10 with the extension: Settings 'sigma churn' with Euler / Heun / DPM2 and Flow sampling On
(these run on the flow-view denoiser). Runs inside A1111's venv in a copy made by a1111_host.make_host_copy.

Usage: A1111_DIR=<copy> A1111_PYTHON a1111_churn_probe.py OUT.json
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import a1111_runner  # noqa: E402


def main():
    out = os.path.abspath(sys.argv[1])     # the webui's start rewrites sys.argv
    run = a1111_runner.Run()
    from modules import shared
    from webui_extension import sampler_views
    rows = {}
    for churn in (0.0, 10.0):
        shared.opts.s_churn = churn
        for sampler in ("Euler", "Heun", "DPM2"):
            rows[f"{sampler} churn={churn}"] = a1111_runner.measure(run, sampler, "Automatic", 20)
            real = sampler_views.view_for_sampler
            sampler_views.view_for_sampler = lambda label, img2img=False: sampler_views.VE   # control
            try:
                rows[f"{sampler} churn={churn} ve_view"] = a1111_runner.measure(run, sampler, "Automatic", 20)
            finally:
                sampler_views.view_for_sampler = real
    with open(out, "w") as handle:
        json.dump(rows, handle, indent=1, default=str)
    os._exit(0)


if __name__ == "__main__":
    main()
