"""Object cut-outs from one Pascal VOC 2012 image, by PARE's occluder rules.

An object is used when the image has an instance segmentation (``SegmentationObject/<id>.png``,
pixel value = object index in the annotation, 255 = boundary), the object is not a person, not
truncated and not difficult, and its mask has at least ``min_pixels`` pixels. Its mask is
eroded by one pixel, with the eroded-away border kept at 0.75 opacity (a softened edge), and the
object is cut to its box as RGBA. Every object that is not used gets a reason.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SKIP_CLASSES = frozenset({"person"})
BORDER_ALPHA = 0.75


@dataclass(frozen=True)
class VocObject:
    index: int  # 1-based, the pixel value in SegmentationObject
    name: str
    truncated: bool
    difficult: bool


def parse_annotation(path: Path) -> list[VocObject]:
    """The objects of a VOC annotation XML, in file order."""
    root = ET.parse(path).getroot()
    objects = []
    for index, node in enumerate(root.findall("object"), start=1):

        def flag(tag: str, node=node) -> bool:
            value = node.findtext(tag)
            return value is not None and value.strip() == "1"

        objects.append(VocObject(index, (node.findtext("name") or "").strip(), flag("truncated"), flag("difficult")))
    return objects


def soften(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool mask -> (H, W) uint8 alpha: 255 inside, 0.75 x 255 on the one-pixel border eroded away."""
    binary = mask.astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    eroded = cv2.erode(binary, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)  # outside the box is not object
    alpha = np.where(eroded > 0, 255, np.where(binary > 0, round(255 * BORDER_ALPHA), 0))
    return alpha.astype(np.uint8)


def extract(voc_root: Path, image_id: str, min_pixels: int = 500) -> tuple[list[np.ndarray], list[dict]]:
    """(cut-outs as (h, w, 4) uint8 RGBA, skipped objects with reasons) of one image."""
    skipped: list[dict] = []
    try:
        objects = parse_annotation(voc_root / "Annotations" / f"{image_id}.xml")
    except (OSError, ET.ParseError) as error:
        return [], [{"image": image_id, "object": None, "reason": "bad_annotation", "detail": str(error)[:200]}]
    image = cv2.imread(str(voc_root / "JPEGImages" / f"{image_id}.jpg"), cv2.IMREAD_COLOR)
    try:
        instances = np.asarray(Image.open(voc_root / "SegmentationObject" / f"{image_id}.png"))
    except OSError as error:
        instances, detail = None, str(error)[:200]
    if image is None or instances is None or instances.shape[:2] != image.shape[:2]:
        reason = "unreadable_image" if image is None else "bad_segmentation"
        detail = "" if image is not None and instances is not None else locals().get("detail", "")
        return [], [
            {"image": image_id, "object": o.index, "class": o.name, "reason": reason, "detail": detail} for o in objects
        ]
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    cutouts = []
    for obj in objects:
        reason = None
        if obj.name in SKIP_CLASSES:
            reason = "person"
        elif obj.truncated:
            reason = "truncated"
        elif obj.difficult:
            reason = "difficult"
        mask = instances == obj.index
        if reason is None and int(mask.sum()) < min_pixels:
            reason = "too_small"
        if reason is not None:
            skipped.append({"image": image_id, "object": obj.index, "class": obj.name, "reason": reason})
            continue
        rows, cols = np.nonzero(mask)
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        alpha = soften(mask[top:bottom, left:right])
        cutouts.append(np.dstack([rgb[top:bottom, left:right], alpha]))
    return cutouts, skipped


def segmented_ids(voc_root: Path) -> list[str]:
    """Ids of the images with an instance segmentation, sorted."""
    folder = voc_root / "SegmentationObject"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} does not exist: --voc must point at VOCdevkit/VOC2012 (with Annotations/, JPEGImages/ and "
            "SegmentationObject/)"
        )
    return sorted(p.stem for p in folder.glob("*.png"))
