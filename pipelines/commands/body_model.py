"""``pare body-model synth|info``: make the procedural stand-in, or describe an asset folder."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from pare_model.errors import UserFacingError


def _synth(args: argparse.Namespace) -> int:
    from pare_model.body_model.assets import PROCEDURAL_MANIFEST
    from pipelines.body_model_source import generate_procedural_folder

    if args.seed < 0:
        raise UserFacingError(f"--seed must be >= 0, got {args.seed}")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        if not args.force:
            raise UserFacingError(f"{out} is not empty; pass --force to replace its contents, or choose another --out")
        if not (out / PROCEDURAL_MANIFEST).is_file():
            raise UserFacingError(f"{out} holds files that are not a procedural body model; refusing to replace them")
        shutil.rmtree(out)
    generate_procedural_folder(out, args.seed, args.format)
    print(f"Wrote the procedural body model (stand-in, NOT SMPL), seed {args.seed}, to {out.resolve()}")
    for path in sorted(out.iterdir()):
        print(f"  {path.name:<24} {path.stat().st_size:>12,} bytes")
    return 0


def _info(args: argparse.Namespace) -> int:
    import torch

    from pare_model.body_model import BodyModel, load_body_model_assets

    assets = load_body_model_assets(args.folder, args.gender)
    body = BodyModel.from_assets(assets)
    with torch.no_grad():
        eye = torch.eye(3).repeat(1, 24, 1, 1)
        vertices = body(eye[:, :1], eye[:, 1:], torch.zeros(1, 10))["vertices"][0]
    extent = (vertices.max(0).values - vertices.min(0).values).tolist()
    kind = "procedural stand-in (NOT SMPL)" if assets.procedural else "user-supplied model files"
    print(f"{assets.source}: {kind}")
    print(f"  vertices {vertices.shape[0]}, faces {body.faces.shape[0]}, gender {assets.gender}")
    print(f"  rest-pose size (x, y, z): {extent[0]:.3f} x {extent[1]:.3f} x {extent[2]:.3f} m")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("body-model", help="make or inspect body model asset folders")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    synth = actions.add_parser(
        "synth",
        help="write the procedural stand-in in SMPL's file formats",
        description="Write a procedural body model (a stand-in, NOT SMPL) in exactly SMPL's file formats.",
    )
    synth.add_argument("--out", required=True, help="folder to write (created if missing)")
    synth.add_argument("--seed", type=int, default=0, help="which procedural person (default 0)")
    synth.add_argument(
        "--format", choices=("pkl", "npz"), default="pkl", help="model file format (default pkl, as SMPL)"
    )
    synth.add_argument("--force", action="store_true", help="replace an existing procedural model in --out")
    synth.set_defaults(handler=_synth)
    info = actions.add_parser("info", help="describe an asset folder")
    info.add_argument("folder", help="asset folder")
    info.add_argument("--gender", choices=("neutral", "male", "female"), default="neutral")
    info.set_defaults(handler=_info)
