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


def read_manifest(storage: Storage, folder: str) -> dict:
    path = in_folder(folder, MANIFEST_FILE)
    try:
        manifest = json.loads(storage.read_text(path))
    except ValueError as error:
        raise UserFacingError(f"{storage.path(path)} is not valid JSON: {error}") from None
    for shard in manifest.get("shards", []) if isinstance(manifest, dict) else []:
        # readers join the names to the folder: a name like ../../x would read files outside it
        if not SHARD_NAME.fullmatch(str(shard.get("name", ""))):
            raise UserFacingError(
                f"{storage.path(path)}: {shard.get('name')!r} is not a shard file name (shard-NNNNNN.tar); "
                "the manifest is damaged or not written by `pare preprocess`"
            )
    return manifest


def shard_url(storage: Storage, folder: str, name: str) -> str:
    return storage.path(in_folder(folder, name))


def decode_labels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


_CHUNK = 64 << 20


class ShardContentError(UserFacingError):
    """A shard is larger than the limit, or its tar members declare more bytes than the shard holds."""


def read_shard(stream, url: str) -> bytes:
    """The bytes of the shard at ``url`` from the open ``stream``, refused before its members are read when it is
    larger than :data:`~pare_model.input_limits.MAX_SHARD_BYTES` or a member would expand beyond the shard.

    A GNU sparse member stores a map of its data and declares any size: reading it fills the holes with zeros
    (a 1 MB shard can hold a 16 GB member), and ``pare preprocess`` never writes one. A member declaring more
    bytes than the shard holds, or a header that is not a tar header, makes the shard unreadable. A shard cut
    short (a copy that stopped) is returned as it is: the samples before the cut are read, the rest counted.
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
            raise ShardContentError(f"shard {url} is not a readable tar file ({error}); the shard is damaged") from None
        # a shard cut short: its complete members are read, the reader counts the broken tail (as webdataset does)
    except (tarfile.TarError, ValueError) as error:
        raise ShardContentError(f"shard {url} is not a readable tar file ({error}); the shard is damaged") from None
    return data


def _cut_short(error: Exception) -> bool:
    """Whether ``tarfile`` stopped because the data ended inside the archive (not because of a bad header)."""
    return isinstance(error, EOFError) or "unexpected end of data" in str(error)


def iter_samples(storage: Storage, folder: str, manifest: dict) -> Iterator[tuple[str, dict]]:
    """(shard name, raw sample dict) for every sample, read with the plain webdataset library."""
    import webdataset as wds

    for shard in manifest["shards"]:
        url = shard_url(storage, folder, shard["name"])
        with storage.fs.open_input_stream(url) as stream:
            data = read_shard(stream, url)
        files = ({**member, "__url__": url} for member in wds.tariterators.tar_file_iterator(io.BytesIO(data)))
        for sample in wds.tariterators.group_by_keys(files):
            yield shard["name"], sample
