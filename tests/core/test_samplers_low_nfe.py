"""Flow PC (Adams predictor-corrector) and its flow_pc schedule against the exact oracles.

Properties, not golden numbers: exact start and end, one model call a step, convergence order on
the smooth Gaussian field, accuracy at few model calls on mixtures, the schedule's shape, errors.
The per-NFE comparison with ComfyUI's and RES4LYF's samplers is benchmarks/bench_samplers.py.
"""
import math

import pytest
import torch

from flow_test_support.models import CountedModel
from model_sampling_flow import registry, samplers, schedulers, ve_bridge, views
from model_sampling_flow.model_sampling import FlowModelSampling, FlowVEModelSampling
from model_sampling_flow.oracles import GaussianMixtureField, gaussian_field, mixture_field
from model_sampling_flow.schedule import time_shift

GAUSSIAN = gaussian_field(0.5, 0.3)
MIXTURES = {
    "unequal": mixture_field((-0.6, 0.7), (0.15, 0.25), (0.3, 0.7)),
    "symmetric": mixture_field((-1.0, 1.0), (0.2, 0.2), (0.5, 0.5)),
    "narrow": mixture_field((-0.2, 1.2), (0.1, 0.3), (0.8, 0.2)),
}
# not used to choose the flow_pc schedule or the orders (the benchmark's mixture_d and mixture_e)
HELD_OUT = {
    "sharp": mixture_field((-0.5, 0.6), (0.06, 0.12), (0.55, 0.45)),
    "three modes": GaussianMixtureField([-0.8, 0.1, 0.9], [0.1, 0.15, 0.12], [0.3, 0.4, 0.3]),
}


