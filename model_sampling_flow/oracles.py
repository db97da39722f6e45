"""Rectified-flow fields whose denoiser and ODE transport are known in closed form.

Data x0 is drawn per element from N(mean, std^2) or from a two-component Gaussian mixture;
noise is N(0, 1); x_sigma = (1 - sigma) * x0 + sigma * noise. For such data the exact denoiser
E[x0 | x_sigma] is closed form, and since the probability-flow ODE acts on each element
separately and is monotone, it preserves the CDF: the exact ODE endpoint of x at sigma is
F_0^{-1}(F_sigma(x)). For one Gaussian that is affine; for the mixture we invert the CDF by
bisection in float64. GaussianImageField is the demo's model: images whose DCT coefficients
are independent Gaussians, so its denoiser and ODE endpoint are closed form too. Tests, the demo
and the benchmark use these as the truth. GuidedField (CFG of two fields) has no closed-form
transport; its endpoint is a converged float64 reference solve.
"""
import math
import numbers

import torch

from .views import broadcast_sigma


def _sigma_like(sigma, x):
    if not isinstance(sigma, torch.Tensor):
        sigma = torch.tensor(float(sigma), dtype=x.dtype, device=x.device)
    return broadcast_sigma(sigma.to(x.dtype), x)


def _normal_cdf(z):
    return 0.5 * (1 + torch.erf(z / math.sqrt(2)))


class GaussianMixtureField:
    """Per-element data distribution sum_k weight_k * N(mean_k, std_k^2).

    Call it as a k-diffusion denoiser in flow coordinates: field(x, sigma) -> E[x0 | x_sigma].
    """

    def __init__(self, means, stds, weights):
        if not (len(means) == len(stds) == len(weights)) or not means:
            raise ValueError(f"means, stds and weights must be equal-length and non-empty, got "
                             f"{means!r}, {stds!r}, {weights!r}")
        if any(s <= 0 for s in stds):
            raise ValueError(f"stds must be > 0, got {stds!r}")
        if any(w <= 0 for w in weights):
            raise ValueError(f"weights must be > 0, got {weights!r}")
        total = float(sum(weights))
        self.means = [float(m) for m in means]
        self.stds = [float(s) for s in stds]
        self.weights = [float(w) / total for w in weights]
        self.calls = 0

    # moments of the data
    @property
    def mean(self):
        return sum(w * m for w, m in zip(self.weights, self.means))

    @property
    def std(self):
        second = sum(w * (s * s + m * m) for w, m, s in zip(self.weights, self.means, self.stds))
        return math.sqrt(second - self.mean ** 2)

    def _components(self, x, sigma):
        """Per component: log responsibility (unnormalised), posterior mean of x0."""
        out = []
        for w, m, s in zip(self.weights, self.means, self.stds):
            alpha = 1 - sigma
            var = (alpha * s) ** 2 + sigma ** 2
            resid = x - alpha * m
            log_p = math.log(w) - 0.5 * resid ** 2 / var - 0.5 * torch.log(var)
            out.append((log_p, m + alpha * s * s / var * resid))
        return out

    def __call__(self, x, sigma, **extra_args):
        self.calls += 1
        sigma = _sigma_like(sigma, x)
        comps = self._components(x, sigma)
        if len(comps) == 1:
            return comps[0][1]
        log_ps = torch.stack([c[0] for c in comps])
        resp = torch.softmax(log_ps, dim=0)
        return sum(r * c[1] for r, c in zip(resp, comps))

    def velocity(self, x, sigma):
        """Exact velocity E[noise - x0 | x_sigma] = (x - denoised) / sigma (sigma > 0)."""
        return (x - self(x, sigma)) / _sigma_like(sigma, x)

    def cdf(self, x, sigma):
        sigma = _sigma_like(sigma, x)
        total = torch.zeros_like(x)
        for w, m, s in zip(self.weights, self.means, self.stds):
            alpha = 1 - sigma
            total = total + w * _normal_cdf((x - alpha * m) / torch.sqrt((alpha * s) ** 2 + sigma ** 2))
        return total

    def transport(self, x, sigma_from, sigma_to=0.0):
        """Exact probability-flow ODE solution: move x from sigma_from to sigma_to."""
        x64 = x.double()
        u = self.cdf(x64, sigma_from)
        if len(self.means) == 1:
            m, s = self.means[0], self.stds[0]
            a_from, a_to = 1 - _sigma_like(sigma_from, x64), 1 - _sigma_like(sigma_to, x64)
            sd_from = torch.sqrt((a_from * s) ** 2 + _sigma_like(sigma_from, x64) ** 2)
            sd_to = torch.sqrt((a_to * s) ** 2 + _sigma_like(sigma_to, x64) ** 2)
            return (a_to * m + sd_to / sd_from * (x64 - a_from * m)).to(x.dtype)
        lo = torch.full_like(x64, min(self.means) - 40 * max(max(self.stds), 1.0))
        hi = torch.full_like(x64, max(self.means) + 40 * max(max(self.stds), 1.0))
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            below = self.cdf(mid, sigma_to) < u
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return (0.5 * (lo + hi)).to(x.dtype)

    def endpoint(self, noise):
        """Exact ODE endpoint of pure noise started at sigma = 1."""
        return self.transport(noise, 1.0, 0.0)

    def sample(self, shape, generator=None, dtype=torch.float32):
        """Exact draws of x0."""
        comp = torch.multinomial(torch.tensor(self.weights), math.prod(shape), replacement=True,
                                 generator=generator).reshape(shape)
        z = torch.randn(shape, generator=generator, dtype=torch.float64)
        means = torch.tensor(self.means, dtype=torch.float64)[comp]
        stds = torch.tensor(self.stds, dtype=torch.float64)[comp]
        return (means + stds * z).to(dtype)

    def component_boundary(self):
        """For two components: the x0 where their weighted densities cross (between the means)."""
        if len(self.means) != 2:
            raise ValueError("component_boundary needs exactly two components")
        lo, hi = sorted(self.means)
        x = torch.linspace(lo, hi, 20001, dtype=torch.float64)
        comps = self._components(x, torch.zeros_like(x))
        diff = (comps[0][0] - comps[1][0]).abs()
        return float(x[int(torch.argmin(diff))])


