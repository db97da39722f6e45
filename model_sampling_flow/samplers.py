"""Samplers in flow coordinates, each with the k-diffusion signature.

sample_x(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
`model(x, sigma, **extra_args)` returns the denoised estimate x0 for flow input
x = (1 - sigma) * x0 + sigma * noise, sigmas is descending in [0, 1] and usually ends in 0.
Noise for the stochastic samplers comes from `noise_sampler(sigma, sigma_next)` so hosts can
plug in their seeds or Brownian trees.

Notation in the comments: alpha = 1 - sigma, lambda = log(alpha / sigma) (log-SNR / 2),
q = exp(-(lambda_next - lambda)) = sigma_next * alpha / (sigma * alpha_next), which is finite
(0) at sigma = 1 and at sigma_next = 0, so no step needs an infinite lambda.
"""
import math
import sys

import torch

from .schedule import SIGMA_ONE_ROUNDING, check_integer, check_sigma


def _progress(count, disable, label):
    """range(count) with a small stderr progress bar (stdlib only); disable=True silences it."""
    show = not disable and count > 0
    for i in range(count):
        yield i
        if show:
            sys.stderr.write(f"\r{label}: {i + 1}/{count}")
            if i + 1 == count:
                sys.stderr.write("\n")
            sys.stderr.flush()


def default_noise_sampler(x, generator=None):
    def noise_sampler(sigma, sigma_next):
        return torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    return noise_sampler


def _sigma_batch(x, sigma):
    return sigma * x.new_ones([x.shape[0]])


def _flows(sigmas):
    """Flow sigmas (a 1-D tensor or a sequence of numbers) as floats, checked: non-increasing, in [0, 1].

    A value within float32 rounding above 1 (a float32 table's top; schedule.SIGMA_ONE_ROUNDING) is 1; anything
    larger is a VE-view sigma a host forgot to convert. Repeated values are zero-length steps the
    samplers skip; an increase is an error.
    """
    if isinstance(sigmas, torch.Tensor):
        if sigmas.ndim != 1:
            # one schedule for the whole batch; a (batch, steps) table would be read as one long schedule
            raise ValueError(f"sigmas must be a 1-D schedule, got a tensor of shape {tuple(sigmas.shape)}")
        flow = [float(s) for s in sigmas.tolist()]
    else:
        flow = [float(s) for s in sigmas]
    if len(flow) < 2:
        raise ValueError(f"sigmas must hold at least 2 values, got {len(flow)}")
    flow = [1.0 if 1.0 < value <= SIGMA_ONE_ROUNDING else value for value in flow]
    for value in flow:
        check_sigma(value, name="sigmas")
    for i in range(len(flow) - 1):
        if flow[i + 1] > flow[i]:
            raise ValueError(f"sigmas must be non-increasing, got {flow[i]!r} then {flow[i + 1]!r} at index {i}")
    return flow


def _check_options(function, **values):
    """ValueError naming the option unless every value fits `function`'s registry entry (kind, range)."""
    # imported here: the registry imports this module to build its entries
    from .registry import sampler_entry
    sampler_entry(function).check_options(values)


def _report(callback, x, i, sigma, denoised):
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})


def _flow_steps(sigmas, disable, label):
    """(i, sigma, sigma_next) for every step of non-zero length, as flow floats (checked by _flows
    before the first step), with the progress bar: a repeated sigma is a step of length zero."""
    flow = _flows(sigmas)
    for i in _progress(len(flow) - 1, disable, label):
        if flow[i + 1] != flow[i]:
            yield i, flow[i], flow[i + 1]


def _denoised(model, x, sigmas, i, extra_args, callback):
    """The model's denoised at (x, sigmas[i]) (one call), reported to the host's callback."""
    denoised = model(x, _sigma_batch(x, sigmas[i]), **extra_args)
    _report(callback, x, i, sigmas[i], denoised)
    return denoised


