"""End to end inside Forge (dfdcbab6): this repository under extensions/, loaded by Forge's own
initialisation (webui.py's order, create_ui for the script args), and Forge's full process_images on its
SDXL engine with an exact rectified-flow UNet (N(0.5, 0.3^2) data): Off against Forge without the
extension (bit for bit), txt2img with the Flow samplers, hires fix, img2img and inpaint at 0.3 / 0.5 /
0.75, a second processing object started by another extension, infotext and the XYZ axes, an exception,
a checkpoint change, and the cases where no backend applies (not SDXL, a future Forge, a model that
already samples as a flow)."""
import os
import sys

import forge_harness as harness  # noqa: E402


def _pi():
    harness.start_all()
    return harness.run_suite("process_images")


def _reference():
    harness.start_all()
    return harness.run_suite("reference")


def _assert_all_within(rows):
    failures = [f"{key}: {row['stats'] or row['error']}" for key, row in rows.items() if not harness.within(row["stats"])]
    assert not failures, "\n".join(failures)


def test_forge_is_told_apart_from_reforge_and_a1111():
    pi = _pi()
    assert pi["extension_loaded"] is True
    assert pi["backend"] == "Forge"
    assert pi["reforge_detects_forge"] is False and pi["a1111_detects_forge"] is False


def test_flow_off_is_bit_identical_to_forge_without_the_extension():
    pi, reference = _pi(), _reference()
    assert reference["extension_loaded"] is False and reference["extension_modules"] == []
    keys = [k for k in reference if "|" in k or k.startswith("img2img")]
    assert len(keys) == 5
    for tag in ("off_before_on", "off_after_on"):
        assert {k: pi[tag][k] for k in keys} == {k: reference[k] for k in keys}, tag
    assert pi["predictor_while_on"] == "ForgeFlowPredictor" and pi["predictor_restored"] is True
    assert pi["xyz_off_digest"] == reference["Euler a | Automatic"]
    assert pi["after_exception_off_digest"] == reference["Euler a | Automatic"]


def test_txt2img_and_the_flow_samplers_reach_the_flow_distribution():
    pi = _pi()
    _assert_all_within(pi["txt2img"])
    for row in pi["txt2img"].values():
        assert "Flow sampling: on, Flow shift: 3, Flow mapping: continuous" in row["infotext"]
    assert "needs Flow sampling on" in pi["flow_sampler_with_flow_off"]


def test_hires_img2img_inpaint_and_a_second_processing_object():
    pi = _pi()
    assert set(pi["hires"]) == set(pi["inpaint"]) == {"0.3", "0.5", "0.75"}
    _assert_all_within(pi["hires"])
    # 256 px first pass upscaled x2 in latent space: the hires pass sampled the 64 x 64 latent of 512 px
    assert all(row["shape"][-2:] == [64, 64] for row in pi["hires"].values()), pi["hires"]
    _assert_all_within(pi["img2img"])
    _assert_all_within(pi["inpaint"])
    second = pi["second_pass"]
    assert second["infotext"] is not None and "Flow sampling" not in second["infotext"]
    assert harness.within(second["stats"]), second


def test_infotext_and_xyz():
    pi = _pi()
    assert pi["infotext_pasted"] == [3.0, "continuous"]
    assert "Flow shift: 6" in pi["xyz_shift_infotext"] and pi["xyz_shift_changes_output"] is True
    assert {"[Flow] Flow sampling", "[Flow] Flow shift", "[Flow] Flow mapping"} <= set(pi["xyz_axes_present"])


def test_resolution_shift_follows_the_pass():
    assert abs(_pi()["resolution_shift_256"] - 0.25) < 1e-6     # sqrt(256^2 / 1024^2)


def test_refused_schedule_type_stops_with_its_message():
    assert "schedule type 'Align Your Steps' is not supported" in _pi()["ays_error"]


def test_exception_and_checkpoint_change_restore_the_model():
    pi = _pi()
    assert pi["exception_propagated"] is True
    assert pi["first_restored_after_new_checkpoint_generates"] is True
    assert pi["second_checkpoint_predictor"] == "ForgeFlowPredictor"
    assert harness.within(pi["second_checkpoint_flow"]), pi["second_checkpoint_flow"]
    assert pi["second_checkpoint_restored"] is True


def test_no_backend_applies_then_the_generation_is_unchanged_and_says_why():
    pi = _pi()
    for case, why in (("not_sdxl", "not SDXL"), ("future_forge", "do not take their schedule from the model's predictor")):
        row = pi[case]
        assert row["digest"] == row["off_digest"], case         # On samples exactly as Off
        text = " ".join(row["comments"] if isinstance(row["comments"], list) else [str(row["comments"])])
        assert "cannot be applied" in text and why in text, (case, row["comments"])
        assert "Flow sampling: on" not in row["infotext"]
    assert pi["future_forge_backend"] is None


def test_a_model_that_already_samples_as_a_flow_is_left_to_the_webui():
    native = _pi()["native_flow"]
    assert native["identical"] is True and native["predictor_kept"] is True
    text = " ".join(native["comments"] if isinstance(native["comments"], list) else [str(native["comments"])])
    assert "already samples the checkpoint as a rectified flow" in text and "PredictionDiscreteFlow" in text
    assert "Flow sampling: on" not in native["infotext"]


def test_no_script_error_mentions_the_extension():
    assert _pi()["reported_errors"] == []
