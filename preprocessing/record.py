"""The one sample record that every dataset reader yields, and its validation.

A :class:`SampleRecord` is one person in one image (or video frame) with everything the
preprocessing job needs to make a training sample: where the picture is, the person's square
box, 2D keypoints on SPIN/PARE's 49 joints, optional 3D joints and SMPL fit, and the camera
that projects the fit into the picture. Readers stream records lazily and report bad inputs
as :class:`Rejected` items instead of raising, so that a job over a million inputs goes on
and every input ends up either in a shard or in ``rejects.jsonl`` with a reason.

Conventions (shared with :mod:`preprocessing.render.cameras` and the synthetic layouts):

- 2D points are continuous image coordinates: pixel (row i, column j) spans ``[j, j+1) x
  [i, i+1)``; its centre is ``(j + 0.5, i + 0.5)``. Readers of sources whose pixel centres are
  integers (most annotation tools, OpenCV-style intrinsics) add 0.5.
- Camera frames are OpenCV's (x right, y down, z forward); ``pose[:3]`` is the root rotation
  in that camera frame.
- ``box_size`` is the side of PARE's square person box in image pixels (SPIN/PARE's
  ``scale * 200``, margin already included); the 224 x 224 network crop covers it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

NUM_KEYPOINTS = 49
"""SPIN/PARE's 2D joint set: 25 OpenPose joints, then 24 ground-truth joints."""
NUM_JOINTS_3D = 24
"""SPIN/PARE's 3D ground-truth joints (``S`` in the npz files)."""
GENDERS = ("neutral", "male", "female")
JOINTS_FRAMES = ("root_centred", "camera")
"""Frames of a record's 3D joints: relative to the pelvis (slot 14), or the camera frame (metres from the camera)."""

REJECT_REASONS: dict[str, str] = {
    "bad_annotation": "an annotation field is missing, malformed or has the wrong shape",
    "nan_parameters": "keypoints, joints, pose, shape or camera contain NaN or infinity",
    "bad_box": "the person box has no area or is not finite",
    "box_outside_image": "the person box does not overlap the image",
    "no_visible_keypoints": "too few labelled 2D keypoints",
    "duplicate_id": "another record of the same dataset and split has the same sample key",
    "missing_image": "the image or video file does not exist",
    "corrupt_image": "the image or video frame cannot be decoded",
    "image_outside_root": "the annotation names an image outside the source's root (preprocess.images_outside_root)",
    "unreadable_image": "the image path names a device, FIFO or folder, or an image over PARE_MAX_IMAGE_BYTES "
    "or PARE_MAX_IMAGE_PIXELS",
    "invalid_camera_pose": "the dataset marks the camera pose of this frame invalid for this person (3DPW campose_valid)",
    "no_fit": "the annotation has no matching SMPL fit and the source requires one",
    "not_in_subset": "the record is outside the subset the reader's options keep (humandata: occlusion_only)",
    "poor_fit": "the SMPL fit does not match the 2D keypoints (see preprocess.quality)",
    "empty_source": "the source holds no samples",
}
"""Every reason a record can be rejected for, with what it means (``rejects.jsonl`` uses the keys)."""

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class RecordRejected(Exception):
    """A record cannot become a sample; ``reason`` is a key of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str):
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}; valid reasons: {sorted(REJECT_REASONS)}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def sample_key(dataset: str, split: str, sample_id: str) -> str:
    """Deterministic, dot-free webdataset key ``<dataset>_<split>_<id>``.

    webdataset splits member names at the first dot, so every character outside
    ``[A-Za-z0-9_-]`` (dots, slashes, spaces) becomes ``-``: Human3.6M's
    ``S1_Directions_1.54138969_000001`` becomes ``S1_Directions_1-54138969_000001``.
    """
    parts = (_KEY_UNSAFE.sub("-", str(part)).strip("-") for part in (dataset, split, sample_id))
    return "_".join(parts)


@dataclass(frozen=True)
class ImageRef:
    """Where the picture of a record is: a still image, or frame ``frame`` (0-based) of a video."""

    path: str
    """Local path or fsspec URI of the image or video file."""
    frame: int | None = None
    """Frame index in a video file; ``None`` for still images."""


@dataclass(frozen=True)
class CropCamera:
    """SPIN/PARE/EFT weak-perspective camera ``[s, tx, ty]`` of the 224 crop of a square box.

    The fit's vertices project as ``f (X + t) / (Z + t_z)`` with ``t = [tx, ty, 2 f / (224 s)]``,
    ``f = 5000``, principal point at the crop centre (see
    :func:`preprocessing.render.cameras.weak_perspective_to_screen`).
    """

    cam: np.ndarray
    """(3,) ``[s, tx, ty]``."""
    center: np.ndarray
    """(2,) centre of the box the camera's crop covers, image pixels."""
    box_size: float
    """Side of that box in image pixels."""


