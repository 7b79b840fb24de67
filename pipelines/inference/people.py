"""Images in, person crops out: read each image, find its people, cut the model's input crops."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pare_model.errors import UserFacingError
from pipelines.inference.boxes import detect_people, hog_available, whole_image_box
from preprocessing.crop import crop_image, square_box
from preprocessing.samples.images import jpeg_is_truncated

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
MAX_IMAGE_PIXELS = 100_000_000
"""Larger images are rejected before they are decoded (a small PNG can claim gigapixels)."""
MIN_VISIBLE_FRACTION = 0.1
"""A box less than this much inside its image is rejected: the crop would be mostly black padding."""
MAX_PEOPLE_PER_IMAGE = 200
"""Boxes beyond this many for one image are rejected: every crop of an image is held in memory at once."""


@dataclass
class PersonCrop:
    """One person: where they are in the image and the crop the model sees."""

    image_name: str
    person: int
    bbox: list[float]  # [x, y, w, h] in image pixels
    box_source: str  # "boxes file", "hog detector" or "whole image"
    center: np.ndarray  # (2,) crop centre in image pixels
    box_size: float  # crop side in image pixels
    affine: np.ndarray  # (2, 3) image -> crop coordinates
    crop: np.ndarray  # (S, S, 3) uint8 RGB


@dataclass
class ImagePeople:
    path: Path
    image: np.ndarray  # (H, W, 3) uint8 RGB
    people: list[PersonCrop]


def find_images(folder: str | Path, rejects: list[dict] | None = None) -> list[Path]:
    """The image files of ``folder``, sorted; entries named like images that cannot be used go to ``rejects``.

    Only regular files are read (a FIFO or a device named ``x.png`` would block or never end), and of
    images sharing a stem (``a.jpg``, ``a.png``) only the first: their outputs would overwrite each other.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserFacingError(f"--images {folder} is not a folder of images")
    candidates = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    images, stems = [], {}
    for path in candidates:
        if not path.is_file():
            _reject(rejects, {"image": path.name, "reason": "not a regular file"})
        elif path.stem in stems:
            _reject(
                rejects,
                {
                    "image": path.name,
                    "reason": f"same name stem as {stems[path.stem]}, whose outputs "
                    "would be overwritten; rename one of them",
                },
            )
        else:
            stems[path.stem] = path.name
            images.append(path)
    if not images:
        raise UserFacingError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return images


def _reject(rejects: list[dict] | None, record: dict) -> None:
    if rejects is not None:
        rejects.append(record)


def missing_images(boxes: dict | None, paths: list[Path], rejects: list[dict]) -> list[dict]:
    """A reject for every box of an image the boxes file names but that is not read: absent, or rejected itself."""
    present = {path.name for path in paths}
    rejected = {r["image"] for r in rejects}
    return [
        {
            "image": name,
            "person": index,
            "bbox": box,
            "reason": "its image was rejected (see its entry)" if name in rejected else "no such image in --images",
        }
        for name, items in sorted((boxes or {}).items())
        if name not in present
        for index, box in enumerate(items)
    ]


def image_pixels(path: Path) -> int | None:
    """Width times height from the file's header (nothing decoded); None when PIL cannot read the header."""
    try:
        with Image.open(path) as header:
            width, height = header.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return width * height


def read_rgb(path: Path) -> np.ndarray | str:
    """The image as (H, W, 3) uint8 RGB, or why it cannot be used: unreadable, or a JPEG cut short
    (:func:`~preprocessing.samples.images.jpeg_is_truncated`), which ``cv2.imread`` would decode with grey rows."""
    with open(path, "rb") as handle:
        data = handle.read()
    if jpeg_is_truncated(data):
        return "truncated image file (a JPEG without its end marker)"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    return "unreadable image file" if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def visible_fraction(bbox: list[float], image: np.ndarray) -> float:
    """The share of the box's area inside the image (0 for a box wholly outside it)."""
    height, width = image.shape[:2]
    x, y, w, h = bbox
    inside_w = max(0.0, min(x + w, width) - max(x, 0.0))
    inside_h = max(0.0, min(y + h, height) - max(y, 0.0))
    return inside_w * inside_h / (w * h)


def _boxes_for(name: str, image: np.ndarray, boxes: dict | None, detector: str) -> list[tuple[list[float], str]]:
    if boxes is not None:
        return [(box, "boxes file") for box in boxes.get(name, [])]
    use_hog = detector == "hog" or (detector == "auto" and hog_available())
    found = detect_people(image) if use_hog else []
    if found:
        return [(box, "hog detector") for box in found]
    return [(whole_image_box(image), "whole image")]


def iter_people(
    paths: list[Path], boxes: dict | None, detector: str, box_scale: float, crop_size: int, rejects: list[dict]
) -> Iterator[ImagePeople]:
    """Yield each readable image with its person crops; unreadable images go to ``rejects``."""
    for path in paths:
        pixels = image_pixels(path)
        if pixels is not None and pixels > MAX_IMAGE_PIXELS:
            rejects.append(
                {
                    "image": path.name,
                    "reason": f"{pixels / 1e6:.0f} megapixels, more than the {MAX_IMAGE_PIXELS // 10**6} allowed",
                }
            )
            continue
        image = read_rgb(path)
        if isinstance(image, str):
            rejects.append({"image": path.name, "reason": image})
            continue
        people, rejected_before = [], len(rejects)
        for index, (bbox, source) in enumerate(_boxes_for(path.name, image, boxes, detector)):
            if index >= MAX_PEOPLE_PER_IMAGE:
                rejects.append(
                    {
                        "image": path.name,
                        "person": index,
                        "bbox": bbox,
                        "reason": f"more than {MAX_PEOPLE_PER_IMAGE} boxes for one image",
                    }
                )
                continue
            if visible_fraction(bbox, image) < MIN_VISIBLE_FRACTION:
                rejects.append(
                    {
                        "image": path.name,
                        "person": index,
                        "bbox": bbox,
                        "reason": f"less than {MIN_VISIBLE_FRACTION:.0%} of the box is inside the "
                        f"{image.shape[1]} x {image.shape[0]} image",
                    }
                )
                continue
            center, size = square_box(bbox, box_scale)
            crop, affine = crop_image(image, center, size, crop_size)
            people.append(PersonCrop(path.name, index, bbox, source, center, size, affine, crop))
        if not people and len(rejects) == rejected_before:  # no box at all, rather than only refused ones
            rejects.append({"image": path.name, "reason": "the boxes file lists no person for this image"})
        yield ImagePeople(path, image, people)