def _q(sigma, sigma_next):
    """exp(-h) for the step sigma -> sigma_next, h the log-SNR/2 increment."""
    if sigma_next == 0.0 or sigma == 1.0:
        return 0.0
    return sigma_next * (1 - sigma) / (sigma * (1 - sigma_next))


@torch.no_grad()
def sample_flow_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Euler on dx/dsigma = v. On the flow path it is DDIM: x_next = x0 + (x - x0) * sigma_next / sigma."""
    extra_args = {} if extra_args is None else extra_args
    for i, sigma, sigma_next in _flow_steps(sigmas, disable, "flow euler"):
        denoised = _denoised(model, x, sigmas, i, extra_args, callback)
        x = denoised + (x - denoised) * (sigma_next / sigma)
    return x


@torch.no_grad()
def sample_flow_heun(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Heun's method (trapezoidal corrector) in flow time; the step to sigma = 0 is Euler."""
    extra_args = {} if extra_args is None else extra_args
    for i, sigma, sigma_next in _flow_steps(sigmas, disable, "flow heun"):
        denoised = _denoised(model, x, sigmas, i, extra_args, callback)
        velocity = (x - denoised) / sigma
        x_pred = x + (sigma_next - sigma) * velocity
        if sigma_next == 0.0:
            x = x_pred
            continue
        denoised_next = model(x_pred, _sigma_batch(x, sigmas[i + 1]), **extra_args)
        velocity_next = (x_pred - denoised_next) / sigma_next
        x = x + (sigma_next - sigma) * 0.5 * (velocity + velocity_next)
    return x


@torch.no_grad()
def sample_flow_euler_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None,
                                eta=1.0, s_noise=1.0, noise_sampler=None):
    """Ancestral Euler, right for flow: step down with DDIM below sigma_next, then re-noise.

    In the VE view (sigma_ve = sigma / alpha) this is k-diffusion's Euler a: a deterministic
    step to sigma_down, then fresh noise of size sigma_up, with sigma_down^2 + sigma_up^2 =
    sigma_next^2 and sigma_up = eta * sigma_ve_next * sqrt(1 - q^2). Written in flow
    coordinates with the ratios up = sigma_up / sigma_ve_next, down = sigma_down / sigma_ve_next:
        x_next = (sigma_next / sigma) * down * x + alpha_next * (1 - q * down) * x0
                 + sigma_next * up * s_noise * noise
    Given the true x0 the re-noised state has exactly the flow marginal at sigma_next, for
    every eta; with a denoiser's posterior mean it under-disperses by O(step) like any
    first-order ancestral sampler (std 0.287 at 256 steps for N(0.5, 0.3^2), 0.294 at 1024).
    """
    _check_options(sample_flow_euler_ancestral, eta=eta, s_noise=s_noise, noise_sampler=noise_sampler)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    for i, sigma, sigma_next in _flow_steps(sigmas, disable, "flow euler a"):
        denoised = _denoised(model, x, sigmas, i, extra_args, callback)
        if sigma_next == 0.0:
            x = denoised
            continue
        q = _q(sigma, sigma_next)
        up = min(1.0, eta * math.sqrt(max(0.0, 1 - q * q)))
        down = math.sqrt(1 - up * up)
        x = (sigma_next / sigma) * down * x + (1 - sigma_next) * (1 - q * down) * denoised
        if up > 0:
            x = x + sigma_next * up * s_noise * noise_sampler(sigmas[i], sigmas[i + 1])
    return x


# Flow SDE's multistep mode: the predictor's polynomial passes through the last SDE_ORDER denoised
# values, the corrector's through one more. Order 3 and 4 (and a higher-order warm-up) were tried
# on the oracle fields: the higher-order polynomials through noisy denoised values overshoot on
# uniform-in-t schedules (simple, beta).
SDE_ORDER = 2
# ... and it injects noise only on the steps that end at a flow sigma inside this window, SA-Solver's
# default (20 % to 80 % of the timesteps; these are its sigmas at shift 3); the other steps solve
# the probability-flow ODE with the same integrator. A noisy step from sigma = 1 replaces the whole
# draw, and the long steps in lambda near the data under-disperse; at 8 to 12 model calls noise on
# every step left 2-10x the distribution error of the windowed pattern on the oracle mixtures
# (benchmarks/bench_samplers.py --stochastic).
SDE_NOISE_WINDOW = (0.43, 0.92)
_QUADRATURE_INTERVALS = 2000


