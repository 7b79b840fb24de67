"""``pare predict --checkpoint FILE --images DIR [--boxes FILE.json]``: run the model on images."""

from __future__ import annotations

import argparse

from pipelines.commands.config import _split_config_args


def _run(args: argparse.Namespace) -> int:
    from pare_model.checkpoint import load_model
    from pipelines.body_model_source import prepare_assets
    from pipelines.config.loader import load_config
    from pipelines.inference.boxes import read_boxes
    from pipelines.inference.predict import run_predict

    path, overrides = _split_config_args(args.args)
    if args.out:
        overrides = [*overrides, f"predict.output_dir={args.out}"]
    config = load_config(path, overrides)
    boxes = read_boxes(args.boxes) if args.boxes else None
    model = load_model(args.checkpoint, prepare_assets(config.body_model))
    summary = run_predict(model, args.images, boxes, config.predict)
    print(f"{summary.num_people} people in {summary.num_images} images -> {summary.output_dir.resolve()}")
    if summary.rejects:
        print(
            f"{len(summary.rejects)} images or boxes gave no prediction; reasons in "
            f"{summary.output_dir / 'rejects.jsonl'}"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict SMPL bodies for the people in a folder of images",
        description=(
            "Find people (boxes file, OpenCV's HOG detector, or the whole image), run the model on their "
            "crops, and write per-person JSON (SMPL parameters, 3D joints, cameras) and overlay PNGs."
        ),
    )
    parser.add_argument("--checkpoint", required=True, help="pare-pipeline .pt or released PARE .ckpt")
    parser.add_argument("--images", required=True, help="folder of .jpg/.png images")
    parser.add_argument("--boxes", help='JSON: {"image.jpg": [[x, y, w, h], ...]} (default: detect people)')
    parser.add_argument("--out", help="output folder (default: predict.output_dir)")
    parser.add_argument(
        "args", nargs="*", metavar="[CONFIG] [key=value ...]", help="a YAML config file and/or overrides"
    )
    parser.set_defaults(handler=_run)
