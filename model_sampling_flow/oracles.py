"""Rectified-flow fields whose denoiser and ODE transport are known in closed form.

Data x0 is drawn per element from N(mean, std^2) or from a two-component Gaussian mixture;
noise is N(0, 1); x_sigma = (1 - sigma) * x0 + sigma * noise. For such data the exact denoiser
E[x0 | x_sigma] is closed form, and since the probability-flow ODE acts on each element
separately and is monotone, it preserves the CDF: the exact ODE endpoint of x at sigma is
F_0^{-1}(F_sigma(x)). For one Gaussian that is affine; for the mixture we invert the CDF by
bisection in float64. Tests, the demo and the benchmark use these as the truth.
"""
import math

import torch

from .views import _shape


def _sigma_like(sigma, x):
    if not isinstance(sigma, torch.Tensor):
        sigma = torch.tensor(float(sigma), dtype=x.dtype, device=x.device)
    return _shape(sigma.to(x.dtype), x)


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
