"""3DPW sequence pickles and frames (``3dpw``), all three splits.

Per sequence ``sequenceFiles/<split>/<seq>.pkl`` (read with the restricted unpickler, latin1)
and ``imageFiles/<seq>/image_%05d.jpg``. Each frame's actors, in order, become records:

- the global orientation is rotated into the camera frame with ``R = cam_poses[f][:3, :3]``;
  the camera is the pinhole ``cam_intrinsics`` with translation ``R trans + t`` and
  ``frame_rotation = R`` (the job adds ``(R - I) j0``, see
  :class:`~preprocessing.record.PerspectiveCamera`), so the fit lands where 3DPW's own
  projection puts it;
- keypoints are ``poses2d`` (OpenPose-18) on SPIN's OpenPose joints; the box is their tight
  box squared and enlarged 1.2 times (SPIN's 3DPW preprocessing);
- the gender selects the body model; frames whose ``campose_valid`` is 0 for an actor are
  rejected with the reason ``invalid_camera_pose``.

3DPW's ``jointPositions`` are SMPL's kinematic joints, not SPIN's ground-truth joints, so
``joints_3d`` stays empty; evaluation uses the fit's own joints, as SPIN and PARE do.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from pare_model.safe_pickle import load_pickle
from preprocessing.crop import square_box
from preprocessing.keypoints import OPENPOSE18_TO_SPIN, spin_indices
from preprocessing.readers.base import Item, Reader, pixel_offset
from preprocessing.readers.files import SourceError, open_url
from preprocessing.record import ImageRef, PerspectiveCamera, RecordRejected, SampleRecord

OPENPOSE_TO_SPIN = spin_indices(OPENPOSE18_TO_SPIN)
GENDERS = {"m": "male", "f": "female"}
OCCLUSION_SEQUENCES = (
    "courtyard_backpack", "courtyard_basketball", "courtyard_bodyScannerMotions", "courtyard_box",
    "courtyard_golf", "courtyard_jacket", "courtyard_laceShoe", "downtown_stairs", "flat_guitar",
    "flat_packBags", "outdoors_climbing", "outdoors_crosscountry", "outdoors_fencing",
    "outdoors_freestyle", "outdoors_golf", "outdoors_parcours", "outdoors_slalom",
)  # fmt: skip
"""3DPW-OCC: test sequences whose names start with one of these (PARE's occlusion subset)."""
REQUIRED = ("sequence", "genders", "betas", "poses", "trans", "poses2d", "cam_poses", "campose_valid", "cam_intrinsics")


@dataclass(frozen=True)
class Pw3dOptions:
    """Options of the ``3dpw`` reader."""

    occlusion_only: bool = False
    """Keep only the 3DPW-OCC sequences (PARE's occlusion subset of the test split)."""
    sequences: str = "sequenceFiles"
    """Folder of the split folders of sequence pickles, relative to the root."""
    images: str = "imageFiles"
    """Folder of the per-sequence frame folders, relative to the root."""
    box_scale: float = 1.2
    """Person box side / the extent of the 2D keypoints."""
    pixel_offset: float | None = None
    """Added to every coordinate and the principal point; None: 0.5 for real data, 0 for ``pare synth`` output."""


class Pw3dReader(Reader):
    """3DPW sequence pickles (SMPL fits, cameras, 2D poses) and their frames."""

    name = "3dpw"
    default_dataset = "3dpw"
    Options = Pw3dOptions

    def sequence_files(self) -> list[str]:
        files = self.files.glob(f"{self.options.sequences}/{self.split}/*.pkl")
        if self.options.occlusion_only:
            files = [f for f in files if posixpath.basename(f).startswith(OCCLUSION_SEQUENCES)]
        return files

    def annotation_files(self) -> list[str]:
        return self.sequence_files()

    def check(self) -> None:
        folder = f"{self.options.sequences}/{self.split}"
        self.files.require(folder, "3DPW sequence folder", "Point root at the 3DPW folder holding sequenceFiles/.")
        super().check()

    def records(self) -> Iterator[Item]:
        offset = pixel_offset(self.files, self.options.pixel_offset)
        for relative in self.sequence_files():
            sequence = load_pickle(self.files.local_path(relative))
            missing = [key for key in REQUIRED if not isinstance(sequence, dict) or key not in sequence]
            if missing:
                raise SourceError(f"{self.files.url(relative)} is not a 3DPW sequence: no {missing}")
            yield from self._sequence(sequence, relative, offset)

    def _sequence(self, seq: dict, relative: str, offset: float) -> Iterator[Item]:
        name = str(seq["sequence"])
        frames = np.asarray(seq.get("img_frame_ids", np.arange(len(seq["cam_poses"]))))
        intrinsics = np.asarray(seq["cam_intrinsics"], np.float64).copy()
        intrinsics[:2, 2] += offset
        image_size = None
        for f, frame_id in enumerate(frames):
            image = f"{self.options.images}/{name}/image_{int(frame_id):05d}.jpg"
            if image_size is None:
                image_size = self._image_size(image)
            for actor in range(len(seq["genders"])):
                sample_id = f"{name}_{int(frame_id):05d}_{actor}"
                try:
                    yield self._record(seq, f, actor, sample_id, image, intrinsics, image_size, relative, offset)
                except RecordRejected as error:
                    yield self.rejected(error.reason, error.detail, sample_id, relative)

    def _image_size(self, image: str) -> tuple[int, int] | None:
        try:
            with open_url(self.files.url(image)) as f:
                width, height = Image.open(f).size
            return height, width
        except OSError:
            return None  # a missing frame is the job's missing_image reject

    def _record(self, seq, f, actor, sample_id, image, intrinsics, image_size, source, offset) -> SampleRecord:
        if not bool(np.asarray(seq["campose_valid"][actor])[f]):
            raise RecordRejected("invalid_camera_pose", f"campose_valid is 0 for actor {actor} in frame {f}")
        extrinsics = np.asarray(seq["cam_poses"][f], np.float64)
        rotation, translation = extrinsics[:3, :3], extrinsics[:3, 3]
        pose = np.asarray(seq["poses"][actor][f], np.float64).copy()
        trans = np.asarray(seq["trans"][actor][f], np.float64)
        if not (np.isfinite(pose).all() and np.isfinite(trans).all() and np.isfinite(extrinsics).all()):
            raise RecordRejected("nan_parameters", f"pose, trans or cam_poses of frame {f} has NaN or infinity")
        pose[:3] = (Rotation.from_matrix(rotation) * Rotation.from_rotvec(pose[:3])).as_rotvec()
        points = np.asarray(seq["poses2d"][actor][f], np.float64).T  # (18, 3)
        keypoints = np.zeros((49, 3))
        labelled = points[:, 2] > 0
        keypoints[OPENPOSE_TO_SPIN, :2] = np.where(labelled[:, None], points[:, :2] + offset, 0.0)
        keypoints[OPENPOSE_TO_SPIN, 2] = points[:, 2]
        if labelled.sum() < 2:
            raise RecordRejected("no_visible_keypoints", f"{int(labelled.sum())} labelled 2D keypoints")
        low, high = keypoints[OPENPOSE_TO_SPIN][labelled, :2].min(0), keypoints[OPENPOSE_TO_SPIN][labelled, :2].max(0)
        center, side = square_box([*low, *(high - low + 1e-6)], self.options.box_scale)
        gender = GENDERS.get(str(seq["genders"][actor]).strip().lower()[:1], "neutral")
        return SampleRecord(
            dataset=self.dataset,
            split=self.split,
            sample_id=sample_id,
            image=ImageRef(self.files.url(image)),
            center=center,
            box_size=side,
            keypoints_2d=keypoints,
            pose=pose,
            betas=np.asarray(seq["betas"][actor], np.float64)[:10],
            gender=gender,
            camera=PerspectiveCamera(intrinsics, rotation @ trans + translation, rotation),
            image_size=image_size,
            source=source,
            person_index=actor,
            fit_source="3dpw",
            extra={"sequence": str(seq["sequence"]), "frame": int(f), "actor": actor},
        )
