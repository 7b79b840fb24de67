"""``coco_eft``: COCO 2014 person keypoints plus EFT's pseudo ground truth fits, one person per image.

Writes, under the output folder:

- ``images/train2014/COCO_train2014_{image_id:012d}.jpg``;
- ``annotations/person_keypoints_train2014.json``: COCO's keys and order (``info``,
  ``licenses``, ``categories``, ``images``, ``annotations``); per person ``keypoints`` 17 x
  [x, y, v] (v = 2 visible, 1 hidden by the body or an occluder, 0 outside the image with
  x = y = 0), ``segmentation`` polygons of the visible body pixels (not those under occluders), their
  ``area`` (as pycocotools computes it) and the ``bbox`` of those pixels;
- ``eft_fits/COCO2014-All-ver01.json``: ``{"ver", "data", "meta"}``, one fit per annotation:
  ``parm_pose`` 24 x 3 x 3 rotation matrices (root in the camera frame), ``parm_shape`` (10),
  ``parm_cam`` ``[s, tx, ty]`` in the 224 crop of the box (``bbox_center``, ``bbox_scale`` =
  side / 200), ``gt_keypoint_2d`` 49 x 3 SPIN joints in image pixels (confidence 1 inside the
  image), ``joint_validity_openpose18``, ``smpltype``, ``annotId``, ``imageName``.

The crop camera follows SPIN/PARE: translation ``[tx, ty, 2 f / (224 s)]``, f = 5000,
principal point at the crop centre. The image is rendered through exactly this camera, so the
fit reproduces the rendered body (see :mod:`preprocessing.synth.crop_samples`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from preprocessing.bodies import BodyModels
from preprocessing.keypoints import (
    COCO17_NAMES,
    COCO17_SKELETON,
    COCO17_TO_SPIN,
    OPENPOSE18_TO_SPIN_GT,
    spin_indices,
)
from preprocessing.synth.common import LayoutResult, PreviewTile, SynthOptions, progress, write_jpeg, write_json
from preprocessing.synth.crop_samples import CropSample, crop_samples
from preprocessing.synth.poses import axis_angle_to_matrix

NAME = "coco_eft"
IMAGE_FOLDER = "images/train2014"
ANNOTATION_FILE = "annotations/person_keypoints_train2014.json"
EFT_FILE = "eft_fits/COCO2014-All-ver01.json"
SEGMENTATION_UPSAMPLING = 4
ANNOTATION_ID_BASE = 900_000
"""Annotation ids are this plus the sample index, so they never collide with image ids."""


def image_name(image_id: int) -> str:
    return f"COCO_train2014_{image_id:012d}.jpg"


def _segmentation(mask: np.ndarray) -> list[list[float]]:
    """COCO polygons (flat x, y lists) of a bool mask's outer contours, traced within 1/8 pixel of its edges.

    Contours are found on the mask upsampled 4 times, so the polygons follow the pixel edges
    (not the boundary pixels' centres) and rasterise back to nearly the same pixels.
    """
    upsampled = np.kron(mask.astype(np.uint8), np.ones((SEGMENTATION_UPSAMPLING,) * 2, np.uint8))
    contours, _ = cv2.findContours(upsampled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        if len(contour) >= 3:
            points = (contour.reshape(-1, 2) + 0.5) / SEGMENTATION_UPSAMPLING
            polygons.append([round(float(v), 2) for v in points.reshape(-1)])
    return polygons


def _area(polygons: list[list[float]], height: int, width: int) -> float:
    """Area of the segmentation as COCO computes it (pixels of the rasterised polygons)."""
    if not polygons:
        return 0.0
    return float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))))


def _bbox(mask: np.ndarray) -> list[float]:
    """[x, y, w, h] of the pixels set in ``mask`` (pixel (i, j) spans [j, j + 1) x [i, i + 1))."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    x0, y0 = float(cols.min()), float(rows.min())
    return [x0, y0, float(cols.max()) + 1.0 - x0, float(rows.max()) + 1.0 - y0]


def coco_keypoints(sample: CropSample) -> tuple[np.ndarray, np.ndarray]:
    """(17, 2) image pixels and (17,) visibility of COCO's keypoints."""
    index = spin_indices(COCO17_TO_SPIN)
    return sample.joints[index, :2], sample.visibility[index]


def annotation(sample: CropSample, image_id: int, annotation_id: int) -> dict:
    """The COCO annotation of one sample's person."""
    xy, visibility = coco_keypoints(sample)
    keypoints = []
    for (x, y), v in zip(xy, visibility, strict=True):
        keypoints += [round(float(x), 2), round(float(y), 2), int(v)] if v > 0 else [0, 0, 0]
    visible_body = (sample.scene.person >= 0) & ~sample.scene.occluded
    polygons = _segmentation(visible_body)
    return {
        "segmentation": polygons,
        "num_keypoints": int((visibility > 0).sum()),
        "area": _area(polygons, *visible_body.shape),
        "iscrowd": 0,
        "keypoints": keypoints,
        "image_id": image_id,
        "bbox": _bbox(visible_body),
        "category_id": 1,
        "id": annotation_id,
    }


def eft_fit(sample: CropSample, annotation_id: int | None, name: str) -> dict:
    """EFT's record of one fit; ``annotation_id`` None leaves out ``annotId`` (EFT's MPII and LSPet files)."""
    confidence = (sample.visibility > 0).astype(np.float64)
    keypoints = np.concatenate([sample.joints[:, :2], confidence[:, None]], axis=1)
    validity = confidence[spin_indices(OPENPOSE18_TO_SPIN_GT)]
    return {
        "parm_pose": axis_angle_to_matrix(sample.pose).tolist(),
        "parm_shape": sample.betas.tolist(),
        "parm_cam": sample.cam.tolist(),
        "bbox_scale": sample.scale,
        "bbox_center": sample.center.tolist(),
        "gt_keypoint_2d": keypoints.tolist(),
        "joint_validity_openpose18": validity.tolist(),
        "smpltype": "smpl",
        **({} if annotation_id is None else {"annotId": annotation_id}),
        "imageName": name,
    }


def _categories() -> list[dict]:
    return [
        {
            "supercategory": "person",
            "id": 1,
            "name": "person",
            "keypoints": list(COCO17_NAMES),
            "skeleton": [list(limb) for limb in COCO17_SKELETON],
        }
    ]


def write(out: Path, num: int, seed: int, models: BodyModels, options: SynthOptions) -> LayoutResult:
    """Write ``num`` images with one annotated, EFT-fitted person each."""
    result = LayoutResult(layout=NAME, num_samples=num, num_images=num)
    images, annotations, fits = [], [], []
    for sample in progress(crop_samples(models, seed, NAME, num, options), num, NAME):
        image_id, annotation_id = sample.index + 1, ANNOTATION_ID_BASE + sample.index
        name = image_name(image_id)
        write_jpeg(out / IMAGE_FOLDER / name, sample.scene.image, options.jpeg_quality)
        height, width = sample.scene.image.shape[:2]
        images.append({"license": 0, "file_name": name, "height": height, "width": width, "id": image_id})
        annotations.append(annotation(sample, image_id, annotation_id))
        fits.append(eft_fit(sample, annotation_id, name))
        xy, visibility = coco_keypoints(sample)
        result.keep_preview(
            lambda s=sample, xy=xy, v=visibility: PreviewTile(
                s.scene.image, s.scene.labels, xy, v, image_name(s.index + 1)
            ),
            options.preview_count,
        )
    coco = {
        "info": {"description": "SYNTHETIC person keypoints rendered from a body model; not COCO", "version": "1.0"},
        "licenses": [{"id": 0, "name": "synthetic", "url": ""}],
        "categories": _categories(),
        "images": images,
        "annotations": annotations,
    }
    write_json(out / ANNOTATION_FILE, coco)
    meta = {"synthetic": True, "seed": seed, "note": "rendered fits: exact, not optimised to real images"}
    write_json(out / EFT_FILE, {"ver": 1, "data": fits, "meta": meta})
    result.annotation_files += [out / ANNOTATION_FILE, out / EFT_FILE]
    return result
