"""A real ComfyUI SDXL model whose UNet is replaced by an exact RF velocity field.

Used by the benchmark to drive ComfyUI's own samplers (through comfy.sample.sample and a model
patched by ModelSamplingSD3 or by our node) on a field whose exact ODE endpoint is known.
The caller must have imported ComfyUI first (tests/conftest.py: import_comfyui).
"""
import torch


class AnalyticVelocityUNet(torch.nn.Module):
    """Stands in for the SDXL UNet: returns the exact velocity of `field` at the flow input.

    ComfyUI hands the UNet calculate_input(x) and the network timestep; with the continuous
    mapping sigma = timestep / 1000.
    """

    def __init__(self, field):
        super().__init__()
        self.field = field
        self.dtype = torch.float32

    def forward(self, x, timesteps, context=None, y=None, **kwargs):
        sigma = (timesteps.double() / 1000.0).clamp(1e-7, 1.0)
        return self.field.velocity(x.double(), sigma).to(x.dtype)


def tiny_sdxl_config():
    import comfy.supported_models
    unet_config = {
        "use_checkpoint": False, "image_size": 32, "in_channels": 4, "out_channels": 4,
        "model_channels": 32, "channel_mult": [1, 2], "num_res_blocks": [1, 1],
        "transformer_depth": [0, 1], "transformer_depth_output": [0, 0, 1, 1], "transformer_depth_middle": 1,
        "use_spatial_transformer": True, "legacy": False, "use_linear_in_transformer": True,
        "num_classes": "sequential", "adm_in_channels": 2816, "context_dim": 2048,
        "use_temporal_attention": False, "use_temporal_resblock": False, "dtype": torch.float32,
    }
    config = comfy.supported_models.SDXL(unet_config)
    config.unet_config["num_head_channels"] = 16
    config.set_inference_dtype(torch.float32, None)
    return config


def tiny_sdxl_patcher(field=None, seed=0):
    """ModelPatcher around a tiny real comfy.model_base.SDXL; with `field`, its UNet is analytic."""
    import comfy.model_patcher
    torch.manual_seed(seed)
    model = tiny_sdxl_config().get_model({}, "", device=torch.device("cpu"))
    if field is None:
        with torch.no_grad():
            for parameter in model.diffusion_model.parameters():
                parameter.normal_(0.0, 0.02)
    else:
        model.diffusion_model = AnalyticVelocityUNet(field)
    model.eval()
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def sdxl_conditioning(batch=1, seed=0):
    generator = torch.Generator().manual_seed(seed)
    cross = torch.randn(batch, 77, 2048, generator=generator) * 0.1
    positive = [[cross, {"pooled_output": torch.randn(batch, 1280, generator=generator) * 0.1}]]
    negative = [[torch.zeros_like(cross), {"pooled_output": torch.zeros(batch, 1280)}]]
    return positive, negative


def model_sampling_sd3(patcher, shift):
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3
    return ModelSamplingSD3().patch(patcher, shift)[0]