@dataclass(frozen=True)
class PerspectiveCamera:
    """A pinhole camera in source-image pixels and where the body sits in its frame.

    The body posed with the record's pose (root already in the camera frame) lands in the
    camera frame as ``body(pose, betas) + translation + (R - I) j0``, where ``j0`` is the rest
    root joint of the shaped body and ``R`` is ``frame_rotation`` (identity when ``None``).
    ``frame_rotation`` serves fits made in another frame: 3DPW's world frame, where the root
    rotation ``R_w`` and translation ``t_w`` became ``R R_w`` and ``R t_w + t`` with the
    world-to-camera pose ``(R, t)``. SMPL rotates about ``j0``, so the translation also gains
    ``(R - I) j0``, which needs the body model: the job adds it, readers need not.
    """

    intrinsics: np.ndarray
    """(3, 3) ``K`` in continuous pixel coordinates (principal point in the +0.5 convention)."""
    translation: np.ndarray | None = None
    """(3,) metres; ``None`` lets the job fit it to the 3D joints (if any) or the 2D keypoints."""
    frame_rotation: np.ndarray | None = None
    """(3, 3) rotation that took the fit's frame into the camera frame, or ``None``."""


Camera = CropCamera | PerspectiveCamera


@dataclass
class SampleRecord:
    """One person in one picture, as every reader yields it.

    Arrays are float; ``None`` means "not annotated" and turns the matching ``has_*`` flag off.
    """

    dataset: str
    """Dataset name, e.g. ``coco-eft``, ``3dpw``, ``h36m``; first part of the sample key."""
    split: str
    """``train``, ``validation`` or ``test`` (or a protocol name such as ``p2``)."""
    sample_id: str
    """Identifier unique within the dataset and split (annotation id, frame name ...)."""
    image: ImageRef
    center: np.ndarray
    """(2,) person box centre, image pixels."""
    box_size: float
    """Square person box side in image pixels (SPIN/PARE ``scale * 200``)."""
    keypoints_2d: np.ndarray
    """(49, 3) SPIN joints: x, y image pixels and confidence (0 = not labelled)."""
    joints_3d: np.ndarray | None = None
    """(24, 4) SPIN ground-truth 3D joints (``docs/data-formats.md`` names each slot), metres, axes of the camera
    frame, last column validity; the origin is ``joints_frame``'s."""
    joints_frame: str = "root_centred"
    """Frame of ``joints_3d``: ``root_centred`` (pelvis, slot 14, at the origin, as SPIN's and mmhuman3d's files)
    or ``camera`` (the camera at the origin; only then may the joints place the fit in the picture)."""
    pose: np.ndarray | None = None
    """(72,) SMPL axis-angle pose, root in the camera frame."""
    betas: np.ndarray | None = None
    """(10,) SMPL shape."""
    gender: str = "neutral"
    """Body model the fit belongs to: ``neutral``, ``male`` or ``female``."""
    camera: Camera | None = None
    """How the fit projects into the picture; ``None`` lets the job fit a crop camera to the keypoints."""
    image_size: tuple[int, int] | None = None
    """(height, width) when the annotation states it."""
    source: str = ""
    """Annotation file the record came from, relative to the source root."""
    person_index: int = 0
    """Index of the person within the picture."""
    fit_source: str = ""
    """Where the SMPL fit comes from (``eft``, ``mosh``, ``3dpw``, ``npz``, ``synthetic``); empty without one."""
    extra: dict[str, str | int | float] = field(default_factory=dict)
    """Provenance the source provides (annotation id, sequence, frame id ...), kept in the sample."""

    @property
    def key(self) -> str:
        """The sample's dot-free webdataset key."""
        return sample_key(self.dataset, self.split, self.sample_id)

    @property
    def has_smpl(self) -> bool:
        return self.pose is not None and self.betas is not None

    @property
    def has_joints_3d(self) -> bool:
        return self.joints_3d is not None and bool((self.joints_3d[:, 3] > 0).any())


