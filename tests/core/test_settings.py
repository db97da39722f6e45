"""User settings shared by the hosts: validation, effective shift, infotext round-trip."""
import math

import pytest

from model_sampling_flow.model_sampling import FlowModelSampling, FlowVEModelSampling
from model_sampling_flow.settings import FlowSettings


def test_defaults_build_the_ve_view_at_shift_3():
    ms = FlowSettings().model_sampling()
    assert isinstance(ms, FlowVEModelSampling) and ms.shift == 3.0 and ms.timestep_mapping == "continuous"
    native = FlowSettings(view="flow", timestep_mapping="floor_999").model_sampling()
    assert type(native) is FlowModelSampling and native.timestep_mapping == "floor_999"


def test_resolution_mode_uses_the_latent_size():
    settings = FlowSettings(shift_mode="resolution")
    assert settings.effective_shift((1, 4, 128, 128)) == 1.0
    assert math.isclose(settings.effective_shift((1, 4, 192, 128)), math.sqrt(1.5))
    assert settings.model_sampling((1, 4, 256, 256)).shift == 2.0
    assert FlowSettings(shift=5).effective_shift((1, 4, 256, 256)) == 5.0
    with pytest.raises(ValueError, match="latent_shape"):
        settings.effective_shift()


@pytest.mark.parametrize("settings", [
    FlowSettings(), FlowSettings(shift=6.5, timestep_mapping="floor_1000"),
    FlowSettings(shift=1.7, shift_mode="resolution", view="flow"),
])
def test_infotext_round_trip(settings):
    text = settings.to_infotext()
    assert text["Flow sampling"] == "on"
    # webui infotext parsing hands back strings
    assert FlowSettings.from_infotext({k: str(v) for k, v in text.items()}) == settings


def test_infotext_without_flow_gives_none():
    assert FlowSettings.from_infotext({}) is None
    assert FlowSettings.from_infotext({"Flow sampling": "off", "Flow shift": "3"}) is None


@pytest.mark.parametrize("field,value", [
    ("shift", 0), ("shift", -2.0), ("shift", float("nan")), ("timestep_mapping", "floor"),
    ("shift_mode", "dynamic"), ("view", "eps"),
])
def test_bad_settings_are_rejected_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        FlowSettings(**{field: value})
    with pytest.raises(ValueError, match=field):
        FlowSettings().with_changes(**{field: value})


def test_bad_infotext_shift_is_rejected():
    with pytest.raises(ValueError, match="shift"):
        FlowSettings.from_infotext({"Flow sampling": "on", "Flow shift": "abc"})


def test_base_latent_shape_is_the_base_resolution_latent():
    from model_sampling_flow.settings import FlowSettings
    assert FlowSettings(shift=3.0).base_latent_shape == (128, 128)            # SDXL 1024 x 1024, VAE /8
    assert FlowSettings(shift=3.0, base_pixels=512 * 512).base_latent_shape == (64, 64)
