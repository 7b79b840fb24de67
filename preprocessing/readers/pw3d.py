"""3DPW sequence pickles and frames (``3dpw``): one split, or the whole 3DPW (split ``all``).

Split ``train``, ``validation`` or ``test`` reads that folder of ``sequenceFiles``; split ``all`` reads
all three (train, validation, test, in that order): the original's ``3dpw-all`` set, on which PARE
measures 3DPW-OCC (:mod:`.pw3d_sequences`; ``pare evaluate`` reports it only for shards that hold all
three splits). Every record's ``extra["split"]`` is the folder its sequence came from (3DPW's own split).
Like the original's ``3dpw-all`` preprocessing (SPIN's ``pw3d_extract`` run over the three folders),
every frame of every actor whose ``campose_valid`` is set is kept.

Per sequence ``sequenceFiles/<split>/<seq>.pkl`` (read only through the restricted unpickler
:func:`pare_model.safe_pickle.load_pickle`, latin1, as the files are Python 2 pickles) and
``imageFiles/<seq>/image_{f:05d}.jpg`` with ``f`` the frame's position in the sequence, as
SPIN's and VIBE's 3DPW preprocessing name them (``img_frame_ids`` goes to ``extra``). Each
actor of each frame becomes one record or one reject, in sequence, frame, actor order:

- the root rotation is turned into the camera frame, ``R R_w`` with ``R = cam_poses[f][:3, :3]``;
  the camera is ``cam_intrinsics`` (principal point + ``pixel_offset``) with translation
  ``R trans + t`` and ``frame_rotation = R``: the job adds ``(R - I) j0`` (see
  :class:`~preprocessing.record.PerspectiveCamera`), so the fit lands where 3DPW's own
  world-frame projection puts it;
- keypoints are ``poses2d`` (OpenPose-18 with confidence) on SPIN's OpenPose joints; the box is
  SPIN's (``datasets/preprocess/pw3d.py``): the tight box of the labelled keypoints, side 1.2
  times its longer side;
- ``genders`` 'm' / 'f' select the male / female body model;
- ``joints_3d`` stays empty: ``jointPositions`` are SMPL's 24 kinematic joints in the world
  frame, not SPIN's 24 ground-truth joints; SPIN's and PARE's 3DPW evaluation uses the joints
  of the fit itself (pose, betas, gender), which the record carries;
- ``image_size`` comes from the JPEG header of each sequence's first frame.

A sequence name that is not a plain name (``../x``, ``/x``) is a broken file too.

Rejects: ``campose_valid`` 0 (``invalid_camera_pose``), NaN or infinity in the frame's
parameters (``nan_parameters``), fewer than two labelled keypoints (``no_visible_keypoints``).
A pickle that cannot be read, lacks a key or holds an array of the wrong shape is a broken
file, not a bad frame: :class:`~preprocessing.readers.files.SourceError` names it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from pare_model.errors import PickleLoadError
from pare_model.safe_pickle import load_pickle
from preprocessing.keypoints import OPENPOSE18_TO_SPIN, spin_indices
from preprocessing.readers.base import Item, Reader, pixel_offset
from preprocessing.readers.files import SourceError, open_url
from preprocessing.readers.pw3d_sequences import SPLITS, in_occlusion_subset
from preprocessing.record import ImageRef, PerspectiveCamera, RecordRejected, SampleRecord

OPENPOSE_TO_SPIN = spin_indices(OPENPOSE18_TO_SPIN)
GENDERS = {"m": "male", "male": "male", "f": "female", "female": "female"}

PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
"""What a sequence name may be (3DPW's are like ``downtown_walking_00``)."""
PW3D_ADVICE = (
    "3DPW's own sequence files hold only such arrays: download the file again from the 3DPW site "
    "(virtualhumans.mpi-inf.mpg.de/3DPW) and check that it was not replaced."
)
PER_ACTOR = ("genders", "betas", "poses", "trans", "poses2d", "campose_valid")
REQUIRED = ("sequence", *PER_ACTOR, "cam_poses", "cam_intrinsics")


@dataclass(frozen=True)
class Pw3dOptions:
    """Options of the ``3dpw`` reader."""

    occlusion_only: bool = False
    """Keep only the sequences with 3DPW-OCC's prefixes (split ``all``: PARE's 3DPW-OCC set; one split: its part)."""
    sequences: str = "sequenceFiles"
    """Folder of the split folders of sequence pickles, relative to the root."""
    images: str = "imageFiles"
    """Folder of the per-sequence frame folders, relative to the root."""
    box_scale: float = 1.2
    """Person box side / the longer side of the labelled keypoints' box (SPIN: 1.2)."""
    pixel_offset: float | None = None
    """Added to every coordinate and the principal point; None: 0.5 for real data, 0 for ``pare synth`` output."""


@dataclass(frozen=True)
class Pw3dSequence:
    """One sequence pickle, shape-checked; A actors, N frames, roots and translations in the camera frame."""

    name: str
    genders: list[str]  # A raw codes ('m' / 'f')
    betas: np.ndarray  # (A, 10)
    poses: np.ndarray  # (A, N, 72) axis-angle, root in the camera frame
    translations: np.ndarray  # (A, N, 3) R trans + t
    keypoints: np.ndarray  # (A, N, 18, 3) OpenPose-18 x, y, confidence
    valid: np.ndarray  # (A, N) bool campose_valid
    rotations: np.ndarray  # (N, 3, 3) world-to-camera R
    intrinsics: np.ndarray  # (3, 3)
    frame_ids: np.ndarray  # (N,) img_frame_ids


def _shape_error(url: str, key: str, got, expected: str) -> SourceError:
    return SourceError(
        f"{url}: {key!r} has shape {got}, expected {expected} (3DPW's sequence layout). "
        "The file is damaged or not a 3DPW sequence pickle: re-download it."
    )


def _array(raw: dict, key: str, shape: tuple[int, ...], url: str) -> np.ndarray:
    """``raw[key]`` as float64 with ``shape`` (-1: any length)."""
    try:
        array = np.asarray(raw[key], np.float64)
    except (TypeError, ValueError):
        raise _shape_error(url, key, type(raw[key]).__name__, str(shape)) from None
    if array.ndim != len(shape) or any(s not in (-1, g) for s, g in zip(shape, array.shape, strict=True)):
        raise _shape_error(url, key, array.shape, str(shape).replace("-1", "N"))
    return array


def _camera_roots(poses: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """(A, N, 72) poses with the root ``R R_w``; rows with NaN stay NaN for the per-frame reject."""
    poses = poses.copy()
    finite = np.isfinite(poses[..., :3]).all(-1) & np.isfinite(rotations).all((1, 2))  # (A, N)
    for actor, rows in enumerate(finite):
        if not rows.any():
            continue
        rotated = Rotation.from_matrix(rotations[rows]) * Rotation.from_rotvec(poses[actor, rows, :3])
        poses[actor, rows, :3] = rotated.as_rotvec()
    return poses


def parse_sequence(raw, url: str) -> Pw3dSequence:
    """The arrays of a loaded sequence pickle; a missing key or a wrong shape raises :class:`SourceError`."""
    missing = [key for key in REQUIRED if not isinstance(raw, dict) or key not in raw]
    if missing:
        raise SourceError(f"{url} is not a 3DPW sequence pickle: it has no {missing}")
    extrinsics = _array(raw, "cam_poses", (-1, 4, 4), url)
    num_frames, num_actors = len(extrinsics), len(raw["genders"])
    for key in PER_ACTOR:
        if len(raw[key]) != num_actors:
            raise SourceError(f"{url}: {key!r} has {len(raw[key])} entries for {num_actors} actors (genders)")
    per_actor = {"poses": (num_frames, 72), "trans": (num_frames, 3), "poses2d": (num_frames, 3, 18)}
    arrays = {key: _array(raw, key, (num_actors, *shape), url) for key, shape in per_actor.items()}
    betas = [_array({"betas": b}, "betas", (-1,), url) for b in raw["betas"]]  # 10 or more; SMPL uses 10
    if any(len(b) < 10 for b in betas):
        raise _shape_error(url, "betas", [b.shape for b in betas], "(>= 10,) per actor")
    valid = _array(raw, "campose_valid", (num_actors, num_frames), url)
    frame_ids = np.arange(num_frames) if "img_frame_ids" not in raw else raw["img_frame_ids"]
    frame_ids = _array({"img_frame_ids": frame_ids}, "img_frame_ids", (num_frames,), url)
    rotations, translation = extrinsics[:, :3, :3], extrinsics[:, :3, 3]
    name = str(raw["sequence"])
    if not PLAIN_NAME.fullmatch(name):  # it names the frame folder: ../x or /x would read outside imageFiles/
        raise SourceError(f"{url}: its sequence name {name!r} is not a plain name (letters, digits, _ . -)")
    return Pw3dSequence(
        name=name,
        genders=[g.decode("latin1") if isinstance(g, bytes) else str(g) for g in raw["genders"]],
        betas=np.stack([b[:10] for b in betas]) if betas else np.zeros((0, 10)),
        poses=_camera_roots(arrays["poses"], rotations),
        translations=np.einsum("nij,anj->ani", rotations, arrays["trans"]) + translation,
        keypoints=np.swapaxes(arrays["poses2d"], 2, 3),
        valid=valid > 0,
        rotations=rotations,
        intrinsics=_array(raw, "cam_intrinsics", (3, 3), url),
        frame_ids=frame_ids.astype(np.int64),
    )


class Pw3dReader(Reader):
    """3DPW sequence pickles (SMPL fits, cameras, 2D poses) and their frames."""

    name = "3dpw"
    default_dataset = "3dpw"
    splits = (*SPLITS, "all")
    Options = Pw3dOptions

    def folders(self) -> list[str]:
        """The split folders read: this split's, or all three (train, validation, test) for split ``all``."""
        splits = SPLITS if self.split == "all" else (self.split,)
        return [f"{self.options.sequences}/{split}" for split in splits]

    def sequence_files(self) -> list[str]:
        files = [file for folder in self.folders() for file in self.files.glob(f"{folder}/*.pkl")]
        if self.options.occlusion_only:
            files = [f for f in files if in_occlusion_subset(posixpath.basename(f))]
        return files

    def annotation_files(self) -> list[str]:
        return self.sequence_files()

    def check(self) -> None:
        for folder in self.folders():
            self.files.require(
                folder,
                "3DPW sequence folder",
                "Point root at the 3DPW folder holding sequenceFiles/ (split all needs its train, validation and "
                "test folders).",
            )
        super().check()

    def load(self, relative: str) -> Pw3dSequence:
        """One sequence pickle, parsed; an unreadable or malformed file raises :class:`SourceError`."""
        url = self.files.url(relative)
        try:
            raw = load_pickle(self.files.local_path(relative), advice=PW3D_ADVICE)
        except PickleLoadError as error:
            raise SourceError(f"cannot read the 3DPW sequence {url}: {error}") from None
        return parse_sequence(raw, url)

    def records(self) -> Iterator[Item]:
        offset = pixel_offset(self.files, self.options.pixel_offset)
        for relative in self.sequence_files():
            yield from self._sequence(self.load(relative), relative, offset)

    def _sequence(self, seq: Pw3dSequence, source: str, offset: float) -> Iterator[Item]:
        intrinsics = seq.intrinsics.copy()
        intrinsics[:2, 2] += offset
        folder = f"{self.options.images}/{seq.name}"
        split = posixpath.basename(posixpath.dirname(source))  # the sequence's own split: its file's folder
        image_size = self._image_size(f"{folder}/image_00000.jpg")
        for f in range(len(seq.frame_ids)):
            image = ImageRef(self.files.url(f"{folder}/image_{f:05d}.jpg"))
            for actor in range(len(seq.genders)):
                sample_id = f"{seq.name}_{f:05d}_{actor}"
                try:
                    record = self._record(seq, f, actor, offset)
                except RecordRejected as error:
                    yield self.rejected(error.reason, error.detail, sample_id, source)
                    continue
                yield SampleRecord(
                    dataset=self.dataset,
                    split=self.split,
                    sample_id=sample_id,
                    image=image,
                    camera=PerspectiveCamera(
                        intrinsics.copy(), seq.translations[actor, f].copy(), seq.rotations[f].copy()
                    ),
                    image_size=image_size,
                    source=source,
                    person_index=actor,
                    fit_source="3dpw",
                    extra={
                        "sequence": seq.name,
                        "split": split,
                        "frame": f,
                        "img_frame_id": int(seq.frame_ids[f]),
                        "actor": actor,
                    },
                    **record,
                )

    def _image_size(self, image: str) -> tuple[int, int] | None:
        """(height, width) from the JPEG header, or None when the frame is missing (the job rejects it)."""
        try:
            with open_url(self.files.url(image)) as f:
                width, height = Image.open(f).size
            return height, width
        except OSError:
            return None

    def _record(self, seq: Pw3dSequence, f: int, actor: int, offset: float) -> dict:
        """The frame-dependent fields of one actor's record, or :class:`RecordRejected`."""
        if not seq.valid[actor, f]:
            raise RecordRejected("invalid_camera_pose", f"campose_valid is 0 for actor {actor} in frame {f}")
        parts = {
            "poses": seq.poses[actor, f],
            "trans": seq.translations[actor, f],
            "betas": seq.betas[actor],
            "cam_poses": seq.rotations[f],
            "poses2d": seq.keypoints[actor, f],
        }
        bad = [key for key, value in parts.items() if not np.isfinite(value).all()]
        if bad:
            raise RecordRejected("nan_parameters", f"{', '.join(bad)} of actor {actor} in frame {f} has NaN or inf")
        points = seq.keypoints[actor, f]  # (18, 3)
        labelled = points[:, 2] > 0
        if labelled.sum() < 2:
            raise RecordRejected("no_visible_keypoints", f"{int(labelled.sum())} labelled 2D keypoints in poses2d")
        keypoints = np.zeros((49, 3))
        keypoints[OPENPOSE_TO_SPIN] = np.where(labelled[:, None], points + [offset, offset, 0.0], 0.0)
        low, high = points[labelled, :2].min(0) + offset, points[labelled, :2].max(0) + offset
        gender = GENDERS.get(seq.genders[actor].strip().lower())
        if gender is None:
            raise RecordRejected("bad_annotation", f"gender {seq.genders[actor]!r} of actor {actor} is not 'm' or 'f'")
        return {
            "center": (low + high) / 2.0,
            "box_size": float(self.options.box_scale * (high - low).max()),
            "keypoints_2d": keypoints,
            "pose": seq.poses[actor, f].copy(),
            "betas": seq.betas[actor].copy(),
            "gender": gender,
        }
