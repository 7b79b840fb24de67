"""Images in, person crops out: read each image, find its people, cut the model's input crops."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pare_model.errors import UserFacingError
from pipelines.inference.boxes import detect_people, hog_available, whole_image_box
from preprocessing.crop import crop_image, square_box

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


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


def find_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserFacingError(f"--images {folder} is not a folder of images")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise UserFacingError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return images


def read_rgb(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


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
        image = read_rgb(path)
        if image is None:
            rejects.append({"image": path.name, "reason": "unreadable image file"})
            continue
        people = []
        for index, (bbox, source) in enumerate(_boxes_for(path.name, image, boxes, detector)):
            center, size = square_box(bbox, box_scale)
            crop, affine = crop_image(image, center, size, crop_size)
            people.append(PersonCrop(path.name, index, bbox, source, center, size, affine, crop))
        if not people:
            rejects.append({"image": path.name, "reason": "the boxes file lists no person for this image"})
        yield ImagePeople(path, image, people)
