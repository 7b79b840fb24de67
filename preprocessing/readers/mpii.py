"""MPII Human Pose (``mpii``): the official ``.mat``, the stacked-hourglass ``.h5`` or the JSON list.

The format follows the annotation file's extension. Joints (MPII's 16, ids 0..15) land on
SPIN's ground-truth joints. Boxes get MPII's usual adjustment, as SPIN and the stacked
hourglass code do: ``objpos.y += 15 scale`` and ``scale *= 1.25`` (the ``.h5`` files are
already adjusted), then ``box side = scale * 200``. Coordinates are taken as the files give
them (the JSON and ``.h5`` conversions copy the ``.mat`` values), plus the pixel offset.

From the ``.mat``, the ``train`` split holds the ``img_train == 1`` people with joints; the
official test people (``img_train == 0``) have no joints and are not read.

MPII has no SMPL fits of its own. ``options.eft`` joins EFT's MPII fits (``MPII_ver01.json``,
the layout of :mod:`.eft`): EFT's file has no annotation ids, so a fit belongs to the person of
the same image (``imageName``) whose joints its ``gt_keypoint_2d`` repeats. Per image, the
pairs are taken closest first; a pair counts when the mean distance over the joints both label
is at most ``max_join_distance`` times the person's box side. A joined person takes the fit,
its camera, box and OpenPose keypoints (as ``coco_eft`` does); a person without a fit stays
2D-only, or is rejected (``no_fit``) with ``require_fit``. Fits that match nobody are counted
in a warning, not dropped silently. The ``lspet`` reader joins EFT's LSPet fits the same way.
"""

from __future__ import annotations

import logging
import posixpath
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from preprocessing.keypoints import MPII16_TO_SPIN, spin_indices
from preprocessing.readers.base import Item, Reader, pixel_offset
from preprocessing.readers.eft import (
    EftFit,
    attach_fit,
    check_camera_option,
    fits_by_image,
    join_by_keypoints,
    read_json,
)
from preprocessing.readers.files import SourceError
from preprocessing.record import ImageRef, RecordRejected, SampleRecord

log = logging.getLogger(__name__)

MPII_TO_SPIN = spin_indices(MPII16_TO_SPIN)


@dataclass(frozen=True)
class MpiiOptions:
    """Options of the ``mpii`` reader."""

    annotations: str = "mpii_human_pose_v1_u12_1.mat"
    """Annotation file relative to the root: ``.mat`` (official), ``.h5`` (stacked hourglass) or ``.json`` (list form)."""
    images: str = "images"
    """Image folder, relative to the root."""
    min_keypoints: int = 4
    """Fewest labelled joints a person needs."""
    eft: str = ""
    """EFT's MPII fit file (e.g. ``eft_fits/MPII_ver01.json``), relative to the root; empty: 2D joints only."""
    require_fit: bool = False
    """With ``eft`` set, reject people that no fit joins (``no_fit``) instead of keeping them 2D-only."""
    max_join_distance: float = 0.05
    """Largest mean joint distance, as a fraction of the box side, at which a fit joins a person."""
    eft_camera: str = "spin"
    """Convention of EFT's ``parm_cam``: ``spin`` or ``eft_visualizer`` (see :mod:`preprocessing.readers.eft`)."""
    pixel_offset: float | None = None
    """Added to every coordinate; None: 0.5 for real data, 0 for ``pare synth`` output."""


@dataclass(frozen=True)
class MpiiPerson:
    """One person as every MPII format describes it."""

    image: str
    center: np.ndarray  # (2,) adjusted box centre
    scale: float  # adjusted, box side / 200
    joints: np.ndarray  # (16, 2)
    labelled: np.ndarray  # (16,) bool
    person: int


def _adjust(center, scale) -> tuple[np.ndarray, float]:
    center = np.asarray(center, np.float64).reshape(2).copy()
    center[1] += 15.0 * float(scale)
    return center, float(scale) * 1.25


