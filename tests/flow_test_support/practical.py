"""The webui practical suite's shared pieces (A1111, reForge and Forge runners): the keyword arguments
a webui passes to a k-diffusion sampler, and the reference figures of one table row.

Runs inside each host's own Python, so it imports only the stdlib (and torch through its arguments;
`practical_fields` imports model_sampling_flow when called).
"""
import hashlib
import inspect
import os

# Classifier-free guidance of the practical suites: FLOW_PRACTICAL_CFG (a number, default 1).
CFG_VARIABLE = "FLOW_PRACTICAL_CFG"
# An element this far from its reference's ended elsewhere (at CFG 5 on two modes: in the other mode).
FAR_ELEMENT = 0.1
# The CFG tier cases hold a deterministic row to its reference element by element as well: the error bar
# is loose where the reference itself is far from the exact answer (the CFG++ samplers aim elsewhere).
ELEMENT_DIFF_LIMIT = 1e-3


def practical_cfg():
    """The CFG scale the practical suites run at: float(FLOW_PRACTICAL_CFG), default 1.0.
    Raises ValueError naming the variable when it is not a finite number >= 1."""
    text = os.environ.get(CFG_VARIABLE, "1")
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 1 or value == float("inf"):
        raise ValueError(f"{CFG_VARIABLE} must be a finite number >= 1, got {text!r}")
    return value


def practical_fields(cfg=1.0):
    """The practical suites' fields, name -> (cond, uncond, reference).

    At cfg 1: "gaussian" N(0.5, 0.3^2) and "mixture" (oracles.mixture_field()), uncond None (the
    network answers every row with cond: the measurements of docs/practical_steps*.txt).
    Above 1: the CFG pairs of flow_test_support.guided ("gaussian", "two_modes", "three_modes"), the
    network answers negative-prompt rows with uncond (models.GuidedVelocityNetwork) and `reference`
    is oracles.GuidedField(cond, uncond, cfg), the exact answer (its `endpoint` and denoiser).
    """
    from model_sampling_flow import oracles
    if cfg == 1:
        gaussian, mixture = oracles.gaussian_field(0.5, 0.3), oracles.mixture_field()
        return {"gaussian": (gaussian, None, gaussian), "mixture": (mixture, None, mixture)}
    from .guided import GUIDED_PAIRS
    return {name: (cond, uncond, oracles.GuidedField(cond, uncond, cfg))
            for name, (cond, uncond, _) in GUIDED_PAIRS.items()}


def default_field_names(cfg):
    """The fields a practical sweep runs unless FLOW_PRACTICAL_FIELDS names others: the Gaussian and the
    mixture at cfg 1, the Gaussian and two-mode guided pairs above it."""
    return ["gaussian", "mixture"] if cfg == 1 else ["gaussian", "two_modes"]


def kdiffusion_kwargs(function, steps, sigmas, table, options, eta=1.0, noise_sampler=None):
    """Keyword arguments for k-diffusion sampler `function`, as a webui's KDiffusionSampler passes them:
    `n` (steps), `sigma_min` / `sigma_max` (first / last of `table`, the model's sigma table),
    `sigmas` ((steps + 1,) schedule), `eta` (Settings: eta for ancestral samplers), `noise_sampler`
    (called with no arguments, only when the sampler config's `options` ask for brownian noise) and
    `solver_type` ("heun" when `options` say so). Only the arguments `function` takes are set."""
    parameters = inspect.signature(function).parameters
    kwargs = {}
    if "n" in parameters:
        kwargs["n"] = steps
    if "sigma_min" in parameters:
        kwargs["sigma_min"], kwargs["sigma_max"] = float(table[0]), float(table[-1])
    if "sigmas" in parameters:
        kwargs["sigmas"] = sigmas
    if "eta" in parameters:
        kwargs["eta"] = eta
    if options.get("brownian_noise", False):
        kwargs["noise_sampler"] = noise_sampler()
    if options.get("solver_type") == "heun":
        kwargs["solver_type"] = "heun"
    return kwargs



