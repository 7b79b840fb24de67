"""Reader names -> reader classes, and building a reader from config values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pare_model.registry import Registry, UnknownNameError
from preprocessing.readers.base import Reader, build_options
from preprocessing.readers.files import SourceError


class UnknownReaderError(UnknownNameError, SourceError):
    """A source's ``reader`` is not in :data:`READERS`."""


READERS: Registry[type[Reader]] = Registry("reader", UnknownReaderError)
"""Registered by module path: imported on first use, so that listing names costs nothing."""
READERS.register_lazy("3dpw", "preprocessing.readers.pw3d:Pw3dReader")
READERS.register_lazy("3doh", "preprocessing.readers.oh3d:Oh3dReader")
READERS.register_lazy("coco_eft", "preprocessing.readers.coco_eft:CocoEftReader")
READERS.register_lazy("h36m", "preprocessing.readers.h36m_raw:H36mRawReader")
READERS.register_lazy("h36m_npz", "preprocessing.readers.h36m:H36mNpzReader")
READERS.register_lazy("humandata", "preprocessing.readers.humandata:HumanDataReader")
READERS.register_lazy("lspet", "preprocessing.readers.lspet:LspetReader")
READERS.register_lazy("mpii", "preprocessing.readers.mpii:MpiiReader")
READERS.register_lazy("spin_npz", "preprocessing.readers.spin_npz:SpinNpzReader")


def reader_class(name: str) -> type[Reader]:
    """The reader class registered as ``name``; :class:`UnknownReaderError` lists the valid names."""
    return READERS.get(name)


def build_reader(
    name: str, root: str, split: str, options: Mapping[str, Any] | None = None, dataset: str | None = None
) -> Reader:
    """Construct reader ``name`` over ``root`` for ``split`` with ``options`` checked against its Options."""
    cls = reader_class(name)
    return cls(root, split, build_options(cls, options), dataset)
