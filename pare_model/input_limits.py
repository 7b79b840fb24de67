"""What one input file may make a process allocate, checked before anything is allocated.

A small file can ask for a large allocation: a deflated zip member (an ``.npz`` array, a tensor
record of a checkpoint) expands up to about 1000 times, an ``.npy`` header declares any shape, a
path names ``/dev/zero`` or a FIFO, and shared references in a pickle, a checkpoint's metadata
or a YAML file make a tree exponentially larger than the file. The readers check what a file
declares against the limits below first; a refusal is an :class:`InputLimitError` that names
the file, what it declares and the limit, with the environment variable that raises it.

Each limit is read from its environment variable when it is checked, so one command can raise
it (``PARE_MAX_EXPANSION=1000 pare preprocess ...``); ``pare`` hands the ``PARE_MAX_*``
variables of its own environment to the Ray workers it starts or joins
(:func:`pipelines.io.cluster.init_ray`). docs/security.md lists the limits and what each
defends against.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pare_model.errors import UserFacingError


class InputLimitError(UserFacingError):
    """An input file declares more than a limit allows, or is not a regular file."""


@dataclass(frozen=True)
class Limit:
    """A limit with its default, raised by setting the environment variable ``env`` to a whole number."""

    env: str
    default: int

    def value(self) -> int:
        raw = os.environ.get(self.env, "").strip().replace("_", "")
        if not raw:
            return self.default
        if not raw.isdigit() or int(raw) == 0:
            raise InputLimitError(f"{self.env}={os.environ[self.env]!r} must be a positive whole number")
        return int(raw)

    def __str__(self) -> str:
        return f"{self.env}={self.value():,}"


MAX_LOAD_BYTES = Limit("PARE_MAX_LOAD_BYTES", 16 << 30)
"""Bytes one file may make a process hold once decompressed: the arrays of an ``.npz`` read into memory
(HumanData and SPIN files, occluder banks, body-model extras) and the records of a checkpoint.
Uncompressed ``.npz`` members are memory-mapped and do not count."""
MAX_EXPANSION = Limit("PARE_MAX_EXPANSION", 100)
"""How many times its own size (plus :data:`EXPANSION_SLACK`) a file may expand when decompressed. Real
arrays of numbers deflate 1.1-10 times; a file of zeros crafted to exhaust memory, about 1000 times."""
EXPANSION_SLACK = 64 << 20
"""Bytes a file may expand by beyond :data:`MAX_EXPANSION` times its size, so small files are never refused."""
MAX_IMAGE_BYTES = Limit("PARE_MAX_IMAGE_BYTES", 256 << 20)
"""Bytes of one image file (the largest real photographs are about 50 MB)."""
MAX_IMAGE_PIXELS = Limit("PARE_MAX_IMAGE_PIXELS", 100_000_000)
"""Pixels of one image, read from its header before it is decoded (a 3 MB PNG can declare a gigapixel)."""
MAX_SHARD_BYTES = Limit("PARE_MAX_SHARD_BYTES", 4 << 30)
"""Bytes of one tar shard, which the readers hold whole (``pare preprocess`` writes about 100 MB per shard)."""
MAX_OBJECTS = Limit("PARE_MAX_OBJECTS", 1_000_000)
"""Values in a loaded checkpoint (tensors, metadata and config) or config file, a shared value counted each
time it is reached: real checkpoints hold thousands, a 'billion laughs' list 2**60."""
MAX_DEPTH = 100
"""Deepest nesting of containers a loaded file may hold; real ones nest fewer than 10 levels."""
LIMITS = (MAX_LOAD_BYTES, MAX_EXPANSION, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, MAX_SHARD_BYTES, MAX_OBJECTS)


def limits_environment() -> dict[str, str]:
    """The limit variables set in this process's environment (each checked), to hand on to its workers."""
    return {limit.env: str(limit.value()) for limit in LIMITS if os.environ.get(limit.env, "").strip()}