def _lagrange_basis(nodes, points):
    """[l_j(points)] for the Lagrange basis polynomials over `nodes` (floats), points a tensor."""
    basis = []
    for j, node_j in enumerate(nodes):
        value = torch.ones_like(points)
        for m, node_m in enumerate(nodes):
            if m != j:
                value = value * (points - node_m) / (node_j - node_m)
        basis.append(value)
    return basis


def _exponential_weights(nodes, sigma, sigma_next, eta):
    """Weights b_j of the denoised values taken at the flow sigmas `nodes` for one SDE step.

    The data-prediction SDE in lambda = log(alpha / sigma) (alpha = 1 - sigma) solved exactly for
    its linear part gives, with h = lambda_next - lambda and D(lambda) the denoised,
        x_next = (sigma_next / sigma) e^(-eta h) x
                 + alpha_next * integral_0^h (1 + eta) e^(-(1 + eta) u) D(lambda_next - u) du + noise.
    D is replaced by the polynomial in sigma through the nodes (the flow path is smooth in sigma up
    to sigma = 1, where lambda is -inf). In v = e^(-u) the kernel is (1 + eta) v^eta dv and
    sigma = sigma_next / (sigma_next + alpha_next v); Simpson's rule on a grid uniform in log v
    (cut where v^(1 + eta) < e^-60) integrates it to ~1e-9. At sigma_next = 0 the kernel sits at
    sigma = 0, so b_j = l_j(0). Returns Python floats, one per node.
    """
    if sigma_next == 0.0:
        return [float(value) for value in _lagrange_basis(nodes, torch.zeros((), dtype=torch.float64))]
    alpha_next, nu = 1.0 - sigma_next, 1.0 + eta
    q = _q(sigma, sigma_next)
    low = max(math.log(q), -60.0 / nu) if q > 0 else -60.0 / nu
    log_v = torch.linspace(low, 0.0, _QUADRATURE_INTERVALS + 1, dtype=torch.float64)
    v = log_v.exp()
    simpson = torch.full_like(v, 2.0)
    simpson[1::2] = 4.0
    simpson[0] = simpson[-1] = 1.0
    kernel = nu * v ** nu * simpson * (-low / (3 * _QUADRATURE_INTERVALS))
    sigma_v = sigma_next / (sigma_next + alpha_next * v)
    return [alpha_next * float((kernel * basis).sum()) for basis in _lagrange_basis(nodes, sigma_v)]


def _sde_drift(x_from, sigma_from, sigma_to, eta, nodes):
    """The deterministic part of the SDE step sigma_from -> sigma_to through the (sigma, denoised) nodes."""
    weights = _exponential_weights([node for node, _ in nodes], sigma_from, sigma_to, eta)
    x = (sigma_to / sigma_from) * _q(sigma_from, sigma_to) ** eta * x_from
    return x + sum(w * denoised for w, (_, denoised) in zip(weights, nodes))


