"""Tiny SDXL configuration and the exact-velocity stand-in network, shared by the ComfyUI and
reForge host tests (both build SDXL with the same `supported_models.SDXL(unet_config)` API).
Imports torch (every interpreter that builds models has it); the rest of the package is stdlib only.
"""
import torch

# An SDXL-architecture UNet at 32 channels: every SDXL block type (ADM vector conditioning 2816 wide,
# 2048-wide cross attention, linear transformer in/out), small enough to run on CPU in milliseconds.
TINY_SDXL_UNET = {
    "use_checkpoint": False, "image_size": 32, "in_channels": 4, "out_channels": 4,
    "model_channels": 32, "channel_mult": [1, 2], "num_res_blocks": [1, 1],
    "transformer_depth": [0, 1], "transformer_depth_output": [0, 0, 1, 1], "transformer_depth_middle": 1,
    "use_spatial_transformer": True, "legacy": False, "use_linear_in_transformer": True,
    "num_classes": "sequential", "adm_in_channels": 2816, "context_dim": 2048,
    "use_temporal_attention": False, "use_temporal_resblock": False,
}
TINY_SDXL_HEAD_CHANNELS = 16   # SDXL's default of 64 leaves 0 heads at 32 channels


def tiny_sdxl_model(supported_models, seed=0):
    """A host's BaseModel for the tiny SDXL (random weights N(0, 0.02^2), float32, CPU, eval mode).

    supported_models: the host's module (comfy.supported_models or ldm_patched.modules.supported_models).
    """
    config = supported_models.SDXL(dict(TINY_SDXL_UNET, dtype=torch.float32))
    config.unet_config["num_head_channels"] = TINY_SDXL_HEAD_CHANNELS
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({}, "", device=torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.diffusion_model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    model.eval()
    return model


class ExactVelocityNetwork(torch.nn.Module):
    """A diffusion-model stand-in returning the exact RF velocity of `field`.

    It receives the flow input x (B, C, H, W) and timesteps (B,); sigma = timestep_to_sigma(t)
    (default t / 1000, the continuous mapping) is the flow time; the output is the velocity
    (x - E[x0 | x]) / sigma in x's dtype, computed in float64. sigma_clamp=(lo, hi) clamps sigma
    first (a model sampled with flow off receives timesteps up to 999 meaning something else).
    It records every call: `calls`, `timesteps_seen` (first timestep of each call), `last_timesteps`;
    set `fail_at_call = n` to make call n and later raise RuntimeError.
    """
    dtype = torch.float32

    def __init__(self, field, timestep_to_sigma=None, sigma_clamp=None):
        super().__init__()
        self.field = field
        self.timestep_to_sigma = timestep_to_sigma
        self.sigma_clamp = sigma_clamp
        self.register_buffer("anchor", torch.zeros(1))   # gives the module a device
        self.calls = 0
        self.timesteps_seen = []
        self.last_timesteps = None
        self.fail_at_call = None

    def forward(self, x, timesteps, context=None, y=None, control=None, transformer_options={}, **kwargs):
        self.calls += 1
        if self.fail_at_call is not None and self.calls >= self.fail_at_call:
            raise RuntimeError("exact-velocity network: failure requested by the test")
        self.last_timesteps = timesteps.detach().clone()
        self.timesteps_seen.append(float(timesteps.reshape(-1)[0]))
        t = timesteps.double()
        sigma = t / 1000.0 if self.timestep_to_sigma is None else self.timestep_to_sigma(t)
        if self.sigma_clamp is not None:
            sigma = sigma.clamp(*self.sigma_clamp)
        return self.velocity(x.double(), sigma, context).to(x.dtype)

    def velocity(self, x, sigma, context):
        """The field's velocity at x (B, ...) float64 and flow sigma (B,); `context` is unused here."""
        return self.field.velocity(x, sigma)


class GuidedVelocityNetwork(ExactVelocityNetwork):
    """ExactVelocityNetwork for classifier-free guidance: a row whose cross-attention `context` is all
    zeros (the negative prompt of the host harnesses: ComfyUI's `sdxl_conds`, the webui runners' empty
    negative prompt) gets the exact velocity of `uncond`, every other row (and every row when no
    context is passed) that of `cond`. The host's own CFG then combines them; the exact answer is
    `model_sampling_flow.oracles.GuidedField(cond, uncond, cfg)`. Counts and records like its parent.
    """

    def __init__(self, cond, uncond, timestep_to_sigma=None, sigma_clamp=None):
        super().__init__(cond, timestep_to_sigma, sigma_clamp)
        self.uncond = uncond
        self.negative_rows = 0      # rows answered with `uncond`, over all calls

    def velocity(self, x, sigma, context):
        negative = negative_rows(context, x.shape[0])
        self.negative_rows += int(negative.sum())
        if not bool(negative.any()):
            return self.field.velocity(x, sigma)
        mask = negative.reshape(-1, *[1] * (x.ndim - 1)).to(x.device)
        return torch.where(mask, self.uncond.velocity(x, sigma), self.field.velocity(x, sigma))


def negative_rows(context, batch):
    """(batch,) bool: which rows of a cross-attention `context` (B, tokens, width) are all zeros, the
    negative prompt's conditioning in the host harnesses; all False when `context` is None."""
    if context is None:
        return torch.zeros(batch, dtype=torch.bool)
    if context.shape[0] != batch:
        raise ValueError(f"context has {context.shape[0]} rows for a batch of {batch}")
    return context.reshape(batch, -1).abs().amax(dim=1) == 0


def exact_velocity_network(field, timestep_to_sigma=None, sigma_clamp=None):
    """ExactVelocityNetwork(field, timestep_to_sigma, sigma_clamp)."""
    return ExactVelocityNetwork(field, timestep_to_sigma, sigma_clamp)


class CountedModel:
    """A denoiser `model(x, sigma, **extra_args)` that calls `field(x, sigma)` and counts the calls
    (`calls`): the model evaluations a sampler spends, for the accuracy-per-call tests and benchmark."""

    def __init__(self, field):
        self.field, self.calls = field, 0

    def __call__(self, x, sigma, **kwargs):
        self.calls += 1
        return self.field(x, sigma)
