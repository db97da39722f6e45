"""Forge (dfdcbab6) with the extension: Settings 'sigma churn' with Euler / Heun / DPM2 and Flow sampling On
(without churn these integrate in flow coordinates). Runs inside Forge's venv in the copy made by
forge_harness.host_copy.

Usage: FORGE_DIR=<copy> FORGE_DATA=<copy> FORGE_PYTHON forge_churn_probe.py OUT.json
Writes {"<sampler> churn=<c>": {"mean", "std", "finite", "error", "infotext", "sigma_churn"}}.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import forge_runner  # noqa: E402

SIZE = 256          # 32 x 32 latent: 4096 elements, standard error of the mean ~0.005


def main():
    out = os.path.abspath(sys.argv[1])     # Forge's start rewrites sys.argv and the working directory
    session, _ = forge_runner.setup()
    from modules import shared
    rows = {}
    for churn in (0.0, 10.0):
        shared.opts.s_churn = churn
        for sampler in ("Euler", "Heun", "DPM2"):
            p = session.txt2img(sampler, "Automatic", steps=20, size=SIZE)
            result, error, infotext, _ = forge_runner.attempt(p)
            rows[f"{sampler} churn={churn}"] = dict(result or {}, error=error, infotext=infotext,
                                                   sigma_churn=p.extra_generation_params.get("Sigma churn"))
    with open(out, "w") as handle:
        json.dump(rows, handle, indent=1, default=str)
    os._exit(0)


if __name__ == "__main__":
    main()
