"""Running a reader the way the job does (check, stream, validate) and splitting what it yields."""

from __future__ import annotations

from preprocessing.readers import Reader, build_reader, validated
from preprocessing.record import Rejected, SampleRecord


def split_items(reader: Reader) -> tuple[list[SampleRecord], list[Rejected]]:
    """The reader's validated records and its rejects, after its pre-flight check."""
    reader.check()
    items = list(validated(reader.records()))
    return [i for i in items if isinstance(i, SampleRecord)], [i for i in items if isinstance(i, Rejected)]


def read_source(name: str, root, split: str, dataset: str | None = None, **options):
    """:func:`split_items` of reader ``name`` over ``root`` with ``options``."""
    return split_items(build_reader(name, str(root), split, options, dataset))
