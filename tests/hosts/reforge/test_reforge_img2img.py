"""img2img, inpaint, the hires-fix second pass and a foreign second pass (another extension's
processing object without our script arguments) through reForge's sample_img2img, with flow on:
starting from exact draws of the data, the output must again be distributed as the data."""

import reforge_harness as harness  # noqa: E402


def _img2img():
    return harness.run_suite("img2img")


def _failures(rows, need_change=0.0):
    bad = []
    for key, row in rows.items():
        if "error" in row or not harness.within(row["stats"]):
            bad.append(f"{key}: {row}")
        elif row.get("changed", 1.0) <= need_change:
            bad.append(f"{key}: the latent was not resampled ({row})")
    return bad


# "Resampled" means the output moved off the init latent (a skipped pass moves it by 0). The schedule is
# computed over the flow sigma range, as natively (ComfyUI + ModelSamplingSD3): strength 0.3 on a
# sigma-spaced schedule (DPM++ 2M: Karras, DPM++ 2M SDE: Exponential) starts near flow sigma 0.03, so
# the mean change there is ~0.02 (0.3 before, when the schedule spanned the VE table up to 3e4).
RESAMPLED = 0.01


def test_img2img_at_each_strength_keeps_the_data_distribution():
    rows = _img2img()["img2img"]
    assert {key.split(" | ")[1] for key in rows} == {"0.3", "0.5", "0.75"}
    failures = _failures(rows, need_change=RESAMPLED)
    assert not failures, "\n".join(failures)


def test_inpaint_resamples_the_masked_area_only_and_keeps_the_distribution():
    rows = _img2img()["inpaint"]
    failures = _failures(rows, need_change=RESAMPLED)
    assert not failures, "\n".join(failures)
    assert all(row["kept_exactly"] for row in rows.values()), rows


def test_hires_second_pass_keeps_the_distribution():
    failures = _failures(_img2img()["hires"])
    assert not failures, "\n".join(failures)


def test_a_second_processing_object_without_our_arguments_samples_the_flow_way():
    rows = _img2img()["second_pass"]
    assert any(key.endswith("txt2img") for key in rows)
    failures = _failures(rows)
    assert not failures, "\n".join(failures)
