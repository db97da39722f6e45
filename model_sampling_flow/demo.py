"""CPU demo: an exactly known rectified-flow model, sampled the right ways and the wrong ways.

The "model" is the exact denoiser of a known image distribution: a procedurally drawn 32x32
RGB scene plus a smooth random colour field, a Gaussian that is diagonal in the 2-D DCT basis
(oracles.GaussianImageField). Its velocity is closed form, and so is the end of the probability-flow
ODE for any noise. So nothing below has training error: whatever goes wrong is the sampling.
(A finite set of images would be exact too, but its denoiser snaps every trajectory onto the
nearest image at the last step, which hides exactly the errors this demo is meant to show.)

Two errors are printed per sampler and step count:
  * spectrum error: per band of spatial frequency, how far the samples' amplitude is from the
    data's (washed out, noisy, burnt and colour-shifted images all show); every sampler has one.
    It is a statistic of a finite batch, so exact samples score above 0 too: the table states
    the mean and range of exact batches of the same size, below which no sampler can be judged;
  * distance to the exact ODE result of the same noise, for the deterministic samplers.
The picture follows the same split: deterministic samplers tile by tile against the exact ODE
endpoints of the same noise; stochastic ones (whose samples are other draws from the data,
never the same images) by their per-band amplitudes against the data's.

Right ways: every sampler in registry.SAMPLERS on the flow_shift schedule, plus k-diffusion's
Euler a run in the VE view (what a webui does with this project's VE model sampling).
Wrong ways, each something a host does when it does not know the checkpoint is RF:
  * "as SDXL eps model":     SDXL's discrete VP schedule, network output read as noise;
  * "as SDXL v model":       the same schedule, output read as v-prediction;
  * "VE Euler a on flow x":  k-diffusion's Euler a formulas applied to flow sigmas and flow x,
    which re-noises by sigma_up as if x were x0 + sigma * noise.
"""
import math
import os
import sys
import time

import torch

from . import picture
from .model_sampling import FlowModelSampling, FlowVEModelSampling
from .oracles import GaussianImageField, draw_scene
from .registry import SAMPLERS
from .schedule import check_integer
from .schedulers import get_sigmas

DEFAULT_OUT = "flow_demo"
DEFAULT_STEPS = (4, 8, 16, 24, 32)
DEFAULT_BATCH = 16
PICTURE_STEPS = 24
SHIFT = 3.0
IMAGE_SIZE = 32


# ---------------------------------------------------------------------------------------------
# the wrong ways: an SDXL host that does not know the model is RF
def sdxl_discrete_sigmas():
    """SDXL's 1000 VP sigmas: scaled_linear betas 0.00085 .. 0.012, sigma = sqrt((1 - abar) / abar)."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt()


def _sigma_to_t(log_sigmas, sigma):
    """Fractional table index of a VP sigma, interpolated in log sigma (as k-diffusion does)."""
    log_sigma = math.log(sigma)
    index = int(torch.searchsorted(log_sigmas, torch.tensor(log_sigma, dtype=torch.float64)).clamp(1, 999))
    low, high = float(log_sigmas[index - 1]), float(log_sigmas[index])
    w = min(max((log_sigma - low) / (high - low), 0.0), 1.0)
    return index - 1 + w


def sdxl_normal_schedule(steps):
    """Uniform in timestep from 999 to 0 on SDXL's table, then 0 (the hosts' 'normal' scheduler)."""
    table = sdxl_discrete_sigmas()
    log_table = table.log()
    sigmas = []
    for t in torch.linspace(999, 0, steps, dtype=torch.float64).tolist():
        low = int(math.floor(t))
        high = min(low + 1, 999)
        w = t - low
        sigmas.append(math.exp((1 - w) * float(log_table[low]) + w * float(log_table[high])))
    return sigmas + [0.0], log_table


def sdxl_wrapped(field, log_table, prediction):
    """The RF model seen through SDXL's eps or v parameterisation (k-diffusion CompVis denoisers).

    The network gets c_in * x and the table timestep t; an RF network reads t as flow time
    t / 1000 and answers with its flow velocity, which the host then reads as eps or v.
    """
    def model(x, sigma):
        c_in = 1 / math.sqrt(sigma ** 2 + 1)
        flow_sigma = max(_sigma_to_t(log_table, sigma) / 1000, 1e-3)
        x_in = x * c_in
        velocity = (x_in - field(x_in, flow_sigma)) / flow_sigma
        if prediction == "eps":
            return x - sigma * velocity
        return x / (sigma ** 2 + 1) - velocity * sigma / math.sqrt(sigma ** 2 + 1)
    return model


def sample_ve_euler(model, noise, sigmas):
    """k-diffusion's Euler on VE sigmas: x starts at noise * sigma_max."""
    x = noise * sigmas[0]
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        denoised = model(x, sigma)
        x = x + (x - denoised) / sigma * (sigma_next - sigma)
    return x


