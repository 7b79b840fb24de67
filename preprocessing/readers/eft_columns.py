"""EFT fit files as columns (:mod:`preprocessing.readers.columns`), joined to annotations by ``annotId``.

Each entry of the ``data`` list becomes a row: its ``annotId`` as a number (the join key; NaN
when it has none, or one that is not a number, which no annotation id equals) and the six
arrays :func:`~preprocessing.readers.eft.parse_fit` reads, converted exactly as it converts them.
An entry whose arrays do not convert to their shapes keeps its own JSON, so that ``parse_fit``
rejects it with the same reason as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from preprocessing.readers.columns import Column, Tables, TableWriter, converted
from preprocessing.readers.files import SourceError, SourceFiles
from preprocessing.readers.json_stream import stream_object

KIND, VERSION = "eft-fits", 1
FIT_ARRAYS = {
    "parm_pose": (24, 3, 3),
    "parm_shape": (10,),
    "parm_cam": (3,),
    "bbox_center": (2,),
    "bbox_scale": (),
    "gt_keypoint_2d": (49, 3),
}
"""The arrays of an entry that make a fit, with their shapes."""
COLUMNS = [Column("annot_id", "f8"), *(Column(name, "f8", shape) for name, shape in FIT_ARRAYS.items())]


def join_key(value: Any) -> float:
    """A JSON id as a number that compares as Python compares it with an integer id (NaN: equals none)."""
    return float(value) if type(value) in (int, float, bool) else float("nan")


def _row(entry: Any) -> tuple[dict, Any]:
    """(column values, kept JSON or None) of one entry."""
    if not isinstance(entry, dict):
        return {"annot_id": float("nan")}, None  # never joined
    values: dict[str, Any] = {"annot_id": join_key(entry.get("annotId"))}
    for name, shape in FIT_ARRAYS.items():
        try:
            array = np.asarray(entry[name], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            array = None
        if array is None or array.shape != shape:
            return values, {key: entry[key] for key in FIT_ARRAYS if key in entry}
        values[name] = array
    return values, None


def _converter(url: str):
    def convert(raw: IO[bytes], folder: Path) -> dict:
        table = TableWriter(folder, "fits", COLUMNS)
        _, streamed = stream_object(raw, {"data": lambda entry: table.add(*_row(entry))}, "EFT fit file", url)
        if "data" not in streamed:
            raise SourceError(f"EFT fit file {url} has no 'data' list; is it an EFT JSON?")
        return {"tables": {"fits": table.close()}}

    return convert


@dataclass
class FitIndex:
    """Which fit row each annotation id has: ``first[k]`` is the first row with key ``keys[k]``, ``count[k]`` how
    many rows have it."""

    keys: np.ndarray
    first: np.ndarray
    count: np.ndarray

    def lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row of each id's fit or -1, whether several fits have the id) for integer annotation ``ids``."""
        wanted = np.asarray(ids, np.float64)
        if not len(self.keys):
            return np.full(len(wanted), -1), np.zeros(len(wanted), bool)
        position = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        found = self.keys[position] == wanted
        return np.where(found, self.first[position], -1), found & (self.count[position] > 1)


def fit_index(tables: Tables) -> FitIndex:
    keys = tables.column("fits", "annot_id")
    rows = np.nonzero(~np.isnan(keys))[0]
    order = rows[np.argsort(keys[rows], kind="stable")]
    unique, start, count = np.unique(keys[order], return_index=True, return_counts=True)
    return FitIndex(unique, order[start], count)


def fit_entries(tables: Tables, rows: np.ndarray) -> list[dict]:
    """The entries of fit ``rows`` as ``parse_fit`` takes them: arrays from the columns, or the kept JSON."""
    arrays = {name: tables.take("fits", name, rows) for name in FIT_ARRAYS}
    kept = tables.raw("fits", rows)
    return [raw if raw is not None else {name: arrays[name][k] for name in FIT_ARRAYS} for k, raw in enumerate(kept)]


def eft_tables(files: SourceFiles, relative: str, cache_root: Path | None) -> Tables:
    """The EFT file ``relative`` as tables (converted once per file content when ``cache_root`` is set)."""
    return converted(files, relative, KIND, VERSION, _converter(files.url(relative)), cache_root)
