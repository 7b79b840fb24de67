"""File access for readers: local folders or any fsspec URI (``s3://``, ``gs://``, ``file://``).

Readers address files relative to a source root. Libraries that need a real local file
(h5py, scipy's ``loadmat``, cdflib, OpenCV's video decoder) get one from :meth:`local_path`,
which copies remote files into a cache folder once.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tempfile
from pathlib import Path

import fsspec

from pare_model.errors import UserFacingError
from pare_model.input_limits import MAX_LOAD_BYTES, read_regular_file


class SourceError(UserFacingError):
    """A data source cannot be read at all (wrong path, missing or unparseable annotation file)."""


def local_cache_root() -> Path:
    """Local folder for copies of remote source files and conversions of annotation files (``PARE_SOURCE_CACHE``)."""
    return Path(os.environ.get("PARE_SOURCE_CACHE", Path(tempfile.gettempdir()) / "pare-source-cache"))


class SourceFiles:
    """The files under one source root, local or remote."""

    def __init__(self, root: str):
        self.uri = str(root)
        self.fs, self.root = fsspec.core.url_to_fs(self.uri)
        self.is_local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))

    def path(self, relative: str) -> str:
        """Path of ``relative`` for this filesystem."""
        return posixpath.normpath(posixpath.join(self.root, relative)) if relative else self.root

    def url(self, relative: str) -> str:
        """A string that :func:`open_url` (or ``fsspec.open``) opens from any process."""
        path = self.path(relative)
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def contains(self, url: str) -> bool:
        """Whether ``url`` (as :meth:`url` makes them) lies under the root: image paths in annotation files
        are joined to the root, and ``..`` or an absolute path would leave it."""
        root = self.url(".")
        return url == root or url.startswith(root if root.endswith("/") else root + "/")

    def exists(self, relative: str) -> bool:
        return self.fs.exists(self.path(relative))

    def isdir(self, relative: str) -> bool:
        return self.fs.isdir(self.path(relative))

    def read_bytes(self, relative: str) -> bytes:
        """The bytes of a file; a local one must be a regular file within :data:`~pare_model.input_limits.MAX_LOAD_BYTES`."""
        if self.is_local:
            return read_regular_file(self.path(relative), MAX_LOAD_BYTES, "annotation file")
        with self.fs.open(self.path(relative), "rb") as f:
            return f.read()

    def glob(self, pattern: str) -> list[str]:
        """Sorted paths relative to the root that match ``pattern`` (fsspec glob syntax)."""
        base = self.root.rstrip("/") + "/"
        matches = self.fs.glob(self.path(pattern))
        return sorted(m[len(base) :] if m.startswith(base) else m for m in matches)

    def require(self, relative: str, what: str, fix: str) -> str:
        """``relative``'s path, or a :class:`SourceError` naming it, ``what`` it should be and the ``fix``."""
        if not self.exists(relative):
            raise SourceError(f"{what} not found: {self.url(relative)}. {fix}")
        return self.path(relative)

    def local_path(self, relative: str) -> str:
        """A local file with the content of ``relative`` (the file itself when the source is local, which must be a
        regular file: a FIFO would block the library that opens it, ``/dev/zero`` never end)."""
        if self.is_local:
            path = self.path(relative)
            if os.path.exists(path) and not os.path.isfile(path):
                raise SourceError(
                    f"{path} is not a regular file (a folder, device or FIFO); check the reader's options"
                )
            return path
        url = self.url(relative)
        target = local_cache_root() / hashlib.sha256(url.encode()).hexdigest()[:24] / posixpath.basename(relative)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(target.suffix + ".partial")
            self.fs.get(self.path(relative), str(partial))
            partial.rename(target)
        return str(target)

    def open(self, relative: str):
        """``relative`` opened for binary reading (a file object to use in a ``with`` block)."""
        return self.fs.open(self.path(relative), "rb")

    def digest(self, relative: str) -> str:
        """sha256 of one file's bytes."""
        digest = hashlib.sha256()
        with self.open(relative) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def fingerprint(self, relatives: list[str]) -> str:
        """sha256 over the names and bytes of the given files (the annotation files of a source)."""
        digest = hashlib.sha256()
        for relative in sorted(relatives):
            digest.update(relative.encode() + b"\0")
            with self.fs.open(self.path(relative), "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()


def open_url(url: str):
    """Open a path or fsspec URL for binary reading."""
    return fsspec.open(url, "rb").open()
