"""``h36m`` and ``h36m_mmpose``: Human3.6M frames in the extracted layout, the cameras pickle and SPIN-style npz files.

The frames are :mod:`preprocessing.synth.h36m_capture`'s. Writes:

- frames ``S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg`` (dotted camera
  ids; frame numbers 1, 6, 11, ... as in SPIN's every-5th-frame subsampling);
- ``cameras.pkl``: dict keyed ``(subject, camera_id)`` (str, str) with ``R`` (3, 3), ``T``
  (3, 1), ``c`` (2, 1), ``f`` (2, 1), ``k`` (3, 1), ``p`` (2, 1) float64, ``w``, ``h`` (int),
  ``name`` ('camera1'..'camera4') and ``id``, for S1, S5, S6, S7, S8, S9, S11;
- ``h36m_train.npz`` (S1, S5, S6, S7, S8; all four cameras), ``h36m_valid_protocol1.npz`` (S9, S11;
  all four cameras) and ``h36m_valid_protocol2.npz`` (S9, S11; frontal camera 60457274): ``imgname``
  (basenames, as in the real sample), ``center`` (N, 2), ``scale`` (N,), ``part`` (N, 24, 3), ``S``
  (N, 24, 4), ``pose`` (N, 72), ``shape`` (N, 10), and ``has_smpl`` (N,) in ``h36m``'s files.

``S`` and ``part`` hold Human3.6M's 17 joints (the body model's ``J_regressor_h36m`` joints and
their projections) at SPIN's slots among its 24 (``datasets/preprocess/h36m.py``: thorax in 12,
neck/nose in 17, head in 18; 13 "Top of Head (LSP)" and the other six stay zero, validity 0).
``h36m`` writes ``S`` as SPIN does: root-centred (``S17 -= S17[0]``, the pelvis, slot 14, at 0).
``h36m_mmpose`` writes the same frames as mmpose's npz files: ``S`` in the camera frame (metres from
the camera) and no ``has_smpl`` key (its ``test_h36m.npz``). ``pose`` is axis-angle with the root in the
camera frame, as SPIN stores Human3.6M's MoSh fits.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from pare_model.body_model.procedural.files import write_npz
from preprocessing.bodies import BodyModels
from preprocessing.synth.common import LayoutResult, SynthOptions, write_jpeg
from preprocessing.synth.h36m_capture import PROTOCOL2_CAMERA, H36mFrame, all_cameras, capture

TRAIN_FILE, CAMERAS_FILE = "h36m_train.npz", "cameras.pkl"
VALID_FILES = {1: "h36m_valid_protocol1.npz", 2: "h36m_valid_protocol2.npz"}
SHAPES = {"center": (2,), "scale": (), "part": (24, 3), "S": (24, 4), "pose": (72,), "shape": (10,), "has_smpl": ()}
"""Trailing shapes of the npz arrays (empty splits keep them)."""


def _row(frame: H36mFrame, root_centred: bool) -> dict:
    """One frame's npz entries."""
    center, scale = frame.box()
    values = (frame.name, center, scale, frame.spin_part(), frame.spin_joints(root_centred), frame.pose, frame.betas)
    return dict(zip(("imgname", "center", "scale", "part", "S", "pose", "shape"), values, strict=True)) | {
        "has_smpl": 1.0
    }


def _stack(rows: list[dict], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The npz arrays of one file."""
    arrays = {"imgname": np.array([row["imgname"] for row in rows], dtype=str)}
    for key in keys:
        values = [row[key] for row in rows]
        arrays[key] = np.array(values, dtype=np.float64).reshape((-1,) + SHAPES[key])
    return arrays


def write_spin_style(
    out: Path, num: int, seed: int, models: BodyModels, options: SynthOptions, layout: str, root_centred: bool
) -> LayoutResult:
    """Write ``num`` frames, the cameras pickle and the split files (see the module docstring)."""
    result = LayoutResult(layout=layout, num_samples=num, num_images=num)
    train: list[dict] = []
    valid: list[dict] = []
    for frame in capture(num, seed, models, options, result):
        write_jpeg(out / frame.subject / frame.folder / frame.name, frame.image, options.jpeg_quality)
        (valid if frame.test else train).append(_row(frame, root_centred) | {"camera": frame.camera})
    keys = tuple(SHAPES) if root_centred else tuple(key for key in SHAPES if key != "has_smpl")
    files = {
        TRAIN_FILE: train,
        VALID_FILES[1]: valid,
        VALID_FILES[2]: [row for row in valid if row["camera"] == PROTOCOL2_CAMERA],
    }
    for file_name, rows in files.items():
        write_npz(out / file_name, _stack(rows, keys))
        result.annotation_files.append(out / file_name)
    (out / CAMERAS_FILE).write_bytes(pickle.dumps(all_cameras(seed, options.h36m_scale), protocol=2))
    result.annotation_files.append(out / CAMERAS_FILE)
    return result


def write(out: Path, num: int, seed: int, models: BodyModels, options: SynthOptions) -> LayoutResult:
    """``h36m``: SPIN's files (root-centred ``S``)."""
    return write_spin_style(out, num, seed, models, options, "h36m", root_centred=True)


def write_mmpose(out: Path, num: int, seed: int, models: BodyModels, options: SynthOptions) -> LayoutResult:
    """``h36m_mmpose``: mmpose's files (camera-frame ``S``, no ``has_smpl``)."""
    return write_spin_style(out, num, seed, models, options, "h36m_mmpose", root_centred=False)