def check_expansion(source: str, declared: int, file_size: int, what: str) -> None:
    """Refuse ``declared`` bytes decompressed from a file of ``file_size`` bytes beyond the two byte limits."""
    expansion, cap = MAX_EXPANSION.value(), MAX_LOAD_BYTES.value()
    allowed = min(cap, expansion * file_size + EXPANSION_SLACK)
    if declared > allowed:
        raise InputLimitError(
            f"{source}: {what} {declared:,} bytes once decompressed, more than the {allowed:,} allowed for a file "
            f"of {file_size:,} bytes ({MAX_EXPANSION} times its size + {EXPANSION_SLACK >> 20} MiB, at most "
            f"{MAX_LOAD_BYTES}); if the file is genuine, raise these limits"
        )


def check_zip_members(source: str, path: str | Path, members: Iterable[zipfile.ZipInfo], what: str) -> None:
    """Refuse zip ``members`` whose declared (decompressed) sizes add up beyond the limits, before reading any."""
    check_expansion(source, sum(info.file_size for info in members), os.path.getsize(path), what)


def check_torch_file(path: str | Path) -> None:
    """Refuse a zip-format torch file whose records declare more bytes than the limits allow, before reading any.

    Files in torch's legacy (pre-1.6) format are not zips and are left to ``torch.load``.
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            check_zip_members(str(path), path, archive.infolist(), "its records declare")


def npy_header(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str
) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, Fortran order, dtype, header bytes) of the ``.npy`` member ``info``, checked against its size.

    Only the header is decompressed. An array declaring more bytes than its member holds is refused here,
    before a reader allocates it (``np.load`` allocates the whole array before reading a compressed one).
    """
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in readers:
            raise ValueError(f"member {info.filename} is .npy format {version}, not 1.0 or 2.0")
        shape, fortran, dtype = readers[version](member)
        header = member.tell()
    if not dtype.hasobject:  # object arrays are pickles: their size is the member's, bounded by the caller
        declared = math.prod(shape) * dtype.itemsize
        if declared > info.file_size - header:
            raise InputLimitError(
                f"{source}: member {info.filename} declares a {shape} {dtype} array ({declared:,} bytes) but holds "
                f"{max(info.file_size - header, 0):,} bytes; the file is damaged or crafted"
            )
    return shape, fortran, dtype, header


def check_npz(path: str | Path, names: Iterable[str] | None = None, mapped: bool = False) -> None:
    """Check the ``.npy`` members of the npz at ``path`` (those in ``names``; None: all) before reading them.

    Every header must fit its member, and the members read into memory must stay within the byte limits;
    with ``mapped``, uncompressed members are memory-mapped by the caller and do not count.
    """
    wanted = None if names is None else set(names)
    with zipfile.ZipFile(path) as archive:
        members = [
            info
            for info in archive.infolist()
            if info.filename.endswith(".npy") and (wanted is None or info.filename[: -len(".npy")] in wanted)
        ]
        loaded = [info for info in members if not (mapped and info.compress_type == zipfile.ZIP_STORED)]
        check_zip_members(str(path), path, loaded, "its arrays declare")
        for info in members:
            npy_header(archive, info, str(path))


