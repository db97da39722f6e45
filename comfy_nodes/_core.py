"""The host-free core, imported the way this package was loaded.

ComfyUI loads the repository root as a package from its path (custom_nodes/<folder>), so the
core is a sibling package reached relatively; when comfy_nodes is imported as a top-level
package (repository root on sys.path, or the core installed with pip) it is imported by name.
"""
try:
    from ..model_sampling_flow import model_sampling, registry, schedule, settings, ve_bridge, views
except ImportError:
    from model_sampling_flow import model_sampling, registry, schedule, settings, ve_bridge, views

__all__ = ["model_sampling", "registry", "schedule", "settings", "ve_bridge", "views"]
