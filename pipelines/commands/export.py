"""``pare export --checkpoint FILE --format onnx|torchscript --out FILE``: the model as a deployable file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pare_model.errors import UserFacingError
from pipelines.commands.config import _split_config_args

FORMATS = ("onnx", "torchscript")  # pipelines.export.check.FORMATS, spelled out so `pare --help` needs no torch


def _run(args: argparse.Namespace) -> int:
    from pipelines.config.loader import load_config

    if args.body_model_dir and not args.with_body_model:
        raise UserFacingError("--body-model-dir is only read with --with-body-model: add it, or drop --body-model-dir")
    path, overrides = _split_config_args(args.args)
    config = load_config(path, overrides)  # a mistake in it is reported before torch is imported
    from pipelines.export.job import ExportRequest, run_export, summary_text

    request = ExportRequest(
        checkpoint=args.checkpoint,
        format=args.format,
        out=Path(args.out),
        with_body_model=args.with_body_model,
        body_model_dir=args.body_model_dir or "",
        num_crops=args.check_crops,
        tolerance=args.tolerance,
        force=args.force,
    )
    result = run_export(request, config.body_model)
    print(summary_text(result))
    if not result.ok:
        failed = ", ".join(row.name for row in result.rows if not row.ok)
        print(
            f"pare export: error: the {args.format} file does not reproduce eager PyTorch within "
            f"{args.tolerance:g} ({failed}); {args.out} was not written",
            file=sys.stderr,
        )
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a checkpoint as a TorchScript or ONNX file, checked against eager PyTorch",
        description=(
            "Trace the network (uint8 RGB crops in; pose, shape, camera and part maps out), optionally with the "
            "body model layer (vertices and 3D joints out too), write it, run the written file on a few crops next "
            "to eager PyTorch and print the differences per output. Exit status 1 when an output differs by more "
            "than the tolerance (the file is then not written). The body model folder is --body-model-dir, else "
            "$PARE_BODY_MODEL_DIR, else the config's body_model section."
        ),
    )
    parser.add_argument("--checkpoint", required=True, help="pare-pipeline .pt or released PARE .ckpt")
    parser.add_argument("--format", required=True, choices=FORMATS, help="onnx (onnxruntime) or torchscript")
    parser.add_argument("--out", required=True, help="output file, e.g. model.onnx or model.ts")
    parser.add_argument(
        "--with-body-model",
        action="store_true",
        help="include the body model layer: vertices, 3D and 2D joints and the camera translation come out too",
    )
    parser.add_argument("--body-model-dir", help="body model folder for --with-body-model (default: see above)")
    parser.add_argument("--check-crops", type=int, default=4, help="crops the check runs on (default 4)")
    parser.add_argument(
        "--tolerance", type=float, default=1e-4, help="largest relative difference per output (default 1e-4)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.add_argument(
        "args", nargs="*", metavar="[CONFIG] [key=value ...]", help="a YAML config file and/or overrides"
    )
    parser.set_defaults(handler=_run)
