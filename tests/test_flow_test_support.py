"""The host-test toolkit's stand-in finder (tests/flow_test_support/standins.py), host-free."""
import importlib
import sys

import pytest

from flow_test_support import bar, standins


def test_a_stood_in_package_answers_every_submodule_and_name():
    standins.install("flow_standin_probe", always=True)
    from flow_standin_probe.ops import roi_align                        # noqa: F401  (ComfyUI v0.33.0's import)
    import flow_standin_probe.transforms.functional as functional
    import flow_standin_probe
    assert standins.is_stand_in("flow_standin_probe.ops") and standins.is_stand_in(functional)
    assert flow_standin_probe.__version__ == standins.VERSION
    assert functional.InterpolationMode.BICUBIC.value == "bicubic"
    instance = flow_standin_probe.models.ResNet(1, depth=2)             # capitalised names are inert classes
    assert instance() is None and isinstance(instance, flow_standin_probe.models.ResNet)

    class Subclass(flow_standin_probe.nn.Module):                        # hosts subclass them at import
        pass
    assert Subclass.Anything.__name__ == "Anything"


def test_a_real_package_is_left_alone_and_one_finder_serves_all():
    import json
    assert "json" not in standins.install("json")
    assert importlib.import_module("json") is json and not standins.is_stand_in("json")
    standins.install("flow_standin_probe_two", always=True)
    standins.install("flow_standin_probe_three", always=True)
    assert len([f for f in sys.meta_path if isinstance(f, standins.StandInFinder)]) == 1


def test_a_missing_package_is_stood_in_only_when_its_import_fails():
    roots = standins.install("flow_no_such_package_here")
    assert "flow_no_such_package_here" in roots
    assert standins.is_stand_in(importlib.import_module("flow_no_such_package_here.sub"))


@pytest.mark.parametrize("mean, std, expected", [(0.5, 0.3, True), (0.509, 0.319, True), (0.511, 0.3, False),
                                                 (0.5, 0.321, False)])
def test_the_acceptance_bar(mean, std, expected):
    assert bar.within(mean, std) is expected
