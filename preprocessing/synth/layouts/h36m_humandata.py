"""``h36m_humandata``: the Human3.6M capture as mmhuman3d's ``H36mConverter`` writes it (HumanData, config ``h36m``).

The frames are :mod:`preprocessing.synth.h36m_capture`'s (the same as ``h36m``'s for a seed). Writes
frames ``S1/images/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg``, the cameras pickle
``cameras.pkl``, and ``h36m_mosh_train.npz`` (S1, S5-S8), ``h36m_valid_protocol1.npz`` (S9, S11, all
cameras) and ``h36m_valid_protocol2.npz`` (S9, S11, camera 60457274), each with the members the converter
writes (mmhuman3d ``data/data_converters/h36m.py``):

- ``image_path`` (N,): the frames' paths above, relative to the output folder;
- ``bbox_xywh`` (N, 5): the person's square SPIN box (1.2 times its extent) as top-left x, y, width,
  height and score 1 (the converter's: the background-subtraction mask's box times 0.9);
- ``keypoints2d`` (N, 17, 3), ``keypoints3d`` (N, 17, 4) and their (190,) masks: Human3.6M's 17 joints
  under mmhuman3d's names for them (``convert_kps(..., 'h36m', 'human_data')``, compressed to the mask):
  the head under ``headtop``, the neck/nose under ``head_extra``
  (:data:`~preprocessing.keypoints.H36M17_IN_HUMAN_DATA`); ``keypoints3d`` pelvis-relative, as the converter
  writes them (``keypoints3d17 -= keypoints3d17[0]``), confidence 1;
- ``smpl``: ``global_orient`` (N, 3) with the root in the camera frame (the converter turns MoSh's root by
  ``R_root @ R_x(pi)``), ``body_pose`` (N, 23, 3), ``betas`` (N, 10) (the converter run with MoSh fits);
- ``config`` ``h36m`` and HumanData's attributes. Not written: ``cam_param`` (the readers do not read it).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from pare_model.body_model.procedural.files import write_npz
from preprocessing.bodies import BodyModels
from preprocessing.keypoints import h36m17_human_data_indices
from preprocessing.synth.common import LayoutResult, SynthOptions, write_jpeg
from preprocessing.synth.h36m_capture import PROTOCOL2_CAMERA, H36mFrame, all_cameras, capture
from preprocessing.synth.layouts.humandata import attributes, masked_keypoints, object_member

NAME = "h36m_humandata"
TRAIN_FILE, CAMERAS_FILE = "h36m_mosh_train.npz", "cameras.pkl"
VALID_FILES = {1: "h36m_valid_protocol1.npz", 2: "h36m_valid_protocol2.npz"}
CONFIG = "h36m"


def image_path(frame: H36mFrame) -> str:
    """``S1/images/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg``, as the converter names it."""
    return f"{frame.subject}/images/{frame.folder}/{frame.name}"


def members(frames: list[H36mFrame]) -> dict[str, np.ndarray]:
    """The HumanData members of ``frames`` (see the module docstring), ready for ``np.savez``."""
    count, indices, ones = len(frames), h36m17_human_data_indices(), np.ones((len(frames), 17, 1))
    boxes = [frame.box() for frame in frames]
    side = np.array([scale for _, scale in boxes]).reshape(count) * 200.0
    corner = np.array([center for center, _ in boxes]).reshape(count, 2) - side[:, None] / 2.0
    pixels = np.array([frame.pixels17 for frame in frames]).reshape(count, 17, 2)
    joints = np.array([frame.joints17 - frame.joints17[0] for frame in frames]).reshape(count, 17, 3)
    pose = np.array([frame.pose for frame in frames]).reshape(count, 72)
    smpl = {"global_orient": pose[:, :3], "body_pose": pose[:, 3:].reshape(count, 23, 3)}
    smpl["betas"] = np.array([frame.betas for frame in frames]).reshape(count, 10)
    result = {"image_path": np.array([image_path(frame) for frame in frames], dtype=str)}
    result["bbox_xywh"] = np.column_stack([corner, side, side, np.ones(count)])
    result["keypoints2d"], result["keypoints2d_mask"] = masked_keypoints(
        np.concatenate([pixels, ones], axis=2), indices, compressed=True
    )
    result["keypoints3d"], result["keypoints3d_mask"] = masked_keypoints(
        np.concatenate([joints, ones], axis=2), indices, compressed=True
    )
    result["smpl"] = object_member(smpl)
    result["config"] = np.array(CONFIG)
    return result | attributes(count, compressed=True)


def write(out: Path, num: int, seed: int, models: BodyModels, options: SynthOptions) -> LayoutResult:
    """Write ``num`` frames and the converter's three files (see the module docstring)."""
    result = LayoutResult(layout=NAME, num_samples=num, num_images=num)
    train: list[H36mFrame] = []
    valid: list[H36mFrame] = []
    for frame in capture(num, seed, models, options, result):
        write_jpeg(out / image_path(frame), frame.image, options.jpeg_quality)
        (valid if frame.test else train).append(frame)
    files = {
        TRAIN_FILE: train,
        VALID_FILES[1]: valid,
        VALID_FILES[2]: [frame for frame in valid if frame.camera == PROTOCOL2_CAMERA],
    }
    for file_name, frames in files.items():
        write_npz(out / file_name, members(frames), allow_pickle=True)
        result.annotation_files.append(out / file_name)
    (out / CAMERAS_FILE).write_bytes(pickle.dumps(all_cameras(seed, options.h36m_scale), protocol=2))
    result.annotation_files.append(out / CAMERAS_FILE)
    return result
