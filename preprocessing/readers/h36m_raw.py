"""Human3.6M as released: videos, CDF poses, calibration and MoSh fits (``h36m``).

Layout under the root, per subject ``S<k>`` (``docs/data-formats.md``):

- ``S1/MyPoseFeatures/D3_Positions_mono/<Action>.<camera>.cdf``: variable ``Pose``, (F, 96),
  32 joints in millimetres in that camera's frame (read with ``cdflib``); files named
  ``_ALL...`` are skipped, as in SPIN's and mmhuman3d's converters;
- ``S1/MyPoseFeatures/D2_Positions/<Action>.<camera>.cdf`` (optional): (F, 64) pixels; without
  it the 3D joints are projected through the camera with its lens distortion;
- ``S1/Videos/<Action>.<camera>.mp4``: the frames, decoded by the job (every ``every``-th frame,
  0-based; SPIN keeps every 5th);
- ``options.cameras``: the cameras pickle or ``metadata.xml`` (:mod:`.h36m_cameras`);
- ``options.mosh`` (optional): ``<mosh>/S1/<Action>_cam<k>_aligned.pkl`` with ``new_poses``
  (one 72-d row per 5th frame) and ``betas``, ``k`` the camera's index in
  :data:`~.h36m_cameras.CAMERA_IDS`. MoSh's root is in a y-up frame: the reader turns it into
  the camera frame by rotating it pi about x (``R_root @ R_x(pi)``), as SPIN does.

Each kept frame becomes one record: the 17 annotated joints (subset
``[11, 6, 7, 8, 1, 2, 3, 12, 24, 14, 15, 17, 18, 19, 25, 26, 27]`` of the 32) as SPIN
ground-truth joints (SPIN's slots: thorax in 12, neck/nose in 17, head in 18, 13 empty), 2D with
visibility 1 and 3D in metres in the camera frame (``joints_frame`` ``camera``: not root-centred, so that
the job can place the fit with them); the box is the tight box of the 2D
joints, its side ``box_scale`` times the longer side; the camera is the pinhole of the
calibration (the job's renders ignore the small lens distortion). Sample ids are SPIN's frame
names, ``S1_Directions_1.54138969_000001`` (frame numbers 1-based), so the records line up with
``h36m_npz`` files.

Splits: ``train`` is S1, S5, S6, S7, S8 (all cameras); ``test`` is S9, S11 with only the frontal
camera 60457274 under protocol 2 (``protocol: 1`` keeps all four). Frames whose 3D joints hold
NaN are rejected (``nan_parameters``); a frame past the end of its MoSh file keeps its joints
but has no fit (``extra["fit_missing"]``). A camera missing from the calibration rejects that
sequence's frames (``bad_annotation``). An unreadable CDF, calibration or MoSh file raises
:class:`~preprocessing.readers.files.SourceError` naming it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

import cdflib
import numpy as np
from scipy.spatial.transform import Rotation

from pare_model.errors import PickleLoadError
from pare_model.safe_pickle import load_pickle
from preprocessing.keypoints import H36M17_TO_SPIN_GT, NUM_GT, NUM_OPENPOSE, gt_indices
from preprocessing.readers.base import Item, Reader, pixel_offset
from preprocessing.readers.files import SourceError
from preprocessing.readers.h36m_cameras import (
    CAMERA_IDS,
    FRONTAL_CAMERA,
    TEST_SUBJECTS,
    TRAIN_SUBJECTS,
    H36mCamera,
    load_cameras,
)
from preprocessing.record import GENDERS, ImageRef, PerspectiveCamera, RecordRejected, SampleRecord

H36M32_TO_17 = np.array([11, 6, 7, 8, 1, 2, 3, 12, 24, 14, 15, 17, 18, 19, 25, 26, 27])
"""The 17 annotated joints among the 32 of the CDF files, in SPIN's Human3.6M order."""
MOSH_ADVICE = (
    "MoSh fits of Human3.6M hold only such arrays: get the file again from where it came from and check that it "
    "was not replaced."
)
GT_INDICES = gt_indices(H36M17_TO_SPIN_GT)
MOSH_ROOT_FIX = Rotation.from_rotvec([np.pi, 0.0, 0.0])
MOSH_STEP = 5
"""MoSh's ``new_poses`` hold one row per 5th video frame."""


