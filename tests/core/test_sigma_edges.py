"""Edges of what the core accepts: float32 table tops, repeated and
increasing sigmas, the shift range, argument types, Brownian-tree noise inside its interval."""
import math
import warnings

import os
import sys

import pytest
import torch

from model_sampling_flow import registry, ve_bridge
from model_sampling_flow.model_sampling import FlowModelSampling, FlowVEModelSampling
from model_sampling_flow.oracles import gaussian_field
from model_sampling_flow.schedule import (FLOAT32_ONE_ABOVE, MAX_SHIFT, MIN_SHIFT, SIGMA_ONE_ROUNDING, check_choice, check_integer,
                                          check_number, check_shift, inverse_time_shift, time_shift)
from model_sampling_flow.schedulers import SCHEDULES_BY_NAME, get_sigmas
from model_sampling_flow.settings import FlowSettings
from model_sampling_flow.views import flow_schedule_to_ve

FIELD = gaussian_field(0.5, 0.3)
# every value of the shift widgets: 0.01 steps from 0.01 to 100 (ComfyUI's node), a superset of the
# webui slider (0.1 .. 12, step 0.05)
WIDGET_SHIFTS = [round(k * 0.01, 2) for k in range(1, 10001)]


def _run(entry, sigmas, view, shift):
    x = torch.randn(1, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    options = {"noise_sampler": lambda s, t: torch.zeros_like(x)} if entry.takes_noise_sampler else {}
    if view == "flow":
        return entry.function(FIELD, x, sigmas, disable=True, **options)
    ve_model = lambda x_ve, sigma_ve: FIELD(x_ve / (1 + sigma_ve), sigma_ve / (1 + sigma_ve))  # noqa: E731
    return ve_bridge.sample_in_ve(entry.function, ve_model, x * (1 + float(sigmas[0])), sigmas, disable=True,
                                  **options)


def test_every_widget_shift_every_sampler_both_views_accepts_the_table():
    """The float32 flow table tops out at 1 + 2**-23 for some shifts (ComfyUI's does at 4.07): rounding."""
    schedules = {}
    tops = set()
    for shift in WIDGET_SHIFTS:
        for view, cls in (("flow", FlowModelSampling), ("ve", FlowVEModelSampling)):
            ms = cls(shift=shift)
            table_top = float(ms.sigmas[-1])
            tops.add((view, table_top))
            # what a host's simple schedule hands the sampler: the table's top entry first
            sigmas = torch.tensor([table_top, float(ms.sigmas[500]), float(ms.sigmas[10]), 0.0])
            schedules.setdefault((view, tuple(sigmas.tolist())), shift)
    assert ("flow", FLOAT32_ONE_ABOVE) in tops           # the case the issue reports exists here
    assert ("flow", 1.0) in tops
    assert max(top for view, top in tops if view == "flow") <= SIGMA_ONE_ROUNDING
    assert float(FlowModelSampling(shift=4.07).sigmas[-1]) == FLOAT32_ONE_ABOVE
    for entry in registry.SAMPLERS:
        for (view, sigmas), shift in schedules.items():
            out = _run(entry, torch.tensor(sigmas), view, shift)
            assert bool(torch.isfinite(out).all()), (entry.name, view, shift)


@pytest.mark.parametrize("entry", registry.SAMPLERS, ids=lambda e: e.name)
@pytest.mark.parametrize("bad", [1.00001, 1.5, 14.6])
def test_a_ve_sigma_handed_to_a_flow_sampler_still_raises(entry, bad):
    with pytest.raises(ValueError, match="sigmas"):
        _run(entry, torch.tensor([bad, 0.5, 0.0], dtype=torch.float64), "flow", 3.0)


@pytest.mark.parametrize("entry", registry.SAMPLERS, ids=lambda e: e.name)
def test_repeated_sigmas_are_zero_length_steps(entry):
    """ComfyUI's simple above 1000 steps repeats table entries: same result as without the repeats."""
    base = get_sigmas(FlowModelSampling(3.0), "flow_shift", 6)
    repeated = torch.cat([base[:1], base[:3], base[2:4], base[3:], base[-1:]])
    assert len(repeated) > len(base)
    if entry.stochastic:
        # noise depends on the step only through the noise sampler: give both runs the same stream
        def seeded():
            generator = torch.Generator().manual_seed(5)
            return lambda s, t: torch.randn(1, 1, 2, 2, generator=generator, dtype=torch.float64)
        x = torch.randn(1, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        a = entry.function(FIELD, x, base, disable=True, noise_sampler=seeded())
        b = entry.function(FIELD, x, repeated, disable=True, noise_sampler=seeded())
    else:
        a, b = _run(entry, base, "flow", 3.0), _run(entry, repeated, "flow", 3.0)
    assert torch.allclose(a, b, rtol=0, atol=1e-12)
    # and the 1001-step simple schedule that used to divide by zero
    sigmas = get_sigmas(FlowModelSampling(3.0), "simple", 1500)
    assert bool((sigmas[1:] == sigmas[:-1]).any())
    assert bool(torch.isfinite(_run(entry, sigmas, "flow", 3.0)).all())


@pytest.mark.parametrize("entry", registry.SAMPLERS, ids=lambda e: e.name)
def test_increasing_sigmas_raise_naming_sigmas(entry):
    with pytest.raises(ValueError, match="sigmas must be non-increasing"):
        _run(entry, torch.tensor([1.0, 0.4, 0.6, 0.0]), "flow", 3.0)


@pytest.mark.parametrize("entry", registry.SAMPLERS, ids=lambda e: e.name)
@pytest.mark.parametrize("sigmas", [torch.tensor(1.0), torch.tensor([[1.0, 0.6], [0.5, 0.0]]), torch.ones(3, 1)],
                         ids=["0-d", "batch x steps", "steps x 1"])
def test_sigmas_not_one_schedule_raise_naming_sigmas(entry, sigmas):
    # was: Flow PC raised TypeError on a 0-d tensor and on a (2, 2) table took one step of the
    # flattened values and returned x at sigma 0.6 silently; the others raised IndexError
    with pytest.raises(ValueError, match="sigmas must"):
        _run(entry, sigmas, "flow", 3.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, MIN_SHIFT / 2, MAX_SHIFT * 1.01, 1e16, math.inf, math.nan])
def test_shift_outside_the_range_is_rejected_everywhere_it_enters(bad):
    for make in (check_shift, lambda s: time_shift(s, 0.5), lambda s: inverse_time_shift(s, 0.5),
                 FlowModelSampling, FlowVEModelSampling, lambda s: FlowSettings(shift=s)):
        with pytest.raises(ValueError, match="shift"):
            make(bad)
    with pytest.raises(ValueError, match=r"shift must lie in \[0.001, 1000\]"):
        check_shift(1e16)
    assert FlowSettings.from_infotext({"Flow sampling": "on", "Flow shift": "4.07"}).shift == 4.07
    with pytest.raises(ValueError, match="shift"):
        FlowSettings.from_infotext({"Flow sampling": "on", "Flow shift": "1e16"})


@pytest.mark.parametrize("shift", [MIN_SHIFT, 0.01, 1.0, 100.0, MAX_SHIFT])
def test_every_table_in_the_range_is_finite_and_strictly_increasing(shift):
    for cls in (FlowModelSampling, FlowVEModelSampling):
        sigmas = cls(shift=shift).sigmas
        assert bool(torch.isfinite(sigmas).all()) and bool((sigmas[1:] > sigmas[:-1]).all()), (cls, shift)
        assert float(sigmas[0]) > 0


def test_argument_types_are_checked_naming_the_argument():
    ms = FlowModelSampling(3.0)
    x = torch.zeros(1, 1, 2, 2)
    sigmas = get_sigmas(ms, "flow_shift", 4)
    cases = [
        (lambda: get_sigmas(ms, ["simple"], 4), "scheduler"),
        (lambda: get_sigmas(ms, "simple", 2.5), "steps"),
        (lambda: get_sigmas(ms, "simple", 4.0), "steps"),
        (lambda: get_sigmas(ms, "simple", True), "steps"),
        (lambda: registry.SAMPLERS_BY_NAME["flow_multistep"].function(FIELD, x, sigmas, order=3.0), "order"),
        (lambda: registry.SAMPLERS_BY_NAME["flow_multistep"].function(FIELD, x, sigmas, order=True), "order"),
        (lambda: registry.SAMPLERS_BY_NAME["flow_sde"].function(FIELD, x, sigmas, eta="1"), "eta"),
        (lambda: registry.SAMPLERS_BY_NAME["flow_sde"].function(FIELD, x, sigmas, eta=True), "eta"),
        (lambda: registry.SAMPLERS_BY_NAME["flow_sde"].function(FIELD, x, sigmas, second_order=1), "second_order"),
        (lambda: registry.SAMPLERS_BY_NAME["flow_euler_ancestral"].function(FIELD, x, sigmas, s_noise=[1]),
         "s_noise"),
        (lambda: FlowModelSampling(shift="3"), "shift"),
        (lambda: FlowModelSampling(shift=True), "shift"),
        (lambda: FlowModelSampling(timestep_mapping=["continuous"]), "timestep_mapping"),
        (lambda: FlowSettings(view=["ve"]), "view"),
        (lambda: SCHEDULES_BY_NAME["karras"](ms, 4, rho="7"), "rho"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=name):
            call()
    assert check_number("x", torch.tensor(2.0)) == 2.0 and check_integer("n", 3) == 3
    assert check_choice("view", "ve", ("flow", "ve")) == "ve"


def test_flow_schedule_to_ve_maps_the_top_to_the_cap():
    ve = FlowVEModelSampling(3.0)
    flow = torch.tensor([FLOAT32_ONE_ABOVE, 1.0, 0.5, 0.25, 0.0])
    mapped = flow_schedule_to_ve(flow, ve.sigma_cap, dtype=torch.float64)
    cap_ve = ve.sigma_cap / (1 - ve.sigma_cap)
    assert mapped[0] == mapped[1] and math.isclose(float(mapped[0]), cap_ve, rel_tol=1e-12)
    assert torch.equal(mapped[2:], torch.tensor([1.0, 1 / 3, 0.0], dtype=torch.float64))
    assert float(ve.ve_schedule(flow)[0]) == float(ve.sigmas[-1])     # the table's own top entry
    with pytest.raises(ValueError, match="flow_sigmas"):
        flow_schedule_to_ve([0.5, -0.1], ve.sigma_cap)


def test_brownian_noise_sampler_gets_sigmas_inside_its_interval():
    """Schedules' end points and DPM++ SDE's exp(-(-log sigma)) fall a rounding step outside the
    tree: wrapped, torchsde prints no warning and the samples are bit-identical."""
    pytest.importorskip("torchsde")
    try:
        from flow_test_support.standins import import_k_diffusion
        import_k_diffusion()
        from k_diffusion import sampling as ks
    except ImportError as error:
        pytest.skip(f"k-diffusion is not importable here: {error}")

    def model(x_ve, sigma_ve, **kwargs):
        s = sigma_ve.double().reshape(-1, 1, 1, 1)
        return FIELD(x_ve.double() / (1 + s), s / (1 + s)).to(x_ve.dtype)

    def run(function, sigmas, wrap):
        x = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0)) * sigmas[0]
        noise = ks.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=7)
        if wrap:
            noise = ve_bridge.noise_sampler_within(noise)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = function(model, x, sigmas, noise_sampler=noise, disable=True)
        return out, sum("Should have" in str(w.message) for w in caught)

    raw_warnings = 0
    for shift in (1.0, 3.0):
        ve = FlowVEModelSampling(shift)
        for name in ("simple", "sgm_uniform", "beta", "karras"):
            sigmas = get_sigmas(ve, name, 20)
            for function in (ks.sample_dpmpp_sde, ks.sample_dpmpp_2m_sde, ks.sample_dpmpp_3m_sde):
                raw, warned = run(function, sigmas, False)
                within, none = run(function, sigmas, True)
                raw_warnings += warned
                assert none == 0, (shift, name, function.__name__)
                assert torch.equal(raw, within), (shift, name, function.__name__)
    assert raw_warnings > 0      # the cases above do reach outside the tree unwrapped
    assert ve_bridge.noise_sampler_within(FIELD) is FIELD     # not a Brownian tree: unchanged
    noise = ks.BrownianTreeNoiseSampler(torch.zeros(1, 2), 0.1, 10.0, seed=1)
    assert ve_bridge.noise_sampler_within(noise) is noise
    proxy = noise.tree
    assert ve_bridge.noise_sampler_within(noise).tree is proxy       # wrapping twice changes nothing
