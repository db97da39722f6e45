"""The host-test toolkit, host-free: its stand-in finder (tests/flow_test_support/standins.py), the
acceptance bar, the CFG network and the practical suites' CFG setting."""
import importlib
import sys

import pytest
import torch

from flow_test_support import bar, models, practical, standins
from model_sampling_flow import oracles


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


def test_the_guided_network_answers_negative_prompt_rows_with_uncond():
    cond, uncond = oracles.gaussian_field(0.5, 0.3), oracles.gaussian_field(0.0, 0.6)
    net = models.GuidedVelocityNetwork(cond, uncond)
    x, t = torch.randn(2, 4, 2, 2), torch.full((2,), 500.0)
    ctx = torch.stack([torch.ones(3, 8), torch.zeros(3, 8)])
    out = net(x, t, context=ctx)
    s = torch.full((2,), 0.5, dtype=torch.float64)
    assert torch.allclose(out[0], cond.velocity(x.double(), s)[0].float())
    assert torch.allclose(out[1], uncond.velocity(x.double(), s)[1].float())
    assert net.negative_rows == 1 and net.calls == 1
    assert torch.equal(net(x, t), cond.velocity(x.double(), s).float())
    with pytest.raises(ValueError, match="context has 3 rows"):
        net(x, t, context=torch.zeros(3, 3, 8))


def test_the_practical_cfg_and_its_fields(monkeypatch):
    monkeypatch.delenv(practical.CFG_VARIABLE, raising=False)
    assert practical.practical_cfg() == 1.0
    for bad in ("0.5", "nan", "inf", "x", ""):
        monkeypatch.setenv(practical.CFG_VARIABLE, bad)
        with pytest.raises(ValueError, match="FLOW_PRACTICAL_CFG"):
            practical.practical_cfg()
    monkeypatch.setenv(practical.CFG_VARIABLE, "5")
    assert practical.practical_cfg() == 5.0
    f = practical.practical_fields(5.0)
    assert set(f) == {"gaussian", "two_modes", "three_modes"}
    assert isinstance(f["two_modes"][2], oracles.GuidedField) and f["two_modes"][2].scale == 5.0
    f1 = practical.practical_fields(1.0)
    assert set(f1) == {"gaussian", "mixture"} and f1["mixture"][1] is None
    assert set(practical.default_field_names(1.0)) <= set(f1) and set(practical.default_field_names(5.0)) <= set(f)
    assert practical.default_field_names(5.0) == ["gaussian", "two_modes"]


def test_cache_endpoint_solves_once_per_noise():
    field = oracles.GuidedField(oracles.gaussian_field(0.5, 0.3), oracles.gaussian_field(0.0, 0.6), 5.0)
    solves = []
    solve = field.endpoint
    field.endpoint = lambda noise: solves.append(1) or solve(noise, steps=50)
    assert practical.cache_endpoint(field) is field
    noise = torch.randn(2, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    first = field.endpoint(noise)
    first.add_(1.0)                                   # a caller's in-place change does not reach the cache
    again = field.endpoint(noise.clone())
    assert len(solves) == 1 and torch.equal(again, solve(noise, steps=50))
    field.endpoint(noise.double())                    # another dtype (or values) is another solve
    field.endpoint(noise + 1)
    assert len(solves) == 3


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "abc", ""])
def test_the_practical_benchmarks_refuse_a_bad_cfg_by_name(value):
    """bench_practical_steps.py names FLOW_PRACTICAL_CFG, bench_practical_steps_comfyui.py --cfg (nan and inf
    included), before any host or ComfyUI is needed."""
    import os
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k not in ("COMFYUI_DIR", "FLOW_PRACTICAL_CFG")}
    webuis = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "bench_practical_steps.py"),
                             "--cfg", value, "--load"], capture_output=True, text=True, env=env, timeout=120)
    assert webuis.returncode != 0 and f"FLOW_PRACTICAL_CFG must be a finite number >= 1, got {value!r}" \
        in webuis.stderr, webuis.stderr[-500:]
    comfyui = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "bench_practical_steps_comfyui.py"),
                              "--cfg", value], capture_output=True, text=True, env=env, timeout=120)
    assert comfyui.returncode == 2 and "--cfg" in comfyui.stderr and value in comfyui.stderr, comfyui.stderr[-500:]
