"""``pare occluders build --voc DIR --out FILE``: an occluder bank from Pascal VOC 2012 (a Ray job)."""

from __future__ import annotations

import argparse

from pipelines.commands.numbers import whole_number


def _build(args: argparse.Namespace) -> int:
    from pipelines.occluder_bank.build import build_bank

    report = build_bank(args.voc, args.out, args.min_pixels, args.ray_address, show_progress=not args.quiet)
    print(f"Occluder bank {report.bank}: {report.occluders} cut-outs from {report.images} segmented images.")
    print(
        f"  objects not used: {sum(report.rejected_by_reason.values())} {report.rejected_by_reason} "
        f"(listed in {report.rejects})"
    )
    print(f"  use it with: loader.occlusion.bank={report.bank}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("occluders", help="build the synthetic-occlusion bank from Pascal VOC")
    commands = parser.add_subparsers(dest="occluders_command", required=True, metavar="SUBCOMMAND")
    build = commands.add_parser(
        "build",
        help="cut Pascal VOC 2012 objects into an occluder bank (.npz)",
        description="Cut every segmented VOC object that is not a person, truncated or difficult and has at least "
        "--min-pixels pixels in its box into an RGBA cut-out, its border eroded (8x8, alpha 192) and halved, as the "
        "original PARE builds its Pascal occluders; write them to --out (.npz).",
    )
    build.add_argument("--voc", required=True, help="the VOCdevkit/VOC2012 folder")
    build.add_argument("--out", required=True, help="the bank file to write (.npz)")
    build.add_argument(
        "--min-pixels", type=whole_number(1), default=500, help="smallest object mask in pixels (PARE: 500)"
    )
    build.add_argument("--ray-address", default="", help="Ray cluster (empty: a local one)")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(handler=_build)