@dataclass(frozen=True)
class H36mOptions:
    """Options of the ``h36m`` reader."""

    cameras: str = "metadata.xml"
    """Calibration relative to the root: Human3.6M's ``metadata.xml`` or a cameras pickle (``*.pkl``)."""
    mosh: str = ""
    """Folder of the MoSh fits (``<mosh>/S1/<Action>_cam<k>_aligned.pkl``), relative to the root; empty: no fits."""
    subjects: str = ""
    """Comma-separated subjects to read; empty: the split's (train S1, S5-S8; test S9, S11)."""
    protocol: int = 2
    """Test protocol: 2 keeps the frontal camera 60457274 only, 1 all four."""
    every: int = 5
    """Keep frames 0, every, 2 every, ... of each video (SPIN: 5). Fits exist only on multiples of 5."""
    box_scale: float = 1.2
    """Person box side / the longer side of the 2D joints' tight box."""
    gender: str = "neutral"
    """Body model of the MoSh fits (SPIN and PARE use the neutral model for Human3.6M)."""
    pixel_offset: float | None = None
    """Added to 2D joints and the principal point; None: 0.5 for real data, 0 for ``pare synth`` output."""

    def __post_init__(self):
        if self.protocol not in (1, 2):
            raise ValueError(f"protocol must be 1 or 2, got {self.protocol}")
        if self.every < 1:
            raise ValueError(f"every must be a positive frame step, got {self.every}")
        if self.gender not in GENDERS:
            raise ValueError(f"gender must be one of {GENDERS}, got {self.gender!r}")


@dataclass(frozen=True)
class MoshFit:
    """A sequence's MoSh fit: (N, 72) poses with the root in the camera frame, (10,) betas."""

    poses: np.ndarray
    betas: np.ndarray


def sequence_name(cdf: str) -> tuple[str, str]:
    """(action, camera id) of ``.../Directions 1.54138969.cdf``."""
    stem = posixpath.basename(cdf)[: -len(".cdf")]
    action, _, camera = stem.rpartition(".")
    return action, camera


def read_cdf_poses(path: str, width: int, where: str) -> np.ndarray:
    """(F, ``width``) float64 ``Pose`` of a Human3.6M CDF file."""
    try:
        pose = np.asarray(cdflib.CDF(path).varget("Pose"), dtype=np.float64)
    except Exception as error:  # cdflib raises bare Exceptions, OSError, ValueError ...
        raise SourceError(f"cannot read the Pose variable of {where}: {error}") from None
    if pose.size % width or pose.ndim not in (2, 3):
        raise SourceError(f"{where}: Pose has shape {pose.shape}, expected (1, F, {width})")
    return pose.reshape(-1, width)


def mosh_root_to_camera(poses: np.ndarray) -> np.ndarray:
    """(N, 72) MoSh poses with the root turned into the camera frame (``R_root @ R_x(pi)``)."""
    poses = np.array(poses, dtype=np.float64)
    poses[:, :3] = (Rotation.from_rotvec(poses[:, :3]) * MOSH_ROOT_FIX).as_rotvec()
    return poses


