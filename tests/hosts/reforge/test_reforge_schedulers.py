"""Every schedule type reForge lists, with flow on: it reaches the flow distribution at 256
steps through the webui samplers (Euler, Euler a, DPM++ 2M) and through the ldm_patched samplers'
own scheduler table (Euler Comfy), or sampling stops with a message that names it."""

import reforge_harness as harness  # noqa: E402
from webui_extension.reforge import REFUSED_SCHEDULERS  # noqa: E402


def _schedulers():
    return harness.run_suite("schedulers")


def _check(rows):
    failures, refused = [], set()
    for key, row in rows.items():
        scheduler = key.split(" | ")[0]
        if row["refusal"] is not None:
            if f"'{scheduler}'" not in row["refusal"] or "turn Flow sampling off" not in row["refusal"]:
                failures.append(f"{key}: unclear refusal {row['refusal']!r}")
            refused.add(scheduler)
        elif row["error"] or not harness.within(row["stats"]):
            failures.append(f"{key}: {row['stats'] or row['error']}")
    return failures, refused


def test_webui_schedulers_work_or_are_refused():
    result = _schedulers()
    assert {key.split(" | ")[0] for key in result["webui"]} == set(result["listed"])
    failures, refused = _check(result["webui"])
    assert not failures, "\n".join(failures)
    assert refused == set(REFUSED_SCHEDULERS) & set(result["listed"]), refused


def test_comfy_sampler_schedulers_work_or_are_refused():
    failures, refused = _check(_schedulers()["alter"])
    assert not failures, "\n".join(failures)
    assert refused == set(REFUSED_SCHEDULERS), refused


def test_every_refused_scheduler_misses_with_some_sampler_when_forced():
    """Each refusal is earned by a measurement: sampled anyway, at least one of the three webui
    samplers misses the distribution."""
    result = _schedulers()
    for scheduler in REFUSED_SCHEDULERS:
        forced = [result["webui"][f"{scheduler} | {s}"].get("unrefused") for s in ("Euler", "Euler a", "DPM++ 2M")]
        assert any(f is not None and not harness.within(f) for f in forced), (scheduler, forced)
