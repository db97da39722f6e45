"""Shared fixtures and the host markers. Host fixtures skip with the reason when the host is not configured.

Every test is marked with the host it needs (pyproject.toml registers the markers), from its folder
(tests/comfyui, tests/hosts/<host>) or from the host fixture it uses, plus `host` for any of them:
    pytest -m "not host"          the host-free loop (seconds)
    pytest -m comfyui             ComfyUI tests, against COMFYUI_DIR (one ComfyUI per process)
    pytest -m a1111 / -m reforge  the webui host tests (A1111_DIR + A1111_PYTHON, REFORGE_DIR + REFORGE_PYTHON)
"""
import os
import sys

import pytest

from flow_test_support import standins

# marker -> test folders (relative to tests/) and fixtures that need that host; adding a host is one entry
HOST_MARKERS = {
    "comfyui": (("comfyui",), ("comfyui",)),
    "a1111": (("hosts/a1111",), ()),
    "reforge": (("hosts/reforge",), ()),
    "forge": (("hosts/forge",), ()),
    "webui_server": (("hosts/webui_server",), ()),
}
TESTS = os.path.dirname(os.path.abspath(__file__))


def _folder(item):
    return os.path.relpath(os.path.dirname(os.path.abspath(str(item.fspath))), TESTS).replace(os.sep, "/")


def pytest_collection_modifyitems(config, items):
    for item in items:
        folder = _folder(item)
        fixtures = set(getattr(item, "fixturenames", ()))
        for marker, (folders, fixture_names) in HOST_MARKERS.items():
            if folder in folders or fixtures & set(fixture_names) or item.get_closest_marker(marker):
                item.add_marker(marker)
                item.add_marker("host")


def import_comfyui():
    """Import ComfyUI from COMFYUI_DIR on CPU (its own documented recipe), or skip with the reason."""
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if not comfy_dir:
        pytest.skip("COMFYUI_DIR is not set: ComfyUI host tests need a ComfyUI checkout")
    if not os.path.isfile(os.path.join(comfy_dir, "comfy", "model_sampling.py")):
        pytest.skip(f"COMFYUI_DIR={comfy_dir!r} does not hold ComfyUI (no comfy/model_sampling.py)")
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


@pytest.fixture(scope="session")
def comfyui():
    return import_comfyui()
