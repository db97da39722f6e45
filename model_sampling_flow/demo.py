"""CPU demo: an exactly known rectified-flow model, sampled the right ways and the wrong ways.

The "model" is the exact denoiser of a known image distribution: a procedurally drawn 32x32
RGB scene plus a smooth random colour field, a Gaussian that is diagonal in the 2-D DCT basis
(GaussianImageField). Its velocity is closed form, and so is the end of the probability-flow
ODE for any noise. So nothing below has training error: whatever goes wrong is the sampling.
(A finite set of images would be exact too, but its denoiser snaps every trajectory onto the
nearest image at the last step, which hides exactly the errors this demo is meant to show.)

Two errors are printed per sampler and step count:
  * spectrum error: per band of spatial frequency, how far the samples' amplitude is from the
    data's (washed out, noisy, burnt and colour-shifted images all show); every sampler has one;
  * distance to the exact ODE result of the same noise, for the deterministic samplers.

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
import struct
import sys
import time
import zlib

import torch

from .model_sampling import FlowModelSampling, FlowVEModelSampling
from .registry import SAMPLERS
from .schedulers import get_sigmas

DEFAULT_OUT = "flow_demo"
DEFAULT_STEPS = (4, 8, 16, 24, 32)
DEFAULT_BATCH = 16
PICTURE_STEPS = 24
SHIFT = 3.0
IMAGE_SIZE = 32


# ---------------------------------------------------------------------------------------------
# the exact model
def draw_scene(size=IMAGE_SIZE, seed=0):
    """A procedural RGB picture in [-0.75, 0.75]: a two-colour gradient with a disc and a bar."""
    generator = torch.Generator().manual_seed(seed)

    def colour():
        return torch.rand(3, 1, 1, generator=generator) * 1.5 - 0.75

    def uniform(lo, hi):
        return lo + (hi - lo) * float(torch.rand((), generator=generator))

    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    angle = uniform(0, 2 * math.pi)
    ramp = (math.cos(angle) * (xs - 0.5) + math.sin(angle) * (ys - 0.5) + 0.5).clamp(0, 1)
    image = colour() * (1 - ramp) + colour() * ramp
    cx, cy, radius = uniform(0.3, 0.7), uniform(0.3, 0.7), uniform(0.15, 0.28)
    disc = ((xs - cx) ** 2 + (ys - cy) ** 2 <= radius ** 2).float()
    image = image * (1 - disc) + colour() * disc
    lo, wide = uniform(0.1, 0.7), uniform(0.08, 0.18)
    bar = ((ys >= lo) & (ys <= lo + wide)).float() if uniform(0, 1) < 0.5 else ((xs >= lo) & (xs <= lo + wide)).float()
    return image * (1 - bar) + colour() * bar


def dct_matrix(size):
    """Orthonormal DCT-II matrix: row k is the k-th cosine basis vector."""
    n = torch.arange(size, dtype=torch.float64)
    matrix = torch.cos(math.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size)) * math.sqrt(2 / size)
    matrix[0] /= math.sqrt(2)
    return matrix


class GaussianImageField:
    """Exact flow-space denoiser for images x0 = scene + a smooth random colour field.

    In the orthonormal 2-D DCT basis every coefficient j is independent: x0_j ~ N(m_j, s_j^2),
    s_j falling with frequency (smooth blotches of colour and light over a fixed scene). Then
        E[x0_j | x_j] = m_j + (1 - sigma) s_j^2 / var_j * (x_j - (1 - sigma) m_j),
        var_j = (1 - sigma)^2 s_j^2 + sigma^2,
    and the probability-flow ODE from pure noise n ends exactly at m_j + s_j * n_j.
    Callable as a k-diffusion denoiser in flow coordinates: field(x, sigma).
    """

    def __init__(self, scene, pixel_std=0.25, corner=2.5, power=3.0, grain=0.01):
        # pixel_std: RMS per pixel of the smooth field; grain: of the white high-frequency floor
        self.size = scene.shape[-1]
        self.basis = dct_matrix(self.size)
        k = torch.arange(self.size, dtype=torch.float64)
        radius2 = k[:, None] ** 2 + k[None, :] ** 2
        shape = 1 / (1 + radius2 / corner ** 2) ** (power / 2)
        # orthonormal basis: pixel variance = sum of coefficient variances / size^2
        smooth = pixel_std * self.size * shape / shape.pow(2).sum().sqrt()
        self.std = (smooth ** 2 + grain ** 2).sqrt().expand(3, -1, -1)
        self.radius = radius2.sqrt()
        self.mean = self.to_dct(scene.double()[None])[0]
        self.calls = 0

    def to_dct(self, x):
        return self.basis @ x.double() @ self.basis.T

    def from_dct(self, coefficients):
        return self.basis.T @ coefficients @ self.basis

    def __call__(self, x, sigma, **extra_args):
        self.calls += 1
        sigma = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
        sigma = sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma
        sigma = sigma.reshape(-1, 1, 1, 1)
        alpha = 1 - sigma
        var = (alpha * self.std) ** 2 + sigma ** 2
        coefficients = self.to_dct(x)
        denoised = self.mean + alpha * self.std ** 2 / var * (coefficients - alpha * self.mean)
        return self.from_dct(denoised).to(x.dtype)

    def endpoint(self, noise):
        """Exact probability-flow ODE endpoint of pure noise started at sigma = 1."""
        return self.from_dct(self.mean + self.std * self.to_dct(noise)).to(noise.dtype)

    def sample(self, batch, generator):
        noise = torch.randn((batch, 3, self.size, self.size), generator=generator)
        return self.endpoint(noise)

    BANDS = (0, 3, 6, 12, 24, 46)

    def spectrum_error(self, samples):
        """How far the samples' image statistics are from the data's, in pixel units.

        Per band of spatial frequency, the RMS amplitude of (coefficient - m) over the samples
        is compared with the data's sqrt(mean s^2); a washed-out sampler falls short in the low
        bands, a noisy one overshoots in the high ones, a colour shift adds to both. Returns the
        RMS over bands of the amplitude differences (0 = exact; a finite batch of exact samples
        scores a little above 0).
        """
        deviation2 = (self.to_dct(samples) - self.mean) ** 2
        total = 0.0
        for lo, hi in zip(self.BANDS[:-1], self.BANDS[1:]):
            band = (self.radius >= lo) & (self.radius < hi)
            amplitude = math.sqrt(float(deviation2[..., band].mean()))
            truth = math.sqrt(float((self.std[..., band] ** 2).mean()))
            total += (amplitude - truth) ** 2
        return math.sqrt(total / (len(self.BANDS) - 1))

    def endpoint_error(self, samples, noise):
        """RMS pixel distance to the exact ODE endpoints of the same noise (images span [-1, 1])."""
        return float(((samples.double() - self.endpoint(noise).double()) ** 2).mean().sqrt())


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
            if entry.stochastic:
                options["noise_sampler"] = lambda s, s_next: torch.randn(noise.shape, generator=generator)
            return entry.function(field, noise.clone(), sigmas, disable=True, **options)
        return run

    out = [Method(entry.name, True, entry.stochastic, project(entry),
                  "2 evaluations a step" if entry.name == "flow_heun" else "")
           for entry in SAMPLERS]

    def ve_view_euler_a(noise, steps, generator):
        sigmas = [float(s) for s in get_sigmas(ve, "flow_shift", steps)]

        def model(x_ve, sigma_ve):
            return field(ve.calculate_input(torch.tensor([sigma_ve]), x_ve), sigma_ve / (1 + sigma_ve))
        return sample_ve_euler_ancestral(model, noise * sigmas[0], sigmas,
                                         lambda: torch.randn(noise.shape, generator=generator))
    out.append(Method("euler_a in VE view", True, True, ve_view_euler_a,
                      "k-diffusion Euler a on FlowVEModelSampling"))

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


def _check_count(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


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


def _run(out_dir, steps, batch, seed, progress, picture_steps, write_files):
    steps = tuple(steps)
    if not steps:
        raise ValueError(f"steps must hold at least one step count, got {steps!r}")
    for count in steps:
        _check_count("steps", count)
    _check_count("batch", batch)
    _check_count("picture_steps", picture_steps)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    field = GaussianImageField(draw_scene(seed=seed))
    noise = torch.randn((batch, 3, IMAGE_SIZE, IMAGE_SIZE), generator=torch.Generator().manual_seed(seed + 1))
    exact = field.endpoint(noise)
    reference = field.spectrum_error(field.sample(batch, torch.Generator().manual_seed(seed + 2)))
    all_methods = methods(field)
    jobs = [(m, s) for m in all_methods for s in steps]
    if picture_steps not in steps:
        jobs += [(m, picture_steps) for m in all_methods]
    spectrum = {m.name: {} for m in all_methods}
    endpoint = {m.name: {} for m in all_methods if not m.stochastic}
    pictures = {}
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
    _progress(len(jobs), len(jobs), "done", progress, started)
    right = {m.name: m.right for m in all_methods}
    notes = {m.name: m.note for m in all_methods}
    table_text = format_tables(spectrum, endpoint, right, notes, steps, reference)
    result = {"spectrum": spectrum, "endpoint": endpoint, "right": right, "reference": reference,
              "table_text": table_text, "exact": exact, "pictures": pictures,
              "png_path": None, "table_path": None}
    if write_files:
        os.makedirs(out_dir, exist_ok=True)
        result["png_path"] = os.path.join(out_dir, "demo.png")
        result["table_path"] = os.path.join(out_dir, "demo_table.txt")
        write_png(result["png_path"], render_grid(exact, pictures, spectrum, right, picture_steps, reference))
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
             f"amplitude; 0 is exact, a finite batch of exact samples scores {reference:.4f}):"]
    lines += _table(spectrum, right, notes, steps)
    lines += ["", "Distance to the exact result for the same noise (RMS, images span -1..1; "
                  "deterministic samplers only):"]
    lines += _table(endpoint, right, notes, steps)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# picture: a tiny 5x7 bitmap font, a canvas and a stdlib PNG writer
_FONT = {
    "A": "0E11111F111111", "B": "1E11111E11111E", "C": "0E11101010110E", "D": "1C12111111121C",
    "E": "1F10101E10101F", "F": "1F10101E101010", "G": "0E11101711110F", "H": "1111111F111111",
    "I": "0E04040404040E", "J": "0702020202120C", "K": "11121418141211", "L": "1010101010101F",
    "M": "111B1515111111", "N": "11111915131111", "O": "0E11111111110E", "P": "1E11111E101010",
    "Q": "0E11111115120D", "R": "1E11111E141211", "S": "0F10100E01011E", "T": "1F040404040404",
    "U": "1111111111110E", "V": "11111111110A04", "W": "1111111515150A", "X": "11110A040A1111",
    "Y": "11110A04040404", "Z": "1F01020408101F", "0": "0E11131519110E", "1": "040C040404040E",
    "2": "0E11010204081F", "3": "1F02040201110E", "4": "02060A121F0202", "5": "1F101E0101110E",
    "6": "0608101E11110E", "7": "1F010204080808", "8": "0E11110E11110E", "9": "0E11110F01020C",
    " ": "00000000000000", ".": "00000000000C0C", ",": "000000000C0408", ":": "000C0C000C0C00",
    "-": "0000001F000000", "(": "02040808080402", ")": "08040202020408", "=": "00001F001F0000",
    "/": "00010204081000", "%": "18190204081303", "+": "0004041F040400", "_": "0000000000001F",
    "<": "02040810080402", ">": "08040201020408", "!": "04040404040004", "?": "0E110102040004",
    "*": "0004150E150400", "'": "04040800000000",
}


def _glyph_rows(char):
    code = _FONT.get(char.upper(), _FONT["?"])
    return [int(code[i:i + 2], 16) for i in range(0, 14, 2)]


def draw_text(canvas, text, x, y, colour, scale=2):
    """Draw `text` into canvas (H, W, 3 uint8 tensor) with its top-left corner at (x, y)."""
    height, width = canvas.shape[:2]
    for index, char in enumerate(text):
        left = x + index * 6 * scale
        for row, bits in enumerate(_glyph_rows(char)):
            for column in range(5):
                if bits & (1 << (4 - column)):
                    top, col = y + row * scale, left + column * scale
                    if 0 <= top and top + scale <= height and 0 <= col and col + scale <= width:
                        canvas[top:top + scale, col:col + scale] = torch.tensor(colour, dtype=torch.uint8)
    return x + len(text) * 6 * scale


def _tile(image, scale):
    """(3, h, w) image in [-1, 1] -> (h*scale, w*scale, 3) uint8."""
    pixels = ((image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0)
    return pixels.repeat_interleave(scale, 0).repeat_interleave(scale, 1)


def render_grid(exact, pictures, spectrum, right, picture_steps, reference, columns=8, scale=2):
    """The demo picture: the exact results on top, then one row of samples per method."""
    background, ink, green, red, grey = (250, 250, 247), (30, 30, 30), (20, 125, 50), (200, 30, 30), (100, 100, 100)
    tile = exact.shape[-1] * scale
    gap, label_width, top = 6, 330, 84
    rows = [("exact (ODE endpoint)", None, exact[:columns], None)]
    for name, samples in pictures.items():
        rows.append((name, right[name], samples[:columns], spectrum[name].get(picture_steps)))
    width = label_width + columns * (tile + gap) + gap
    height = top + len(rows) * (tile + gap) + gap + 26
    canvas = torch.empty((height, width, 3), dtype=torch.uint8)
    canvas[:] = torch.tensor(background, dtype=torch.uint8)
    draw_text(canvas, "ONE EXACT RECTIFIED-FLOW MODEL, SAMPLED RIGHT AND WRONG", 10, 10, ink, 2)
    draw_text(canvas, f"{picture_steps} steps, the same noise in every column. green: this project's samplers. "
                      f"red: what a host does", 10, 36, grey, 1)
    draw_text(canvas, "when it treats the checkpoint as an ordinary SDXL model, or re-noises in VE terms. "
                      "err: spectrum error, 0 is exact,", 10, 48, grey, 1)
    draw_text(canvas, f"exact samples score {reference:.3f} (finite batch).", 10, 60, grey, 1)
    for index, (name, ok, tiles, error) in enumerate(rows):
        y = top + index * (tile + gap)
        colour = ink if ok is None else (green if ok else red)
        if ok is not None:
            canvas[y:y + tile, 4:8] = torch.tensor(colour, dtype=torch.uint8)
        draw_text(canvas, name, 14, y + tile // 2 - 16, colour, 2)
        if error is not None:
            draw_text(canvas, f"{'right' if ok else 'WRONG'}  err {error:.3f}", 14, y + tile // 2 + 4,
                      colour, 2)
        for column in range(min(columns, tiles.shape[0])):
            x = label_width + gap + column * (tile + gap)
            canvas[y:y + tile, x:x + tile] = _tile(tiles[column], scale)
    draw_text(canvas, "python -m model_sampling_flow demo", 10, height - 20, grey, 1)
    return canvas


def write_png(path, canvas):
    """Write an (H, W, 3) uint8 tensor as an 8-bit RGB PNG using only zlib and struct."""
    if canvas.dtype != torch.uint8 or canvas.ndim != 3 or canvas.shape[2] != 3:
        raise ValueError(f"canvas must be an (H, W, 3) uint8 tensor, got {tuple(canvas.shape)} {canvas.dtype}")
    height, width = canvas.shape[:2]
    rows = bytes(canvas.contiguous().flatten().tolist())
    stride = width * 3
    raw = b"".join(b"\x00" + rows[r * stride:(r + 1) * stride] for r in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    with open(path, "wb") as handle:
        handle.write(png)
    return path