@torch.no_grad()
def sample_flow_sde(model, x, sigmas, extra_args=None, callback=None, disable=None,
                    eta=1.0, s_noise=1.0, noise_sampler=None, second_order=True):
    """Stochastic exponential integrator on the denoised in log-SNR (DPM-Solver++ SDE, SA-Solver), in flow coordinates.

    One step, exact for the linear part of the reverse SDE of noise level eta, with D the denoised:
        x_next = (sigma_next / sigma) * q^eta * x + alpha_next * (1 - q^(1 + eta)) * D
                 + sigma_next * sqrt(1 - q^(2 eta)) * s_noise * noise
    (q = e^-h, alpha = 1 - sigma); given the exact x0 the noise keeps the flow marginal exact, and
    eta = 0 is the probability-flow ODE. second_order=False takes exactly that first-order step.
    second_order=True (default) is a stochastic Adams predictor-corrector (the pattern of
    SA-Solver, Xue et al. 2023, with D interpolated in sigma instead of lambda, since lambda is
    -inf at sigma = 1): the predictor integrates the line through the last SDE_ORDER denoised
    values against the step's kernel (_exponential_weights); after the model call at the predicted
    point the step is redone through the polynomial that also passes through the new value, with
    the same noise and no extra model call. The corrector redoes up to SDE_ORDER steps of one eta at
    a time from the state where they began, carrying their noise along (so the first step, from
    sigma = 1, is corrected too). In this mode eta applies to the steps that end inside
    SDE_NOISE_WINDOW (flow sigma 0.43 to 0.92) and the others are ODE steps (SA-Solver's pattern), so
    a schedule that starts at or below 0.43 (img2img at low denoise) is solved as the ODE.
    The last step to sigma = 0 returns the denoised and adds no noise; a step from sigma = 1
    starts from x exactly. Distribution error against ComfyUI's stochastic samplers:
    benchmarks/bench_samplers.py --stochastic. Deterministic given noise_sampler.
    x: [batch, ...]; sigmas: flow sigmas, descending, in [0, 1]. Raises ValueError for a bad option
    (its registry entry) or bad sigmas.
    """
    _check_options(sample_flow_sde, eta=eta, s_noise=s_noise, second_order=second_order, noise_sampler=noise_sampler)
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    order = SDE_ORDER if second_order else 1
    history, span = [], None    # span: [x, sigma, noise since then, steps, eta] the corrector redoes
    for i, sigma, sigma_next in _flow_steps(sigmas, disable, "flow sde"):
        denoised = model(x, _sigma_batch(x, sigmas[i]), **extra_args)
        if span is not None and order > 1:
            x_from, sigma_from, noise, _, span_eta = span
            x = _sde_drift(x_from, sigma_from, sigma, span_eta, (history + [(sigma, denoised)])[-(order + 1):]) + noise
        _report(callback, x, i, sigmas[i], denoised)
        history = (history + [(sigma, denoised)])[-order:]
        if sigma_next == 0.0:
            x = denoised
            continue
        q = _q(sigma, sigma_next)
        step_eta = eta if order == 1 or SDE_NOISE_WINDOW[0] <= sigma_next <= SDE_NOISE_WINDOW[1] else 0.0
        noise = 0.0
        if step_eta > 0:
            noise = sigma_next * math.sqrt(1 - q ** (2 * step_eta)) * s_noise * noise_sampler(sigmas[i], sigmas[i + 1])
        if span is not None and span[3] < order and span[4] == step_eta:
            # the corrector will redo the whole span from its start: its noise so far, carried to sigma_next
            span[2] = (sigma_next / sigma) * q ** step_eta * span[2] + noise
            span[3] += 1
        else:
            span = [x, sigma, noise, 1, step_eta]
        x = _sde_drift(x, sigma, sigma_next, step_eta, history) + noise
    return x


def _adams_weights(nodes, start, end):
    """Weights w_j with sum_j w_j * g(nodes[j]) = integral_start^end of the interpolant of g.

    Variable-step Adams-Bashforth: the Lagrange basis over `nodes`, expanded into monomials and
    integrated exactly, all in Python double precision.
    """
    weights = []
    for j, node_j in enumerate(nodes):
        coeffs, denominator = [1.0], 1.0
        for m, node_m in enumerate(nodes):
            if m == j:
                continue
            coeffs = [0.0] + coeffs
            for k in range(len(coeffs) - 1):
                coeffs[k] -= node_m * coeffs[k + 1]
            denominator *= node_j - node_m
        weights.append(sum(c * (end ** (k + 1) - start ** (k + 1)) / (k + 1)
                           for k, c in enumerate(coeffs)) / denominator)
    return weights


