"""A built sample as webdataset members, and deterministic tar files of such samples.

Members of sample ``<key>``: ``<key>.jpg`` (the loose RGB crop), ``<key>.labels.png`` (uint8
part labels of the crop: 0 background, 1..24 parts) and ``<key>.json`` (the annotation). Tar
headers carry no time, owner or permissions that vary, so the same samples give the same
bytes and the same sha256 on every run.

Sample format 2 stores the labels at the crop's side divided by ``crop.label_stride`` (4 by
default, :func:`stored_labels`); format 1 stored them at the crop's side. The loader reads both
(:func:`label_to_crop` places either in the crop).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

SAMPLE_FORMAT = "pare-shard-sample"
SAMPLE_FORMAT_VERSION = 2
MEMBER_SUFFIXES = ("jpg", "labels.png", "json")
"""Member suffixes of every sample, in the order they are written."""


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """(H, W, 3) uint8 RGB as JPEG bytes."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a JPEG")
    return data.tobytes()


def stored_labels(labels: np.ndarray, stride: int) -> np.ndarray:
    """The label map to store for a map rendered at the crop's resolution: every ``stride``-th pixel, the one at
    the centre of each ``stride`` x ``stride`` block (rounding down-right, as OpenCV's INTER_NEAREST_EXACT)."""
    return np.ascontiguousarray(labels[stride // 2 :: stride, stride // 2 :: stride])


def label_to_crop(crop_size: int, label_size: int) -> np.ndarray:
    """(2, 3) affine from a stored label map's pixels to its crop's (continuous coordinates, pixel centres at +0.5):
    the label pixel ``j`` is the crop pixel ``stride j + stride // 2``, whose centre is ``stride (j + 0.5) + offset``."""
    stride = crop_size / label_size
    offset = (stride // 2 + 0.5) - stride / 2.0
    return np.array([[stride, 0.0, offset], [0.0, stride, offset]])


def encode_png(labels: np.ndarray) -> bytes:
    """(H, W) uint8 label map as a lossless greyscale PNG."""
    # Label maps are flat regions: PNG's row filters gain little there and cost 4x the time.
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    ok, data = cv2.imencode(".png", labels, params)
    if not ok:
        raise RuntimeError("OpenCV failed to encode a PNG")
    return data.tobytes()


def to_jsonable(value, digits: int = 6):
    """Arrays and numpy scalars as rounded lists and floats (fixed digits: stable text across runs)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            return np.round(value.astype(np.float64), digits).tolist()
        return value.tolist()
    if isinstance(value, np.floating | float):
        return round(float(value), digits)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v, digits) for v in value]
    return value


def encode_json(annotation: dict) -> bytes:
    """The annotation as compact JSON with sorted keys."""
    return json.dumps(to_jsonable(annotation), sort_keys=True, separators=(",", ":")).encode()


def sample_members(key: str, crop: bytes, labels: bytes, annotation: bytes) -> list[tuple[str, bytes]]:
    """``(member name, bytes)`` of one sample, in :data:`MEMBER_SUFFIXES` order."""
    return [(f"{key}.{suffix}", data) for suffix, data in zip(MEMBER_SUFFIXES, (crop, labels, annotation), strict=True)]


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def open_tar(fileobj) -> tarfile.TarFile:
    """A tar archive written into ``fileobj`` (anything with ``write`` and ``tell``) as members are added
    with :func:`add_members`; closing it ends the archive and leaves ``fileobj`` open."""
    return tarfile.open(fileobj=fileobj, mode="w", format=tarfile.GNU_FORMAT)


def add_members(tar: tarfile.TarFile, members: Iterable[tuple[str, bytes]]) -> None:
    """Append ``(name, bytes)`` members with deterministic headers."""
    for name, data in members:
        tar.addfile(_tar_info(name, len(data)), io.BytesIO(data))


def tar_bytes(members: Iterable[tuple[str, bytes]]) -> bytes:
    """A deterministic tar archive of ``(name, bytes)`` members: the bytes :func:`open_tar` writes for them."""
    buffer = io.BytesIO()
    with open_tar(buffer) as tar:
        add_members(tar, members)
    return buffer.getvalue()


def read_tar_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of every regular file in a tar archive, in order."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar:
            if info.isfile():
                yield info.name, tar.extractfile(info).read()


def member_key(name: str) -> str:
    """Sample key of a member name (webdataset's rule: everything before the first dot of the basename)."""
    base = name.rsplit("/", 1)[-1]
    return base.split(".", 1)[0]
