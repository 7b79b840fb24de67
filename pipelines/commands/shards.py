"""``pare shards validate DIR`` and ``pare shards stats DIR``: check and describe shard folders.

DIR is one dataset/split folder (holding ``manifest.json``) or a folder above several; local
paths and pyarrow URIs (``s3://...``) both work.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipelines.commands.numbers import whole_number

MAX_PRINTED = 20
MAX_SHEET_SAMPLES = 256
"""Most samples on a contact sheet: each is a 424-pixel tile held in memory until the sheet is drawn."""


def _validate(args: argparse.Namespace) -> int:
    from pipelines.data.reading import find_folders
    from pipelines.io.storage import Storage
    from pipelines.shards.validate import validate_folder

    storage = Storage(args.dir)
    failed = 0
    for folder in find_folders(storage):
        report = validate_folder(storage, folder, show_progress=not args.quiet)
        status = "OK" if report.ok else f"{len(report.problems)} problem(s)"
        print(f"{report.folder}: {report.samples} samples checked: {status}")
        for problem in report.problems[:MAX_PRINTED]:
            print(f"  - {problem}")
        if len(report.problems) > MAX_PRINTED:
            print(f"  ... and {len(report.problems) - MAX_PRINTED} more")
        failed += not report.ok
    return 1 if failed else 0


def _stats(args: argparse.Namespace) -> int:
    from pipelines.data.reading import find_folders
    from pipelines.io.storage import Storage
    from pipelines.shards.stats import count_table, histogram_png, shard_stats
    from pipelines.visualize.contact_sheet import contact_sheet

    storage = Storage(args.dir)
    if args.out is None and "://" in args.dir:
        args.out = "shard-stats"
    out_root = Path(args.out) if args.out else Path(args.dir) / "stats"
    all_stats = []
    for folder in find_folders(storage):
        stats, tiles = shard_stats(storage, folder, args.samples, args.seed)
        all_stats.append(stats)
        out = out_root / folder if folder else out_root
        out.mkdir(parents=True, exist_ok=True)
        (out / "stats.json").write_text(json.dumps(stats.to_json(), indent=2) + "\n")
        histogram_png(stats).save(out / "quality.png")
        if tiles:
            images, captions = zip(*tiles, strict=True)
            sheet = contact_sheet(
                list(images), columns=4, captions=list(captions), title=f"{stats.folder}: random samples"
            )
            sheet.save(out / "contact_sheet.png")
        print(
            f"{stats.folder}: wrote {out / 'stats.json'}, {out / 'quality.png'}"
            + (f", {out / 'contact_sheet.png'}" if tiles else "")
        )
    print(count_table(all_stats))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("shards", help="validate shard folders or summarise them")
    commands = parser.add_subparsers(dest="shards_command", required=True, metavar="SUBCOMMAND")
    validate = commands.add_parser("validate", help="check shards against the manifest and decode every sample")
    validate.add_argument("dir", help="a dataset/split folder or a folder above several (path or URI)")
    validate.add_argument("--quiet", action="store_true", help="no progress bar")
    validate.set_defaults(handler=_validate)
    stats = commands.add_parser("stats", help="counts, fit-quality histograms and a contact sheet of samples")
    stats.add_argument("dir", help="a dataset/split folder or a folder above several (path or URI)")
    stats.add_argument("--out", default=None, help="output folder (default: DIR/stats; ./shard-stats for URIs)")
    stats.add_argument(
        "--samples",
        type=whole_number(0, MAX_SHEET_SAMPLES),
        default=16,
        help="samples on the contact sheet (default 16)",
    )
    stats.add_argument("--seed", type=whole_number(0), default=0, help="which random samples (default 0)")
    stats.set_defaults(handler=_stats)