def sample_ve_euler_ancestral(model, x, sigmas, noise_sampler):
    """k-diffusion's Euler a (eta 1) formulas on whatever sigmas and x it is handed."""
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        denoised = model(x, sigma)
        sigma_up = min(sigma_next, math.sqrt(sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2))
        sigma_down = math.sqrt(sigma_next ** 2 - sigma_up ** 2)
        x = denoised + (x - denoised) * (sigma_down / sigma)
        if sigma_next > 0:
            x = x + sigma_up * noise_sampler()
    return x


# ---------------------------------------------------------------------------------------------
# the runs
class Method:
    """One way of sampling: name, whether it is right for a flow model, whether it draws noise,
    run(noise, steps, generator) -> x0 of shape (B, 3, H, W), and a note for the table."""

    def __init__(self, name, right, stochastic, run, note=""):
        self.name, self.right, self.stochastic, self.run, self.note = name, right, stochastic, run, note


def methods(field):
    """Every way of sampling the demo shows; run(noise, steps, generator) -> x0."""
    flow = FlowModelSampling(shift=SHIFT)
    ve = FlowVEModelSampling(shift=SHIFT)

    def project(entry):
        def run(noise, steps, generator):
            sigmas = get_sigmas(flow, "flow_shift", steps)
            options = {}
            if entry.takes_noise_sampler:
                options["noise_sampler"] = lambda s, s_next: torch.randn(noise.shape, generator=generator)
            return entry.function(field, noise.clone(), sigmas, disable=True, **options)
        return run

    def note(entry):
        calls = entry.model_calls_per_step
        return f"{entry.label}, {calls} model call{'s' if calls > 1 else ''} a step"

    out = [Method(entry.name, True, entry.stochastic, project(entry), note(entry)) for entry in SAMPLERS]

    def ve_view_euler_a(noise, steps, generator):
        sigmas = [float(s) for s in get_sigmas(ve, "flow_shift", steps)]

        def model(x_ve, sigma_ve):
            return field(ve.calculate_input(torch.tensor([sigma_ve]), x_ve), sigma_ve / (1 + sigma_ve))
        return sample_ve_euler_ancestral(model, noise * sigmas[0], sigmas,
                                         lambda: torch.randn(noise.shape, generator=generator))
    out.append(Method("euler_a in VE view", True, True, ve_view_euler_a,
                      "k-diffusion's Euler a formulas on FlowVEModelSampling"))

    def as_sdxl(prediction):
        def run(noise, steps, generator):
            sigmas, log_table = sdxl_normal_schedule(steps)
            return sample_ve_euler(sdxl_wrapped(field, log_table, prediction), noise, sigmas)
        return run
    out.append(Method("as SDXL eps model", False, False, as_sdxl("eps"), "Euler, SDXL schedule, eps"))
    out.append(Method("as SDXL v model", False, False, as_sdxl("v"), "Euler, SDXL schedule, v-pred"))

    def biased_ancestral(noise, steps, generator):
        sigmas = [float(s) for s in get_sigmas(flow, "flow_shift", steps)]
        return sample_ve_euler_ancestral(field, noise.clone(), sigmas,
                                         lambda: torch.randn(noise.shape, generator=generator))
    out.append(Method("VE Euler a on flow x", False, True, biased_ancestral,
                      "Euler a formulas on flow sigmas"))
    return out


def _progress(done, total, label, enabled, started):
    if not enabled:
        return
    width = 28
    filled = int(width * done / total)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                     f"{time.monotonic() - started:5.1f}s {label:<34}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def run(out_dir=DEFAULT_OUT, steps=DEFAULT_STEPS, batch=DEFAULT_BATCH, seed=0, progress=True,
        picture_steps=PICTURE_STEPS, write_files=True):
    """Sample every method at every step count; write demo.png and demo_table.txt into out_dir.

    Returns {"spectrum": {method: {steps: spectrum error}}, "endpoint": {method: {steps: RMS}}
    (deterministic methods only), "right": {method: bool}, "reference": spectrum error of exact
    samples, "table_text", "png_path", "table_path", "exact", "pictures"}.
    """
    # The tensors are tiny: one thread is faster, and on a busy machine far faster, than several.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(out_dir, steps, batch, seed, progress, picture_steps, write_files)
    finally:
        torch.set_num_threads(threads)


REFERENCE_BATCHES = 8


def exact_batch_scores(field, batch, seed, count=REFERENCE_BATCHES):
    """Spectrum errors of `count` independent batches of exact samples: the floor of the measure."""
    return [field.spectrum_error(field.sample(batch, torch.Generator().manual_seed(seed + 100 + k)))
            for k in range(count)]


