"""The registry is the one source of sampler and scheduler metadata: every entry matches its
function, and the core samplers check their options against the entries (no second copy of a range)."""
import inspect

import pytest
import torch

from model_sampling_flow import oracles, registry, samplers, schedulers
from model_sampling_flow.model_sampling import FlowModelSampling
from model_sampling_flow.oracles import gaussian_field, mixture_field


@pytest.mark.parametrize("entry", registry.SAMPLERS, ids=lambda e: e.name)
def test_every_option_is_a_parameter_with_the_entry_default(entry):
    parameters = inspect.signature(entry.function).parameters
    for option in entry.options:
        assert option.name in parameters, (entry.name, option.name)
        assert parameters[option.name].default == option.default, (entry.name, option.name)
        assert option.kind in registry.OPTION_KINDS
        assert (option.range is not None) == (option.kind in (registry.FLOAT, registry.INT)), option
        assert option.help
        if option.range is not None:
            assert option.check(option.default) == option.default
    assert entry.model_calls_per_step in (1, 2) and entry.name.startswith("flow_")


def test_every_sampler_keyword_is_an_option():
    # what a sampler accepts beyond the k-diffusion signature is in its entry (flow_pc's order excepted:
    # it picks it from the step count, so hosts offer no widget)
    base = {"model", "x", "sigmas", "extra_args", "callback", "disable"}
    for entry in registry.SAMPLERS:
        extra = set(inspect.signature(entry.function).parameters) - base
        assert extra - set(entry.option_names) <= ({"order"} if entry.name == "flow_pc" else set()), entry.name


def test_heun_counts_two_model_calls_a_step():
    calls = []

    def model(x, sigma):
        calls.append(1)
        return x * 0
    for entry in registry.SAMPLERS:
        calls.clear()
        entry.function(model, torch.ones(1, 1, 2, 2), torch.tensor([1.0, 0.6, 0.3, 0.1]), disable=True,
                       **({"noise_sampler": lambda s, t: torch.zeros(1, 1, 2, 2)} if entry.takes_noise_sampler else {}))
        assert len(calls) <= 3 * entry.model_calls_per_step and len(calls) > 3 * (entry.model_calls_per_step - 1)


def test_core_samplers_read_their_ranges_from_the_entries(monkeypatch):
    field = oracles.gaussian_field(0.5, 0.3)
    x, sigmas = torch.zeros(1, 1, 2, 2), torch.tensor([1.0, 0.5, 0.0])
    entry = registry.SAMPLERS_BY_NAME["flow_multistep"]
    samplers.sample_flow_multistep(field, x, sigmas, disable=True, order=4)
    narrower = registry.Option("order", registry.INT, 3, (1, 3), "narrower")
    changed = registry.SamplerEntry(entry.name, entry.label, entry.function, False, 1, (narrower,))
    monkeypatch.setattr(registry, "SAMPLERS", tuple(changed if e is entry else e for e in registry.SAMPLERS))
    with pytest.raises(ValueError, match="order must be <= 3, got 4"):
        samplers.sample_flow_multistep(field, x, sigmas, disable=True, order=4)


@pytest.mark.parametrize("values,match", [
    ({"eta": -1.0}, "eta"), ({"eta": 101.0}, "eta"), ({"s_noise": float("nan")}, "s_noise"),
    ({"second_order": 1}, "second_order"), ({"colour": 1}, "no option 'colour'"),
])
def test_check_options_names_the_bad_option(values, match):
    with pytest.raises(ValueError, match=match):
        registry.SAMPLERS_BY_NAME["flow_sde"].check_options(values)


def test_flow_sde_second_order_is_an_option():
    assert "second_order" in registry.SAMPLERS_BY_NAME["flow_sde"].option_names
    assert registry.SAMPLERS_BY_NAME["flow_heun"].model_calls_per_step == 2


def test_schedulers_and_default():
    assert registry.DEFAULT_SCHEDULER in registry.SCHEDULERS_BY_NAME
    assert len(registry.SAMPLERS_BY_NAME) == len(registry.SAMPLERS)
    assert len(registry.SCHEDULERS_BY_NAME) == len(registry.SCHEDULERS)
    # the schedule a webui's "Automatic" gives each sampler is one the webuis list
    assert all(entry.scheduler in registry.SCHEDULERS_BY_NAME for entry in registry.SAMPLERS)
    assert registry.SAMPLERS_BY_NAME["flow_pc"].scheduler == "flow_pc"
    assert registry.SAMPLERS_BY_NAME["flow_sde"].scheduler == "flow_pc"
    assert registry.SAMPLERS_BY_NAME["flow_euler"].scheduler == registry.DEFAULT_SCHEDULER


@pytest.mark.parametrize("steps", [10, 20, 28])
@pytest.mark.parametrize("shift", [3.0, 6.0])
def test_automatic_schedule_beats_the_trainers_for_every_deterministic_flow_sampler(shift, steps):
    # the webuis' "Automatic" gives a Flow sampler its entry's schedule (flow_pc for all of them): on the
    # Gaussian and the mixtures it is more accurate than the trainers' flow_shift for each one
    fields = [gaussian_field(0.5, 0.3), mixture_field(), mixture_field((-1.0, 1.0), (0.2, 0.2), (0.5, 0.5)),
              mixture_field((-0.5, 0.6), (0.06, 0.12), (0.55, 0.45))]
    x1 = torch.randn((1, 4, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model_sampling = FlowModelSampling(shift=shift)
    trainers = schedulers.get_sigmas(model_sampling, "flow_shift", steps).double()
    for entry in registry.SAMPLERS:
        if entry.stochastic:
            continue    # their distribution on the default: tests/core/test_flow_sde.py
        automatic = schedulers.get_sigmas(model_sampling, entry.scheduler, steps).double()
        for field in fields:
            exact = field.endpoint(x1)
            errors = [float((entry.function(field, x1.clone(), sigmas, disable=True) - exact).pow(2).mean().sqrt())
                      for sigmas in (automatic, trainers)]
            assert errors[0] < errors[1], (entry.name, field, errors)


def test_automatic_schedule_brings_every_stochastic_flow_sampler_closer_to_the_data_std():
    # 20 steps, shift 3: flow_shift's last sigma is 0.14 and the stochastic samplers return the
    # denoised from there (Flow Euler a std 0.213, Flow SDE 0.264 for 0.3); flow_pc's is 0.008
    field = gaussian_field(0.5, 0.3)
    model_sampling = FlowModelSampling(shift=3.0)
    for entry in registry.SAMPLERS:
        if not entry.stochastic:
            continue
        stds = []
        for name in (entry.scheduler, "flow_shift"):
            generator = torch.Generator().manual_seed(0)
            x = torch.randn((4, 4, 64, 64), generator=generator, dtype=torch.float64)
            sigmas = schedulers.get_sigmas(model_sampling, name, 20).double()
            out = entry.function(field, x, sigmas, disable=True,
                                 noise_sampler=lambda s, t: torch.randn(x.shape, generator=generator, dtype=torch.float64))
            stds.append(float(out.std()))
        assert abs(stds[0] - 0.3) < abs(stds[1] - 0.3) and stds[1] < 0.27, (entry.name, stds)
