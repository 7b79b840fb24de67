"""COCO person keypoints, joined with EFT fits by annotation id (``coco_eft``).

Images are visited in id order and each image's people one after the other, so an image with
several people is decoded once by the job. Keypoints: COCO's 17 land on SPIN's ground-truth
joints (v > 0 gives confidence 1, also for occluded ones, as SPIN does); with an EFT fit the
25 OpenPose-style joints come from its ``gt_keypoint_2d`` and the box from its
``bbox_center`` / ``bbox_scale``, which its camera refers to. Without a fit the box is COCO's,
squared and enlarged 1.2 times.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from preprocessing.crop import square_box
from preprocessing.keypoints import COCO17_TO_SPIN, spin_indices
from preprocessing.readers.base import Item, Reader, pixel_offset
from preprocessing.readers.coco_columns import coco_tables, unvisited, visit_order
from preprocessing.readers.columns import Tables
from preprocessing.readers.eft import attach_fit, check_camera_option, parse_fit
from preprocessing.readers.eft_columns import eft_tables, fit_entries, fit_index
from preprocessing.record import ImageRef, RecordRejected, SampleRecord

COCO_TO_SPIN = spin_indices(COCO17_TO_SPIN)
BLOCK = 4096
"""Annotations whose columns are read at a time."""


@dataclass(frozen=True)
class CocoEftOptions:
    """Options of the ``coco_eft`` reader."""

    annotations: str = "annotations/person_keypoints_train2014.json"
    """COCO person-keypoints file, relative to the root."""
    images: str = "train2014"
    """Image folder, relative to the root."""
    eft: str = ""
    """EFT fit file (e.g. ``eft_fits/COCO2014-All-ver01.json``); empty: keypoints only, no SMPL."""
    require_fit: bool = True
    """With ``eft`` set, reject annotations that have no fit (``no_fit``) instead of keeping them without SMPL."""
    include_crowd: bool = False
    """Keep ``iscrowd`` annotations."""
    min_keypoints: int = 6
    """Fewest labelled COCO keypoints a person needs (SPIN and EFT use 6)."""
    pixel_offset: float | None = None
    """Added to every coordinate to reach the project's pixel convention; None: 0.5 for real data, 0 for ``pare synth`` output."""
    eft_camera: str = "spin"
    """Convention of EFT's ``parm_cam``: ``spin`` (the fitter's f = 5000 projection) or ``eft_visualizer``."""


def _whole(entry: dict, key: str) -> int:
    """``entry[key]`` as a whole number; NaN, infinity or text is a ``bad_annotation`` reject (not a crash)."""
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        raise RecordRejected("bad_annotation", f"{key} is {value!r}, not a whole number")
    return int(value)


