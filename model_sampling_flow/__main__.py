"""Command line: `python -m model_sampling_flow {demo,inspect,mark} ...`.

Exit codes: 0 success, 1 a file could not be inspected or written, 2 bad command-line usage.
Every subcommand is a (configure, run) pair in COMMANDS; adding one (e.g. `bench`) is one entry.
"""
import argparse
import sys

from .schedule import DEFAULT_SHIFT, TIMESTEP_MAPPING_DESCRIPTIONS, TIMESTEP_MAPPINGS


def _configure_demo(parser):
    from . import demo
    parser.add_argument("--out", default=demo.DEFAULT_OUT,
                        help=f"directory for demo.png and demo_table.txt (default: {demo.DEFAULT_OUT})")
    parser.add_argument("--steps", default=",".join(str(s) for s in demo.DEFAULT_STEPS),
                        help="comma-separated step counts for the table (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=demo.DEFAULT_BATCH,
                        help="samples per sampler and step count (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the images and the noise")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_demo(args):
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
    parser.add_argument("file", help="a .safetensors checkpoint (only its header is read)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _run_inspect(args):
    import json

    from .checkpoint import format_report, inspect_checkpoint, recommended_settings
    report = inspect_checkpoint(args.file)
    if args.json:
        settings = recommended_settings(report)
        report = dict(report, recommended=None if settings is None else {
            "shift": settings.shift, "timestep_mapping": settings.timestep_mapping,
            "shift_mode": settings.shift_mode})
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(format_report(report))
    return 0


def _configure_mark(parser):
    parser.add_argument("file", help="the checkpoint to mark; it is not modified")
    parser.add_argument("--shift", type=float, default=DEFAULT_SHIFT, help="default: %(default)s")
    parser.add_argument("--mapping", default=None, choices=sorted(TIMESTEP_MAPPINGS),
                        help="the trainer's timestep mapping: " + "; ".join(
                            f"{k} = {v}" for k, v in TIMESTEP_MAPPING_DESCRIPTIONS.items())
                        + " (default: what inspect recommends)")
    parser.add_argument("--shift-mode", default="static", choices=("static", "resolution"))


def _run_mark(args):
    from .checkpoint import inspect_checkpoint, recommended_settings, write_sidecar
    from .settings import FlowSettings
    report = inspect_checkpoint(args.file)
    mapping = args.mapping
    if mapping is None:
        guess = recommended_settings(dict(report, is_rf=True, marker={}))
        mapping = guess.timestep_mapping
    settings = FlowSettings(shift=args.shift, timestep_mapping=mapping, shift_mode=args.shift_mode)
    path = write_sidecar(args.file, settings)
    print(f"wrote {path}: rectified flow, shift {settings.shift:g}, timestep mapping "
          f"{settings.timestep_mapping}, shift mode {settings.shift_mode}")
    return 0


COMMANDS = {
    "demo": ("sample an exactly known rectified-flow model the right and the wrong ways; "
             "writes a PNG grid and prints an error table", _configure_demo, _run_demo),
    "inspect": ("read a .safetensors header: architecture, v_pred/ztsnr, metadata, whether it "
                "is marked rectified flow, recommended settings", _configure_inspect, _run_inspect),
    "mark": ("mark a checkpoint as rectified flow by writing <name>.flow.json next to it",
             _configure_mark, _run_mark),
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
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
