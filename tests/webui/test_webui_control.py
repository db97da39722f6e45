"""Host-free tests of what the webui script decides from what the user, the API, XYZ and pasted
infotext hand it: Off first, one clear message per invalid value, every valid pasted field kept."""
import math

import pytest

from model_sampling_flow.settings import FlowSettings
from webui_extension import control


@pytest.mark.parametrize("shift,mapping,resolution", [
    (0, "continuous", False), (float("nan"), "continuous", False), (-3, "nope", False), ("abc", None, "maybe"),
])
def test_off_turns_flow_off_whatever_else_the_arguments_hold(shift, mapping, resolution):
    assert control.decide("Off", shift, mapping, resolution, "ve", None).settings is None
    assert control.decide(" off ", shift, mapping, resolution, "ve", None).settings is None


@pytest.mark.parametrize("shift,mapping,resolution,named", [
    (0, "continuous", False, "Flow shift"), (float("nan"), "continuous", False, "Flow shift"),
    (-3, "continuous", False, "Flow shift"), (1e30, "continuous", False, "Flow shift"),
    ("abc", "continuous", False, "Flow shift"), (3, "floor", False, "Flow mapping"),
    (3, "continuous", "maybe", "Resolution-dependent shift"),
])
def test_an_invalid_value_is_one_message_naming_it(shift, mapping, resolution, named):
    with pytest.raises(ValueError, match=named):
        control.decide("On", shift, mapping, resolution, "ve", None)
    with pytest.raises(ValueError, match="mode"):
        control.decide("Maybe", 3, "continuous", False, "ve", None)


def test_valid_api_values_are_read_as_the_accordion_gives_them():
    decision = control.decide("on", "4.5", " floor_999 ", "true", "ve", None)
    assert decision.settings == FlowSettings(shift=4.5, timestep_mapping="floor_999", shift_mode="resolution")
    assert control.decide("On", control.MAX_SHIFT, "continuous", False, "ve", None).settings.shift == control.MAX_SHIFT


def paste(params):
    return {name: function(params) for name, function in control.INFOTEXT_PASTE}


def test_a_bad_pasted_field_is_reported_once_and_the_valid_fields_still_apply(capsys):
    params = {"Flow sampling": "on", "Flow shift": "nan", "Flow mapping": "floor_999", "Flow shift mode": "resolution"}
    assert paste(params) == {"mode": "On", "shift": None, "timestep_mapping": "floor_999",
                             "resolution_shift": True, "view": "ve"}
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "Flow shift: nan" in out[0] and "not applied" in out[0]
    params = {"Flow sampling": "on", "Flow shift": "2.5", "Flow mapping": "floor"}
    assert paste(params) == {"mode": "On", "shift": 2.5, "timestep_mapping": None, "resolution_shift": False,
                             "view": "ve"}
    assert "Flow mapping: floor" in capsys.readouterr().out


def test_an_image_without_flow_pastes_nothing():
    assert set(paste({"Steps": "20", "Flow shift": "nan"}).values()) == {None}


def test_xyz_values_are_checked_when_the_grid_is_built():
    axes = {label: (convert, key) for label, kind, key, convert, choices in control.XYZ_AXES}
    confirm = control.xyz_confirm("[Flow] Flow shift", axes["[Flow] Flow shift"][0])
    confirm(None, [1.0, 3.0, 6.0])
    for bad in (float("nan"), -3.0, 1e30, 0.0):
        with pytest.raises(ValueError, match=r"\[Flow\] Flow shift.*Flow shift"):
            confirm(None, [3.0, bad])
    with pytest.raises(ValueError, match="Flow mapping"):
        control.xyz_confirm("[Flow] Flow mapping", axes["[Flow] Flow mapping"][0])(None, ["continuous", "x"])
    with pytest.raises(ValueError, match="mode"):
        control.xyz_confirm("[Flow] Flow sampling", axes["[Flow] Flow sampling"][0])(None, ["On", "sometimes"])


def test_max_shift_keeps_the_ve_table_finite():
    sigmas = FlowSettings(shift=control.MAX_SHIFT).model_sampling().sigmas
    assert bool(sigmas.isfinite().all()) and bool((sigmas[1:] > sigmas[:-1]).all())
    assert math.isfinite(float(sigmas[-1]))
