"""Reading the pictures of records: still images (any fsspec URL) and frames of videos.

JPEGs are decoded at 1/2, 1/4 or 1/8 size when the crop would shrink them that much anyway
(libjpeg scales in the DCT, several times faster than decoding and then resizing), which is
where most of the time of preprocessing in-the-wild datasets goes.
"""

from __future__ import annotations

import io
import os
import warnings

import cv2
import numpy as np
import simplejpeg
from PIL import Image

from pare_model.input_limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, InputLimitError, read_regular_file
from preprocessing.readers.files import open_url
from preprocessing.record import ImageRef, RecordRejected

_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def reduction_for(source_side: float, target_side: int) -> int:
    """Largest of 1, 2, 4, 8 by which a region of ``source_side`` pixels can shrink and still cover ``target_side``."""
    factor = 1
    while factor < 8 and source_side / (factor * 2) >= target_side:
        factor *= 2
    return factor


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def read_bytes(url: str) -> bytes:
    """The bytes of an image file; a missing one raises ``missing_image``, and one that is not a regular file
    (``/dev/zero``, a FIFO) or is larger than :data:`~pare_model.input_limits.MAX_IMAGE_BYTES`
    ``unreadable_image``, before it is read."""
    try:
        if _is_local(url):
            return read_regular_file(url.removeprefix("file://"), MAX_IMAGE_BYTES, "image")
        cap = MAX_IMAGE_BYTES.value()
        with open_url(url) as f:
            data = f.read(cap + 1)
        if len(data) > cap:
            raise InputLimitError(f"image {url} holds more than {cap:,} bytes ({MAX_IMAGE_BYTES})")
        return data
    except InputLimitError as error:
        raise RecordRejected("unreadable_image", str(error)) from None
    except FileNotFoundError:
        raise RecordRejected("missing_image", f"no file at {url}") from None
    except OSError as error:
        raise RecordRejected("missing_image", f"cannot read {url}: {error}") from None


def _check_pixels(data: bytes, url: str) -> None:
    """Refuse an image whose header declares more than :data:`~pare_model.input_limits.MAX_IMAGE_PIXELS`, before
    decoding it; a header PIL cannot read is left to the decoder."""
    cap = MAX_IMAGE_PIXELS.value()
    try:
        with warnings.catch_warnings():  # PIL warns above its own limit; ours decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:
                width, height = header.size
    except Image.DecompressionBombError as error:  # twice PIL's limit, itself above ours by default
        raise RecordRejected("unreadable_image", f"{url}: {error} ({MAX_IMAGE_PIXELS})") from None
    except (OSError, ValueError):
        return
    if width * height > cap:
        raise RecordRejected(
            "unreadable_image", f"{url} declares {width} x {height} pixels, more than {MAX_IMAGE_PIXELS}"
        )


JPEG_START, JPEG_SCAN, JPEG_END = b"\xff\xd8", b"\xff\xda", b"\xff\xd9"


def jpeg_is_truncated(data: bytes) -> bool:
    """Whether ``data`` is a JPEG cut short: no end-of-image marker after its last scan.

    ``cv2.imread`` decodes such a file without an error (libjpeg fills the missing rows with grey and only warns;
    ``cv2.imdecode`` refuses it in OpenCV 5), while a PNG, BMP or WebP cut short does not decode. The marker cannot occur inside a scan's data, where every 0xFF
    byte is followed by 0x00 or a restart marker; an embedded thumbnail's end marker comes before the last scan."""
    if not data.startswith(JPEG_START):
        return False
    return data.find(JPEG_END, max(data.rfind(JPEG_SCAN), 0)) < 0


def decode_image(data: bytes, url: str, reduction: int = 1) -> np.ndarray:
    """(H, W, 3) uint8 RGB from encoded bytes, decoded at ``1/reduction`` size; undecodable or truncated raises
    ``corrupt_image``, and one declaring more pixels than the limit ``unreadable_image``."""
    _check_pixels(data, url)
    if jpeg_is_truncated(data):
        raise RecordRejected("corrupt_image", f"{url} ({len(data)} bytes) is a JPEG cut short (no end marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED[reduction]) if data else None
    if image is None:
        raise RecordRejected("corrupt_image", f"{url} ({len(data)} bytes) is not a decodable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_jpeg_bgr(data: bytes) -> np.ndarray | None:
    """(H, W, 3) uint8 BGR from the bytes of a stored crop, or None when they do not decode.

    simplejpeg calls libjpeg-turbo without OpenCV's extra copies: the same pixels as ``cv2.imdecode``
    (same library, same IDCT) in about two thirds of the time, the loader's largest single cost
    (docs/benchmarks.md). Whatever it refuses (damaged or truncated data, a PNG under a .jpg name)
    goes to OpenCV, so a sample decodes, or fails to, exactly as it did before.
    """
    if not data:
        return None
    try:
        return simplejpeg.decode_jpeg(data, colorspace="BGR")
    except ValueError:
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


class VideoFrames:
    """Frames of local video files, read forward with one open decoder per file (records come in frame order)."""

    def __init__(self) -> None:
        self._path: str | None = None
        self._capture: cv2.VideoCapture | None = None
        self._next = 0

    def _open(self, path: str) -> None:
        self.close()
        if not os.path.exists(path):
            raise RecordRejected("missing_image", f"no video at {path}")
        capture = cv2.VideoCapture(path)
        if not capture.isOpened():
            raise RecordRejected("corrupt_image", f"{path} cannot be opened as a video")
        self._path, self._capture, self._next = path, capture, 0

    def read(self, path: str, frame: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame ``frame`` (0-based) of the video at ``path``."""
        if path != self._path or frame < self._next:
            self._open(path)
        capture = self._capture
        if frame - self._next > 30:  # seeking beats decoding many frames
            capture.set(cv2.CAP_PROP_POS_FRAMES, frame)
            self._next = frame
        while self._next < frame:
            if not capture.grab():
                break
            self._next += 1
        ok, image = capture.read()
        self._next += 1
        if not ok or image is None:
            raise RecordRejected("corrupt_image", f"frame {frame} of {path} cannot be decoded")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
        self._path, self._capture, self._next = None, None, 0


def local_video_path(url: str) -> str:
    """A local path for a video URL (remote videos are copied to the source cache once)."""
    if _is_local(url):
        return url.removeprefix("file://")
    from preprocessing.readers.files import SourceFiles

    head, _, name = url.rpartition("/")
    try:
        return SourceFiles(head).local_path(name)
    except FileNotFoundError:
        raise RecordRejected("missing_image", f"no video at {url}") from None
    except OSError as error:
        raise RecordRejected("missing_image", f"cannot copy the video {url}: {error}") from None


class ImageLoader:
    """Loads the picture of an :class:`ImageRef`, reduced when the crop allows it.

    The last picture is kept: readers yield the people of one image one after the other, so
    an image with several people is decoded once.
    """

    def __init__(self) -> None:
        self.videos = VideoFrames()
        self._last: tuple[tuple, np.ndarray] | None = None

    def load(self, ref: ImageRef, reduction: int = 1) -> tuple[np.ndarray, int]:
        """The picture and the reduction actually applied (videos are always full size)."""
        if ref.frame is not None:
            reduction = 1
        cache_key = (ref.path, ref.frame, reduction)
        if self._last is not None and self._last[0] == cache_key:
            return self._last[1], reduction
        if ref.frame is not None:
            image = self.videos.read(local_video_path(ref.path), ref.frame)
        else:
            image = decode_image(read_bytes(ref.path), ref.path, reduction)
        self._last = (cache_key, image)
        return image, reduction