def _as_list(value) -> list:
    """A loadmat struct array with ``squeeze_me=True`` collapses one element to a scalar; undo it."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.reshape(-1))
    return [value]


class MpiiReader(Reader):
    """MPII Human Pose 2D joints from the official .mat, the stacked-hourglass .h5 or the JSON list."""

    name = "mpii"
    default_dataset = "mpii"
    Options = MpiiOptions

    def annotation_files(self) -> list[str]:
        return [self.options.annotations] + ([self.options.eft] if self.options.eft else [])

    def check(self) -> None:
        if not self.options.annotations.endswith((".mat", ".h5", ".json")):
            raise SourceError(f"mpii annotations must be a .mat, .h5 or .json file, got {self.options.annotations!r}")
        check_camera_option(self.options.eft_camera)
        super().check()

    def people(self) -> Iterator[MpiiPerson | RecordRejected]:
        relative = self.options.annotations
        if relative.endswith(".json"):
            yield from self._json(read_json(self.files, relative, "MPII annotation file"))
        elif relative.endswith(".h5"):
            yield from self._h5(self.files.local_path(relative))
        else:
            yield from self._mat(self.files.local_path(relative))

    def _json(self, entries) -> Iterator[MpiiPerson | RecordRejected]:
        if not isinstance(entries, list):
            raise SourceError(f"{self.options.annotations} must hold a JSON list of people")
        counts: dict[str, int] = {}
        for entry in entries:
            try:
                image = str(entry["image"])
                center, scale = _adjust(entry["center"], entry["scale"])
                joints = np.asarray(entry["joints"], np.float64).reshape(16, 2)
                labelled = np.asarray(entry["joints_vis"]).reshape(16) > 0
            except (KeyError, TypeError, ValueError) as error:
                yield RecordRejected("bad_annotation", f"JSON entry {str(entry)[:80]}: {error}")
                continue
            counts[image] = counts.get(image, -1) + 1
            yield MpiiPerson(image, center, scale, joints, labelled & (joints >= 0).all(axis=1), counts[image])

    def _h5(self, path: str) -> Iterator[MpiiPerson]:
        import h5py

        with h5py.File(path, "r") as f:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["imgname"][:]]
            centers, scales, parts, visible = f["center"][:], f["scale"][:], f["part"][:], f["visible"][:]
            persons = f["person"][:] if "person" in f else np.zeros(len(names))
        for k, name in enumerate(names):
            labelled = (visible[k] > 0) | (parts[k] > 0).all(axis=1)
            yield MpiiPerson(
                name,
                centers[k].astype(np.float64),
                float(scales[k]),
                parts[k].astype(np.float64),
                labelled,
                int(persons[k]),
            )

    def _mat(self, path: str) -> Iterator[MpiiPerson | RecordRejected]:
        import scipy.io

        release = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)["RELEASE"]
        train = np.asarray(release.img_train).reshape(-1)
        for index, entry in enumerate(_as_list(release.annolist)):
            if self.split == "train" and not train[index]:
                continue
            image = str(entry.image.name)
            for person, rect in enumerate(_as_list(getattr(entry, "annorect", None))):
                points = _as_list(getattr(getattr(rect, "annopoints", None), "point", None))
                if not points or not hasattr(rect, "objpos"):
                    continue  # no joints (test people, or a head box only)
                joints, labelled = np.zeros((16, 2)), np.zeros(16, bool)
                for point in points:
                    joint = int(point.id)
                    joints[joint] = (float(point.x), float(point.y))
                    labelled[joint] = (
                        True  # annotated; is_visible (a number, a string or empty) is not used, as in SPIN
                    )
                center, scale = _adjust([rect.objpos.x, rect.objpos.y], rect.scale)
                yield MpiiPerson(image, center, scale, joints, labelled, person)

    def records(self) -> Iterator[Item]:
        offset = pixel_offset(self.files, self.options.pixel_offset)
        source = self.options.annotations
        fits = fits_by_image(self.files, self.options.eft, offset, self.options.eft_camera) if self.options.eft else {}
        by_image: dict[str, list[MpiiPerson]] = defaultdict(list)
        for person in self.people():
            if isinstance(person, RecordRejected):
                yield self.rejected(person.reason, person.detail, "", source)
            else:
                by_image[person.image].append(person)
        joined_fits = 0
        for image, people in by_image.items():
            keypoints = [(self._keypoints(person, offset), person.scale * 200.0) for person in people]
            joined = join_by_keypoints(
                keypoints, fits.get(posixpath.basename(image), []), self.options.max_join_distance
            )
            joined_fits += sum(fit is not None for fit in joined)
            for person, fit in zip(people, joined, strict=True):
                yield self._item(person, fit, offset, source)
        unmatched = sum(len(image_fits) for image_fits in fits.values()) - joined_fits
        if unmatched:
            log.warning("%d EFT fits in %s matched no MPII person of split %s", unmatched, self.options.eft, self.split)

    @staticmethod
    def _keypoints(person: MpiiPerson, offset: float) -> np.ndarray:
        """(49, 3) SPIN keypoints of the person's labelled joints (+ offset)."""
        keypoints = np.zeros((49, 3))
        keypoints[MPII_TO_SPIN, :2] = np.where(person.labelled[:, None], person.joints + offset, 0.0)
        keypoints[MPII_TO_SPIN, 2] = person.labelled
        return keypoints

    def _item(self, person: MpiiPerson, fit: EftFit | None, offset: float, source: str) -> Item:
        sample_id = f"{person.image.rsplit('.', 1)[0]}_{person.person}"
        if person.labelled.sum() < self.options.min_keypoints:
            detail = f"{int(person.labelled.sum())} labelled joints, need {self.options.min_keypoints} (options.min_keypoints)"
            return self.rejected("no_visible_keypoints", detail, sample_id, source)
        if fit is None and self.options.eft and self.options.require_fit:
            detail = f"no EFT fit in {self.options.eft} matches this person (options.require_fit)"
            return self.rejected("no_fit", detail, sample_id, source)
        keypoints = self._keypoints(person, offset)
        record = SampleRecord(
            dataset=self.dataset,
            split=self.split,
            sample_id=sample_id,
            image=ImageRef(self.files.url(f"{self.options.images}/{person.image}")),
            center=person.center + offset,
            box_size=person.scale * 200.0,
            keypoints_2d=keypoints,
            source=source,
            person_index=person.person,
            extra={"image": person.image},
        )
        return record if fit is None else attach_fit(record, fit)
