"""End to end inside reForge: the repository installed under extensions/, its real script
(scripts/flow_sampling.py) in a real ScriptRunner, and reForge's full processing.process_images
for txt2img, hires fix, img2img, inpaint, a foreign second pass started in postprocess the way
ADetailer does, infotext, the XYZ axes, off/on/off, an exception, a model reload, and reForge's
Advanced Model Sampling enabled at the same time. The model is a stand-in whose network returns
the exact velocity of N(0.5, 0.3^2) data."""

import reforge_harness as harness  # noqa: E402


def _pi():
    return harness.run_suite("process_images")


def _assert_all_within(rows):
    failures = [f"{key}: {row['stats']}" for key, row in rows.items() if not harness.within(row["stats"])]
    assert not failures, "\n".join(failures)


def test_the_extension_script_loads_from_the_extensions_folder():
    assert _pi()["script_title"] == "Flow sampling"


def test_flow_off_is_bit_identical_to_the_webui_without_the_extension():
    pi = _pi()
    assert pi["extension_imported_before_reference"] is False
    assert all(pi["off_identical_to_absent"].values()), pi["off_identical_to_absent"]
    assert pi["on_then_off_identical"] is True


def test_txt2img_through_process_images_reaches_the_flow_distribution():
    pi = _pi()
    _assert_all_within(pi["txt2img"])
    for row in pi["txt2img"].values():
        assert "Flow sampling: on, Flow shift: 3, Flow mapping: continuous" in row["infotext"]


def test_hires_fix_second_pass_reaches_the_flow_distribution():
    pi = _pi()
    assert set(pi["hires"]) == {"0.3", "0.5", "0.75"}
    _assert_all_within(pi["hires"])
    # 256 px first pass upscaled x2: the second pass ran on the 64 x 64 latent of 512 px (the
    # stand-in "decode" keeps latent resolution)
    assert all(row["shape"][-2:] == [64, 64] for row in pi["hires"].values()), pi["hires"]


def test_img2img_and_inpaint_through_process_images_keep_the_distribution():
    pi = _pi()
    _assert_all_within(pi["img2img"])
    _assert_all_within(pi["inpaint"])


def test_a_foreign_second_pass_without_our_arguments_samples_the_flow_way():
    foreign = _pi()["foreign_pass"]
    assert foreign["infotext"] is not None and "Flow sampling" not in foreign["infotext"]
    assert harness.within(foreign["stats"]), foreign


def test_infotext_pastes_back_to_the_flow_settings():
    pi = _pi()
    assert pi["infotext_pasted"] == [3.0, "continuous", "ve"]
    assert pi["infotext_mode_pasted"] == "On"


def test_xyz_axes_apply():
    pi = _pi()
    assert "Flow shift: 6" in pi["xyz_shift_infotext"]
    assert pi["xyz_shift_changes_output"] is True
    assert pi["xyz_off_identical_to_absent"] is True


def test_exception_and_model_reload_leave_the_host_unpatched():
    pi = _pi()
    assert pi["exception_propagated"] is True
    assert pi["after_exception_off_identical"] is True
    assert pi["after_model_loaded_active"] is False
    assert pi["after_model_loaded_restored"] is True


def test_advanced_model_sampling_at_the_same_time_is_refused_not_stacked():
    pi = _pi()
    assert "Advanced Model Sampling" in pi["ams_both_comments"]
    assert "Flow sampling: on" not in pi["ams_both_infotext"]
    assert "advanced_sampling_mode: SD3" in pi["ams_both_infotext"]


def test_install_hook_runs_as_reforge_runs_it_and_installs_nothing():
    pi = _pi()
    assert pi["install_hook_found"] is True
    assert pi["install_hook_errors"] == 0, pi["install_hook_output"]
    assert pi["torch_version_after_install"] == pi["torch_version_before_install"]
