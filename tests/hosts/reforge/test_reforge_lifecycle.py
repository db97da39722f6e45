"""The reForge backend's lifecycle inside reForge: apply, idempotence, remove restoring the very
objects (bit-identical output to never having enabled flow, also before the extension was
imported), shift changes, an exception mid-sampling, a checkpoint change, the Lora rebuild,
refusals, the Advanced Model Sampling conflict, and a real (tiny, random) ldm_patched SDXL UNet."""

import reforge_harness as harness  # noqa: E402


def _life():
    return harness.run_suite("lifecycle")


def test_detects_reforge_models_only():
    life = _life()
    assert life["detect_reforge_model"] is True
    assert life["detect_plain_module"] is False


def test_apply_patches_every_forge_objects_copy_and_is_idempotent():
    life = _life()
    assert life["active_after_apply"] is True
    assert set(life["forge_unets_patched"].values()) == {"FlowVEModelSampling"}
    assert life["model_sampling_during"] == "FlowVEModelSampling"
    assert all(life["on_differs"].values()), life["on_differs"]
    # the network saw flow timesteps (1000 * flow sigma), not the EPS model's
    assert 0.0 < life["network_timestep_max"] <= 1000.0


def test_off_is_bit_identical_to_never_enabled_and_to_before_the_extension_loaded():
    life = _life()
    assert life["sys_modules_before"] is False       # the reference ran before any import
    assert life["remove_when_never_applied"] is True
    assert life["active_after_remove"] is None
    assert life["base_unet_restored"] and life["model_sampling_restored"]
    assert life["alphas_restored"] and life["create_denoiser_gone"]
    assert all(life["off_identical"].values()), life["off_identical"]
    assert life["on_off_on_off_identical"] is True


def test_shift_change_while_on_takes_effect_and_comes_back():
    life = _life()
    assert life["shift_change_applied"] == 6.0
    assert life["shift_change_differs"] is True
    assert life["shift_back_identical"] is True


def test_exception_inside_sampling_leaves_nothing_after_remove():
    life = _life()
    assert life["exception_raised"] is True
    assert life["model_sampling_left_by_exception"] == "FlowVEModelSampling"   # what remove() must undo
    assert life["model_sampling_after_exception_remove"] is True
    assert life["after_exception_identical"] is True


def test_checkpoint_change_restores_the_previous_model():
    life = _life()
    assert life["switch_a_restored"] is True
    assert life["switch_a_identical"] is True
    assert life["switch_b_identical"] is True


def test_lora_rebuild_keeps_flow_and_remove_takes_it_out():
    life = _life()
    assert life["lora_rebuild_keeps_flow"] is True
    assert life["lora_rebuild_patch_removed"] is True
    assert life["lora_rebuild_off_identical"] is True


def test_refusals_stop_sampling_with_a_clear_message():
    life = _life()
    assert life["ays_refusal"].startswith("FlowSamplingRefused: Flow sampling: schedule type 'Align Your Steps'")
    assert life["lcm_refusal"].startswith("FlowSamplingRefused: Flow sampling: sampler 'LCM'")


def test_advanced_model_sampling_conflict_is_reported_not_stacked():
    life = _life()
    assert "Advanced Model Sampling" in life["ams_conflict_message"]
    assert life["ams_disabled_conflict"] is None and life["no_runner_conflict"] is None
    # AMS leaves its FlowMatchingDenoiser factory on the model after one run; flow replaces it
    # while on, gives the same result as without the leftover, and puts it back on remove
    assert life["ams_left_create_denoiser"] is True
    assert life["flow_over_ams_leftover_wrap"] == "FlowVEDenoiser"
    assert life["flow_over_ams_leftover_matches_clean"] is True
    assert life["ams_leftover_restored"] is True
    assert life["after_ams_off_identical"] is True


def test_tiny_real_sdxl_unet_with_the_patch():
    life = _life()
    assert life["tiny_finite"] and life["tiny_differs"] and life["tiny_off_identical"]
    assert life["tiny_ksampler_finite"]
    # first step at the VE cap (flow sigma 0.99997 -> timestep 999.97), last near sigma_min;
    # the network input is the flow x, of order one, not the VE x (~3e4 at the first step)
    assert 999.0 < life["tiny_first_timestep"] <= 1000.0
    assert life["tiny_ksampler_first_timestep"] is not None and 999.0 < life["tiny_ksampler_first_timestep"] <= 1000.0
    assert 0.0 < life["tiny_last_timestep"] < 10.0
    assert life["tiny_input_abs_max"] < 10.0
