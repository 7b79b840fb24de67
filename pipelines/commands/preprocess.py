"""``pare preprocess CONFIG [key=value ...]``: dataset sources -> WebDataset shards, on Ray."""

from __future__ import annotations

import argparse

from pipelines.commands.config import _split_config_args


def _list_readers() -> int:
    """Each reader's summary, splits and options (default and meaning), from the code itself."""
    import dataclasses

    from pipelines.config.field_docs import field_docs
    from preprocessing.readers import READERS, reader_class

    for name in sorted(READERS):
        cls = reader_class(name)
        summary = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())  # the first paragraph, one line
        print(f"{name}: {summary}\n  splits: {', '.join(cls.splits)}; dataset name: {cls.default_dataset}")
        docs = field_docs(cls.Options)
        for field in dataclasses.fields(cls.Options):
            print(f"  options.{field.name} = {field.default!r}: {' '.join(docs.get(field.name, '').split())}")
        print()
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.readers:
        return _list_readers()
    from pipelines.config.loader import load_config

    path, overrides = _split_config_args(args.args)
    config = load_config(path, overrides)  # a mistake in it is reported before torch and Ray are imported
    from pipelines.preprocess.job import run_preprocess

    report = run_preprocess(config, show_progress=not args.quiet)
    print(f"Shards in {report.output} ({report.seconds:.1f} s):")
    if report.shards_reused:
        print(
            f"  reused {report.shards_reused} of {report.shards_planned} shards written by an earlier, interrupted run"
        )
    if report.shards_by_node:
        nodes = sorted(report.shards_by_node.items(), key=lambda item: (-item[1], item[0]))
        where = ", ".join(f"{count} on {node}" for node, count in nodes)
        built = sum(report.shards_by_node.values())
        shards, plural = "shard" if built == 1 else "shards", "s" if len(nodes) > 1 else ""
        print(f"  built {built} {shards} on {len(nodes)} Ray node{plural}: {where}")
    for folder in report.folders:
        print(
            f"  {folder.folder}: {folder.status}; {folder.inputs} inputs -> {folder.samples} samples in "
            f"{folder.shards} shards, {folder.rejected} rejected (see {folder.folder}/rejects.jsonl)"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preprocess",
        help="read datasets, crop people, render part labels, write WebDataset shards (a Ray job)",
        description=(
            "Read every source in preprocess.sources, crop each person, render part labels from the SMPL fits "
            "and write <output>/<dataset>/<split>/shard-*.tar with manifest.json and rejects.jsonl. Runs on a "
            "local Ray cluster, or on preprocess.ray_address. Rerunning skips finished work."
        ),
    )
    parser.add_argument("--readers", action="store_true", help="list the dataset readers and their options, and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "args", nargs="*", metavar="[CONFIG] [key=value ...]", help="a YAML config file and/or overrides"
    )
    parser.set_defaults(handler=_run)
