"""The ``pare`` command: a thin dispatcher over the subcommands in ``pipelines.commands``.

Each subcommand module has ``register(subparsers)``, which adds its parser and sets
``handler``. Heavy imports (torch, ray) happen inside the handlers, so ``pare --help`` and
``pare config show`` start fast. Problems the user can fix are printed without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pare_model.errors import UserFacingError
from pipelines.commands import (
    body_model,
    checkpoint,
    compare,
    config,
    evaluate,
    occluders,
    predict,
    preprocess,
    quickstart,
    shards,
    study,
    synth,
    train,
)

COMMANDS = (
    quickstart,
    config,
    body_model,
    checkpoint,
    predict,
    synth,
    preprocess,
    shards,
    occluders,
    train,
    evaluate,
    compare,
    study,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pare",
        description="Preprocess, train, evaluate and deploy PARE (Part Attention Regressor).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserFacingError as error:
        print(f"pare {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