def _run(out_dir, steps, batch, seed, progress, picture_steps, write_files):
    steps = tuple(steps)
    if not steps:
        raise ValueError(f"steps must hold at least one step count, got {steps!r}")
    for count in steps:
        check_integer("steps", count, minimum=1)
    check_integer("batch", batch, minimum=1)
    check_integer("picture_steps", picture_steps, minimum=1)
    check_integer("seed", seed, minimum=0)
    field = GaussianImageField(draw_scene(seed=seed))
    noise = torch.randn((batch, 3, field.size, field.size), generator=torch.Generator().manual_seed(seed + 1))
    exact = field.endpoint(noise)
    floor = exact_batch_scores(field, batch, seed)
    reference = {"mean": sum(floor) / len(floor), "min": min(floor), "max": max(floor)}
    all_methods = methods(field)
    jobs = [(m, s) for m in all_methods for s in steps]
    if picture_steps not in steps:
        jobs += [(m, picture_steps) for m in all_methods]
    spectrum = {m.name: {} for m in all_methods}
    endpoint = {m.name: {} for m in all_methods if not m.stochastic}
    pictures, bands = {}, {}
    started = time.monotonic()
    for done, (method, count) in enumerate(jobs):
        _progress(done, len(jobs), f"{method.name}, {count} steps", progress, started)
        with torch.no_grad():
            samples = method.run(noise, count, torch.Generator().manual_seed(seed + 3))
        if count in steps:
            spectrum[method.name][count] = field.spectrum_error(samples)
            if method.name in endpoint:
                endpoint[method.name][count] = field.endpoint_error(samples, noise)
        if count == picture_steps:
            pictures[method.name] = samples
            bands[method.name] = field.band_amplitudes(samples)
    _progress(len(jobs), len(jobs), "done", progress, started)
    right = {m.name: m.right for m in all_methods}
    notes = {m.name: m.note for m in all_methods}
    stochastic = {m.name: m.stochastic for m in all_methods}
    table_text = format_tables(spectrum, endpoint, right, notes, steps, reference)
    result = {"spectrum": spectrum, "endpoint": endpoint, "right": right, "stochastic": stochastic,
              "reference": reference, "table_text": table_text, "exact": exact, "pictures": pictures,
              "bands": bands, "exact_bands": field.band_amplitudes(field.sample(batch, torch.Generator().manual_seed(seed + 2))),
              "picture_steps": picture_steps, "png_path": None, "table_path": None}
    if write_files:
        os.makedirs(out_dir, exist_ok=True)
        result["png_path"] = os.path.join(out_dir, "demo.png")
        result["table_path"] = os.path.join(out_dir, "demo_table.txt")
        picture.write_png(result["png_path"], render(result))
        with open(result["table_path"], "w", encoding="utf-8") as handle:
            handle.write(table_text + "\n")
    return result


def _number(value):
    """Four significant digits in at most 7 characters."""
    if value >= 1e5:
        return f"{value:.1e}"
    return f"{value:.4g}" if value >= 1 else f"{value:.4f}"


def _table(values, right, notes, steps):
    name_width = max(len(name) for name in values) + 2
    head = f"{'sampler':<{name_width}}{'':7}" + "".join(f"{s:>8}" for s in steps) + "   note"
    lines = [head, "-" * len(head)]
    for name, by_steps in values.items():
        verdict = "right" if right[name] else "WRONG"
        lines.append(f"{name:<{name_width}}{verdict:<7}" + "".join(_number(by_steps[s]).rjust(8)
                                                               for s in steps)
                     + (f"   {notes[name]}" if notes[name] else ""))
    return lines


def format_tables(spectrum, endpoint, right, notes, steps, reference):
    lines = [f"Exact rectified-flow model (flow shift {SHIFT:g}); columns are sampling steps.", "",
             "Spectrum error (RMS over frequency bands of the difference between the samples' and the data's "
             f"amplitude; 0 is exact; batches of exact samples of this size score {reference['mean']:.4f} on "
             f"average, {reference['min']:.4f} to {reference['max']:.4f} over {REFERENCE_BATCHES} batches, "
             "so differences below that are chance):"]
    lines += _table(spectrum, right, notes, steps)
    lines += ["", "Distance to the exact result for the same noise (RMS, images span -1..1; "
                  "deterministic samplers only):"]
    lines += _table(endpoint, right, notes, steps)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the picture
VISIBLE_AMPLITUDE = 0.05
INK, GREY, GREEN, RED, BACKGROUND = (30, 30, 30), (100, 100, 100), (20, 125, 50), (200, 30, 30), (250, 250, 247)


