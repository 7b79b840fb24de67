"""Reader names -> reader classes, and building a reader from config values."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from preprocessing.readers.base import Reader, build_options
from preprocessing.readers.files import SourceError

# name -> "module:Class"; imported on first use so that listing names costs nothing.
READERS: dict[str, str] = {
    "3dpw": "preprocessing.readers.pw3d:Pw3dReader",
    "coco_eft": "preprocessing.readers.coco_eft:CocoEftReader",
    "h36m": "preprocessing.readers.h36m_raw:H36mRawReader",
    "h36m_npz": "preprocessing.readers.h36m:H36mNpzReader",
    "lspet": "preprocessing.readers.lspet:LspetReader",
    "mpii": "preprocessing.readers.mpii:MpiiReader",
    "spin_npz": "preprocessing.readers.spin_npz:SpinNpzReader",
}


def reader_class(name: str) -> type[Reader]:
    """The reader class registered as ``name``; the error lists the valid names."""
    try:
        target = READERS[name]
    except KeyError:
        raise SourceError(f"unknown reader {name!r}; valid readers: {sorted(READERS)}") from None
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def build_reader(
    name: str, root: str, split: str, options: Mapping[str, Any] | None = None, dataset: str | None = None
) -> Reader:
    """Construct reader ``name`` over ``root`` for ``split`` with ``options`` checked against its Options."""
    cls = reader_class(name)
    return cls(root, split, build_options(cls, options), dataset)
