"""Output storage for shards: a local folder or any pyarrow/fsspec filesystem URI (s3://, gs://, hdfs://).

Writes are atomic (a temporary name, then a move), so a job killed midway never leaves a
half-written file under a final name.
"""

from __future__ import annotations

import os
import posixpath
import uuid

import pyarrow as pa
import pyarrow.fs as pafs

from pare_model.errors import UserFacingError


class StorageError(UserFacingError):
    """The output location cannot be used."""


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

    def read_bytes(self, relative: str) -> bytes:
        with self.fs.open_input_stream(self.path(relative)) as stream:
            return stream.read()

    def read_text(self, relative: str) -> str:
        return self.read_bytes(relative).decode()

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write ``data`` under a temporary name, then move it into place."""
        target = self.path(relative)
        self.fs.create_dir(posixpath.dirname(target), recursive=True)
        temporary = f"{target}.tmp-{uuid.uuid4().hex[:12]}"
        with self.fs.open_output_stream(temporary) as stream:
            stream.write(data)
        self.fs.move(temporary, target)

    def write_text(self, relative: str, text: str) -> None:
        self.write_bytes(relative, text.encode())

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
                f"cannot write to output {self.uri!r}: {error}. Check the path and permissions."
            ) from None