def noise(shape=(1, 4, 16, 16), seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def pc_sigmas(steps, shift=3.0):
    return schedulers.get_sigmas(FlowModelSampling(shift=shift), "flow_pc", steps).double()


def rmse(a, b):
    return float(((a - b) ** 2).mean().sqrt())


def endpoint_errors(field, steps, **options):
    """{steps: RMSE of Flow PC on the flow_pc schedule to the field's exact ODE endpoint}, one noise."""
    x1 = noise()
    exact = field.endpoint(x1)
    return {n: rmse(samplers.sample_flow_pc(field, x1.clone(), pc_sigmas(n), disable=True, **options), exact)
            for n in steps}


def test_flow_pc_leads_the_registry_and_its_schedule_is_registered():
    assert registry.SAMPLERS[0].name == "flow_pc"
    assert registry.SAMPLERS[0].function is samplers.sample_flow_pc
    assert not registry.SAMPLERS[0].stochastic
    assert registry.SCHEDULERS_BY_NAME["flow_pc"].function is schedulers.flow_pc


@pytest.mark.parametrize("steps", [1, 2, 5, 8, 33])
def test_one_model_call_a_step(steps):
    model = CountedModel(GAUSSIAN)
    samplers.sample_flow_pc(model, noise(), pc_sigmas(steps), disable=True)
    assert model.calls == steps


@pytest.mark.parametrize("steps", [1, 3, 8])
def test_straight_paths_are_exact_from_sigma_one_to_zero(steps):
    # data at one point m: every path is the straight line x = m + sigma * (x1 - m), the velocity
    # is constant along it, and any Adams step is exact; so the start at sigma = 1 and the end at
    # sigma = 0 carry no error of their own
    point = 0.37

    def denoiser(x, sigma, **kwargs):
        return torch.full_like(x, point)

    out = samplers.sample_flow_pc(denoiser, noise(), pc_sigmas(steps), disable=True)
    assert float((out - point).abs().max()) < 1e-12


def test_schedule_not_ending_at_zero_lands_on_its_last_sigma():
    field = MIXTURES["unequal"]
    x1 = noise()
    sigmas = torch.linspace(1.0, 0.25, 41, dtype=torch.float64) ** 1.6
    out = samplers.sample_flow_pc(field, x1.clone(), sigmas, disable=True)
    exact = field.transport(x1, 1.0, float(sigmas[-1]))
    assert rmse(out, exact) < 1e-4


def test_start_below_sigma_one_follows_the_exact_transport():
    # img2img: start from the exact state at sigma = 0.6
    field = MIXTURES["symmetric"]
    x1 = noise()
    start = field.transport(x1, 1.0, 0.6)
    sigmas = 0.6 * torch.linspace(1.0, 0.0, 25, dtype=torch.float64) ** 1.6
    out = samplers.sample_flow_pc(field, start, sigmas, disable=True)
    assert rmse(out, field.endpoint(x1)) < 1e-3


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_convergence_order_is_one_above_the_predictor_up_to_three(order):
    # the PEC corrector adds one order to the Adams-Bashforth predictor (on a smooth field); the
    # velocities of the first steps are evaluated at Euler/trapezoid-accurate states, which caps
    # the observed global order near 3 for predictors of order 3 and above
    errors = list(endpoint_errors(GAUSSIAN, (64, 128, 256), order=order).values())
    slope = -(math.log(errors[2]) - math.log(errors[1])) / math.log(2)
    assert errors[0] > errors[1] > errors[2], errors
    assert slope > min(order + 1, 3) - 0.3, (errors, slope)
    assert errors[-1] < 10.0 ** -(min(order + 1, 3) + 2), errors


@pytest.mark.parametrize("mixture", MIXTURES)
def test_errors_fall_fast_with_model_calls_on_mixtures(mixture):
    errors = endpoint_errors(MIXTURES[mixture], (8, 16, 32))
    assert errors[8] < 0.04, errors
    assert errors[16] < errors[8] / 4, errors
    assert errors[32] < errors[16] / 4, errors


@pytest.mark.parametrize("schedule", ["karras", "exponential", "simple", "beta", "sgm_uniform"])
@pytest.mark.parametrize("mixture", ["symmetric", "sharp"])
def test_on_other_schedules_flow_pc_stays_near_flow_euler(schedule, mixture):
    # Flow PC is tuned for its flow_pc schedule; on the host's others (steps growing or shrinking
    # fast, a long last step to sigma = 0) its polynomials keep to nearby nodes and the last step to
    # order 3, so it never falls far behind Euler: before that, 155x worse (exponential, 8 steps,
    # RMSE 8.8 for 0.06) and 3.5x at shift 3, simple, 28 steps
    field = {**MIXTURES, **HELD_OUT}[mixture]
    x1 = noise()
    exact = field.endpoint(x1)
    for shift in (1.0, 3.0, 6.0):
        for steps in (8, 20, 28):
            sigmas = schedulers.get_sigmas(FlowModelSampling(shift=shift), schedule, steps).double()
            pc = rmse(samplers.sample_flow_pc(field, x1.clone(), sigmas, disable=True), exact)
            euler = rmse(samplers.sample_flow_euler(field, x1.clone(), sigmas, disable=True), exact)
            assert pc < 2.6 * euler, (shift, steps, pc, euler)


def test_automatic_gives_flow_pc_its_own_schedule():
    # the webuis' "Automatic" follows the registry entry: for Flow PC the flow_pc schedule, where it
    # is far ahead of Flow Euler on the trainers' Flow shift schedule (two modes at +-1, shift 3, 20 steps;
    # docs/webui.md quotes these figures: 0.0015, 0.0732 and Flow Euler's 0.0512)
    field = MIXTURES["symmetric"]
    x1 = noise()
    exact = field.endpoint(x1)
    model_sampling = FlowModelSampling(shift=3.0)
    own = schedulers.get_sigmas(model_sampling, registry.SAMPLERS_BY_NAME["flow_pc"].scheduler, 20).double()
    trainers = schedulers.get_sigmas(model_sampling, "flow_shift", 20).double()
    pc_own = rmse(samplers.sample_flow_pc(field, x1.clone(), own, disable=True), exact)
    pc_trainers = rmse(samplers.sample_flow_pc(field, x1.clone(), trainers, disable=True), exact)
    euler_trainers = rmse(samplers.sample_flow_euler(field, x1.clone(), trainers, disable=True), exact)
    assert pc_own < euler_trainers / 10 and pc_own < pc_trainers / 10, (pc_own, pc_trainers, euler_trainers)
    assert (round(pc_own, 4), round(pc_trainers, 4), round(euler_trainers, 4)) == (0.0015, 0.0732, 0.0512)


def test_step_ratio_limit_keeps_polynomials_to_nearby_nodes():
    # nodes 1, 0.9, 0.8, 0.7 and a step 0.7 -> 0.6: all four; a step 0.7 -> 0.0: the last node only
    nodes = [1.0, 0.9, 0.8, 0.7]
    assert samplers._steady_nodes(nodes, 0.7, 0.6) == 4
    assert samplers._steady_nodes(nodes, 0.7, 0.0) == 1
    # spacing 0.3 then 0.01: the step 0.01 -> 0.0 uses the last two (0.02 and 0.01 spaced 0.01)
    assert samplers._steady_nodes([0.32, 0.02, 0.01], 0.01, 0.0) == 2


@pytest.mark.parametrize("shift,steps", [(3.0, 2), (6.0, 5), (6.0, 20)])
def test_a_step_ratio_of_exactly_the_limit_gets_one_order_in_float32_float64_and_the_ve_view(shift, steps):
    # flow_shift's sigmas are a rational function of t, and these put a step at exactly 3x a node
    # spacing (shift 3, 2 steps: 0.75 -> 0 against 1 -> 0.75); the float32 schedule, the same
    # schedule in float64 and the VE view (which starts at its cap, 3e-5 below sigma = 1) must give
    # the same order, so the same result (before the margin: up to 1.2 apart)
    field = MIXTURES["symmetric"]
    x1 = noise()
    float32 = schedulers.get_sigmas(FlowModelSampling(shift=shift), "flow_shift", steps)
    float64 = torch.tensor([float(time_shift(shift, 1.0 - k / steps)) for k in range(steps + 1)], dtype=torch.float64)
    assert torch.allclose(float32.double(), float64, atol=1e-7)
    out32 = samplers.sample_flow_pc(field, x1.clone(), float32, disable=True)
    out64 = samplers.sample_flow_pc(field, x1.clone(), float64, disable=True)
    assert float((out32 - out64).abs().max()) < 1e-5

    ve_sigmas = schedulers.get_sigmas(FlowVEModelSampling(shift), "flow_shift", steps).double()

    def ve_denoiser(x_ve, sigma_ve, **extra):
        return field(views.x_from_ve(x_ve, sigma_ve), views.sigma_from_ve(sigma_ve))

    out_ve = ve_bridge.sample_in_ve(samplers.sample_flow_pc, ve_denoiser, x1 * (1 + float(ve_sigmas[0])), ve_sigmas,
                                    disable=True)
    assert float((out_ve - out64).abs().max()) < 1e-3


@pytest.mark.parametrize("mixture", HELD_OUT)
def test_held_out_mixtures_converge_at_third_order_to_the_exact_endpoint(mixture):
    # sharp modes (std 0.06) and three modes: the observed order between 128 and 256 steps is that
    # of the smooth Gaussian (about 3 or more), and from 8 to 32 calls the error falls 20-fold or more
    errors = endpoint_errors(HELD_OUT[mixture], (8, 32, 128, 256))
    assert errors[8] < 0.04, errors
    assert errors[32] < errors[8] / 20, errors
    assert errors[128] > errors[256] and errors[256] < 1e-6, errors
    slope = math.log(errors[128] / errors[256]) / math.log(2)
    assert slope > 2.7, (errors, slope)


@pytest.mark.parametrize("mixture", MIXTURES)
def test_beats_flow_multistep_on_its_best_listed_schedule_at_8_and_16_steps(mixture):
    field = MIXTURES[mixture]
    x1 = noise()
    exact = field.endpoint(x1)
    ms = FlowModelSampling(shift=3.0)
    for steps in (8, 16):
        ours = rmse(samplers.sample_flow_pc(field, x1.clone(), pc_sigmas(steps), disable=True), exact)
        multistep = min(
            rmse(samplers.sample_flow_multistep(field, x1.clone(), schedulers.get_sigmas(ms, name, steps).double(),
                                                disable=True), exact)
            for name in ("simple", "sgm_uniform", "normal", "beta", "karras", "exponential", "flow_shift"))
        assert ours < 0.5 * multistep, (steps, ours, multistep)


def test_repeated_sigma_is_skipped_without_a_model_call():
    field = MIXTURES["unequal"]
    x1 = noise()
    sigmas = pc_sigmas(8)
    repeated = torch.cat([sigmas[:4], sigmas[3:4], sigmas[4:], sigmas[-1:]])
    model = CountedModel(field)
    out = samplers.sample_flow_pc(model, x1.clone(), repeated, disable=True)
    assert model.calls == 8
    assert torch.equal(out, samplers.sample_flow_pc(field, x1.clone(), sigmas, disable=True))


def test_deterministic_and_unchanged_input():
    x1 = noise()
    kept = x1.clone()
    first = samplers.sample_flow_pc(MIXTURES["narrow"], x1, pc_sigmas(8), disable=True)
    second = samplers.sample_flow_pc(MIXTURES["narrow"], x1, pc_sigmas(8), disable=True)
    assert torch.equal(first, second)
    assert torch.equal(x1, kept)


def test_callback_reports_every_step():
    seen = []
    samplers.sample_flow_pc(GAUSSIAN, noise(), pc_sigmas(6), disable=True, callback=seen.append)
    assert [d["i"] for d in seen] == list(range(6))
    assert set(seen[0]) == {"x", "i", "sigma", "sigma_hat", "denoised"}


@pytest.mark.parametrize("bad", [0, 6, 2.5, True, "3"])
def test_bad_order_is_rejected_naming_it(bad):
    with pytest.raises(ValueError, match="order"):
        samplers.sample_flow_pc(GAUSSIAN, noise(), pc_sigmas(4), disable=True, order=bad)


@pytest.mark.parametrize("shift", [1.0, 3.0, 6.0])
@pytest.mark.parametrize("steps", [1, 4, 8, 32])
def test_flow_pc_schedule_runs_from_one_to_zero_and_ignores_shift(shift, steps):
    sigmas = schedulers.get_sigmas(FlowModelSampling(shift=shift), "flow_pc", steps)
    assert len(sigmas) == steps + 1
    assert float(sigmas[0]) == 1.0 and float(sigmas[-1]) == 0.0
    assert bool((sigmas[1:] < sigmas[:-1]).all())
    assert torch.equal(sigmas, schedulers.get_sigmas(FlowModelSampling(shift=1.0), "flow_pc", steps))
    # more steps at low sigma than a uniform grid: the middle sigma is below 0.5
    assert float(schedulers.flow_pc(FlowModelSampling(shift=shift), 2)[1]) == pytest.approx(0.5 ** 1.6)


def test_flow_pc_schedule_in_the_ve_view_maps_the_same_flow_sigmas():
    ve = FlowVEModelSampling(3.0)
    sigmas_ve = schedulers.get_sigmas(ve, "flow_pc", 8)
    flow = schedulers.get_sigmas(FlowModelSampling(3.0), "flow_pc", 8)
    assert float(sigmas_ve[-1]) == 0.0
    back = sigmas_ve[1:-1] / (1 + sigmas_ve[1:-1])
    assert torch.allclose(back.double(), flow[1:-1].double(), rtol=1e-5)


@pytest.mark.parametrize("steps,exponent", [(0, 1.6), (2.5, 1.6), (4, 0.0), (4, -1.0), (4, float("nan"))])
def test_flow_pc_schedule_rejects_bad_arguments_naming_them(steps, exponent):
    with pytest.raises(ValueError, match="steps" if exponent == 1.6 else "exponent"):
        schedulers.flow_pc(FlowModelSampling(3.0), steps, exponent=exponent)
