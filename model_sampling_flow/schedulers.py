"""Sigma sequences for a model sampling: descending, in that model sampling's view, ending in 0.

Every schedule is computed in flow sigma, on the flow table of the same shift, and then mapped to
the model sampling's view (FlowVEModelSampling.ve_schedule: sigma_ve = sigma / (1 - sigma), the
top entry becoming the VE cap). So a schedule means the same noise levels in both views: Karras
and exponential span the flow range sigma_min .. 1, as ComfyUI's do under ModelSamplingSD3,
instead of the VE range (~0.003 .. ~3e4), where their steps pile up at pure noise.
The ones ComfyUI also has (simple, sgm_uniform, normal, beta, karras, exponential) give ComfyUI's
output for the flow view of the same shift. `flow_shift` is the trainers' own inference schedule:
the time shift of a uniform grid.
"""
import math

import torch

from .schedule import check_choice, check_integer, check_number, time_shift


def _check_steps(steps):
    return check_integer("steps", steps, minimum=1)


# A host's own flow model sampling (ComfyUI's ModelSamplingDiscreteFlow under ModelSamplingSD3) has
# neither method: it is in the flow view already.
def _flow_view(model_sampling):
    """The flow-view model sampling with the same shift and table (the object itself in the flow view)."""
    flow_view = getattr(model_sampling, "flow_view", None)
    return model_sampling if flow_view is None else flow_view()


def _to_view(model_sampling, flow_sigmas):
    """Flow sigmas (descending, last 0) as a float32 tensor of the model sampling's view."""
    schedule_from_flow = getattr(model_sampling, "schedule_from_flow", None)
    if schedule_from_flow is None:
        return torch.as_tensor(flow_sigmas, dtype=torch.float32).reshape(-1).clone()
    return schedule_from_flow(flow_sigmas)


def simple(model_sampling, steps):
    """Every (1000 / steps)-th table entry from the top."""
    steps = _check_steps(steps)
    table = _flow_view(model_sampling).sigmas
    stride = len(table) / steps
    flow = [float(table[-(1 + int(k * stride))]) for k in range(steps)] + [0.0]
    return _to_view(model_sampling, flow)


def _linear_in_time(model_sampling, steps, sgm):
    flow_ms = _flow_view(model_sampling)
    start = float(flow_ms.sigma_max) * flow_ms.multiplier
    end = float(flow_ms.sigma_min) * flow_ms.multiplier
    if sgm:
        times = torch.linspace(start, end, steps + 1)[:-1]
    else:
        times = torch.linspace(start, end, steps)
    return _to_view(model_sampling, [float(flow_ms.sigma(t)) for t in times] + [0.0])


def normal(model_sampling, steps):
    """Uniform in timestep from sigma_max to sigma_min, then 0."""
    return _linear_in_time(model_sampling, _check_steps(steps), sgm=False)


def sgm_uniform(model_sampling, steps):
    """Uniform in timestep over steps + 1 points, the last dropped for 0 (SGM / SD3 convention)."""
    return _linear_in_time(model_sampling, _check_steps(steps), sgm=True)


def _regularized_incomplete_beta(x, a, b):
    """I_x(a, b) by its continued fraction (modified Lentz), using the symmetry for convergence."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _regularized_incomplete_beta(1.0 - x, b, a)
    log_front = a * math.log(x) + b * math.log1p(-x) - math.log(a) \
        - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * fraction


def beta_ppf(p, a, b):
    """Inverse CDF of the Beta(a, b) distribution, by bisection to double precision."""
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _regularized_incomplete_beta(mid, a, b) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-16:
            break
    return 0.5 * (lo + hi)


def beta(model_sampling, steps, alpha=0.6, beta=0.6):
    """Table entries at Beta(alpha, beta) quantiles of the timestep axis (arXiv 2407.12173)."""
    steps = _check_steps(steps)
    alpha = check_number("alpha", alpha, minimum=0.0, strict_minimum=True)
    beta = check_number("beta", beta, minimum=0.0, strict_minimum=True)
    table = _flow_view(model_sampling).sigmas
    last_index = len(table) - 1
    sigmas, previous = [], None
    for k in range(steps):
        index = round(beta_ppf(1.0 - k / steps, alpha, beta) * last_index)
        if index != previous:
            sigmas.append(float(table[index]))
        previous = index
    return _to_view(model_sampling, sigmas + [0.0])


def _flow_bounds(model_sampling):
    flow_ms = _flow_view(model_sampling)
    return float(flow_ms.sigma_min), float(flow_ms.sigma_max)


def karras(model_sampling, steps, rho=7.0):
    """Karras et al. (2022) over the flow range: uniform in sigma^(1/rho), sigma_max (= 1) to sigma_min."""
    steps = _check_steps(steps)
    rho = check_number("rho", rho, minimum=0.0, strict_minimum=True)
    sigma_min, sigma_max = _flow_bounds(model_sampling)
    ramp = torch.linspace(0, 1, steps)
    flow = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return _to_view(model_sampling, [float(s) for s in flow] + [0.0])


def exponential(model_sampling, steps):
    """Uniform in log sigma over the flow range, sigma_max (= 1) to sigma_min."""
    steps = _check_steps(steps)
    sigma_min, sigma_max = _flow_bounds(model_sampling)
    flow = torch.linspace(math.log(sigma_max), math.log(sigma_min), steps).exp()
    return _to_view(model_sampling, [float(s) for s in flow] + [0.0])


def flow_shift(model_sampling, steps):
    """sigma = time_shift(shift, t) on a uniform grid t = 1 .. 0: the trainers' inference schedule."""
    steps = _check_steps(steps)
    flow = [float(time_shift(model_sampling.shift, 1.0 - k / steps)) for k in range(steps + 1)]
    return _to_view(model_sampling, flow)


def flow_pc(model_sampling, steps, exponent=1.6):
    """sigma = t^exponent on a uniform grid t = 1 .. 0: the schedule sample_flow_pc is tuned for.

    It does not depend on the model sampling's shift: the exact ODE a sampler integrates is the
    same for every shift (the shift only reparametrises time), so the steps are placed for the
    solver's error. exponent 1.6 was picked on the oracle fields (one Gaussian, two-component
    mixtures) for the Adams predictor-corrector: it puts more steps at low sigma, where mixture
    modes separate, than a uniform grid does. Returns steps + 1 sigmas in the model sampling's
    view; in flow the first is exactly 1 and the last 0. Raises ValueError for steps < 1 or a
    non-positive exponent.
    """
    steps = _check_steps(steps)
    exponent = check_number("exponent", exponent, minimum=0.0, strict_minimum=True)
    flow = [(1.0 - k / steps) ** exponent for k in range(steps + 1)]
    return torch.FloatTensor(_to_view(model_sampling, flow))


# Every schedule by name: the ones hosts also have (ComfyUI's names), then ours. The registry
# (registry.SCHEDULERS) lists those hosts lack, which they register.
SCHEDULES_BY_NAME = {
    "simple": simple,
    "sgm_uniform": sgm_uniform,
    "normal": normal,
    "beta": beta,
    "karras": karras,
    "exponential": exponential,
    "flow_shift": flow_shift,
    "flow_pc": flow_pc,
}


def get_sigmas(model_sampling, scheduler, steps):
    """Sigmas for `steps` steps of the named scheduler, in the model sampling's view."""
    check_choice("scheduler", scheduler, SCHEDULES_BY_NAME)
    return SCHEDULES_BY_NAME[scheduler](model_sampling, steps)
