"""Human3.6M as SPIN-style npz files over extracted frames, with the cameras pickle (``h36m_npz``).

Frames live in ``S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg``; the npz's
``imgname`` is that basename (or a path). Subject and camera come from the name, and the
camera's intrinsics from ``cameras.pkl`` (keyed ``(subject, camera id)``, ``f`` and ``c``),
so the job projects the fit with the real camera. It places the fit with the 24 ground-truth joints' 2D
keypoints (SPIN's root-centred ``S``, ``joints_frame: root_centred``, the default), or with ``S`` itself when
the file keeps the camera frame (mmpose's, ``joints_frame: camera``).

Splits: ``train`` is S1, S5, S6, S7, S8 (all cameras); ``test`` is protocol 2, S9 and S11
seen by the frontal camera 60457274 (``protocol: 1`` keeps all four cameras; SPIN's files
``h36m_valid_protocol1.npz`` and ``h36m_valid_protocol2.npz``). A row of
another subject or camera is rejected with the reason, not dropped. The raw release (videos,
CDF poses, MoSh) is the ``h36m`` reader (:mod:`.h36m_raw`).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

import numpy as np

from preprocessing.readers.files import SourceError
from preprocessing.readers.h36m_cameras import FRONTAL_CAMERA, TEST_SUBJECTS, TRAIN_SUBJECTS, load_cameras
from preprocessing.readers.spin_npz import SpinNpzReader
from preprocessing.record import JOINTS_FRAMES, PerspectiveCamera, RecordRejected, SampleRecord

_FRAME_NAME = re.compile(r"^(S\d+)_(.+)\.(\d+)_(\d+)$")


@dataclass(frozen=True)
class H36mNpzOptions:
    """Options of the ``h36m_npz`` reader."""

    npz: str = ""
    """SPIN-style npz, relative to the root; empty: ``h36m_train.npz`` (train) or ``h36m_valid_protocol<protocol>.npz``
    (test)."""
    images: str = ""
    """Folder holding the ``S*/`` frame folders, relative to the root (empty: the root)."""
    cameras: str = "cameras.pkl"
    """Cameras pickle keyed (subject, camera id) or ``metadata.xml``; empty: no intrinsics (the job fits a crop camera)."""
    protocol: int = 2
    """Test protocol: 2 keeps the frontal camera 60457274 only, 1 all four."""
    gender: str = "neutral"
    """Body model of the fits (SPIN uses the neutral model for Human3.6M)."""
    joints_frame: str = "root_centred"
    """Frame of ``S``: ``root_centred`` (SPIN's files: ``S17 -= S17[0]``) or ``camera`` (mmpose's files)."""
    pixel_offset: float | None = None
    """Added to every coordinate and principal point; None: 0.5 for real data, 0 for ``pare synth`` output."""

    def __post_init__(self):
        if self.joints_frame not in JOINTS_FRAMES:
            raise ValueError(f"joints_frame must be one of {JOINTS_FRAMES}, got {self.joints_frame!r}")


def parse_frame_name(imgname: str) -> tuple[str, str, str, int]:
    """(subject, action, camera id, frame number) of ``S1_Directions_1.54138969_000001.jpg``."""
    stem = posixpath.basename(imgname).rsplit(".", 1)[0]
    match = _FRAME_NAME.match(stem)
    if match is None:
        raise RecordRejected("bad_annotation", f"{imgname!r} is not named S<k>_<action>.<camera>_<frame>.jpg")
    subject, action, camera, frame = match.groups()
    return subject, action, camera, int(frame)


def split_frame(imgname: str, split: str, protocol: int) -> tuple[str, str, str, int]:
    """:func:`parse_frame_name` of a frame that belongs to ``split``; :class:`RecordRejected` for one that does not.

    ``train`` holds S1, S5, S6, S7 and S8; ``test`` S9 and S11, and under ``protocol`` 2 only the
    frontal camera 60457274.
    """
    subject, action, camera, frame = parse_frame_name(imgname)
    subjects = TRAIN_SUBJECTS if split == "train" else TEST_SUBJECTS
    if subject not in subjects:
        raise RecordRejected("bad_annotation", f"subject {subject} is not in Human3.6M's {split} split {subjects}")
    if split == "test" and protocol == 2 and camera != FRONTAL_CAMERA:
        raise RecordRejected("bad_annotation", f"camera {camera} is not protocol 2's frontal camera {FRONTAL_CAMERA}")
    return subject, action, camera, frame


class H36mNpzReader(SpinNpzReader):
    """Human3.6M extracted frames with a SPIN-style npz and the cameras pickle (protocol 2 test split)."""

    name = "h36m_npz"
    default_dataset = "h36m"
    splits = ("train", "test")
    Options = H36mNpzOptions

    def npz_path(self) -> str:
        if self.options.npz:
            return self.options.npz
        return "h36m_train.npz" if self.split == "train" else f"h36m_valid_protocol{self.options.protocol}.npz"

    def annotation_files(self) -> list[str]:
        return [self.npz_path()] + ([self.options.cameras] if self.options.cameras else [])

    def check(self) -> None:
        if self.options.protocol not in (1, 2):
            raise SourceError(f"h36m_npz protocol must be 1 or 2, got {self.options.protocol}")
        super().check()

    def records(self):
        self._cameras = self._load_cameras()
        yield from super().records()

    def _load_cameras(self) -> dict:
        return load_cameras(self.files, self.options.cameras) if self.options.cameras else {}

    def sample_id(self, imgname: str, index: int) -> str:
        return posixpath.basename(imgname).rsplit(".", 1)[0]

    def image_path(self, imgname: str) -> str:
        if "/" not in imgname:
            stem = imgname.rsplit(".", 1)[0]
            imgname = f"{stem.split('_')[0]}/{stem.rsplit('_', 1)[0]}/{imgname}"
        return f"{self.options.images}/{imgname}" if self.options.images else imgname

    def record(self, data: dict[str, np.ndarray], index: int, offset: float) -> SampleRecord:
        name = str(data["imgname"][index])
        subject, action, camera_id, frame = split_frame(name, self.split, self.options.protocol)
        record = super().record(data, index, offset)
        record.gender = self.options.gender if record.has_smpl else "neutral"
        record.fit_source = "mosh" if record.has_smpl else ""
        record.extra.update({"subject": subject, "action": action, "camera": camera_id, "frame": frame})
        if self._cameras:
            camera = self._cameras.get((subject, camera_id))
            if camera is None:
                raise RecordRejected("bad_annotation", f"{self.options.cameras} has no camera ({subject}, {camera_id})")
            record.camera = PerspectiveCamera(camera.intrinsics(offset))
            record.image_size = camera.image_size
        return record
