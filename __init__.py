"""ComfyUI entry point: ComfyUI imports this folder (custom_nodes/<folder>) as a package.

With ComfyUI present it exports the classic NODE_CLASS_MAPPINGS / NODE_DISPLAY_NAME_MAPPINGS
from comfy_nodes (and registers the flow samplers and schedulers in ComfyUI's dropdowns).
Without ComfyUI (pytest, the webui hosts, a plain import) it imports nothing of ComfyUI and
exports empty mappings.
"""
import importlib.util
import sys


def _comfyui_present():
    if "comfy.samplers" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("comfy.samplers") is not None
    except (ImportError, ValueError):  # no `comfy` package, or a stand-in without a spec
        return False


if __package__ and _comfyui_present():
    from .comfy_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:
    NODE_CLASS_MAPPINGS = {}
    NODE_DISPLAY_NAME_MAPPINGS = {}

WEB_DIRECTORY = None
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