class CocoEftReader(Reader):
    """COCO person keypoints joined with EFT SMPL fits by annotation id.

    Both files are read from columnar conversions cached beside the outputs
    (:mod:`preprocessing.readers.coco_columns`, :mod:`preprocessing.readers.eft_columns`)."""

    name = "coco_eft"
    default_dataset = "coco-eft"
    Options = CocoEftOptions

    def annotation_files(self) -> list[str]:
        return [self.options.annotations] + ([self.options.eft] if self.options.eft else [])

    def check(self) -> None:
        check_camera_option(self.options.eft_camera)
        super().check()

    def _fits(self, annotation_ids: np.ndarray):
        """The EFT tables (None without ``options.eft``), each annotation's fit row (-1: none) and whether the
        file holds several fits for it."""
        if not self.options.eft:
            return None, np.full(len(annotation_ids), -1), np.zeros(len(annotation_ids), bool)
        tables = eft_tables(self.files, self.options.eft, self.cache_root)
        return (tables, *fit_index(tables).lookup(annotation_ids))

    def records(self) -> Iterator[Item]:
        offset = pixel_offset(self.files, self.options.pixel_offset)
        coco = coco_tables(self.files, self.options.annotations, self.cache_root)
        visits = visit_order(coco)
        for sample_id, why in unvisited(coco):
            yield self.rejected("bad_annotation", why, sample_id, self.options.annotations)
        annotation_ids = coco.column("annotations", "id")[visits.rows]
        fits, fit_rows, duplicate_fits = self._fits(annotation_ids)
        crowd = coco.column("annotations", "crowd")[visits.rows].astype(bool)
        for start in range(0, len(visits.rows), BLOCK):
            block = slice(start, start + BLOCK)
            people = _people(coco, visits.rows[block], visits.image_rows[block])
            entries = _fit_entries(fits, fit_rows[block] * ~duplicate_fits[block] - duplicate_fits[block])
            for k, (image, ann) in enumerate(people):
                index = start + k
                sample_id = str(int(annotation_ids[index]))
                if visits.repeated[index]:
                    yield self.rejected(
                        "duplicate_id", f"annotation id {sample_id} appears twice", sample_id, self.options.annotations
                    )
                    continue
                if crowd[index] and not self.options.include_crowd:
                    continue
                try:
                    yield self._record(image, ann, int(visits.person[index]), entries[k], duplicate_fits[index], offset)
                except RecordRejected as error:
                    yield self.rejected(error.reason, error.detail, sample_id, self.options.annotations)

    def _record(
        self, image: dict, ann: dict, person: int, fit: dict | None, duplicate_fit: bool, offset: float
    ) -> SampleRecord:
        options = self.options
        coco_points = np.asarray(ann.get("keypoints", []), dtype=np.float64)
        if coco_points.shape != (51,):
            raise RecordRejected("bad_annotation", f"keypoints must hold 17 x 3 numbers, got {coco_points.shape}")
        coco_points = coco_points.reshape(17, 3)
        labelled = coco_points[:, 2] > 0
        if labelled.sum() < options.min_keypoints:
            raise RecordRejected(
                "no_visible_keypoints",
                f"{int(labelled.sum())} labelled keypoints, need {options.min_keypoints} (options.min_keypoints)",
            )
        keypoints = np.zeros((49, 3))
        keypoints[COCO_TO_SPIN, :2] = np.where(labelled[:, None], coco_points[:, :2] + offset, 0.0)
        keypoints[COCO_TO_SPIN, 2] = labelled
        record = SampleRecord(
            dataset=self.dataset,
            split=self.split,
            sample_id=str(ann["id"]),
            image=ImageRef(self.files.url(f"{options.images}/{image['file_name']}")),
            center=np.zeros(2),
            box_size=0.0,
            keypoints_2d=keypoints,
            image_size=(_whole(image, "height"), _whole(image, "width")) if "height" in image else None,
            source=options.annotations,
            person_index=person,
            extra={"image_id": _whole(image, "id"), "annotation_id": _whole(ann, "id")},
        )
        annot_id = ann["id"]
        if duplicate_fit:
            raise RecordRejected("duplicate_id", f"EFT file has several fits for annotation {annot_id}")
        if fit is not None:
            return attach_fit(record, parse_fit(fit, offset, options.eft_camera))
        if options.eft and options.require_fit:
            raise RecordRejected(
                "no_fit", f"no EFT fit for annotation {annot_id} in {options.eft} (options.require_fit)"
            )
        try:
            center, side = square_box(ann["bbox"], 1.2)
        except (KeyError, TypeError, ValueError) as error:
            raise RecordRejected("bad_box", f"bbox {ann.get('bbox')!r}: {error}") from None
        record.center, record.box_size = center + offset, side
        return record


def _people(coco: Tables, rows: np.ndarray, image_rows: np.ndarray) -> list[tuple[dict, dict]]:
    """(image, annotation) of each of ``rows`` as the reader reads them: from the columns, or their kept JSON."""
    ids, keypoints, boxes = (coco.take("annotations", name, rows) for name in ("id", "keypoints", "bbox"))
    annotations = [
        raw if raw is not None else {"id": int(ids[k]), "keypoints": keypoints[k], "bbox": boxes[k]}
        for k, raw in enumerate(coco.raw("annotations", rows))
    ]
    columns = {name: coco.take("images", name, image_rows).tolist() for name in ("id", "height", "width", "has_size")}
    names = coco.texts("images", "file_name", image_rows)
    images = []
    for k, raw in enumerate(coco.raw("images", image_rows)):
        image = raw if raw is not None else {"id": columns["id"][k], "file_name": names[k]}
        if raw is None and columns["has_size"][k]:
            image.update(height=columns["height"][k], width=columns["width"][k])
        images.append(image)
    return list(zip(images, annotations, strict=True))


def _fit_entries(fits, rows: np.ndarray) -> list[dict | None]:
    """The fit entry of each annotation (None: no fit, or several, which are rejected before the fit is read)."""
    if fits is None:
        return [None] * len(rows)
    entries: list[dict | None] = [None] * len(rows)
    present = np.nonzero(rows >= 0)[0]
    for k, entry in zip(present.tolist(), fit_entries(fits, rows[present]), strict=True):
        entries[k] = entry
    return entries