def gaussian_field(mean=0.5, std=0.3):
    return GaussianMixtureField([mean], [std], [1.0])


def mixture_field(means=(-0.6, 0.7), stds=(0.15, 0.25), weights=(0.3, 0.7)):
    return GaussianMixtureField(list(means), list(stds), list(weights))


class GuidedField:
    """Classifier-free guidance of two fields, the way hosts apply CFG to a flow model.

    denoised = uncond(x, sigma) + scale * (cond(x, sigma) - uncond(x, sigma)): what a host's sampler
    calls at CFG `scale` when the positive prompt's data is `cond` and the negative prompt's is
    `uncond` (ComfyUI's comfy/samplers.py cfg_function, A1111's CFGDenoiser). Guided velocities are
    not the velocity of any data distribution, so there is no CDF-preserving transport: `endpoint`
    solves the same per-element ODE dx/dsigma = (x - denoised) / sigma in float64 with classical
    Runge-Kutta 4 on sigma = t^3 (steps dense near the data), REFERENCE_STEPS steps down to
    REFERENCE_SIGMA_MIN and an Euler step from there to 0 (on the fields of tests/core/test_oracles.py,
    CFG 5: 2000 steps agree with 4000 to ~5e-11 RMS; at scale 1 it matches cond's exact endpoint
    to ~1e-10). Call it as a k-diffusion denoiser in flow coordinates.
    """

    REFERENCE_STEPS = 2000
    REFERENCE_SIGMA_MIN = 1e-7

    def __init__(self, cond, uncond, scale):
        if not isinstance(scale, numbers.Real) or isinstance(scale, bool) or not math.isfinite(float(scale)):
            raise ValueError(f"scale must be a finite number, got {scale!r}")
        self.cond, self.uncond, self.scale = cond, uncond, float(scale)
        self.calls = 0

    def __call__(self, x, sigma, **extra_args):
        self.calls += 1
        uncond = self.uncond(x, sigma)
        return uncond + self.scale * (self.cond(x, sigma) - uncond)

    def velocity(self, x, sigma):
        """(x - denoised) / sigma (sigma > 0)."""
        return (x - self(x, sigma)) / _sigma_like(sigma, x)

    def endpoint(self, noise, steps=None):
        """ODE endpoint of pure noise started at sigma = 1 (float64 reference solve; see the class)."""
        steps = self.REFERENCE_STEPS if steps is None else steps
        calls = self.calls
        x = noise.double()
        sigmas = [(1 - i / steps) ** 3 for i in range(steps)] + [self.REFERENCE_SIGMA_MIN]
        for a, b in zip(sigmas[:-1], sigmas[1:]):
            h = b - a
            k1 = self.velocity(x, a)
            k2 = self.velocity(x + 0.5 * h * k1, a + 0.5 * h)
            k3 = self.velocity(x + 0.5 * h * k2, a + 0.5 * h)
            k4 = self.velocity(x + h * k3, b)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        x = x - self.REFERENCE_SIGMA_MIN * self.velocity(x, self.REFERENCE_SIGMA_MIN)
        self.calls = calls          # the reference solve is not the sampler's model calls
        return x.to(noise.dtype)


# ---------------------------------------------------------------------------------------------
# an image field: the demo's model
def draw_scene(size=32, seed=0):
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

    def band_amplitudes(self, samples):
        """Per band of spatial frequency: (RMS amplitude of the samples, the data's), pixel units.

        samples: (B, 3, size, size). The amplitude of band b is the RMS of (coefficient - m) over
        the samples' DCT coefficients in that band; the data's is sqrt(mean s^2) over the band.
        """
        deviation2 = (self.to_dct(samples) - self.mean) ** 2
        out = []
        for lo, hi in zip(self.BANDS[:-1], self.BANDS[1:]):
            band = (self.radius >= lo) & (self.radius < hi)
            out.append((math.sqrt(float(deviation2[..., band].mean())),
                        math.sqrt(float((self.std[..., band] ** 2).mean()))))
        return out

    def spectrum_error(self, samples):
        """How far the samples' image statistics are from the data's, in pixel units.

        The RMS over frequency bands of (samples' amplitude - data's amplitude), see
        band_amplitudes: a washed-out sampler falls short in the low bands, a noisy one
        overshoots in the high ones, a colour shift adds to both. 0 is exact; a finite batch of
        exact samples scores above 0 by chance (the demo reports by how much).
        """
        amplitudes = self.band_amplitudes(samples)
        return math.sqrt(sum((a - t) ** 2 for a, t in amplitudes) / len(amplitudes))

    def endpoint_error(self, samples, noise):
        """RMS pixel distance to the exact ODE endpoints of the same noise (images span [-1, 1])."""
        return float(((samples.double() - self.endpoint(noise).double()) ** 2).mean().sqrt())
