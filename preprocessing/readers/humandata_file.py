"""One of mmhuman3d's HumanData ``.npz`` files, its members checked as a whole and read row by row.

The format (mmhuman3d ``docs/human_data.md``; ``HumanData.dump`` writes it with
``np.savez_compressed``, other tools with ``np.savez``), N rows:

- ``image_path`` (N,): image paths relative to the dataset's image folder;
- ``bbox_xywh`` (N, 5): top-left x, y, width, height and a score (older files: (N, 4));
- ``keypoints2d`` (N, K, 3) with ``keypoints2d_mask`` (190,), optional ``keypoints3d`` (N, K, 4)
  with ``keypoints3d_mask``: the 190 keypoints of the ``human_data`` convention, or only those
  the mask keeps (K = mask.sum()) in a file dumped with ``__keypoints_compressed__``; the shape
  tells which. Without a mask every keypoint counts. A ``keypoints2d_convention`` /
  ``keypoints3d_convention`` member may name ``smpl_49`` or ``smpl_24`` instead (SPIN's order).
  The ``human_data`` names are mmhuman3d's, which put Human3.6M's and MPI-INF-3DHP's head in ``headtop`` and
  their neck/nose (3DHP: head) in ``head_extra`` (:data:`~preprocessing.keypoints.H36M17_IN_HUMAN_DATA`),
  where SPIN's files converted by mmhuman3d hold "Top of Head (LSP)" and "Head (H36M)": files of configs
  ``h36m`` and ``mpi_inf_3dhp`` are read by Human3.6M's names (head into slot 18, neck/nose into 17, slot 13
  empty, as SPIN's own files) unless their mask holds ``jaw_extra``, which only SPIN's converted files do;
  ``keypoints3d`` are pelvis-relative (mmhuman3d's converters subtract the pelvis, SPIN's files already were);
- ``smpl``: a dict of ``global_orient`` (N, 3), ``body_pose`` (N, 23, 3) and ``betas`` (N, 10)
  (``transl`` is not read), and an optional top-level ``has_smpl`` (N,);
- ``meta``: a dict whose optional ``gender`` (N,) holds codes such as 'm' / 'f';
- ``config``: the name of the converter that made the file (``eft``, ``h36m``, ``pw3d`` ...).

Dicts are stored as 0-d object arrays, i.e. pickles: only the members above are read, and
only through the restricted unpickler (:mod:`.npz_arrays`, never ``allow_pickle=True``).
``cam_param``, ``misc`` and the ``__temporal_len__``-style attributes are not read. A file that
lacks a required member or holds one of the wrong shape or type raises
:class:`~preprocessing.readers.files.SourceError` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from preprocessing.keypoints import (
    HUMAN_DATA_NUM_KEYPOINTS,
    NUM_GT,
    NUM_OPENPOSE,
    SPIN_IN_HUMAN_DATA,
    human_data_h36m_indices,
    human_data_indices,
)
from preprocessing.readers.files import SourceError, SourceFiles
from preprocessing.readers.npz_arrays import load_source_npz

KEYPOINT_KEYS = ("keypoints2d", "keypoints3d")
MEMBERS = (
    ("image_path", "bbox_xywh", "smpl", "has_smpl", "meta", "config")
    + KEYPOINT_KEYS
    + tuple(f"{key}_{part}" for key in KEYPOINT_KEYS for part in ("mask", "convention"))
    + ("mask",)  # early mmhuman3d files' one keypoint mask: read only to name that layout in the error
)
"""The members read; the others are never unpickled."""
CONVENTIONS: dict[str, np.ndarray] = {
    "human_data": human_data_indices(),
    "smpl_49": np.arange(NUM_OPENPOSE + NUM_GT),
    "smpl_24": np.concatenate([np.full(NUM_OPENPOSE, -1), np.arange(NUM_GT)]),
}
"""Keypoint convention -> (49,) position of each SPIN joint among its keypoints, -1 where it has none."""
CONVENTION_SIZES = {"human_data": HUMAN_DATA_NUM_KEYPOINTS, "smpl_49": NUM_OPENPOSE + NUM_GT, "smpl_24": NUM_GT}
H36M_NAMING_CONFIGS = ("h36m", "mpi_inf_3dhp")
"""Configs of mmhuman3d's own Human3.6M and MPI-INF-3DHP converters, whose ``human_data`` names shift the head."""
SPIN_ONLY_NAME = SPIN_IN_HUMAN_DATA["Jaw (H36M)"][1]
"""``jaw_extra``: in the mask of SPIN's files converted to ``human_data``, never in those converters'."""
SMPL_WIDTHS = {"global_orient": 3, "body_pose": 69, "betas": 10}


