"""COCO person keypoints, joined with EFT fits by annotation id (``coco_eft``).

Images are visited in id order and each image's people one after the other, so an image with
several people is decoded once by the job. Keypoints: COCO's 17 land on SPIN's ground-truth
joints (v > 0 gives confidence 1, also for occluded ones, as SPIN does); with an EFT fit the
25 OpenPose-style joints come from its ``gt_keypoint_2d`` and the box from its
``bbox_center`` / ``bbox_scale``, which its camera refers to. Without a fit the box is COCO's,
squared and enlarged 1.2 times.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from preprocessing.crop import square_box
from preprocessing.keypoints import COCO17_TO_SPIN, spin_indices
from preprocessing.readers.base import Item, Reader, pixel_offset
from preprocessing.readers.eft import attach_fit, check_camera_option, parse_fit, read_eft_entries, read_json
from preprocessing.record import ImageRef, RecordRejected, SampleRecord

COCO_TO_SPIN = spin_indices(COCO17_TO_SPIN)


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
    """COCO person keypoints (pycocotools) joined with EFT SMPL fits by annotation id."""

    name = "coco_eft"
    default_dataset = "coco-eft"
    Options = CocoEftOptions

    def annotation_files(self) -> list[str]:
        return [self.options.annotations] + ([self.options.eft] if self.options.eft else [])

    def check(self) -> None:
        check_camera_option(self.options.eft_camera)
        super().check()

    def _coco(self):
        from pycocotools.coco import COCO

        data = read_json(self.files, self.options.annotations, "COCO annotation file")
        coco = COCO()
        coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints while indexing
            coco.createIndex()
        return coco

    def _fits(self) -> tuple[dict[int, dict], set[int]]:
        """EFT entries by annotation id, and the ids that appear more than once."""
        fits: dict[int, dict] = {}
        duplicates: set[int] = set()
        if self.options.eft:
            for entry in read_eft_entries(self.files, self.options.eft):
                annot_id = entry.get("annotId") if isinstance(entry, dict) else None
                if annot_id in fits:
                    duplicates.add(annot_id)
                elif annot_id is not None:
                    fits[annot_id] = entry
        return fits, duplicates

    def records(self) -> Iterator[Item]:
        offset = pixel_offset(self.files, self.options.pixel_offset)
        coco = self._coco()
        fits, duplicate_fits = self._fits()
        seen: set = set()
        person_cats = set(coco.getCatIds(catNms=["person"])) or {1}
        yield from self._orphans(coco, person_cats)
        for image_id in sorted(coco.imgs):
            image = coco.imgs[image_id]
            people = [a for a in coco.imgToAnns.get(image_id, []) if a.get("category_id") in person_cats]
            for person, ann in enumerate(sorted(people, key=lambda a: a.get("id", -1))):
                sample_id = str(ann.get("id", ""))
                if ann.get("id") in seen:
                    yield self.rejected(
                        "duplicate_id", f"annotation id {sample_id} appears twice", sample_id, self.options.annotations
                    )
                    continue
                seen.add(ann.get("id"))
                if ann.get("iscrowd", 0) and not self.options.include_crowd:
                    continue
                try:
                    yield self._record(image, ann, person, fits, duplicate_fits, offset)
                except RecordRejected as error:
                    yield self.rejected(error.reason, error.detail, sample_id, self.options.annotations)

    def _orphans(self, coco, person_cats: set) -> Iterator[Item]:
        """A reject for each person annotation whose image_id names no image of the file (NaN, say): pycocotools
        files it under that id, which no image visits, so it would be lost without a word."""
        for image_id, anns in coco.imgToAnns.items():
            if image_id in coco.imgs:
                continue
            for ann in anns:
                if ann.get("category_id") in person_cats:
                    detail = f"image_id {image_id!r} names no image of {self.options.annotations}"
                    yield self.rejected("bad_annotation", detail, str(ann.get("id", "")), self.options.annotations)

    def _record(
        self, image: dict, ann: dict, person: int, fits: dict, duplicate_fits: set, offset: float
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
        if annot_id in duplicate_fits:
            raise RecordRejected("duplicate_id", f"EFT file has several fits for annotation {annot_id}")
        if annot_id in fits:
            fit = parse_fit(fits[annot_id], offset, options.eft_camera)
            return attach_fit(record, fit)
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
