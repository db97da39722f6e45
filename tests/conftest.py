"""Shared fixtures and the host markers. Host fixtures skip with the reason when the host is not configured.

Every test is marked with the host it needs (pyproject.toml registers the markers), from its folder
(tests/comfyui, tests/hosts/<host>) or from the host fixture it uses, plus `host` for any of them:
    pytest -m "not host"          the host-free loop (seconds)
    pytest -m comfyui             ComfyUI tests, against COMFYUI_DIR (one ComfyUI per process)
    pytest -m a1111 / -m reforge  the webui host tests (A1111_DIR + A1111_PYTHON, REFORGE_DIR + REFORGE_PYTHON)
"""
import os

import pytest

from flow_test_support import comfyui as comfyui_host

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
    """Import ComfyUI from COMFYUI_DIR on CPU (flow_test_support.comfyui), or skip with the reason."""
    try:
        return comfyui_host.import_comfyui()
    except comfyui_host.ComfyUIUnavailable as reason:
        pytest.skip(str(reason))


@pytest.fixture(scope="session")
def comfyui():
    return import_comfyui()