@dataclass(frozen=True)
class Rejected:
    """An input a reader could not turn into a record, with the reason."""

    reason: str
    """A key of :data:`REJECT_REASONS`."""
    detail: str
    """What exactly is wrong, for a human."""
    dataset: str
    split: str
    sample_id: str
    """The input's identifier as far as it could be read (may be empty)."""
    source: str = ""
    """Annotation file the input came from."""

    def __post_init__(self):
        if self.reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {self.reason!r}; valid reasons: {sorted(REJECT_REASONS)}")

    def to_json(self) -> dict:
        """The ``rejects.jsonl`` line of this input."""
        return {
            "key": sample_key(self.dataset, self.split, self.sample_id) if self.sample_id else "",
            "dataset": self.dataset,
            "split": self.split,
            "sample_id": self.sample_id,
            "source": self.source,
            "reason": self.reason,
            "detail": self.detail,
        }


def reject(record: SampleRecord, error: RecordRejected) -> Rejected:
    """The :class:`Rejected` item of ``record`` for ``error``."""
    return Rejected(error.reason, error.detail, record.dataset, record.split, record.sample_id, record.source)


def _check_array(name: str, value: np.ndarray | None, shape: tuple[int, ...]) -> None:
    if value is None:
        return
    if not isinstance(value, np.ndarray) or value.shape != shape:
        got = value.shape if isinstance(value, np.ndarray) else type(value).__name__
        raise RecordRejected("bad_annotation", f"{name} must have shape {shape}, got {got}")
    if not np.isfinite(value).all():
        raise RecordRejected("nan_parameters", f"{name} contains NaN or infinity")


def _check_camera(camera: Camera | None) -> None:
    if isinstance(camera, CropCamera):
        _check_array("camera.cam", camera.cam, (3,))
        _check_array("camera.center", camera.center, (2,))
        if not (np.isfinite(camera.box_size) and camera.box_size > 0 and camera.cam[0] > 0):
            raise RecordRejected("nan_parameters", f"crop camera needs s > 0 and a box > 0, got {camera}")
    elif isinstance(camera, PerspectiveCamera):
        _check_array("camera.intrinsics", camera.intrinsics, (3, 3))
        _check_array("camera.translation", camera.translation, (3,))
        _check_array("camera.frame_rotation", camera.frame_rotation, (3, 3))
    elif camera is not None:
        raise RecordRejected("bad_annotation", f"unknown camera type {type(camera).__name__}")


def validate_record(record: SampleRecord, min_keypoints: int = 1) -> None:
    """Raise :class:`RecordRejected` if ``record`` cannot become a sample.

    Checks shapes and finiteness of every array, the gender, that the box has area and
    overlaps the image when its size is known, and that at least ``min_keypoints`` 2D
    keypoints are labelled (unless the record has 3D joints: SPIN's Human3.6M validation files hold
    no 2D keypoints).
    """
    _check_array("center", record.center, (2,))
    _check_array("keypoints_2d", record.keypoints_2d, (NUM_KEYPOINTS, 3))
    _check_array("joints_3d", record.joints_3d, (NUM_JOINTS_3D, 4))
    _check_array("pose", record.pose, (72,))
    _check_array("betas", record.betas, (10,))
    if (record.pose is None) != (record.betas is None):
        raise RecordRejected("bad_annotation", "an SMPL fit needs both pose and betas")
    _check_camera(record.camera)
    if record.joints_frame not in JOINTS_FRAMES:
        raise RecordRejected("bad_annotation", f"joints_frame {record.joints_frame!r} is not one of {JOINTS_FRAMES}")
    if record.gender not in GENDERS:
        raise RecordRejected("bad_annotation", f"gender {record.gender!r} is not one of {GENDERS}")
    if not (np.isfinite(record.box_size) and record.box_size > 1.0):
        raise RecordRejected("bad_box", f"box side {record.box_size} px")
    if record.image_size is not None:
        height, width = record.image_size
        half = record.box_size / 2.0
        x, y = record.center
        if x + half <= 0 or y + half <= 0 or x - half >= width or y - half >= height:
            raise RecordRejected(
                "box_outside_image",
                f"box centre ({x:.1f}, {y:.1f}) side {record.box_size:.1f} in a {width}x{height} image",
            )
    labelled = int((record.keypoints_2d[:, 2] > 0).sum())
    if labelled < min_keypoints and not record.has_joints_3d:  # 3D joints alone are ground truth enough
        raise RecordRejected("no_visible_keypoints", f"{labelled} labelled keypoints, need {min_keypoints}")