class H36mRawReader(Reader):
    """Human3.6M videos with ``D3_Positions_mono`` poses, calibration and optional MoSh fits."""

    name = "h36m"
    default_dataset = "h36m"
    splits = ("train", "test")
    Options = H36mOptions

    def subjects(self) -> tuple[str, ...]:
        if self.options.subjects:
            return tuple(s.strip() for s in self.options.subjects.split(",") if s.strip())
        return TRAIN_SUBJECTS if self.split == "train" else TEST_SUBJECTS

    def keeps_camera(self, camera: str) -> bool:
        return self.split == "train" or self.options.protocol == 1 or camera == FRONTAL_CAMERA

    def pose_files(self) -> list[str]:
        """The split's ``D3_Positions_mono`` files, sorted, without ``_ALL`` and protocol-2's other cameras."""
        files = []
        for subject in self.subjects():
            for cdf in self.files.glob(f"{subject}/MyPoseFeatures/D3_Positions_mono/*.cdf"):
                action, camera = sequence_name(cdf)
                if not action.startswith("_ALL") and self.keeps_camera(camera):
                    files.append(cdf)
        return files

    def mosh_file(self, subject: str, action: str, camera: str) -> str | None:
        if not self.options.mosh or camera not in CAMERA_IDS:
            return None
        return f"{self.options.mosh}/{subject}/{action}_cam{CAMERA_IDS.index(camera)}_aligned.pkl"

    def annotation_files(self) -> list[str]:
        files = [self.options.cameras]
        for cdf in self.pose_files():
            subject = cdf.split("/", 1)[0]
            action, camera = sequence_name(cdf)
            files.append(cdf)
            mosh = self.mosh_file(subject, action, camera)
            if mosh is not None and self.files.exists(mosh):
                files.append(mosh)
        return files

    def check(self) -> None:
        super().check()
        if self.options.mosh:
            self.files.require(self.options.mosh, "MoSh folder", "Set options.mosh to the folder of S*/ MoSh fits.")
        if not self.pose_files():
            raise SourceError(
                f"no D3_Positions_mono .cdf files for subjects {list(self.subjects())} under {self.files.uri}: "
                "point root at the Human3.6M folder holding S1/, S5/, ... (or set options.subjects)"
            )

    def load_mosh(self, relative: str) -> MoshFit:
        url = self.files.url(relative)
        try:
            data = load_pickle(self.files.local_path(relative), advice=MOSH_ADVICE)
        except PickleLoadError as error:
            raise SourceError(f"cannot read the MoSh fit {url}: {error}") from None
        if not isinstance(data, dict) or "new_poses" not in data or "betas" not in data:
            raise SourceError(f"{url} is not a MoSh fit: it needs 'new_poses' and 'betas'")
        poses = np.asarray(data["new_poses"], dtype=np.float64)
        betas = np.asarray(data["betas"], dtype=np.float64).reshape(-1)
        if poses.ndim != 2 or poses.shape[1] != 72 or betas.size < 10:
            raise SourceError(f"{url}: new_poses {poses.shape} / betas {betas.shape}, expected (N, 72) / (>= 10,)")
        return MoshFit(mosh_root_to_camera(poses), betas[:10])

    def records(self) -> Iterator[Item]:
        cameras = load_cameras(self.files, self.options.cameras)
        offset = pixel_offset(self.files, self.options.pixel_offset)
        for cdf in self.pose_files():
            yield from self._sequence(cdf, cameras, offset)

    def _sequence(self, cdf: str, cameras: dict, offset: float) -> Iterator[Item]:
        subject = cdf.split("/", 1)[0]
        action, camera_id = sequence_name(cdf)
        stem = f"{subject}_{action.replace(' ', '_')}.{camera_id}"
        joints = read_cdf_poses(self.files.local_path(cdf), 96, self.files.url(cdf)).reshape(-1, 32, 3)
        frames = range(0, len(joints), self.options.every)
        camera = cameras.get((subject, camera_id))
        if camera is None:
            for f in frames:
                detail = f"{self.options.cameras} has no camera ({subject}, {camera_id})"
                yield self.rejected("bad_annotation", detail, f"{stem}_{f + 1:06d}", cdf)
            return
        d2 = f"{subject}/MyPoseFeatures/D2_Positions/{posixpath.basename(cdf)}"
        pixels = None
        if self.files.exists(d2):
            pixels = read_cdf_poses(self.files.local_path(d2), 64, self.files.url(d2)).reshape(-1, 32, 2)
            if len(pixels) != len(joints):
                raise SourceError(f"{self.files.url(d2)} has {len(pixels)} frames, {cdf} has {len(joints)}")
        mosh_file = self.mosh_file(subject, action, camera_id)
        fit = self.load_mosh(mosh_file) if mosh_file is not None and self.files.exists(mosh_file) else None
        video = self.files.url(f"{subject}/Videos/{action}.{camera_id}.mp4")
        for f in frames:
            sample_id = f"{stem}_{f + 1:06d}"
            try:
                record = self._record(joints[f], None if pixels is None else pixels[f], camera, offset, f, fit)
            except RecordRejected as error:
                yield self.rejected(error.reason, error.detail, sample_id, cdf)
                continue
            yield SampleRecord(
                dataset=self.dataset,
                split=self.split,
                sample_id=sample_id,
                image=ImageRef(video, frame=f),
                camera=PerspectiveCamera(camera.intrinsics(offset)),
                image_size=camera.image_size,
                source=cdf,
                person_index=0,
                extra={"subject": subject, "action": action, "camera": camera_id, "frame": f + 1}
                | ({"fit_missing": True} if fit is not None and record["pose"] is None else {}),
                **record,
            )

    def _record(self, joints32, pixels32, camera: H36mCamera, offset: float, f: int, fit: MoshFit | None) -> dict:
        """The frame-dependent fields of one record, or :class:`RecordRejected`."""
        points = joints32[H36M32_TO_17] / 1000.0
        if not np.isfinite(points).all() or (pixels32 is not None and not np.isfinite(pixels32).all()):
            raise RecordRejected("nan_parameters", f"the joints of frame {f} hold NaN or infinity")
        if (points[:, 2] <= 0).any():
            raise RecordRejected("bad_annotation", f"a joint of frame {f} is behind the camera")
        xy = camera.project(points, offset) if pixels32 is None else pixels32[H36M32_TO_17] + offset
        keypoints = np.zeros((NUM_OPENPOSE + NUM_GT, 3))
        keypoints[NUM_OPENPOSE + GT_INDICES] = np.concatenate([xy, np.ones((17, 1))], axis=1)
        joints_3d = np.zeros((NUM_GT, 4))
        joints_3d[GT_INDICES] = np.concatenate([points, np.ones((17, 1))], axis=1)
        low, high = xy.min(axis=0), xy.max(axis=0)
        row = f // MOSH_STEP
        has_fit = fit is not None and f % MOSH_STEP == 0 and row < len(fit.poses)
        if has_fit and not np.isfinite(fit.poses[row]).all():
            raise RecordRejected("nan_parameters", f"the MoSh pose of frame {f} holds NaN or infinity")
        return {
            "center": (low + high) / 2.0,
            "box_size": float(self.options.box_scale * (high - low).max()),
            "keypoints_2d": keypoints,
            "joints_3d": joints_3d,
            "joints_frame": "camera",
            "pose": fit.poses[row].copy() if has_fit else None,
            "betas": fit.betas.copy() if has_fit else None,
            "gender": self.options.gender if has_fit else "neutral",
            "fit_source": "mosh" if has_fit else "",
        }