@torch.no_grad()
def sample_flow_multistep(model, x, sigmas, extra_args=None, callback=None, disable=None, order=3):
    """Variable-step Adams-Bashforth multistep on dx/dsigma = v in flow time, one model call a step.

    The velocity along a flow path is smooth in sigma all the way to sigma = 1 (unlike eps in
    the VE view, where sigma = 1 is at infinity), so the polynomial through the last `order`
    velocities, integrated over the step, is accurate from the very first steps; this matters
    most for the long last step to sigma = 0 that short schedules end with.
    """
    _check_options(sample_flow_multistep, order=order)
    extra_args = {} if extra_args is None else extra_args
    history = []
    for i, sigma, sigma_next in _flow_steps(sigmas, disable, "flow multistep"):
        denoised = _denoised(model, x, sigmas, i, extra_args, callback)
        history = (history + [(sigma, (x - denoised) / sigma)])[-order:]
        weights = _adams_weights([node for node, _ in history], sigma, sigma_next)
        x = x + sum(w * velocity for w, (_, velocity) in zip(weights, history))
    return x


@torch.no_grad()
def sample_flow_pc(model, x, sigmas, extra_args=None, callback=None, disable=None, order=None):
    """Adams predictor-corrector on dx/dsigma = v in flow time, one model call a step.

    Predictor: variable-step Adams-Bashforth through the last `order` velocities (as
    sample_flow_multistep). Corrector: once the model has been called at the predicted point,
    the step just taken is redone with the Adams-Moulton polynomial that also passes through
    that new velocity, and the corrected x carries on; the velocity itself is not re-evaluated
    (PEC, the pattern of UniPC's corrector), so the corrector costs no model call and raises the
    order by one; the warm-up (its first velocities are taken at Euler- and trapezoid-accurate
    states) caps the observed global order near 3 (tests/core/test_samplers_low_nfe.py). The last
    step, to sigma = 0, is a predictor step (v is undefined at sigma = 0) of order 3 at most. A
    polynomial uses a past velocity only while the spacing of the nodes stays within
    STEP_RATIO_LIMIT of the step (else the order drops, down to Euler), so schedules other than
    flow_pc (Karras, exponential, simple at high shift) do not extrapolate far beyond their nodes.
    Under guidance (CFG 3-7) two per-sample checks keep it stable, without model calls: a sample
    whose corrector moves it by more than PC_UNSTABLE_RATIO of its step drops one order for the rest
    of the run, and each predictor step uses the highest order whose polynomial agrees with the one
    below within PC_EXTRAPOLATION_RATIO of the Euler step (tests/core/test_samplers_cfg.py). Each
    sample's result depends on that sample alone. A repeated sigma is skipped without a model call.

    order=None picks the order from the number of steps: 4 below 12 steps, 5 from 12 on (a
    choice made on the oracle fields). The first steps use the history there is. Pair it with
    the `flow_pc` schedule (sigma = t^1.6 on a uniform t grid). Exact at both ends: it starts
    from x at sigmas[0] and its last step lands on sigmas[-1] (the data when that is 0).
    x: [batch, ...]; sigmas: flow sigmas, descending, in [0, 1]. Raises ValueError for an order
    other than None or 1..5 and for sigmas outside [0, 1].
    """
    flow = _flows(sigmas)
    steps = len(flow) - 1
    if order is None:
        order = 4 if steps < 12 else 5
    _check_pc_order(order)
    extra_args = {} if extra_args is None else extra_args
    history, previous, first, evaluated, steady = [], None, (x, flow[0]), 0, True
    orders = torch.full((x.shape[0],), order, device=x.device)      # per sample: lowered where unstable
    for i, sigma, sigma_next in _flow_steps(flow, disable, "flow pc"):
        denoised = model(x, _sigma_batch(x, sigmas[i]), **extra_args)
        velocity = (x - denoised) / sigma
        if previous is not None:
            corrected = x
            for o in sorted(set(orders.tolist())):
                nodes = (history + [(sigma, velocity)])[-(o + 1):]
                if steady and evaluated <= o:
                    # while every velocity since the start fits one corrector polynomial, correct the
                    # whole way from the start, so the warm-up steps are not lower order
                    x_start, sigma_start = first
                else:
                    x_start, sigma_start = previous
                    nodes = nodes[-(_steady_nodes([node for node, _ in nodes[:-1]], sigma_start, sigma) + 1):]
                corrected = torch.where(_per_sample_mask(orders == o, x),
                                        _adams_step(x_start, nodes, sigma_start, sigma), corrected)
            unstable = _per_sample_rms(corrected - x) > PC_UNSTABLE_RATIO * _per_sample_rms(x - previous[0])
            orders = torch.where(unstable & (orders > PC_UNSTABLE_ORDER), orders - 1, orders)
            x = corrected
        _report(callback, x, i, sigmas[i], denoised)
        history = (history + [(sigma, velocity)])[-order:]
        evaluated += 1
        nodes = history[-_steady_nodes([node for node, _ in history], sigma, sigma_next):]
        if sigma_next == 0.0:
            nodes = nodes[-LAST_STEP_ORDER:]
        steady = steady and len(nodes) == len(history)
        previous = (x, sigma)
        x = _checked_extrapolation(x, nodes, sigma, sigma_next, orders)
    return x


