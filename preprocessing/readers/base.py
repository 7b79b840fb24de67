"""What every dataset reader is: options, the files it needs, and a lazy stream of records.

A reader never raises for one bad input: it yields a :class:`~preprocessing.record.Rejected`
item with the reason and goes on. It raises :class:`~preprocessing.readers.files.SourceError`
only when the source as a whole cannot be read (wrong root, missing or unparseable annotation
file), which the job reports before any cluster work starts.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from preprocessing.readers.files import SourceError, SourceFiles
from preprocessing.record import RecordRejected, Rejected, SampleRecord, reject, validate_record

Item = SampleRecord | Rejected


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A reader without options."""


class Reader(ABC):
    """One dataset split under one root folder or URI.

    Subclasses set ``name`` (the registry name), ``default_dataset`` (the dataset part of the
    sample keys) and ``Options`` (a frozen dataclass whose fields have defaults and docstrings).
    """

    name: ClassVar[str]
    default_dataset: ClassVar[str]
    splits: ClassVar[tuple[str, ...]] = ("train", "validation", "test")
    Options: ClassVar[type] = NoOptions

    def __init__(self, root: str, split: str, options: Any = None, dataset: str | None = None):
        if split not in self.splits:
            raise SourceError(f"reader {self.name!r} has no split {split!r}; its splits are {list(self.splits)}")
        self.files = SourceFiles(root)
        self.split = split
        self.options = options if options is not None else self.Options()
        self.dataset = dataset or self.default_dataset
        self.cache_root: Path | None = None
        """Where readers of large annotation files keep their columnar conversions
        (:mod:`preprocessing.readers.columns`), reused across runs; None: a temporary folder per read."""

    @abstractmethod
    def annotation_files(self) -> list[str]:
        """Annotation files (relative to the root) the records come from; they define the source fingerprint."""

    @abstractmethod
    def records(self) -> Iterator[Item]:
        """Stream this split's records (and rejected inputs), lazily, in a deterministic order."""

    def check(self) -> None:
        """Raise :class:`SourceError` naming the path when the root or an annotation file is missing."""
        if not self.files.exists(""):
            raise SourceError(f"source root of reader {self.name!r} not found: {self.files.uri}. Check the path.")
        for relative in self.annotation_files():
            self.files.require(relative, f"{self.name} annotation file", "Check the reader's options and the root.")

    def fingerprint(self) -> str:
        """sha256 of the annotation files: changes when the source's annotations change."""
        return self.files.fingerprint(self.annotation_files())

    def rejected(self, reason: str, detail: str, sample_id: str = "", source: str = "") -> Rejected:
        """A :class:`Rejected` item of this reader."""
        return Rejected(reason, detail, self.dataset, self.split, sample_id, source)


SYNTHETIC_MARKER = "synthetic.json"
"""File that ``pare synth`` writes at the root of every synthetic source."""


def pixel_offset(files: SourceFiles, configured: float | None) -> float:
    """What to add to a source's 2D coordinates (and principal point) to reach the +0.5 pixel convention.

    ``configured`` wins when given. Otherwise: 0 for ``pare synth`` output (written in the
    project's convention already), 0.5 for real data, whose annotations and calibrations put
    pixel centres at integers.
    """
    if configured is not None:
        return float(configured)
    return 0.0 if files.exists(SYNTHETIC_MARKER) else 0.5


def validated(items: Iterator[Item], min_keypoints: int = 1, confine_to: SourceFiles | None = None) -> Iterator[Item]:
    """Pass rejected items through and turn records that fail :func:`validate_record` into rejects.

    With ``confine_to``, a record whose image lies outside that source's root (its annotation named
    ``../../etc/...`` or an absolute path) is rejected as ``image_outside_root`` before anything reads it.
    """
    for item in items:
        if isinstance(item, SampleRecord):
            try:
                validate_record(item, min_keypoints)
                if confine_to is not None and not confine_to.contains(item.image.path):
                    raise RecordRejected(
                        "image_outside_root",
                        f"image {item.image.path} is outside the source root {confine_to.url('.')}; set "
                        "preprocess.images_outside_root=true if the annotation files are trusted",
                    )
            except RecordRejected as error:
                item = reject(item, error)
        yield item


def build_options(reader: type[Reader], options: Mapping[str, Any] | None) -> Any:
    """``reader.Options`` from a mapping; an unknown option name raises listing the valid ones."""
    options = dict(options or {})
    names = [f.name for f in dataclasses.fields(reader.Options)]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise SourceError(f"reader {reader.name!r} has no option(s) {unknown}; its options are {names}")
    try:
        return reader.Options(**options)
    except (TypeError, ValueError) as error:
        raise SourceError(f"bad options for reader {reader.name!r}: {error}") from None
