"""``pare quickstart [CONFIG] [key=value ...]``: the main job on the embedded default."""

from __future__ import annotations

import argparse

from pipelines.commands.config import _split_config_args


def _run(args: argparse.Namespace) -> int:
    from pipelines.config.loader import load_config

    path, overrides = _split_config_args(args.args)
    config = load_config(path, overrides)  # a mistake in it is reported before torch and Ray are imported
    from pipelines.quickstart import run_quickstart, summary

    print(summary(run_quickstart(config)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quickstart",
        help="run the main job on the embedded procedural default",
        description=(
            "The whole pipeline on the embedded default: the procedural body model (NOT SMPL), synthetic COCO-EFT-like "
            "and 3DPW-like data, Ray preprocessing, Ray Train, evaluation, occlusion analysis and a summary. "
            "quickstart.pipeline=false only draws the body model."
        ),
    )
    parser.add_argument(
        "args", nargs="*", metavar="[CONFIG] [key=value ...]", help="a YAML config file and/or overrides"
    )
    parser.set_defaults(handler=_run)