def _adams_step(x, nodes, start, end):
    """x + the integral from start to end of the polynomial through nodes ((sigma, velocity) pairs)."""
    weights = _local_adams_weights([node for node, _ in nodes], start, end)
    return x + sum(w * v for w, (_, v) in zip(weights, nodes))


def _per_sample_rms(tensor):
    """[batch] float32 RMS of each sample, each reduced on its own (so the same bits alone or in any
    batch, whatever the thread count; float32 because MPS has no float64)."""
    if tensor.shape[0] == 0:
        return torch.zeros(0, device=tensor.device)
    return torch.stack([sample.float().pow(2).mean().sqrt() for sample in tensor])


def _per_sample_mask(mask, x):
    return mask.reshape([-1] + [1] * (x.ndim - 1))


def _checked_extrapolation(x, nodes, start, end, orders):
    """Flow PC's predictor: per sample the highest order k <= its order (and <= len(nodes)) whose
    polynomials of orders 2..k each change the step of the one below by at most PC_EXTRAPOLATION_RATIO
    of the Euler step; the others extrapolate wildly (guided fields, long steps)."""
    predictions = [_adams_step(x, nodes[-k:], start, end) for k in range(1, len(nodes) + 1)]
    euler_move = _per_sample_rms(predictions[0] - x)
    chosen = torch.ones_like(orders)
    agrees = torch.ones_like(orders, dtype=torch.bool)
    for k in range(2, len(nodes) + 1):
        agrees = agrees & (_per_sample_rms(predictions[k - 1] - predictions[k - 2]) <= PC_EXTRAPOLATION_RATIO * euler_move)
        chosen = torch.where(agrees & (orders >= k), torch.full_like(chosen, k), chosen)
    out = predictions[0]
    for k in range(2, len(nodes) + 1):
        out = torch.where(_per_sample_mask(chosen == k, x), predictions[k - 1], out)
    return out


