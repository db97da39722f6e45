"""Import ComfyUI on CPU from a checkout (its own documented recipe), for pytest and the benchmarks.

No pytest here: a missing checkout raises ComfyUIUnavailable with the reason, which the `comfyui`
fixture (tests/conftest.py) turns into a skip and a benchmark prints.
"""
import os
import sys

from . import standins


class ComfyUIUnavailable(RuntimeError):
    """COMFYUI_DIR is unset or holds no ComfyUI; the message says which."""


def import_comfyui(comfy_dir=None):
    """The `comfy` package of the ComfyUI at `comfy_dir` (default: COMFYUI_DIR), imported with --cpu.

    One ComfyUI per process: a second call returns the one already imported. Raises
    ComfyUIUnavailable when the folder is unset or is not a ComfyUI checkout.
    """
    comfy_dir = comfy_dir or os.environ.get("COMFYUI_DIR")
    if not comfy_dir:
        raise ComfyUIUnavailable("COMFYUI_DIR is not set: ComfyUI host tests need a ComfyUI checkout")
    if not os.path.isfile(os.path.join(comfy_dir, "comfy", "model_sampling.py")):
        raise ComfyUIUnavailable(f"COMFYUI_DIR={comfy_dir!r} does not hold ComfyUI (no comfy/model_sampling.py)")
    if "comfy.options" not in sys.modules:
        # no wheel of either loads against CPU torch 2.13; nothing on the SDXL path calls them
        standins.install("torchvision", "torchaudio")
        sys.path.insert(0, os.path.abspath(comfy_dir))
        saved_argv = sys.argv
        sys.argv = [saved_argv[0], "--cpu"]
        try:
            import comfy.options
            comfy.options.enable_args_parsing()
            import comfy.model_sampling  # noqa: F401
            import comfy.samplers  # noqa: F401
        finally:
            sys.argv = saved_argv
    import comfy
    return comfy