@dataclass(frozen=True)
class SpinColumns:
    """Where SPIN's 49 joints are among the columns of a keypoints member."""

    columns: np.ndarray  # (49,) column of each joint (0 where the file has none)
    present: np.ndarray  # (49,) bool: the file has the joint

    def take(self, row: np.ndarray) -> np.ndarray:
        """(49, C) float64 of one (K, C) row; zero where the file has no such joint."""
        return np.where(self.present[:, None], np.asarray(row, np.float64)[self.columns], 0.0)


@dataclass(frozen=True)
class HumanDataFile:
    """A HumanData file's members, shape-checked; rows are read on demand."""

    config: str
    image_paths: np.ndarray  # (N,) str
    boxes: np.ndarray  # (N, 4 or 5) x, y, w, h (score)
    keypoints_2d: np.ndarray  # (N, K, 3)
    columns_2d: SpinColumns
    keypoints_3d: np.ndarray | None  # (N, K', 4)
    columns_3d: SpinColumns | None
    smpl: dict[str, np.ndarray] | None  # global_orient (N, 3), body_pose (N, 69), betas (N, 10)
    has_smpl: np.ndarray | None  # (N,)
    genders: np.ndarray | None  # (N,) codes

    def __len__(self) -> int:
        return len(self.image_paths)

    def image_path(self, index: int) -> str:
        value = self.image_paths[index]
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    def fit(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """((72,) pose, (10,) betas) of row ``index``, or None when it has no fit."""
        if self.smpl is None or (self.has_smpl is not None and not self.has_smpl[index] > 0):
            return None
        smpl = {key: np.asarray(value[index], np.float64).reshape(-1) for key, value in self.smpl.items()}
        return np.concatenate([smpl["global_orient"], smpl["body_pose"]]), smpl["betas"]


def read_config(files: SourceFiles, relative: str) -> str:
    """The file's ``config`` (empty when it has none), without reading its other members."""
    return _config(load_source_npz(files, relative, ("config",)), files.url(relative))


def load_humandata(files: SourceFiles, relative: str, config: str = "") -> HumanDataFile:
    """The HumanData file ``relative``; :class:`SourceError` for a file that is not one.

    ``config`` (default: the file's) picks the keypoint naming (see the module docstring)."""
    url = files.url(relative)
    data = load_source_npz(files, relative, MEMBERS)
    missing = [key for key in ("image_path", "bbox_xywh", "keypoints2d") if key not in data]
    if missing:
        fix = ""
        if "keypoints2d" in missing and "image_path" not in missing:
            fix = (
                ". Without 2D keypoints a fit cannot be placed in its image (mmhuman3d's pw3d_test.npz has none, "
                "nor the body translation): read 3DPW's sequenceFiles with the 3dpw reader instead"
            )
        raise SourceError(f"{url} has no {missing} array; its keys: {sorted(data)}{fix}")
    paths = data["image_path"]
    if paths.ndim != 1:
        raise SourceError(f"{url}: 'image_path' has shape {paths.shape}, expected (N,) image paths")
    count = len(paths)
    boxes = _numeric(data, "bbox_xywh", url)
    if boxes.ndim != 2 or boxes.shape[0] != count or boxes.shape[1] not in (4, 5):
        raise SourceError(f"{url}: 'bbox_xywh' has shape {boxes.shape}, expected ({count}, 5) or ({count}, 4)")
    keypoints_3d = _keypoints(data, "keypoints3d", 4, count, url) if "keypoints3d" in data else None
    config = config or _config(data, url)
    return HumanDataFile(
        config=_config(data, url),
        image_paths=paths,
        boxes=boxes,
        keypoints_2d=_keypoints(data, "keypoints2d", 3, count, url),
        columns_2d=spin_columns(data, "keypoints2d", url, config),
        keypoints_3d=keypoints_3d,
        columns_3d=spin_columns(data, "keypoints3d", url, config) if keypoints_3d is not None else None,
        smpl=_smpl(data, count, url),
        has_smpl=_per_row(data, "has_smpl", count, url),
        genders=_genders(data, count, url),
    )


def _text(value: np.ndarray, key: str, url: str) -> str:
    if value.shape != () or value.dtype.kind not in "USO" or not isinstance(value.item(), str | bytes):
        raise SourceError(f"{url}: {key!r} is not one string (shape {value.shape}, dtype {value.dtype})")
    item = value.item()
    return item.decode("utf-8") if isinstance(item, bytes) else item


def _config(data: dict[str, np.ndarray], url: str) -> str:
    return _text(data["config"], "config", url) if "config" in data else ""


def _numeric(data: dict[str, np.ndarray], key: str, url: str) -> np.ndarray:
    if data[key].dtype.kind not in "biuf":
        raise SourceError(f"{url}: {key!r} holds {data[key].dtype} values, not numbers")
    return data[key]


def _keypoints(data: dict[str, np.ndarray], key: str, width: int, count: int, url: str) -> np.ndarray:
    array = _numeric(data, key, url)
    if array.ndim != 3 or array.shape[0] != count or array.shape[2] != width:
        raise SourceError(f"{url}: {key!r} has shape {array.shape}, expected ({count}, K, {width})")
    return array


def spin_columns(data: dict[str, np.ndarray], key: str, url: str, config: str = "") -> SpinColumns:
    """Where SPIN's joints are in member ``key``: its convention (and naming), its mask, and whether it is compressed."""
    convention = _text(data[f"{key}_convention"], f"{key}_convention", url) if f"{key}_convention" in data else ""
    convention = convention or "human_data"
    if convention not in CONVENTIONS:
        raise SourceError(
            f"{url}: {key} uses the {convention!r} keypoint convention; this reader reads {sorted(CONVENTIONS)}. "
            f"Convert the file to human_data with mmhuman3d's convert_kps"
        )
    size, positions = CONVENTION_SIZES[convention], CONVENTIONS[convention]
    mask = np.ones(size, bool)
    if f"{key}_mask" in data:
        given = data[f"{key}_mask"]
        if given.shape != (size,):
            raise SourceError(f"{url}: '{key}_mask' has shape {given.shape}, expected ({size},) ({convention})")
        mask = np.asarray(given) > 0
    if convention == "human_data" and config in H36M_NAMING_CONFIGS and not mask[SPIN_ONLY_NAME]:
        positions = human_data_h36m_indices()
    present = (positions >= 0) & mask[np.maximum(positions, 0)]
    stored = data[key].shape[1]
    if stored == size:
        columns = np.maximum(positions, 0)
    elif stored == mask.sum():  # compressed: only the kept keypoints, in order
        columns = np.maximum(np.cumsum(mask) - 1, 0)[np.maximum(positions, 0)]
    elif "mask" in data and f"{key}_mask" not in data:
        raise SourceError(
            f"{url} is an early mmhuman3d HumanData file ({key!r} holds {stored} keypoints, with a 'mask' member and "
            f"no '{key}_mask'); this reader reads the current layout ({size} {convention} keypoints and "
            f"'{key}_mask'): convert the dataset again with a current mmhuman3d (tools/convert_datasets.py)"
        )
    else:
        raise SourceError(
            f"{url}: {key!r} holds {stored} keypoints; expected {size} ({convention}) "
            f"or the {int(mask.sum())} that '{key}_mask' keeps (a compressed file)"
        )
    return SpinColumns(columns, present)


def _dict(data: dict[str, np.ndarray], key: str, url: str) -> dict | None:
    """Member ``key`` stored as a dict (a 0-d or one-element object array), or None when absent."""
    if key not in data:
        return None
    value = data[key]
    item = value.reshape(-1)[0] if value.dtype == object and value.size == 1 else None
    if not isinstance(item, dict):
        raise SourceError(f"{url}: {key!r} is not a dict (shape {value.shape}, dtype {value.dtype})")
    return item


def _smpl(data: dict[str, np.ndarray], count: int, url: str) -> dict[str, np.ndarray] | None:
    smpl = _dict(data, "smpl", url)
    if not smpl:
        return None
    missing = [key for key in SMPL_WIDTHS if key not in smpl]
    if missing:
        raise SourceError(f"{url}: 'smpl' has no {missing}; its keys: {sorted(smpl)}")
    arrays = {}
    for key, width in SMPL_WIDTHS.items():
        try:
            array = np.asarray(smpl[key], np.float64)
        except (TypeError, ValueError):
            raise SourceError(f"{url}: smpl[{key!r}] is not numeric ({type(smpl[key]).__name__})") from None
        if array.ndim < 2 or array.shape[0] != count or int(np.prod(array.shape[1:])) != width:
            raise SourceError(f"{url}: smpl[{key!r}] has shape {array.shape}, expected ({count}, {width}) values")
        arrays[key] = array.reshape(count, width)
    return arrays


def _per_row(data: dict[str, np.ndarray], key: str, count: int, url: str) -> np.ndarray | None:
    if key not in data:
        return None
    if data[key].shape != (count,):
        raise SourceError(f"{url}: {key!r} has shape {data[key].shape}, expected ({count},)")
    return _numeric(data, key, url)


def _genders(data: dict[str, np.ndarray], count: int, url: str) -> np.ndarray | None:
    meta = _dict(data, "meta", url)
    if not meta or "gender" not in meta:
        return None
    genders = np.asarray(meta["gender"])
    if genders.shape != (count,):
        raise SourceError(f"{url}: meta['gender'] has shape {genders.shape}, expected ({count},)")
    return genders