# Flow PC fits one polynomial through past velocities only while their spacing stays within this
# factor of the step it takes (either way). Schedules whose steps grow or shrink faster (Karras or
# exponential at few steps, where sigma falls from 1 to 0.44 and then by 0.44x a step) would
# otherwise extrapolate a polynomial far beyond its nodes (sharp two-mode mixture, shift 3, exponential,
# 8 steps: RMSE 8.8 without the limit, 0.12 with it, Flow Euler 0.10). On the flow_pc schedule it
# only trims the oldest nodes of the last few steps: over benchmarks/bench_samplers.py's 18 field x
# shift cases at 4-32 calls Flow PC + flow_pc moved by 0.83-1.20x (median 1.00; the mixtures mostly
# gained, the single Gaussian lost up to 20 %).
STEP_RATIO_LIMIT = 3.0
# A ratio within this relative margin of STEP_RATIO_LIMIT counts as at the limit (kept). Schedules built
# from the shift's rational function hit 3 exactly (flow_shift at shift 6, 5 steps: the step 0.6 -> 0
# against the spacing 0.8 -> 0.6; shift 3, 2 steps: 0.75 -> 0 against 1 -> 0.75); without the margin
# float32 rounding of the sigmas, or the VE view's start at its cap (sigma 1 - 3e-5), decided the
# order, and the same schedule gave results over 1.0 apart (largest difference; two modes at +-1) in float32
# and float64 or in the two views (tests/core/test_samplers_low_nfe.py).
# 2e-4 covers float32 rounding (~1e-6) and the cap (1.3e-4 there); karras at 8 steps, shift 3 (3.0013) stays out.
STEP_RATIO_MARGIN = 2e-4
# The step to sigma = 0 extrapolates the velocity to where it is undefined; a polynomial through
# more than three velocities swings there on multimodal data (two modes at +-1, shift 3, simple,
# 28 steps, the benchmark's 1x4x32x32 noise: RMSE 0.133 at order 5, 0.028 at 3, Flow Euler 0.037).
LAST_STEP_ORDER = 3


# Under classifier-free guidance the guided velocity can be stiff (at CFG 5-7 it pulls x onto the
# cond modes far faster than the data's own velocity does) and far from polynomial over a long step,
# and high-order Adams steps go unstable: on benchmarks/bench_cfg.py's guided fields Flow PC at order 5
# on the flow_pc schedule, 20-28 steps, reached RMSE 0.067 (CFG 5) and 0.20 (CFG 7), Flow Euler 0.12,
# and on `simple` at shift 3 (last step 0.14 -> 0 at 20 steps) 2.9 at CFG 7 (Flow Euler 0.05). Two
# per-sample checks, no extra model call: where the corrector moves x by more than PC_UNSTABLE_RATIO of
# the step's own movement, that sample's order drops by one for the rest of the run (down to
# PC_UNSTABLE_ORDER); and each predictor step uses the highest order whose polynomial changes the
# step of the order below by at most PC_EXTRAPOLATION_RATIO of the Euler step. Effect and cost:
# docs/bench_cfg.txt (unguided fields on flow_pc: unchanged from 12 steps on, 0.5-1.3x at 4-8; README's Benchmark).
PC_UNSTABLE_RATIO = 0.3
PC_UNSTABLE_ORDER = 2
PC_EXTRAPOLATION_RATIO = 0.5


def _steady_nodes(nodes, start, end):
    """How many of the most recent `nodes` (sigmas, the last one = start) one Adams polynomial may use
    for the step start -> end: the last node, then each earlier one while the spacing to its
    successor is within STEP_RATIO_LIMIT (and STEP_RATIO_MARGIN) of the step's length (at least 1: Euler)."""
    step = abs(end - start)
    limit = STEP_RATIO_LIMIT * (1 + STEP_RATIO_MARGIN)
    count = 1
    for later, earlier in zip(reversed(nodes), list(reversed(nodes))[1:]):
        spacing = abs(earlier - later)
        if step > limit * spacing or spacing > limit * step:
            break
        count += 1
    return count


def _check_pc_order(order):
    # not a registry option: Flow PC picks its order from the step count unless a caller sets one
    check_integer("order", order, minimum=1, maximum=5)


def _local_adams_weights(nodes, start, end):
    """_adams_weights in the step's own coordinate (sigma - start) / (end - start).

    Nodes a few thousandths apart near sigma = 0.9 make the monomial expansion in sigma itself
    lose digits at orders 4 and 5; in the local coordinate the nodes sit at 0, -1, -2, ...
    """
    width = end - start
    return [w * width for w in _adams_weights([(node - start) / width for node in nodes], 0.0, 1.0)]
