"""MPII Human Pose (``mpii``): the official ``.mat``, the stacked-hourglass ``.h5`` or the JSON list.

The format follows the annotation file's extension. Joints (MPII's 16, ids 0..15) land on
SPIN's ground-truth joints. Boxes get MPII's usual adjustment, as SPIN and the stacked
hourglass code do: ``objpos.y += 15 scale`` and ``scale *= 1.25`` (the ``.h5`` files are
already adjusted), then ``box side = scale * 200``. Coordinates are taken as the files give
them (the JSON and ``.h5`` conversions copy the ``.mat`` values), plus the pixel offset.

From the ``.mat``, the ``train`` split holds the ``img_train == 1`` people with joints; the
official test people (``img_train == 0``) have no joints and are not read. MPII has no SMPL
fits of its own; EFT's MPII fits are not joined yet (use ``coco_eft``-style EFT files with the
``spin_npz`` reader's npz made by EFT, or train MPII as 2D-only).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from preprocessing.keypoints import MPII16_TO_SPIN, spin_indices
from preprocessing.readers.base import Item, Reader, pixel_offset
from preprocessing.readers.eft import read_json
from preprocessing.readers.files import SourceError
from preprocessing.record import ImageRef, RecordRejected, SampleRecord

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
        return [self.options.annotations]

    def check(self) -> None:
        if not self.options.annotations.endswith((".mat", ".h5", ".json")):
            raise SourceError(f"mpii annotations must be a .mat, .h5 or .json file, got {self.options.annotations!r}")
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
        for person in self.people():
            if isinstance(person, RecordRejected):
                yield self.rejected(person.reason, person.detail, "", source)
                continue
            sample_id = f"{person.image.rsplit('.', 1)[0]}_{person.person}"
            if person.labelled.sum() < self.options.min_keypoints:
                detail = f"{int(person.labelled.sum())} labelled joints, need {self.options.min_keypoints} (options.min_keypoints)"
                yield self.rejected("no_visible_keypoints", detail, sample_id, source)
                continue
            keypoints = np.zeros((49, 3))
            keypoints[MPII_TO_SPIN, :2] = np.where(person.labelled[:, None], person.joints + offset, 0.0)
            keypoints[MPII_TO_SPIN, 2] = person.labelled
            yield SampleRecord(
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
