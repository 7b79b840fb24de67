"""Dataset readers: each streams :class:`~preprocessing.record.SampleRecord` items from one source.

See :mod:`preprocessing.readers.registry` for the names (``coco_eft``, ``mpii``, ``h36m``,
``3dpw``, ``spin_npz``, ``humandata`` ...) and :mod:`preprocessing.readers.base` for the reader contract.
"""

from preprocessing.readers.base import Reader, build_options, validated
from preprocessing.readers.files import SourceError, SourceFiles
from preprocessing.readers.registry import READERS, UnknownReaderError, build_reader, reader_class

__all__ = [
    "READERS",
    "Reader",
    "SourceError",
    "SourceFiles",
    "UnknownReaderError",
    "build_options",
    "build_reader",
    "reader_class",
    "validated",
]
