"""Object cut-outs from one Pascal VOC 2012 image, made as the original PARE makes its Pascal occluders.

The steps and their order are those of the original's bank builder (``load_pascal_occluders``
in ``pare/dataset/coco_occlusion.py``, from isarandi/synthetic-occlusion), so that a bank built
here holds the same cut-outs (``tests/test_occluders.py`` compares them with the original's
output on the same VOC folder):

1. an image is used when its annotation says ``<segmented>`` (not 0) and it has an instance
   segmentation (``SegmentationObject/<id>.png``: pixel value = object index in the annotation,
   255 = VOC's 'void' outline);
2. an object is used when it is not a person, not truncated and not difficult;
3. it is cut to its annotated box, ``[ymin:ymax, xmin:xmax]`` of the image and of the
   segmentation, VOC's 1-based box read as 0-based bounds as the original does (the box's first
   row and column fall outside, its last ones inside);
4. its mask within that box must have at least ``min_pixels`` pixels (PARE: 500);
5. alpha is 255 on the mask, and the pixels that an 8x8 elliptic erosion removes get 192: a
   softened border (OpenCV's default border, so the mask is not eroded where the box cuts it);
6. the RGBA cut-out is halved (resize factor 0.5, sides rounded half to even, area interpolation).

Every object that is not used gets a reason.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SKIP_CLASSES = frozenset({"person"})
ERODE_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (8, 8))
"""The original's structuring element for the softened border."""
BORDER_ALPHA = 192
"""Alpha of the border pixels the erosion removes (the rest of the mask: 255)."""
RESIZE_FACTOR = 0.5
"""Every cut-out is scaled by this when the bank is built (the original: "Downscale for efficiency")."""


@dataclass(frozen=True)
class VocObject:
    index: int  # 1-based, the pixel value in SegmentationObject
    name: str
    truncated: bool
    difficult: bool
    box: tuple[int, int, int, int] | None  # VOC's bndbox: xmin, ymin, xmax, ymax (1-based); None when unreadable


@dataclass(frozen=True)
class VocAnnotation:
    segmented: bool
    objects: list[VocObject]


def _box(node: ET.Element) -> tuple[int, int, int, int] | None:
    try:
        values = [node.findtext(f"bndbox/{side}") for side in ("xmin", "ymin", "xmax", "ymax")]
        return tuple(int(float(v)) for v in values)  # type: ignore[arg-type,return-value]
    except (TypeError, ValueError, OverflowError):
        return None


def parse_annotation(path: Path) -> VocAnnotation:
    """The ``segmented`` flag and the objects of a VOC annotation XML, in file order."""
    root = ET.parse(path).getroot()
    objects = []
    for index, node in enumerate(root.findall("object"), start=1):

        def flag(tag: str, node=node) -> bool:
            value = node.findtext(tag)
            return value is not None and value.strip() not in ("", "0")

        name = (node.findtext("name") or "").strip()
        objects.append(VocObject(index, name, flag("truncated"), flag("difficult"), _box(node)))
    return VocAnnotation((root.findtext("segmented") or "1").strip() != "0", objects)


def soften(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool mask -> (H, W) uint8 alpha: 255 inside, :data:`BORDER_ALPHA` where the 8x8 erosion removes."""
    alpha = mask.astype(np.uint8) * 255
    eroded = cv2.erode(alpha, ERODE_KERNEL)  # OpenCV's default border: the edges of the box do not erode
    alpha[eroded < alpha] = BORDER_ALPHA
    return alpha


def downscale(cutout: np.ndarray, factor: float = RESIZE_FACTOR) -> np.ndarray:
    """``cutout`` resized by ``factor``, sides rounded half to even, area interpolation (as the original)."""
    height, width = cutout.shape[:2]
    size = (max(1, int(np.round(width * factor))), max(1, int(np.round(height * factor))))
    return cv2.resize(cutout, size, interpolation=cv2.INTER_AREA)


def cut_out(rgb: np.ndarray, instances: np.ndarray, obj: VocObject, min_pixels: int) -> np.ndarray | str:
    """The (h, w, 4) uint8 RGBA cut-out of ``obj`` in its box, or the reason it is not used."""
    if obj.box is None:
        return "bad_box"
    xmin, ymin, xmax, ymax = (max(0, v) for v in obj.box)  # VOC's 1-based box as 0-based bounds, as the original
    mask = instances[ymin:ymax, xmin:xmax] == obj.index
    if int(mask.sum()) < min_pixels:
        return "too_small"
    return downscale(np.dstack([rgb[ymin:ymax, xmin:xmax], soften(mask)]))


def _skip_reason(obj: VocObject) -> str | None:
    if obj.name in SKIP_CLASSES:
        return "person"
    if obj.truncated:
        return "truncated"
    if obj.difficult:
        return "difficult"
    return None


def extract(voc_root: Path, image_id: str, min_pixels: int = 500) -> tuple[list[np.ndarray], list[dict]]:
    """(cut-outs as (h, w, 4) uint8 RGBA, skipped objects with reasons) of one image."""
    try:
        annotation = parse_annotation(voc_root / "Annotations" / f"{image_id}.xml")
    except (OSError, ET.ParseError) as error:
        return [], [{"image": image_id, "object": None, "reason": "bad_annotation", "detail": str(error)[:200]}]
    objects = annotation.objects

    def reject(obj: VocObject, reason: str, detail: str = "") -> dict:
        return {"image": image_id, "object": obj.index, "class": obj.name, "reason": reason} | (
            {"detail": detail} if detail else {}
        )

    if not annotation.segmented:
        return [], [reject(o, "not_segmented") for o in objects]
    image = cv2.imread(str(voc_root / "JPEGImages" / f"{image_id}.jpg"), cv2.IMREAD_COLOR)
    detail = ""
    try:
        instances = np.asarray(Image.open(voc_root / "SegmentationObject" / f"{image_id}.png"))
    except OSError as error:
        instances, detail = None, str(error)[:200]
    if image is None or instances is None or instances.shape[:2] != image.shape[:2]:
        reason = "unreadable_image" if image is None else "bad_segmentation"
        return [], [reject(o, reason, detail if reason == "bad_segmentation" else "") for o in objects]
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    cutouts, skipped = [], []
    for obj in objects:
        result = _skip_reason(obj) or cut_out(rgb, instances, obj, min_pixels)
        if isinstance(result, str):
            skipped.append(reject(obj, result))
        else:
            cutouts.append(result)
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
