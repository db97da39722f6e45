"""The project's host-test toolkit, shared by pytest and by the runner scripts that execute inside
each host's own Python (ComfyUI old and new, A1111, reForge, Forge).

- `standins`: one import finder standing in for packages CPU torch 2.13 cannot load (torchvision
  with every submodule, torchaudio, timm) and for code a host clones at first launch (ldm, sgm).
- `models`: the tiny SDXL UNet configuration and the exact-velocity stand-in network.
- `bar`: the acceptance bar (data distribution and the mean / std tolerances).
- `practical`: the webui practical suite's k-diffusion arguments, row figures and row judgement.
- `suites`: the reForge / Forge harnesses' runner subprocesses and host check.
- `comfyui`: ComfyUI imported on CPU from COMFYUI_DIR (the pytest fixture and the benchmarks).
- `guided`: the CFG field pairs of the CFG tests and benchmarks/bench_cfg.py.

Stdlib only (`models` imports torch), so any host's interpreter can import it with this folder's
parent (tests/) on sys.path.
"""