def read_regular_file(path: str | Path, limit: Limit, what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, refused when it is anything else or larger than ``limit``.

    Opened without blocking, so a FIFO is refused instead of waiting for a writer; ``/dev/zero``, a folder
    or a socket is refused before a byte is read. Raises ``OSError`` (e.g. ``FileNotFoundError``) when it
    cannot be opened.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(descriptor)
        if not stat.S_ISREG(mode.st_mode):
            raise InputLimitError(f"{what} {path} is not a regular file (a device, FIFO, socket or folder)")
        cap = limit.value()
        if mode.st_size > cap:
            raise InputLimitError(f"{what} {path} holds more than {cap:,} bytes ({limit}); raise it if it is genuine")
        with os.fdopen(os.dup(descriptor), "rb") as handle:
            data = handle.read(cap + 1)
    finally:
        os.close(descriptor)
    if len(data) > cap:  # it grew while being read
        raise InputLimitError(f"{what} {path} holds more than {cap:,} bytes ({limit}); raise it if it is genuine")
    return data


class BoundedWalk:
    """A walk over nested containers whose work is bounded, however the data shares its parts.

    Each container is walked once (memoised by id); reaching it again counts its values again, as a
    consumer walking the data as a tree would, so data that expands far beyond its file through shared
    references is refused after ``limit`` values, in time linear in its distinct parts. A container that
    holds itself, and nesting deeper than ``max_depth``, are refused too. Subclasses say what they refuse
    (:meth:`refuse`) and may rebuild what they walk (:meth:`rebuild`); this class returns the data as it is.
    The walked data must stay alive during the walk (ids are the memo's keys).
    """

    containers: tuple[type, ...] = (dict, list, tuple, set, frozenset)

    def __init__(self, limit: int, max_depth: int = MAX_DEPTH):
        self.limit, self.max_depth = limit, max_depth
        self.count = 0
        self.done: dict[int, tuple[Any, int]] = {}  # id -> (result, values under it, itself included)
        self.open: set[int] = set()  # ids of the containers being walked (the current path)

    def refuse(self, problem: str, kind: str = "") -> Exception:
        """The error for ``problem``: ``too many`` values, a ``kind`` container that holds ``itself``, ``too deep``."""
        raise NotImplementedError

    def counted(self, values: int) -> None:
        self.count += values
        if self.count > self.limit:
            raise self.refuse("too many")

    def is_container(self, value: Any) -> bool:
        return isinstance(value, self.containers)

    def visit(self, value: Any, depth: int = 0) -> Any:
        if not self.is_container(value):
            self.counted(1)
            return value
        key = id(value)
        if key in self.done:
            result, values = self.done[key]
            self.counted(values)
            return result
        if key in self.open:
            raise self.refuse("itself", type(value).__name__)
        if depth >= self.max_depth:
            raise self.refuse("too deep")
        self.open.add(key)
        start = self.count
        self.counted(1)
        result = self.rebuild(value, depth + 1)
        self.open.discard(key)
        self.done[key] = (result, self.count - start)
        return result

    def rebuild(self, value: Any, depth: int) -> Any:
        """``value`` after visiting its parts (a dict's keys count as values)."""
        if isinstance(value, dict):
            self.counted(len(value))
            for item in value.values():
                self.visit(item, depth)
        elif isinstance(value, (list, tuple)):
            for item in value:
                self.visit(item, depth)
        else:  # a set: its items are hashable scalars or tuples
            self.counted(len(value))
        return value


class _LoadedWalk(BoundedWalk):
    def __init__(self, source: str, what: str, limit: int):
        super().__init__(limit)
        self.source, self.what = source, what

    def refuse(self, problem: str, kind: str = "") -> Exception:
        if problem == "too many":
            detail = (
                f"holds more than {self.limit:,} values, counting a shared value each time it is reached "
                f"({MAX_OBJECTS}); a file that repeats a part of itself this much is crafted to exhaust memory"
            )
        elif problem == "too deep":
            detail = f"is nested deeper than {self.max_depth} levels; real data nests fewer than 10"
        else:
            detail = f"has a {kind} that holds itself"
        return InputLimitError(f"{self.source}: {self.what} {detail}")


def check_loaded(value: Any, source: str, what: str, limit: int | None = None) -> None:
    """Refuse loaded data (a checkpoint's payload, a config file's mapping) that is too large as a tree.

    ``limit`` defaults to :data:`MAX_OBJECTS`; the message names ``source``, ``what`` and the limit.
    """
    _LoadedWalk(source, what, MAX_OBJECTS.value() if limit is None else limit).visit(value)
