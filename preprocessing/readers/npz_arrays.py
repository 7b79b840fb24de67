"""The arrays of an ``.npz`` file, memory-mapped where the archive stores them uncompressed.

``np.load`` ignores ``mmap_mode`` for npz archives and reads a member whole on every access.
``np.savez`` (which wrote SPIN's and PARE's ``dataset_extras`` files) stores each ``.npy``
member uncompressed and contiguous, so it can be mapped with :class:`numpy.memmap` at its
offset in the file: reading row ``i`` then touches only that row, and a million-row file costs
no memory up front. Compressed members (``np.savez_compressed``) are read once. Object arrays
(``imgname`` saved as Python strings) are pickles inside the member: they go through the
restricted unpickler, never ``allow_pickle=True``. What the members declare is checked against
the file's size and the limits of :mod:`pare_model.input_limits` before anything is decompressed.
"""

from __future__ import annotations

import math
import struct
import zipfile
from collections.abc import Collection

import numpy as np

from pare_model.errors import PickleLoadError
from pare_model.input_limits import check_npz, npy_header
from pare_model.safe_pickle import loads_pickle
from preprocessing.readers.files import SourceError, SourceFiles

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra field length


def _data_offset(handle, info: zipfile.ZipInfo) -> int:
    """Where the bytes of a stored member start: after its local header, whose extra field may differ."""
    handle.seek(info.header_offset)
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
    if signature != b"PK\x03\x04":
        raise ValueError(f"member {info.filename} has no local zip header")
    return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length


def _read_member(path: str, handle, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    shape, fortran, dtype, header_length = npy_header(archive, info, path)  # its size checked against the member
    order = "F" if fortran else "C"
    count = math.prod(shape)
    if dtype.hasobject or info.compress_type != zipfile.ZIP_STORED or count == 0 or shape == ():
        with archive.open(info) as member:
            member.read(header_length)
            if not dtype.hasobject:
                return np.frombuffer(member.read(), dtype, count).reshape(shape, order=order)
            array = loads_pickle(member.read(), f"{path}:{info.filename}")
        if not isinstance(array, np.ndarray) or array.shape != shape:
            raise ValueError(f"member {info.filename} does not hold an array of shape {shape}")
        return array
    offset = _data_offset(handle, info) + header_length
    return np.memmap(path, dtype, "r", offset=offset, shape=shape, order=order)


def read_npz(path: str, keys: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """The ``<key>.npy`` members of the npz at local ``path`` as arrays (read-only; a memmap when stored).

    ``keys`` limits the members read (those present; None: all of them), so that a small member
    of a large file costs little. Raises ``zipfile.BadZipFile``, ``ValueError`` or
    :class:`~pare_model.errors.PickleLoadError` for a file that is not a readable npz, and
    :class:`~pare_model.input_limits.InputLimitError` for one whose members declare more than
    the limits allow (:func:`~pare_model.input_limits.check_npz`).
    """
    check_npz(path, keys, mapped=True)  # what its members declare, before anything is decompressed
    with open(path, "rb") as handle, zipfile.ZipFile(handle) as archive:
        return {
            info.filename[: -len(".npy")]: _read_member(path, handle, archive, info)
            for info in archive.infolist()
            if info.filename.endswith(".npy") and (keys is None or info.filename[: -len(".npy")] in keys)
        }


def load_source_npz(files: SourceFiles, relative: str, keys: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """:func:`read_npz` of a source's file; :class:`SourceError` naming it when it is not a readable npz."""
    try:
        return read_npz(files.local_path(relative), keys)
    except (zipfile.BadZipFile, ValueError, OSError, PickleLoadError) as error:
        raise SourceError(f"{files.url(relative)} is not a readable npz file ({error}). Check options.npz.") from None
