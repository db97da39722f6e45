"""Shared fixtures. Host fixtures skip with the reason when the host is not configured."""
import importlib.machinery
import os
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


class _StandIn(types.ModuleType):
    """An empty importable module whose attributes are further empty modules.

    ComfyUI's model zoo imports torchvision at module level for other model families; the CPU
    build of torch 2.13 has no matching torchvision wheel, and nothing on the SDXL path uses it.
    """

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        child = make_stand_in(f"{self.__name__}.{name}")
        setattr(self, name, child)
        return child


def make_stand_in(name):
    module = _StandIn(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    module.__path__ = []
    sys.modules[name] = module
    return module


def import_comfyui():
    """Import ComfyUI from COMFYUI_DIR on CPU (its own documented recipe), or skip with the reason."""
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if not comfy_dir:
        pytest.skip("COMFYUI_DIR is not set: ComfyUI host tests need a ComfyUI checkout")
    if not os.path.isfile(os.path.join(comfy_dir, "comfy", "model_sampling.py")):
        pytest.skip(f"COMFYUI_DIR={comfy_dir!r} does not hold ComfyUI (no comfy/model_sampling.py)")
    if "comfy.options" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except Exception:
            for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
                del sys.modules[name]
            make_stand_in("torchvision")
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


@pytest.fixture(scope="session")
def comfyui():
    return import_comfyui()
