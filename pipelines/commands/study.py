"""``pare study CONFIG [key=value ...]``: train variants the same way, evaluate them, compare them."""

from __future__ import annotations

import argparse

from pipelines.commands.config import _split_config_args


def _run(args: argparse.Namespace) -> int:
    from pipelines.study import run_study, summary_text

    path, overrides = _split_config_args(args.args)
    print(summary_text(run_study(path, overrides)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "study",
        help="train the variants of a study the same way, evaluate them on one test set, and compare them",
        description=(
            "For configs/study_occlusion.yaml: PARE and an HMR-style baseline trained on the same synthetic data with "
            "synthetic occlusion, evaluated on an occluded synthetic test set, occlusion analysis for each, and a "
            "pare compare report (study.output_dir/compare)."
        ),
    )
    parser.add_argument(
        "args", nargs="*", metavar="[CONFIG] [key=value ...]", help="a YAML config file and/or overrides"
    )
    parser.set_defaults(handler=_run)
