"""Large annotation files as columns on disk: converted once, cached by the file's sha256, read in slices.

A conversion (e.g. :mod:`preprocessing.readers.coco_columns`) streams a JSON file
(:mod:`preprocessing.readers.json_stream`) into tables of rows. Each table keeps its numeric
columns as raw little-endian arrays, its text columns as UTF-8 bytes with row offsets, and, for
rows whose values do not fit the columns (a missing field, a wrong shape), the row's own JSON,
which the reader then treats exactly as it treats a parsed file. Readers load the small index
columns whole and the wide ones (keypoints, fits) a slice of rows at a time through a memory map
opened for that slice only, so memory holds no per-record Python objects and never the whole file.

The cache folder is ``<root>/<kind>-v<version>-<sha256>``: written under a temporary name and
renamed when complete, reused by any later run over the same file content, and safe to delete.
Without a cache root (readers used on their own) a conversion lives in a temporary folder for as
long as its tables are in use.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from preprocessing.readers.files import SourceFiles

FORMAT = "pare-annotation-columns"
META_FILE = "meta.json"
BLOCK_ROWS = 4096
"""Rows gathered in memory before a table writes them out."""


@dataclass(frozen=True)
class Column:
    """A numeric column: its NumPy dtype and the shape of one row's value."""

    name: str
    dtype: str
    shape: tuple[int, ...] = ()


class TableWriter:
    """Appends rows to one table of a conversion folder."""

    def __init__(self, folder: Path, table: str, columns: list[Column], texts: tuple[str, ...] = ()):
        self.folder, self.table, self.columns, self.texts = folder, table, columns, texts
        self.rows = 0
        self._block: list[tuple[dict, Any]] = []
        self._files = {c.name: open(self._path(c.name), "wb") for c in columns}
        for name in (*texts, "raw"):
            self._files[name] = open(self._path(name), "wb")
            self._files[f"{name}.offsets"] = open(self._path(f"{name}.offsets"), "wb")
        self._text_ends = dict.fromkeys((*texts, "raw"), 0)
        for name in (*texts, "raw"):
            self._files[f"{name}.offsets"].write(np.zeros(1, np.int64).tobytes())

    def __len__(self) -> int:
        """Rows added so far."""
        return self.rows + len(self._block)

    def _path(self, name: str) -> Path:
        return self.folder / f"{self.table}.{name}.bin"

    def add(self, values: dict, raw: Any = None) -> None:
        """One row: ``values`` by column name (missing ones are zero); ``raw``, if not None, is the row as JSON
        data, kept for rows the columns cannot hold."""
        self._block.append((values, raw))
        if len(self._block) == BLOCK_ROWS:
            self._flush()

    def _flush(self) -> None:
        for column in self.columns:
            array = np.zeros((len(self._block), *column.shape), column.dtype)
            for index, (values, _) in enumerate(self._block):
                if column.name in values:
                    array[index] = values[column.name]
            self._files[column.name].write(np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes())
        for name in (*self.texts, "raw"):
            ends = []
            for values, raw in self._block:
                if name == "raw":
                    data = b"" if raw is None else json.dumps(raw, separators=(",", ":")).encode()
                else:
                    data = str(values.get(name, "")).encode("utf-8", "surrogatepass")
                self._files[name].write(data)
                self._text_ends[name] += len(data)
                ends.append(self._text_ends[name])
            self._files[f"{name}.offsets"].write(np.asarray(ends, "<i8").tobytes())
        self.rows += len(self._block)
        self._block = []

    def close(self) -> dict:
        """Write what is left; returns the table's description for the folder's meta file."""
        self._flush()
        for file in self._files.values():
            file.close()
        columns = {
            c.name: {"dtype": np.dtype(c.dtype).newbyteorder("<").str, "shape": list(c.shape)} for c in self.columns
        }
        return {"rows": self.rows, "columns": columns, "texts": list(self.texts)}