def rmse(a, b):
    """Root-mean-square difference (float) of two tensors of one shape."""
    return float(((a - b) ** 2).mean().sqrt())


def reference_figures(reference, field, noise, kind, samples=None):
    """A practical row's reference figures: `ref_mean` / `ref_std` of `reference` (B, C, H, W), and for
    a deterministic `kind` the RMSE to the exact endpoint `field.endpoint(noise)` of `samples` (`rmse`,
    when given) and of `reference` (`ref_rmse`); with `samples`, how far they are from the reference
    element by element: `ref_diff` (RMS of samples - reference) and `ref_far` (elements more than
    FAR_ELEMENT apart: at CFG 5 on two modes, an element that ended in the other mode). The bar compares
    errors, which a reference far from the exact answer (a CFG++ sampler) leaves loose; ref_diff does not.
    Returns a dict in that key order."""
    figures = {"ref_mean": float(reference.mean()), "ref_std": float(reference.std())}
    if kind == "deterministic":
        exact = field.endpoint(noise.double())
        if samples is not None:
            figures["rmse"] = rmse(samples, exact)
        figures["ref_rmse"] = rmse(reference, exact)
    if samples is not None:
        difference = samples.double() - reference.double()
        figures["ref_diff"] = float(difference.pow(2).mean().sqrt())
        figures["ref_far"] = int((difference.abs() > FAR_ELEMENT).sum())
    return figures



def reference_failure(key, row):
    """Why a measured row (`key`: its table key) misses the practical bar against its reference, or None:
    a deterministic sampler's RMSE to the exact endpoint must be <= 1.1 x + 1e-3 that of the same
    sampler in native flow coordinates (`rmse`, `ref_rmse`); a stochastic sampler's mean and std within
    0.01 of the same sampler in the VE view (`mean` / `std`, `ref_mean` / `ref_std`)."""
    if row["kind"] == "deterministic":
        if row["rmse"] > 1.1 * row["ref_rmse"] + 1e-3:
            return f"{key}: RMSE {row['rmse']:.4f} vs native flow {row['ref_rmse']:.4f}"
    elif abs(row["mean"] - row["ref_mean"]) > 0.01 or abs(row["std"] - row["ref_std"]) > 0.01:
        return (f"{key}: mean/std {row['mean']:.4f}/{row['std']:.4f} vs VE reference "
                f"{row['ref_mean']:.4f}/{row['ref_std']:.4f}")
    return None


def cache_endpoint(reference):
    """`reference` (a field with `endpoint(noise)`) with its endpoint computed once per noise tensor, the
    cache keyed by shape, dtype and a digest of the values: a GuidedField's endpoint is a float64 RK4
    solve of a few seconds, and the practical suites' rows of one field share the webui's noise. Sets
    the instance's `endpoint` (returns a clone of the cached tensor) and returns `reference`."""
    solve, cache = reference.endpoint, {}

    def endpoint(noise):
        key = (tuple(noise.shape), str(noise.dtype),
               hashlib.sha256(noise.detach().cpu().contiguous().numpy().tobytes()).hexdigest())
        if key not in cache:
            cache[key] = solve(noise)
        return cache[key].clone()
    reference.endpoint = endpoint
    return reference



def element_failure(key, row):
    """Why a deterministic row with `ref_diff` / `ref_far` (reference_figures with samples) is not the
    same result as its reference, or None: RMS difference above ELEMENT_DIFF_LIMIT or any element more
    than FAR_ELEMENT apart. A row without those keys is a failure (its figures were not measured)."""
    if "ref_diff" not in row or "ref_far" not in row:
        return f"{key}: no element-wise comparison with the reference"
    if row["ref_diff"] > ELEMENT_DIFF_LIMIT or row["ref_far"]:
        return f"{key}: {row['ref_diff']:.2e} RMS from its reference, {row['ref_far']} elements > {FAR_ELEMENT}"
    return None
