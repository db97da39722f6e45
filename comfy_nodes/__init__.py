"""ComfyUI adapter for model_sampling_flow: nodes plus sampler/scheduler dropdown entries.

Translation only: it builds the core's objects, registers them and patches model clones.
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .registration import register
from .sampler_views import install_schedule_hook

register()
install_schedule_hook()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "register"]