class Tables:
    """The tables of one conversion folder, read-only."""

    def __init__(self, folder: Path, keep: Any = None):
        self.folder = folder
        self.meta = json.loads((folder / META_FILE).read_text())
        self._keep = keep  # a temporary folder's owner: the folder lives as long as these tables

    def rows(self, table: str) -> int:
        return int(self.meta["tables"][table]["rows"])

    def _map(self, table: str, name: str, dtype: str, shape: tuple[int, ...], count: int) -> np.ndarray:
        if count == 0:
            return np.zeros((0, *shape), dtype)
        return np.memmap(self.folder / f"{table}.{name}.bin", dtype=dtype, mode="r", shape=(count, *shape))

    def _numeric(self, table: str, name: str) -> np.ndarray:
        spec = self.meta["tables"][table]["columns"][name]
        return self._map(table, name, spec["dtype"], tuple(spec["shape"]), self.rows(table))

    def column(self, table: str, name: str) -> np.ndarray:
        """A whole column, in memory (for the narrow index columns)."""
        return np.array(self._numeric(table, name))

    def take(self, table: str, name: str, rows: np.ndarray) -> np.ndarray:
        """The values of ``rows`` (in that order) of a column; only those pages are read."""
        mapped = self._numeric(table, name)
        values = np.take(mapped, rows, axis=0)
        del mapped  # unmapped: the pages read leave this process
        return values

    def _blobs(self, table: str, name: str, rows: np.ndarray) -> list[bytes]:
        offsets = self._map(table, f"{name}.offsets", "<i8", (), self.rows(table) + 1)
        starts, ends = np.take(offsets, rows).tolist(), np.take(offsets, np.asarray(rows) + 1).tolist()
        del offsets
        size = (self.folder / f"{table}.{name}.bin").stat().st_size
        if size == 0:
            return [b""] * len(starts)
        blob = self._map(table, name, "u1", (), size)
        values = [bytes(blob[start:end]) for start, end in zip(starts, ends, strict=True)]
        del blob
        return values

    def texts(self, table: str, name: str, rows: np.ndarray) -> list[str]:
        return [data.decode("utf-8", "surrogatepass") for data in self._blobs(table, name, rows)]

    def raw(self, table: str, rows: np.ndarray) -> list[Any]:
        """The kept JSON of ``rows``: None for rows that the columns hold."""
        return [json.loads(data) if data else None for data in self._blobs(table, "raw", rows)]


Converter = Callable[[IO[bytes], Path], dict]
"""Streams an annotation file into a folder's tables; returns the meta data (``tables`` and anything else)."""


def converted(
    files: SourceFiles, relative: str, kind: str, version: int, convert: Converter, cache_root: Path | None
) -> Tables:
    """The tables of annotation file ``relative`` as ``convert`` makes them, from the cache when it holds them."""
    if cache_root is None:
        scratch = tempfile.TemporaryDirectory(prefix=f"pare-{kind}-")
        folder = Path(scratch.name) / "tables"
        _convert(files, relative, kind, version, convert, folder, "")
        return Tables(folder, keep=scratch)
    digest = files.digest(relative)
    folder = Path(cache_root) / f"{kind}-v{version}-{digest}"
    if not (folder / META_FILE).is_file():
        _convert(files, relative, kind, version, convert, folder, digest)
    return Tables(folder)


def _convert(
    files: SourceFiles, relative: str, kind: str, version: int, convert: Converter, folder: Path, digest: str
) -> None:
    partial = folder.with_name(f"{folder.name}.tmp-{uuid.uuid4().hex[:12]}")
    partial.mkdir(parents=True)
    try:
        with files.open(relative) as raw:
            meta = convert(raw, partial)
        meta.update(format=FORMAT, kind=kind, version=version, source=relative, sha256=digest)
        (partial / META_FILE).write_text(json.dumps(meta, sort_keys=True))
        try:
            os.rename(partial, folder)
        except OSError:  # another process made it first
            if not (folder / META_FILE).is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
