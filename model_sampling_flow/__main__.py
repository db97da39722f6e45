"""Command line: `python -m model_sampling_flow {demo,inspect,mark} ...`.

Exit codes: 0 success, 1 a file could not be inspected or written, 2 bad command-line usage.
Every subcommand is a (configure, run) pair in COMMANDS; adding one (e.g. `bench`) is one entry.
"""
import argparse
import math
import sys

from .schedule import SHIFT_MODES, TIMESTEP_MAPPING_DESCRIPTIONS, TIMESTEP_MAPPINGS


def _configure_demo(parser):
    try:
        from . import demo
    except ImportError as error:     # no torch: `inspect` and `mark` still work
        parser.set_defaults(unavailable=f"the demo needs torch, which cannot be imported here ({error})")
        return
    parser.add_argument("--out", default=demo.DEFAULT_OUT,
                        help=f"directory for demo.png and demo_table.txt (default: {demo.DEFAULT_OUT})")
    parser.add_argument("--steps", default=",".join(str(s) for s in demo.DEFAULT_STEPS),
                        help="comma-separated step counts for the table (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=demo.DEFAULT_BATCH,
                        help="samples per sampler and step count (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the images and the noise")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_demo(args):
    if getattr(args, "unavailable", None):
        raise ValueError(args.unavailable)
    from . import demo
    try:
        steps = tuple(int(s) for s in args.steps.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--steps must be comma-separated integers, got {args.steps!r}") from None
    result = demo.run(out_dir=args.out, steps=steps, batch=args.batch, seed=args.seed,
                      progress=not args.quiet)
    print(result["table_text"])
    print(f"\npicture: {result['png_path']}\ntable:   {result['table_path']}")
    return 0


def _configure_inspect(parser):
    parser.add_argument("file", help="a .safetensors file, or a diffusers folder (only headers and small "
                                     "JSON sidecars are read; nothing is unpickled)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _run_inspect(args):
    import json

    from .checkpoint import inspect_checkpoint
    from .report_text import format_report
    report = inspect_checkpoint(args.file)
    if args.json:
        # strict JSON: a NaN or infinite number read from a sidecar is reported as text
        print(json.dumps(_finite_json(report.as_dict()), indent=2, sort_keys=True, allow_nan=False))
    else:
        print(format_report(report))
    return 0


def _configure_mark(parser):
    parser.add_argument("file", help="the checkpoint or UNet file (or diffusers folder) to mark; a LoRA or "
                                     "VAE is refused. The file itself is not modified; the sidecar is "
                                     "written atomically and a symbolic link there is never followed")
    parser.add_argument("--shift", type=float, default=None,
                        help="the shift to sample with (default: what inspect recommends)")
    parser.add_argument("--mapping", default=None, choices=sorted(TIMESTEP_MAPPINGS),
                        help="the trainer's timestep mapping: " + "; ".join(
                            f"{k} = {v}" for k, v in TIMESTEP_MAPPING_DESCRIPTIONS.items())
                        + " (default: what inspect recommends)")
    parser.add_argument("--shift-mode", default=None, choices=SHIFT_MODES,
                        help="default: what inspect recommends (static unless the file says otherwise)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing sidecar that says something else, a broken one, or a "
                             "symbolic link at the sidecar path (the link itself, never its target)")


def _finite_json(value):
    """`value` with every NaN or infinite float replaced by its text ("nan", "inf"), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {key: _finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(item) for item in value]
    return value


def _run_mark(args):
    from .checkpoint import gather_facts, rf_settings
    from .sidecar import write_sidecar
    facts = gather_facts(args.file)
    if facts.kind not in ("checkpoint", "unet"):
        what = facts.kind if facts.kind != "unknown" else "not recognised as a checkpoint or a UNet"
        raise ValueError(f"file {args.file!r} is not a checkpoint (it is {'a ' if facts.kind != 'unknown' else ''}"
                         f"{what}); only a checkpoint or a UNet can be rectified flow: mark the checkpoint "
                         "it is used with instead")
    settings, _ = rf_settings(facts)
    for key, value in (("shift", args.shift), ("timestep_mapping", args.mapping), ("shift_mode", args.shift_mode)):
        if value is not None:
            settings[key] = value
    path = write_sidecar(args.file, settings, force=args.force)
    print(f"wrote {path}: rectified flow, shift {settings['shift']:g}, timestep mapping "
          f"{settings['timestep_mapping']}, shift mode {settings['shift_mode']}")
    return 0


COMMANDS = {
    "demo": ("sample an exactly known rectified-flow model the right and the wrong ways; "
             "writes a PNG grid and prints an error table", _configure_demo, _run_demo),
    "inspect": ("read a .safetensors header (standard library only): file kind, architecture, "
                "v_pred/ztsnr, metadata, whether it is rectified flow and why, recommended settings",
                _configure_inspect, _run_inspect),
    "mark": ("mark a checkpoint as rectified flow by writing <name>.flow.json next to it, with the "
             "settings inspect recommends unless given", _configure_mark, _run_mark),
}


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m model_sampling_flow",
                                     description="Rectified-flow sampling for SDXL checkpoints.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (help_text, configure, run) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        configure(command)
        command.set_defaults(run=run)
    return parser


def main(argv=None):
    for stream in (sys.stdout, sys.stderr):
        # text a terminal cannot encode (a lone surrogate, a non-UTF-8 console) is shown escaped
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
