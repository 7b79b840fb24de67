"""Reading a shard folder's samples back: the manifest, the folders under a root, decoded samples."""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator

import numpy as np
from PIL import Image

from pare_model.errors import UserFacingError
from pare_model.input_limits import MAX_SHARD_BYTES
from pipelines.data.manifest import MANIFEST_FILE, in_folder
from pipelines.data.tar_headers import plain_members
from pipelines.io.storage import Storage

SHARD_NAME = re.compile(r"shard-[0-9]{6}\.tar")
"""The names :func:`~pipelines.data.manifest.shard_name` gives shards; a manifest may list no other."""


def find_folders(storage: Storage) -> list[str]:
    """Dataset/split folders (relative paths holding a manifest) at or under the storage root."""
    if storage.exists(MANIFEST_FILE):
        return [""]
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(storage.root, recursive=True, allow_not_found=True)
    base = storage.root.rstrip("/") + "/"
    found = [
        info.path[len(base) :].rsplit("/", 1)[0]
        for info in storage.fs.get_file_info(selector)
        if info.base_name == MANIFEST_FILE and "/_work/" not in info.path
    ]
    if not found:
        raise UserFacingError(f"no {MANIFEST_FILE} at or under {storage.uri}: is it a `pare preprocess` output?")
    return sorted(found)


REQUIRED_SECTIONS = {
    "totals": ("inputs", "samples", "rejected", "shards", "bytes"),
    "sample_format": ("crop_resolution",),
}
"""The manifest's sections every reader relies on, with the whole numbers each must hold."""
SHARD_FIELDS = ("samples", "bytes")
"""The whole numbers every entry of ``shards`` must hold, besides its ``name``."""


class ManifestError(UserFacingError):
    """A shard folder's manifest is not what ``pare preprocess`` writes."""


def read_manifest(storage: Storage, folder: str) -> dict:
    """The folder's manifest, checked to hold what the readers use (:func:`check_manifest`)."""
    path = in_folder(folder, MANIFEST_FILE)
    try:
        manifest = json.loads(storage.read_text(path))
    except ValueError as error:
        raise UserFacingError(f"{storage.path(path)} is not valid JSON: {error}") from None
    check_manifest(manifest, storage.path(path))
    return manifest


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_manifest(manifest: object, where: str) -> None:
    """Raise :class:`ManifestError` unless ``manifest`` has the structure the readers use: a ``shards`` list of
    entries with a shard file name and counts, ``totals`` and ``sample_format``."""
    damaged = "the manifest is damaged or not written by `pare preprocess`"
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where} holds a {type(manifest).__name__}, not a JSON object; {damaged}")
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        raise ManifestError(f"{where}: 'shards' is {_described(shards)}, expected a list of shard entries; {damaged}")
    for shard in shards:
        if not isinstance(shard, dict):
            raise ManifestError(f"{where}: a 'shards' entry is {_described(shard)}, expected an object; {damaged}")
        # readers join the names to the folder: a name like ../../x would read files outside it
        if not SHARD_NAME.fullmatch(str(shard.get("name", ""))):
            raise ManifestError(
                f"{where}: {shard.get('name')!r} is not a shard file name (shard-NNNNNN.tar); {damaged}"
            )
        bad = [name for name in SHARD_FIELDS if not _is_count(shard.get(name))]
        if bad:
            raise ManifestError(f"{where}: shard {shard['name']} has no whole-number {', '.join(bad)}; {damaged}")
    for section, fields in REQUIRED_SECTIONS.items():
        value = manifest.get(section)
        if not isinstance(value, dict):
            raise ManifestError(f"{where}: '{section}' is {_described(value)}, expected an object; {damaged}")
        bad = [name for name in fields if not _is_count(value.get(name))]
        if bad:
            raise ManifestError(f"{where}: '{section}' has no whole-number {', '.join(bad)}; {damaged}")


def _described(value: object) -> str:
    return "missing" if value is None else f"a {type(value).__name__}"


def shard_url(storage: Storage, folder: str, name: str) -> str:
    return storage.path(in_folder(folder, name))


def decode_labels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


_CHUNK = 64 << 20


class ShardContentError(UserFacingError):
    """A shard is larger than the limit, or its tar members declare more bytes than the shard holds."""


