"""``pare shards validate DIR`` and ``pare shards stats DIR``: check and describe shard folders."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("shards", help="validate shard folders or summarise them")
    parser.add_subparsers(dest="shards_command", required=True, metavar="SUBCOMMAND")
