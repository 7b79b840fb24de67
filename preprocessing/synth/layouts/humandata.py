"""``humandata``: the ``spin_npz`` layout's pictures with their annotations in an mmhuman3d HumanData file.

Writes ``images/{n:06d}.jpg`` (the same pictures and people as ``spin_npz`` with the same seed)
and ``humandata_train.npz`` in the structure mmhuman3d's ``HumanData.dump`` writes (its
``docs/human_data.md``; its SpinConverter makes such files of SPIN's npz files):

- ``image_path`` (N,) ``images/...``, relative to the output folder; ``bbox_xywh`` (N, 5) the
  SPIN box's top-left corner, width and height (side = ``scale * 200``) and score 1;
- ``keypoints2d`` with ``keypoints2d_mask`` (190,): SPIN's 49 joints at their ``human_data``
  places (:data:`~preprocessing.keypoints.SPIN_IN_HUMAN_DATA`), ``keypoints3d`` with
  ``keypoints3d_mask`` the 24 ground-truth joints (metres, pelvis-relative as ``spin_npz``'s ``S``, validity 1); both
  compressed to the masked keypoints (``__keypoints_compressed__`` true);
- ``smpl`` a dict of ``global_orient`` (N, 3), ``body_pose`` (N, 23, 3), ``betas`` (N, 10),
  ``has_smpl`` (N,), ``meta`` a dict with ``gender`` (N,) 'm' / 'f', ``config`` ``synthetic``;
- ``__key_strict__``, ``__temporal_len__``, ``__keypoints_compressed__``: HumanData's attributes.

:func:`from_spin_npz` is the conversion itself, for any SPIN-style arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pare_model.body_model.procedural.files import write_npz
from preprocessing.bodies import BodyModels
from preprocessing.keypoints import HUMAN_DATA_NUM_KEYPOINTS, NUM_OPENPOSE, human_data_indices
from preprocessing.synth.common import LayoutResult, SynthOptions
from preprocessing.synth.layouts import spin_npz

NAME = "humandata"
NPZ_FILE = "humandata_train.npz"
CONFIG = "synthetic"


def object_member(value: object) -> np.ndarray:
    """A 0-d object array holding ``value``, as ``np.savez`` stores a dict."""
    array = np.empty((), dtype=object)
    array[()] = value
    return array


def masked_keypoints(values: np.ndarray, indices: np.ndarray, compressed: bool) -> tuple[np.ndarray, np.ndarray]:
    """(N, 190 or K, C) keypoints with ``values`` (N, K, C) at ``indices``, and the (190,) uint8 mask."""
    mask = np.zeros(HUMAN_DATA_NUM_KEYPOINTS, np.uint8)
    mask[indices] = 1
    full = np.zeros((len(values), HUMAN_DATA_NUM_KEYPOINTS, values.shape[2]))
    full[:, indices] = values
    return (full[:, mask > 0] if compressed else full), mask


def from_spin_npz(arrays: Mapping[str, np.ndarray], config: str = CONFIG, compressed: bool = True) -> dict:
    """HumanData members of SPIN npz arrays (``imgname``, ``center``, ``scale``, ``part``, optional
    ``openpose``, ``S``, ``pose`` and ``shape`` with ``has_smpl``, ``gender``), ready for ``np.savez``."""
    count = len(arrays["imgname"])
    side = np.asarray(arrays["scale"], np.float64) * 200.0
    corner = np.asarray(arrays["center"], np.float64) - side[:, None] / 2.0
    indices = human_data_indices()
    keypoints = np.zeros((count, NUM_OPENPOSE, 3)) if "openpose" not in arrays else arrays["openpose"]
    keypoints = np.concatenate([keypoints, arrays["part"]], axis=1)
    members: dict = {"image_path": np.asarray(arrays["imgname"], dtype=str)}
    members["bbox_xywh"] = np.column_stack([corner, side, side, np.ones(count)])
    members["keypoints2d"], members["keypoints2d_mask"] = masked_keypoints(keypoints, indices, compressed)
    if "S" in arrays:
        members["keypoints3d"], members["keypoints3d_mask"] = masked_keypoints(
            np.asarray(arrays["S"], np.float64), indices[NUM_OPENPOSE:], compressed
        )
    if "pose" in arrays and "shape" in arrays:
        pose = np.asarray(arrays["pose"], np.float64)
        smpl = {"global_orient": pose[:, :3], "body_pose": pose[:, 3:].reshape(count, 23, 3)}
        members["smpl"] = object_member(smpl | {"betas": np.asarray(arrays["shape"], np.float64)})
        members["has_smpl"] = np.asarray(arrays.get("has_smpl", np.ones(count)), np.float64)
    if "gender" in arrays:
        members["meta"] = object_member({"gender": np.asarray(arrays["gender"], dtype=str)})
    members["config"] = np.array(config)
    return members | attributes(count, compressed)


def attributes(count: int, compressed: bool) -> dict[str, np.ndarray]:
    """HumanData's ``__key_strict__``, ``__temporal_len__`` and ``__keypoints_compressed__`` members."""
    values = {"__key_strict__": True, "__temporal_len__": count, "__keypoints_compressed__": compressed}
    return {key: np.array(value) for key, value in values.items()}


def write(out: Path, num: int, seed: int, models: BodyModels, options: SynthOptions) -> LayoutResult:
    """Write ``num`` images (``spin_npz``'s for this seed) and their HumanData file (see the module docstring)."""
    result = spin_npz.write(out, num, seed, models, options)
    spin_file = out / spin_npz.NPZ_FILE
    with np.load(spin_file) as spin:  # our own file of strings and numbers: no pickles in it
        arrays = {key: spin[key] for key in spin.files}
    write_npz(out / NPZ_FILE, from_spin_npz(arrays), allow_pickle=True)
    spin_file.unlink()
    result.layout = NAME
    result.annotation_files = [out / NPZ_FILE]
    return result