class ShardReadError(ShardContentError):
    """A shard file is not a tar of whole samples (damaged, or written by something other than ``pare preprocess``).

    ``reason`` is what the tar reader said."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def read_shard(stream, url: str) -> bytes:
    """The bytes of the shard at ``url`` from the open ``stream``, refused before its members are read when it is
    larger than :data:`~pare_model.input_limits.MAX_SHARD_BYTES` or a member would expand beyond the shard.

    A GNU sparse member stores a map of its data and declares any size: reading it fills the holes with zeros
    (a 1 MB shard can hold a 16 GB member), and ``pare preprocess`` never writes one. A member declaring more
    bytes than the shard holds makes the shard refused; a header that is not a tar header, unreadable
    (:class:`ShardReadError`). A shard cut short (a copy that stopped) is returned as it is: the samples before
    the cut are read, the rest counted by the reader. A shard of plain files, as `pare preprocess` writes them, is
    recognised from its headers alone (:func:`~pipelines.data.tar_headers.plain_members`); any other is walked
    with :mod:`tarfile`.
    """
    cap, chunks, size = MAX_SHARD_BYTES.value(), [], 0
    while chunk := stream.read(min(_CHUNK, cap + 1 - size)):  # in pieces: some streams allocate what is asked
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            raise ShardContentError(
                f"shard {url} holds more than {cap:,} bytes ({MAX_SHARD_BYTES}); raise it if genuine"
            )
    data = b"".join(chunks)
    if plain_members(data):
        return data
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                if member.issparse() or member.sparse is not None:
                    raise ShardContentError(
                        f"shard {url}: member {member.name} is a sparse file declaring {member.size:,} bytes; shards "
                        "hold plain files only (a sparse member expands when read), so the shard is damaged or crafted"
                    )
                if member.size > len(data):
                    raise ShardContentError(
                        f"shard {url}: member {member.name} declares {member.size:,} bytes, more than the "
                        f"{len(data):,} bytes of the shard; the shard is damaged"
                    )
    except (tarfile.ReadError, EOFError) as error:
        if not _cut_short(error):
            raise _unreadable(url, error) from None
        # a shard cut short: its complete members are read, the reader counts the broken tail (as webdataset does)
    except (tarfile.TarError, ValueError) as error:
        raise _unreadable(url, error) from None
    return data


def _cut_short(error: Exception) -> bool:
    """Whether ``tarfile`` stopped because the data ended inside the archive (not because of a bad header)."""
    return isinstance(error, EOFError) or "unexpected end of data" in str(error)


def _unreadable(url: str, error: Exception) -> ShardReadError:
    reason = (_first_text(error.args) or type(error).__name__).split(" @ <", 1)[0][:300]  # not the stream's repr
    return ShardReadError(
        f"{url} cannot be read as a shard ({reason}); "
        "`pare shards validate` lists every problem; rebuild the folder with `pare preprocess`",
        reason,
    )


def shard_samples(storage: Storage, folder: str, name: str) -> Iterator[dict]:
    """The raw sample dicts of one shard, read with the plain webdataset library; raises :class:`ShardReadError`
    for a damaged shard (one cut short included) and :class:`ShardContentError` for one over the limits."""
    import webdataset as wds

    url = shard_url(storage, folder, name)
    with storage.fs.open_input_stream(url) as stream:
        data = read_shard(stream, url)
    files = ({**member, "__url__": url} for member in wds.tariterators.tar_file_iterator(io.BytesIO(data)))
    try:
        yield from wds.tariterators.group_by_keys(files)
    except (tarfile.TarError, ValueError, KeyError) as error:
        raise _unreadable(url, error) from None


def _first_text(args: tuple) -> str:
    """The first string in an exception's arguments: webdataset wraps its message in tuples with the shard's url."""
    for arg in args:
        text = _first_text(arg) if isinstance(arg, tuple) else arg
        if isinstance(text, str) and text:
            return text
    return ""


def iter_samples(storage: Storage, folder: str, manifest: dict) -> Iterator[tuple[str, dict]]:
    """(shard name, raw sample dict) for every sample of the folder; raises :class:`ShardReadError`."""
    for shard in manifest["shards"]:
        for sample in shard_samples(storage, folder, shard["name"]):
            yield shard["name"], sample
