"""``h36m_raw``: the Human3.6M capture as the dataset is released: videos, CDF poses, MoSh fits, cameras pickle.

The frames are :mod:`preprocessing.synth.h36m_capture`'s (the same as ``h36m``'s for a seed). Each
(subject, action, camera) take is one sequence; its k-th captured frame is video frame ``5 k`` (0-based),
as SPIN keeps every 5th frame. Writes, per subject ``S<k>``:

- ``S1/Videos/<Action>.<camera>.mp4``: the take's frames (OpenCV ``mp4v``), each captured frame held for
  5 video frames;
- ``S1/MyPoseFeatures/D3_Positions_mono/<Action>.<camera>.cdf``: variable ``Pose`` (1, F, 96), the 32
  joints in millimetres in the camera frame, one row per video frame; the 17 the readers use at their
  places among the 32 (``[11, 6, 7, 8, 1, 2, 3, 12, 24, 14, 15, 17, 18, 19, 25, 26, 27]``), the other 15
  at the pelvis;
- ``S1/MyPoseFeatures/D2_Positions/<Action>.<camera>.cdf``: (1, F, 64) their pixels;
- ``mosh/S1/<Action>_cam<k>_aligned.pkl``: ``new_poses`` (one 72-d row per 5th frame, the root in MoSh's
  y-up frame: the camera-frame root times ``R_x(pi)``) and ``betas`` (10,);

and ``cameras.pkl`` (:mod:`.h36m`'s). Actions carry spaces (``Directions 1``), as in the release. Read it with
the ``h36m`` reader and ``options: {cameras: cameras.pkl, mosh: mosh}`` (the release's ``metadata.xml`` is not
written).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
from cdflib.cdfwrite import CDF
from scipy.spatial.transform import Rotation

from preprocessing.bodies import BodyModels
from preprocessing.readers.h36m_cameras import CAMERA_IDS
from preprocessing.readers.h36m_raw import H36M32_TO_17, MOSH_ROOT_FIX
from preprocessing.synth.common import LayoutResult, SynthOptions
from preprocessing.synth.h36m_capture import FRAME_STEP, H36mFrame, all_cameras, capture

NAME = "h36m_raw"
CAMERAS_FILE, MOSH_FOLDER = "cameras.pkl", "mosh"
VIDEO_FPS = 50


def write_cdf(path: Path, values: np.ndarray) -> None:
    """A Human3.6M pose file: variable ``Pose`` of one record with dimensions (F, D)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cdf = CDF(str(path), cdf_spec={"Majority": "Row_major"}, delete=True)
    spec = {"Variable": "Pose", "Data_Type": CDF.CDF_DOUBLE, "Num_Elements": 1, "Rec_Vary": True, "Compress": 0}
    cdf.write_var({**spec, "Dim_Sizes": list(values.shape)}, var_data=values[None])
    cdf.close()


def to_32(points17: np.ndarray) -> np.ndarray:
    """(32, D) Human3.6M joints with the 17 at their places and the other 15 at the first (the pelvis)."""
    full = np.repeat(points17[:1], 32, axis=0)
    full[H36M32_TO_17] = points17
    return full


def raw_action(frame: H36mFrame) -> str:
    """``Directions 1``: the release's action name (the extracted frames' ``Directions_1``)."""
    return frame.action.replace("_", " ")


class _Takes:
    """The sequences being written: one open video per take, and its rows of poses and fits."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.videos: dict[tuple[str, str, str], cv2.VideoWriter] = {}
        self.rows: dict[tuple[str, str, str], list[H36mFrame]] = {}

    def add(self, frame: H36mFrame) -> None:
        key = (frame.subject, raw_action(frame), frame.camera)
        if key not in self.videos:
            path = self.out / frame.subject / "Videos" / f"{key[1]}.{frame.camera}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            size = (frame.image.shape[1], frame.image.shape[0])
            self.videos[key] = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, size)
            self.rows[key] = []
        bgr = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
        for _ in range(FRAME_STEP):
            self.videos[key].write(bgr)
        self.rows[key].append(frame)

    def close(self) -> list[Path]:
        """Release the videos and write every take's CDF files and MoSh fit; returns the annotation files."""
        files = []
        for (subject, action, camera), frames in self.rows.items():
            self.videos[(subject, action, camera)].release()
            features = self.out / subject / "MyPoseFeatures"
            joints = np.stack([to_32(f.joints17 * 1000.0).reshape(-1) for f in frames for _ in range(FRAME_STEP)])
            pixels = np.stack([to_32(f.pixels17).reshape(-1) for f in frames for _ in range(FRAME_STEP)])
            for folder, values in (("D3_Positions_mono", joints), ("D2_Positions", pixels)):
                write_cdf(features / folder / f"{action}.{camera}.cdf", values)
                files.append(features / folder / f"{action}.{camera}.cdf")
            mosh = self.out / MOSH_FOLDER / subject / f"{action}_cam{CAMERA_IDS.index(camera)}_aligned.pkl"
            mosh.parent.mkdir(parents=True, exist_ok=True)
            poses = np.stack([f.pose for f in frames])
            poses[:, :3] = (Rotation.from_rotvec(poses[:, :3]) * MOSH_ROOT_FIX.inv()).as_rotvec()
            mosh.write_bytes(pickle.dumps({"new_poses": poses, "betas": frames[0].betas.copy()}, protocol=2))
            files.append(mosh)
        return files


def write(out: Path, num: int, seed: int, models: BodyModels, options: SynthOptions) -> LayoutResult:
    """Write ``num`` frames as videos, CDF poses and MoSh fits (see the module docstring)."""
    result = LayoutResult(layout=NAME, num_samples=num, num_images=num)
    takes = _Takes(out)
    for frame in capture(num, seed, models, options, result):
        takes.add(frame)
    result.annotation_files.extend(takes.close())
    (out / CAMERAS_FILE).write_bytes(pickle.dumps(all_cameras(seed, options.h36m_scale), protocol=2))
    result.annotation_files.append(out / CAMERAS_FILE)
    return result
