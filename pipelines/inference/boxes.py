"""Where the people are: a user's boxes file, OpenCV's HOG people detector, or the whole image.

OpenCV's HOG people detector needs no downloaded weights but exists only in OpenCV 4; with
OpenCV 5 (this project's pin) ``detector="auto"`` uses the whole image.

A boxes file is JSON in one of two forms, boxes as COCO ``[x, y, width, height]`` in pixels:

- ``{"image.jpg": [[x, y, w, h], ...], ...}``
- ``[{"image": "image.jpg", "bbox": [x, y, w, h]}, ...]``
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from pare_model.errors import UserFacingError

MAX_BOXES_FILE_BYTES = 256 * 2**20
"""A boxes file larger than this is refused before it is parsed (JSON parsing needs ~10x its size in memory)."""
MAX_COORDINATE = 1e6
"""Pixel coordinates beyond a million are refused: no image is that large, and they overflow crops."""


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number; boxes need finite pixel coordinates")


BOXES_HELP = (
    'expected {"image.jpg": [[x, y, w, h], ...]} or [{"image": "image.jpg", "bbox": [x, y, w, h]}, ...] '
    "with boxes in pixels"
)


def _check_box(box: object, where: str) -> list[float]:
    numbers = isinstance(box, list | tuple) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
    if not numbers or len(box) != 4:
        raise UserFacingError(f"{where}: {str(box)[:80]} is not a box; {BOXES_HELP}")
    if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in box):
        raise UserFacingError(f"{where}: box {list(box)} has a value that is not a finite pixel coordinate")
    if box[2] <= 0 or box[3] <= 0:
        raise UserFacingError(f"{where}: box {list(box)} has no area (width and height must be positive)")
    return [float(v) for v in box]


def read_boxes(path: str | Path) -> dict[str, list[list[float]]]:
    """Image file name -> its boxes, from a boxes JSON file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise UserFacingError(f"boxes file {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    if path.stat().st_size > MAX_BOXES_FILE_BYTES:
        raise UserFacingError(f"boxes file {path} is larger than {MAX_BOXES_FILE_BYTES // 2**20} MiB")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as error:
        raise UserFacingError(f"boxes file {path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise UserFacingError(f"boxes file {path} is not valid JSON: {error}") from None
    except RecursionError:
        raise UserFacingError(f"boxes file {path} is nested too deeply to be a boxes file; {BOXES_HELP}") from None
    except ValueError as error:  # NaN / Infinity, which JSON does not have
        raise UserFacingError(f"boxes file {path}: {error}") from None
    boxes: dict[str, list[list[float]]] = defaultdict(list)
    if isinstance(data, dict):
        for name, items in data.items():
            if not isinstance(items, list):
                raise UserFacingError(f"{path}: the value for {name!r} must be a list of boxes; {BOXES_HELP}")
            boxes[name] += [_check_box(box, f"{path} [{name!r}]") for box in items]
    elif isinstance(data, list):
        for index, item in enumerate(data):
            if not isinstance(item, dict) or "image" not in item or "bbox" not in item:
                raise UserFacingError(f"{path}: entry {index} needs 'image' and 'bbox'; {BOXES_HELP}")
            boxes[str(item["image"])].append(_check_box(item["bbox"], f"{path} entry {index}"))
    else:
        raise UserFacingError(f"{path}: {BOXES_HELP}")
    return dict(boxes)


def hog_available() -> bool:
    """OpenCV 4 ships a HOG people detector; OpenCV 5 moved it out of the main package."""
    return hasattr(cv2, "HOGDescriptor") and hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector")


def check_detector(detector: str) -> None:
    if detector == "hog" and not hog_available():
        raise UserFacingError(
            f"predict.detector=hog needs OpenCV's HOG people detector, which OpenCV {cv2.__version__} does not "
            "include (OpenCV 5 moved it out of the main package). Pass --boxes, set predict.detector=auto "
            "(whole image when HOG is missing) or predict.detector=none, or install opencv-python-headless<5."
        )


def detect_people(image_rgb: np.ndarray, max_side: int = 800) -> list[list[float]]:
    """Boxes of people found by OpenCV's built-in HOG + linear SVM detector (no downloads).

    Large images are scaled down first: HOG's window is 64 x 128 px, so people smaller than
    that are missed either way and the search gets much faster.
    """
    height, width = image_rgb.shape[:2]
    factor = min(1.0, max_side / max(height, width))
    small = cv2.resize(image_rgb, (round(width * factor), round(height * factor))) if factor < 1 else image_rgb
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    rects, weights = hog.detectMultiScale(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), winStride=(8, 8), scale=1.05)
    if len(rects) == 0:
        return []
    keep = cv2.dnn.NMSBoxes([list(map(int, r)) for r in rects], [float(w) for w in np.ravel(weights)], 0.3, 0.4)
    return [[float(v) / factor for v in rects[i]] for i in np.ravel(keep)]


def whole_image_box(image_rgb: np.ndarray) -> list[float]:
    height, width = image_rgb.shape[:2]
    return [0.0, 0.0, float(width), float(height)]
