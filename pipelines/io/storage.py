"""Output storage for shards, checkpoints and run files: a local folder or any pyarrow filesystem URI
(s3://, gs://, hdfs://).

Writes are atomic, so a job killed midway never leaves a half-written file under a final name:
on file systems a file is written under a temporary name and then renamed; on object stores
(S3, GCS), which publish an object only when its upload completes, it is uploaded under its
own name at once, because a rename there is a server-side copy of every byte. S3 is reached with
the credentials of the environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile or an
instance role) and, for an S3-compatible store (MinIO, Ceph), ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from pare_model.errors import UserFacingError


class StorageError(UserFacingError):
    """The output location cannot be used."""


OBJECT_STORES = frozenset({"s3", "gcs"})
"""pyarrow file system types whose uploads are atomic: written in place, never renamed."""


class AtomicFile:
    """A file that appears under its name only at :meth:`commit`; :meth:`discard` leaves no trace.

    On file systems the bytes stream to a temporary name beside the target, moved into place at
    commit. On object stores they are held in memory and uploaded in one request at commit.
    As a context manager it commits when the block ends normally and discards on an exception.
    """

    def __init__(self, fs: pafs.FileSystem, target: str, object_store: bool):
        self._fs, self.target = fs, target
        self._fs.create_dir(posixpath.dirname(target), recursive=True)
        self._temporary = None if object_store else f"{target}.tmp-{uuid.uuid4().hex[:12]}"
        self._stream = io.BytesIO() if object_store else fs.open_output_stream(self._temporary)
        self._size = 0
        self.closed = False

    def write(self, data) -> int:
        self._stream.write(data)
        self._size += len(data)
        return len(data)

    def tell(self) -> int:
        """Bytes written so far (what :mod:`tarfile` asks of its file object)."""
        return self._size

    def commit(self) -> None:
        """Publish the file under its name."""
        self.closed = True
        if self._temporary is None:
            with self._stream.getbuffer() as view, self._fs.open_output_stream(self.target) as stream:
                stream.write(view)
            self._stream.close()
            return
        self._stream.close()
        self._fs.move(self._temporary, self.target)

    def discard(self) -> None:
        """Drop what was written; nothing appears under the name."""
        self.closed = True
        self._stream.close()
        if self._temporary is not None:
            try:
                self._fs.delete_file(self._temporary)
            except OSError:
                pass  # never created, or already gone

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if self.closed:
            return
        if kind is None:
            self.commit()
        else:
            self.discard()


class Storage:
    """Files under one output root. Paths given to the methods are relative to the root."""

    def __init__(self, uri: str):
        self.uri = str(uri)
        try:
            if "://" in self.uri:
                self.fs, self.root = pafs.FileSystem.from_uri(self.uri)
            else:
                self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(self.uri)
        except (pa.ArrowInvalid, ValueError, OSError) as error:
            raise StorageError(f"cannot use output {self.uri!r}: {error}") from None

    def __reduce__(self):
        # a worker may run in another folder (a joined cluster): send local roots as absolute paths
        return (Storage, (self.uri if "://" in self.uri else self.root,))

    def path(self, relative: str) -> str:
        return posixpath.join(self.root, relative) if relative else self.root

    def exists(self, relative: str) -> bool:
        return self.fs.get_file_info(self.path(relative)).type != pafs.FileType.NotFound

    def size(self, relative: str) -> int:
        return self.fs.get_file_info(self.path(relative)).size

    def stat(self, relative: str) -> tuple[int, int | None] | None:
        """(size, modification time in ns or None where the store has none) of a file; None when it is missing."""
        info = self.fs.get_file_info(self.path(relative))
        if info.type == pafs.FileType.NotFound:
            return None
        return info.size, info.mtime_ns

    def read_bytes(self, relative: str) -> bytes:
        with self.fs.open_input_stream(self.path(relative)) as stream:
            return stream.read()

    def read_text(self, relative: str) -> str:
        return self.read_bytes(relative).decode()

    @property
    def object_store(self) -> bool:
        """Whether the output is an object store (S3, GCS), where uploads are atomic and renames are copies."""
        return self.fs.type_name in OBJECT_STORES

    def open_atomic(self, relative: str) -> AtomicFile:
        """A file to write in pieces that appears under ``relative`` only when committed (:class:`AtomicFile`)."""
        return AtomicFile(self.fs, self.path(relative), self.object_store)

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write ``data`` atomically: no reader ever sees a part of it under ``relative``."""
        with self.open_atomic(relative) as file:
            file.write(data)

    def write_text(self, relative: str, text: str) -> None:
        self.write_bytes(relative, text.encode())

    def download(self, relative: str, target: Path) -> None:
        """Copy the file ``relative`` to the local file ``target``, streamed, under a temporary name first."""
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            with self.fs.open_input_stream(self.path(relative)) as source, open(temporary, "wb") as sink:
                while chunk := source.read(1 << 24):
                    sink.write(chunk)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)

    def list(self, relative: str) -> list[str]:
        """Sorted names of the files directly in ``relative`` (empty if it does not exist)."""
        selector = pafs.FileSelector(self.path(relative), allow_not_found=True)
        return sorted(info.base_name for info in self.fs.get_file_info(selector) if info.type == pafs.FileType.File)

    def delete_dir(self, relative: str) -> None:
        if self.exists(relative):
            self.fs.delete_dir(self.path(relative))

    def delete_file(self, relative: str) -> None:
        if self.exists(relative):
            self.fs.delete_file(self.path(relative))

    def check_writable(self) -> None:
        """Raise :class:`StorageError` naming the output when a file cannot be written there."""
        probe = f".pare-write-probe-{uuid.uuid4().hex[:8]}"
        try:
            self.write_bytes(probe, b"")
            self.delete_file(probe)
        except OSError as error:
            raise StorageError(
                f"cannot write to output {self.uri!r}: {str(error).rstrip('.')}. Check the path and permissions."
            ) from None


def is_remote(location: str) -> bool:
    """Whether ``location`` is a filesystem URI such as ``s3://bucket/key`` (not a local path or ``file://``)."""
    return "://" in location and not location.startswith("file://")


def fetch_file(location: str, target: Path) -> bool:
    """Copy the remote file ``location`` (e.g. ``s3://bucket/run/best/model.pt``) to the local ``target``.

    Returns False when there is no file at ``location``; a store that cannot be read (no such bucket,
    no credentials, unreachable) raises :class:`StorageError` naming it.
    """
    parent, name = posixpath.split(location.rstrip("/"))
    if "://" not in parent:  # a bucket alone (s3://bucket) names no file
        return False
    storage = Storage(parent)
    try:
        if storage.fs.get_file_info(storage.path(name)).type != pafs.FileType.File:
            return False
        storage.download(name, target)
    except OSError as error:
        raise StorageError(f"cannot read {location}: {error}") from None
    return True


@contextlib.contextmanager
def local_file(location: str) -> Iterator[Path]:
    """``location`` as a local file while the block runs: a local path as it is (existing or not), a remote file
    copied into a temporary folder that is deleted afterwards. A remote file that does not exist raises
    :class:`StorageError`."""
    if not is_remote(location):
        yield Path(location.removeprefix("file://"))
        return
    with tempfile.TemporaryDirectory(prefix="pare-fetch-") as folder:
        target = Path(folder) / posixpath.basename(location.rstrip("/"))
        if not fetch_file(location, target):
            raise StorageError(f"{location} does not exist")
        yield target
