"""Runs inside a webui's own Python (A1111, reForge or Forge): a throwaway sampler entry and a
throwaway scheduler entry added to the core's registry reach the webui's sampler and schedule-type
lists through the extension's registration (the functions its script calls at load).

Usage: HOST_PYTHON registry_probe.py HOST HOST_DIR OUT.json     HOST: a1111, reforge or forge
HOST_DIR is a writable copy of the webui with this repository in extensions/model-sampling-flow.
Writes {"samplers": [labels], "schedulers": [labels], "options": {...}, "automatic": {sampler label:
schedule label "Automatic" gives it}, "error": null or text}.
"""
import json
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))      # tests/hosts: each webui's starter in <host>/
EXTENSION_NAME = "model-sampling-flow"
SAMPLER = ("flow_throwaway_probe", "Flow Throwaway Probe")
SCHEDULER = ("flow_throwaway_schedule", "Flow Throwaway Schedule")


def start(host, host_dir):
    """Start the webui with each host test's own starter; the extension's folder on sys.path."""
    if host in ("a1111", "reforge", "forge"):
        sys.path.insert(0, os.path.join(HERE, host))
    if host == "a1111":
        os.environ["A1111_DIR"] = host_dir
        import a1111_runner
        a1111_runner.start_webui()
    elif host == "reforge":
        import reforge_host
        reforge_host.start_reforge(host_dir)
    elif host == "forge":
        import forge_host
        forge_host.start_forge(host_dir, host_dir)
    else:
        raise ValueError(f"host must be a1111, reforge or forge, got {host!r}")
    extension = os.path.join(host_dir, "extensions", EXTENSION_NAME)
    if extension not in sys.path:
        sys.path.insert(0, extension)


def probe():
    from model_sampling_flow import registry
    from modules import sd_samplers, sd_schedulers
    from webui_extension import a1111
    base = registry.SAMPLERS_BY_NAME["flow_heun"]
    sampler = registry.SamplerEntry(SAMPLER[0], SAMPLER[1], base.function, False, 2, base.options,
                                    scheduler=SCHEDULER[0])
    scheduler = registry.SchedulerEntry(SCHEDULER[0], SCHEDULER[1], registry.SCHEDULERS[0].function)
    registry.SAMPLERS += (sampler,)
    registry.SCHEDULERS += (scheduler,)
    added = {"samplers": a1111.register_samplers(), "schedulers": a1111.register_schedulers()}
    data = sd_samplers.all_samplers_map[SAMPLER[1]]
    # what the webui's "Automatic" schedule type resolves to for a sampler: its options' scheduler
    automatic = {label: getattr(sd_schedulers.schedulers_map.get(
                     sd_samplers.all_samplers_map[label].options.get("scheduler")), "label", None)
                 for label in (SAMPLER[1], "Flow PC", "Flow Euler")}
    return {"automatic": automatic, "added": added,
            "samplers": [s.name for s in sd_samplers.visible_samplers()],
            "schedulers": [s.label for s in sd_schedulers.schedulers],
            "scheduler_by_name": getattr(sd_schedulers.schedulers_map.get(SCHEDULER[0]), "label", None),
            "options": data.options, "total_steps_of_10": data.total_steps(10)}


def main():
    host, host_dir, out = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
    result = {"error": None}
    try:
        start(host, host_dir)
        result.update(probe())
    except BaseException:     # the test shows the traceback
        result["error"] = traceback.format_exc()
    with open(out, "w") as handle:
        json.dump(result, handle)
    os._exit(0)     # webui threads (gradio, the queue) would keep the process alive


if __name__ == "__main__":
    main()
