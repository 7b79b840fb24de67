"""The ``pare`` command: a thin dispatcher over the subcommands in ``pipelines.commands``.

Each subcommand module has ``register(subparsers)``, which adds its parser and sets
``handler``. Heavy imports (torch, ray) happen inside the handlers, so ``pare --help`` and
``pare config show`` start fast.

The guarantee every subcommand keeps: a problem the user can fix ends the command with exit
code 2 and one line on stderr, ``pare <command>: error: <what is wrong and how to fix it>``,
without a traceback; ``pare --verbose <command>`` adds the traceback. A user error raised inside
a Ray actor or a Ray Train worker reaches the user as its own message
(:func:`pipelines.user_errors.user_error_of` unwraps Ray's wrappers).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from pare_model.input_limits import limits_environment
from pipelines.commands import (
    body_model,
    checkpoint,
    compare,
    config,
    evaluate,
    export,
    occluders,
    predict,
    preprocess,
    quickstart,
    shards,
    study,
    synth,
    train,
)
from pipelines.console import quiet_libraries, set_verbose
from pipelines.user_errors import one_line, user_error_of

COMMANDS = (
    quickstart,
    config,
    body_model,
    checkpoint,
    predict,
    export,
    synth,
    preprocess,
    shards,
    occluders,
    train,
    evaluate,
    compare,
    study,
)


class _ArgumentError(Exception):
    """A command line argparse refused; printed as one line like any user error."""


class _Parser(argparse.ArgumentParser):
    """argparse's parser, raising instead of printing the usage and exiting (one line, exit 2, in :func:`main`)."""

    def error(self, message: str):
        raise _ArgumentError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pare",
        description="Preprocess, train, evaluate and deploy PARE (Part Attention Regressor).",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray's and the workers' logs on the console, and the traceback of errors",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except _ArgumentError as error:
        print(one_line(str(error)), file=sys.stderr)
        return 2
    set_verbose(args.verbose)
    quiet_libraries()
    try:
        limits_environment()  # a malformed PARE_MAX_* variable fails here, not in a worker
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"pare {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        message = user_error_of(error)
        if message is None:
            raise  # a bug: keep the whole traceback
        if args.verbose:
            traceback.print_exc()
        print(f"pare {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
