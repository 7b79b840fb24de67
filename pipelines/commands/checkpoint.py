"""``pare checkpoint import|info``: bring released PARE checkpoints into the project's format."""

from __future__ import annotations

import argparse
from pathlib import Path

from pare_model.errors import UserFacingError
from pipelines.commands.config import _split_config_args


def _import(args: argparse.Namespace) -> int:
    from pare_model.checkpoint import import_official_checkpoint, save_model_checkpoint
    from pipelines.body_model_source import prepare_assets
    from pipelines.config.loader import load_config

    out = Path(args.out)
    if out.exists() and not args.force:
        raise UserFacingError(f"{out} exists; pass --force to overwrite it, or choose another --out")
    path, overrides = _split_config_args(args.args)
    config = load_config(path, overrides)
    model, report = import_official_checkpoint(args.official, prepare_assets(config.body_model))
    metadata = {"imported_from": str(Path(args.official).resolve()), "import_summary": report.summary()}
    save_model_checkpoint(out, model.network_state_dict(), report.config, metadata)
    print(report.summary())
    print(f"Wrote {out} ({report.config.backbone} + {report.config.head} head)")
    return 0


def _info(args: argparse.Namespace) -> int:
    import dataclasses

    from pare_model.checkpoint import read_model_checkpoint

    checkpoint = read_model_checkpoint(args.file)
    num_values = sum(t.numel() for t in checkpoint.network.values())
    print(f"{args.file}: {len(checkpoint.network)} tensors, {num_values:,} values")
    for key, value in dataclasses.asdict(checkpoint.config).items():
        print(f"  model.{key}: {value}")
    for key, value in checkpoint.metadata.items():
        print(f"  {key}: {value}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("checkpoint", help="import or inspect model checkpoints")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = actions.add_parser(
        "import",
        help="convert a released PARE .ckpt into a pare-pipeline .pt",
        description=(
            "Read a released PARE checkpoint with weights_only=True, account for every tensor, and write "
            "the network weights with their model config. The body model comes from the config's "
            "body_model section."
        ),
    )
    imp.add_argument("--official", required=True, help="released PARE checkpoint (.ckpt)")
    imp.add_argument("--out", required=True, help="output file (.pt)")
    imp.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    imp.add_argument("args", nargs="*", metavar="[CONFIG] [key=value ...]", help="a YAML config file and/or overrides")
    imp.set_defaults(handler=_import)
    info = actions.add_parser("info", help="describe a pare-pipeline checkpoint")
    info.add_argument("file", help="checkpoint (.pt)")
    info.set_defaults(handler=_info)