def render(result, columns=8, scale=2):
    """The demo picture as an (H, W, 3) uint8 canvas.

    Top: deterministic samplers, tile by tile under the exact ODE endpoints of the same noise,
    labelled with their distance to them. Bottom: stochastic samplers, whose samples are other
    draws from the data and cannot match tile by tile: a few samples and, per frequency band,
    the samples' amplitude over the data's (1 = the data; short bars wash out, tall ones are noise).
    """
    steps = result["picture_steps"]
    tile = result["exact"].shape[-1] * scale
    gap, label_width, head = 6, 330, 84
    deterministic = [name for name in result["pictures"] if not result["stochastic"][name]]
    stochastic = [name for name in result["pictures"] if result["stochastic"][name]]
    bar_columns = 3
    rows = 2 + len(deterministic) + len(stochastic)
    width = label_width + columns * (tile + gap) + gap
    height = head + rows * (tile + gap) + 2 * 30 + 42
    canvas = picture.new_canvas(height, width, BACKGROUND)
    picture.draw_text(canvas, "ONE EXACT RECTIFIED-FLOW MODEL, SAMPLED RIGHT AND WRONG", 10, 10, INK, 2)
    reference = result["reference"]
    for line, text in enumerate((
            f"{steps} steps. green: right for a flow model (this project's samplers; k-diffusion's Euler a on "
            f"the VE view). red: what a host does",
            "when it takes the checkpoint for an ordinary SDXL model, or re-noises in VE terms on flow sigmas.",
            f"dist: RMS distance to the exact endpoint of the same noise. err: spectrum error, 0 is exact; "
            f"exact batches of this size score {reference['mean']:.3f} ({reference['min']:.3f}-{reference['max']:.3f})."), ):
        picture.draw_text(canvas, text, 10, 36 + 12 * line, GREY, 1)

    def label(y, name, ok, detail):
        colour = GREEN if ok else RED
        picture.fill(canvas, y, 4, tile, 4, colour)
        picture.draw_text(canvas, name, 14, y + tile // 2 - 16, colour, 2)
        picture.draw_text(canvas, detail, 14, y + tile // 2 + 4, colour, 2)

    def tiles(y, images, first_column=0):
        for column in range(min(columns - first_column, images.shape[0])):
            x = label_width + gap + (first_column + column) * (tile + gap)
            canvas[y:y + tile, x:x + tile] = picture.image_tile(images[column], scale)

    y = head
    picture.draw_text(canvas, "DETERMINISTIC: THE SAME NOISE, TILE BY TILE", 10, y, INK, 2)
    y += 24
    picture.draw_text(canvas, "exact (ODE endpoint)", 14, y + tile // 2 - 6, INK, 2)
    tiles(y, result["exact"])
    y += tile + gap
    for name in deterministic:
        distance = result["endpoint"][name].get(steps)
        detail = f"{'right' if result['right'][name] else 'WRONG'}  dist {distance:.3f}" if distance is not None \
            else ('right' if result['right'][name] else 'WRONG')
        label(y, name, result["right"][name], detail)
        tiles(y, result["pictures"][name])
        y += tile + gap
    y += 6
    picture.draw_text(canvas, "STOCHASTIC: OTHER DRAWS, JUDGED BY THEIR STATISTICS", 10, y, INK, 2)
    y += 24
    bar_left = label_width + gap + (columns - bar_columns) * (tile + gap) + 8
    # bands whose data amplitude the eye can see; the finest grain (0.01) is below that and no
    # sampler resolves it at practical step counts: it stays in the printed spectrum error
    visible = [index for index, (_, truth) in enumerate(result["exact_bands"]) if truth >= VISIBLE_AMPLITUDE]
    bar_width = max(4, (bar_columns * (tile + gap) - 24) // len(visible) - 6)

    def bars(y, amplitudes, colour):
        ratios = [amplitudes[i][0] / amplitudes[i][1] for i in visible]
        picture.log_ratio_bars(canvas, ratios, y + 4, bar_left, tile - 8, bar_width, colour, GREY, gap=6)

    picture.draw_text(canvas, "exact samples", 14, y + tile // 2 - 6, INK, 2)
    tiles(y, result["exact"][:columns - bar_columns])
    bars(y, result["exact_bands"], INK)
    y += tile + gap
    for name in stochastic:
        error = result["spectrum"][name].get(steps)
        label(y, name, result["right"][name],
              f"{'right' if result['right'][name] else 'WRONG'}  err {error:.3f}" if error is not None else "")
        tiles(y, result["pictures"][name][:columns - bar_columns])
        bars(y, result["bands"][name], GREEN if result["right"][name] else RED)
        y += tile + gap
    for line, text in enumerate(("bars: per frequency band, coarse to fine, the samples' amplitude over the data's "
                                 "on a log scale (clipped at 8x):",
                                 "the line is the data, up is too strong (noise, burn), down too weak (washed out).")):
        picture.draw_text(canvas, text, 10, y + 2 + 12 * line, GREY, 1)
    picture.draw_text(canvas, "python -m model_sampling_flow demo", 10, height - 16, GREY, 1)
    return canvas
