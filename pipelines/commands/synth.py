"""``pare synth --layout L --out DIR --num N --seed S``: synthetic data in a real dataset's file layout.

The work is :func:`pipelines.synth.run_synth`.
"""

from __future__ import annotations

import argparse

from pipelines.commands.config import _split_config_args
from pipelines.synth import PREVIEW_FILE, run_synth
from preprocessing.synth.layouts import LAYOUTS  # registered by module path: no torch for --help


def _run(args: argparse.Namespace) -> int:
    from pipelines.config.loader import load_config

    path, overrides = _split_config_args(args.args)
    config = load_config(path, overrides)
    run = run_synth(config, args.layout, args.out, args.num, args.seed, args.preview, args.occluders, args.force)
    result = run.result
    rate = result.num_samples / max(run.seconds, 1e-9)
    print(f"Wrote {result.num_samples} SYNTHETIC {result.layout} samples to {run.out.resolve()} ({rate:.1f} samples/s)")
    for path in result.annotation_files:
        print(f"  {path.relative_to(run.out)}")
    if run.preview_png is not None:
        print(f"Preview: {run.preview_png.resolve()}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write synthetic data in a real dataset's file layout",
        description=(
            "Render posed bodies of the configured body model (the procedural stand-in by default) with "
            "exact ground truth, written in the file layout of a real dataset so the same readers load it."
        ),
    )
    parser.add_argument("--layout", required=True, metavar="L", help=f"one of: {', '.join(LAYOUTS.names())}")
    parser.add_argument("--out", required=True, help="output folder (created; must be empty unless --force)")
    parser.add_argument("--num", type=int, default=64, help="samples to write (3dpw: frames; default 64)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    parser.add_argument("--preview", action="store_true", help=f"also write {PREVIEW_FILE}, a contact sheet")
    parser.add_argument("--occluders", type=float, default=None, metavar="P", help="chance of occluders per picture")
    parser.add_argument("--force", action="store_true", help="replace the output of an earlier pare synth in --out")
    parser.add_argument(
        "args", nargs="*", metavar="[CONFIG] [key=value ...]", help="a YAML config file and/or overrides"
    )
    parser.set_defaults(handler=_run)
