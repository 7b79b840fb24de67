"""Where the people are: a user's boxes file, OpenCV's HOG people detector, or the whole image.

OpenCV's HOG people detector needs no downloaded weights but exists only in OpenCV 4; with
OpenCV 5 (this project's pin) ``detector="auto"`` uses the whole image.

A boxes file is JSON in one of two forms, boxes as COCO ``[x, y, width, height]`` in pixels:

- ``{"image.jpg": [[x, y, w, h], ...], ...}``
- ``[{"image": "image.jpg", "bbox": [x, y, w, h]}, ...]``
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from pare_model.errors import UserFacingError

BOXES_HELP = (
    'expected {"image.jpg": [[x, y, w, h], ...]} or [{"image": "image.jpg", "bbox": [x, y, w, h]}, ...] '
    "with boxes in pixels"
)


def _check_box(box: object, where: str) -> list[float]:
    if not isinstance(box, list | tuple) or len(box) != 4 or not all(isinstance(v, int | float) for v in box):
        raise UserFacingError(f"{where}: {box!r} is not a box; {BOXES_HELP}")
    if box[2] <= 0 or box[3] <= 0:
        raise UserFacingError(f"{where}: box {list(box)} has no area (width and height must be positive)")
    return [float(v) for v in box]


def read_boxes(path: str | Path) -> dict[str, list[list[float]]]:
    """Image file name -> its boxes, from a boxes JSON file (see the module docstring)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise UserFacingError(f"boxes file {path} does not exist") from error
    except json.JSONDecodeError as error:
        raise UserFacingError(f"boxes file {path} is not valid JSON: {error}") from error
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
