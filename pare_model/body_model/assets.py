"""Body model asset folders: the one place where body model files are read and written.

A folder holds, as SPIN and PARE expect:

- ``SMPL_NEUTRAL.pkl`` or ``.npz`` (and optionally ``SMPL_MALE`` / ``SMPL_FEMALE``); the
  official ``basicmodel_{neutral,m,f}_lbs_10_207_0_v*.pkl`` names are accepted too;
- ``J_regressor_extra.npy`` (9, 6890) and ``J_regressor_h36m.npy`` (17, 6890);
- ``smpl_mean_params.npz`` with ``pose`` (144, 6D), ``shape`` (10) and ``cam`` (3).

Pickles go through :mod:`pare_model.safe_pickle`, so the real SMPL files load without chumpy
and no file can run code. Everything lands in plain numpy arrays; the torch modules are built
from those arrays (:meth:`pare_model.body_model.layer.BodyModel.from_assets`).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import scipy.sparse

from pare_model.errors import AssetError
from pare_model.input_limits import check_npz
from pare_model.safe_pickle import load_pickle

Gender = Literal["neutral", "male", "female"]
GENDERS: tuple[Gender, ...] = ("neutral", "male", "female")
NUM_VERTICES = 6890
NUM_JOINTS = 24
EXTRA_REGRESSOR_FILE = "J_regressor_extra.npy"
H36M_REGRESSOR_FILE = "J_regressor_h36m.npy"
MEAN_PARAMS_FILE = "smpl_mean_params.npz"
PROCEDURAL_MANIFEST = "procedural.json"
DOWNLOAD_HINT = (
    "Get SMPL from https://smpl.is.tue.mpg.de and the SPIN/PARE extras (J_regressor_extra.npy, "
    "J_regressor_h36m.npy, smpl_mean_params.npz) from their data packages, or generate the "
    "procedural stand-in with `pare body-model synth --out DIR`."
)
BODY_MODEL_ADVICE = (
    "If the file is a body model from the official SMPL site, check that it was not replaced; otherwise convert "
    "its arrays to .npz."
)
_OFFICIAL_NAMES = {"neutral": "neutral", "male": "m", "female": "f"}


@dataclass(frozen=True)
class BodyModelAssets:
    """Everything a :class:`~pare_model.body_model.layer.BodyModel` is built from."""

    model: Mapping[str, np.ndarray]
    """Arrays of the SMPL model file: ``v_template``, ``f``, ``weights``, ``J_regressor``
    (dense), ``posedirs``, ``shapedirs``, ``kintree_table``."""
    j_regressor_extra: np.ndarray  # (9, V)
    j_regressor_h36m: np.ndarray  # (17, V)
    mean_params: Mapping[str, np.ndarray]  # pose (144,), shape (10,), cam (3,)
    gender: Gender = "neutral"
    part_map: np.ndarray | None = None
    """(V,) part index 0..23 per vertex from a mapping file; None means argmax of weights."""
    procedural: bool = False
    """True for the generated stand-in, which is not SMPL."""
    source: str = ""
    metadata: Mapping[str, object] = field(default_factory=dict)


_MODEL_SHAPES = {
    "v_template": (NUM_VERTICES, 3),
    "f": (None, 3),
    "weights": (NUM_VERTICES, NUM_JOINTS),
    "J_regressor": (NUM_JOINTS, NUM_VERTICES),
    "posedirs": (NUM_VERTICES, 3, 207),
    "shapedirs": (NUM_VERTICES, 3, None),
    "kintree_table": (2, NUM_JOINTS),
}


def _check_shape(name: str, array: np.ndarray, expected: tuple, source: str) -> None:
    ok = array.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, array.shape, strict=True))
    if not ok:
        want = "(" + ", ".join("N" if e is None else str(e) for e in expected) + ")"
        raise AssetError(f"{source}: '{name}' has shape {array.shape}, expected {want} as in SMPL")


def model_file(folder: Path, gender: Gender) -> Path:
    """The model file for ``gender`` in ``folder``; the error lists what is there instead."""
    candidates = [folder / f"SMPL_{gender.upper()}.pkl", folder / f"SMPL_{gender.upper()}.npz"]
    official = re.compile(rf"basicmodel_{_OFFICIAL_NAMES[gender]}_lbs_10_207_0_v[\d.]+\.pkl", re.IGNORECASE)
    if folder.is_dir():
        candidates += sorted(p for p in folder.iterdir() if official.fullmatch(p.name))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    raise AssetError(
        f"no {gender} body model in {folder}: looked for SMPL_{gender.upper()}.pkl, "
        f"SMPL_{gender.upper()}.npz and the official basicmodel names; found {present or 'nothing'}. " + DOWNLOAD_HINT
    )


def _as_dense(value: object) -> np.ndarray:
    """A C-ordered dense array, so that pickle and npz files give bit-identical models."""
    if scipy.sparse.issparse(value):
        value = cast(Any, value).toarray()
    return np.ascontiguousarray(value)


def read_model_file(path: Path) -> dict[str, np.ndarray]:
    """Arrays of one SMPL model file (.pkl or .npz), validated against SMPL's shapes."""
    if path.suffix == ".npz":
        try:
            check_npz(path)  # what its arrays declare, before np.load allocates them
            with np.load(path, allow_pickle=False) as archive:
                raw = {key: archive[key] for key in archive.files}
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise numpy_file_error(path, error) from error
    else:
        raw = load_pickle(path, advice=BODY_MODEL_ADVICE)
        if not isinstance(raw, dict):
            raise AssetError(f"{path} holds a {type(raw).__name__}, expected the dict of an SMPL model")
    missing = [key for key in _MODEL_SHAPES if key not in raw]
    if missing:
        raise AssetError(f"{path} lacks {missing}; is it an SMPL model file? " + DOWNLOAD_HINT)
    model = {key: _as_dense(raw[key]) for key in _MODEL_SHAPES}
    for key, expected in _MODEL_SHAPES.items():
        _check_shape(key, model[key], expected, str(path))
    if model["shapedirs"].shape[2] < 10:
        raise AssetError(f"{path}: 'shapedirs' has {model['shapedirs'].shape[2]} components, SMPL has 10")
    faces = model["f"]
    if faces.min() < 0 or faces.max() >= NUM_VERTICES:
        raise AssetError(f"{path}: face indices outside 0..{NUM_VERTICES - 1}")
    for key in ("v_template", "weights", "J_regressor", "posedirs", "shapedirs"):
        if not np.isfinite(model[key]).all():
            raise AssetError(f"{path}: '{key}' holds NaN or infinite values")
    _check_kinematic_tree(model["kintree_table"], path)
    return model


def _check_kinematic_tree(table: np.ndarray, path: Path) -> None:
    """Every joint but the root has an earlier joint as its parent, as in SMPL (and as smplx's chain needs:
    it walks the joints in order, so a parent out of range or a cycle would index past its transforms)."""
    parents = table[0]
    for joint in range(1, NUM_JOINTS):
        parent = parents[joint]
        if not 0 <= parent < joint:
            raise AssetError(
                f"{path}: 'kintree_table' gives joint {joint} the parent {parent}; in SMPL every joint's parent is an "
                f"earlier joint (0..{joint - 1}), so the skeleton is a tree rooted at joint 0. The file is damaged or "
                "not an SMPL model. " + DOWNLOAD_HINT
            )


NUMPY_MAGIC = {".npy": (b"\x93NUMPY", "numpy's .npy header"), ".npz": (b"PK", "a zip archive's header")}


def numpy_file_error(path: Path, error: Exception, what: str = "") -> AssetError:
    """What is wrong with a ``.npy`` / ``.npz`` file numpy refused, said plainly.

    numpy reads any file without its header as a pickle, so its error for a damaged file or one of another kind
    suggests ``allow_pickle=True``, which would let the file run code: never the fix here."""
    kind = ".npz" if path.suffix == ".npz" else ".npy"
    magic, header = NUMPY_MAGIC[kind]
    try:
        with open(path, "rb") as handle:
            start = handle.read(len(magic))
    except OSError:
        start = magic  # unreadable: numpy's own error says why
    if start != magic:
        return AssetError(
            f"{what}{path} is not a {kind} file: it does not start with {header} (damaged, empty, or another kind of "
            f"file under a {kind} name). " + DOWNLOAD_HINT
        )
    if "pickled" in str(error):
        return AssetError(
            f"{what}{path} holds Python objects rather than numbers; they are not loaded, as loading them could run "
            "code from the file. Save the arrays as plain numbers (numpy.save with allow_pickle=False)"
        )
    return AssetError(f"{what}{path} is not a readable {kind} file ({error})")


def _read_regressor(folder: Path, name: str, rows: int) -> np.ndarray:
    path = folder / name
    if not path.is_file():
        raise AssetError(f"{folder} lacks {name}. " + DOWNLOAD_HINT)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise numpy_file_error(path, error) from error
    _check_shape(name, array, (rows, NUM_VERTICES), str(path))
    return array.astype(np.float64)


def _read_mean_params(folder: Path) -> dict[str, np.ndarray]:
    path = folder / MEAN_PARAMS_FILE
    if not path.is_file():
        raise AssetError(f"{folder} lacks {MEAN_PARAMS_FILE}. " + DOWNLOAD_HINT)
    try:
        check_npz(path, ("pose", "shape", "cam"))
        with np.load(path, allow_pickle=False) as archive:
            params = {key: np.asarray(archive[key], dtype=np.float32) for key in ("pose", "shape", "cam")}
    except KeyError as error:
        raise AssetError(f"{path} lacks {error}; it needs 'pose' (144), 'shape' (10) and 'cam' (3)") from error
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise numpy_file_error(path, error) from error
    for key, size in (("pose", 144), ("shape", 10), ("cam", 3)):
        _check_shape(key, params[key], (size,), str(path))
    return params


# Meshcapade's smpl_vert_segmentation.json names, in SMPL joint order.
SEGMENTATION_PART_NAMES = (
    "hips",
    "leftUpLeg",
    "rightUpLeg",
    "spine",
    "leftLeg",
    "rightLeg",
    "spine1",
    "leftFoot",
    "rightFoot",
    "spine2",
    "leftToeBase",
    "rightToeBase",
    "neck",
    "leftShoulder",
    "rightShoulder",
    "head",
    "leftArm",
    "rightArm",
    "leftForeArm",
    "rightForeArm",
    "leftHand",
    "rightHand",
    "leftHandIndex1",
    "rightHandIndex1",
)


def read_part_map(path: Path) -> np.ndarray:
    """(V,) part index per vertex from a ``.npy`` array or a segmentation ``.json``.

    The JSON form maps Meshcapade's part names (``hips``, ``leftUpLeg``, ...) to vertex lists.
    Every vertex must get exactly one part.
    """
    if path.suffix == ".json":
        try:
            segmentation = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise AssetError(f"cannot read part map {path}: {error}") from error
        unknown = sorted(set(segmentation) - set(SEGMENTATION_PART_NAMES))
        if unknown:
            raise AssetError(f"{path}: unknown part names {unknown}; valid: {list(SEGMENTATION_PART_NAMES)}")
        part_map = np.full(NUM_VERTICES, -1, dtype=np.int64)
        for part, name in enumerate(SEGMENTATION_PART_NAMES):
            indices = np.asarray(segmentation.get(name, []), dtype=np.int64)
            if indices.size and (indices.min() < 0 or indices.max() >= NUM_VERTICES):
                raise AssetError(f"{path}: part {name} has vertex indices outside 0..{NUM_VERTICES - 1}")
            if (part_map[indices] >= 0).any():
                raise AssetError(f"{path}: part {name} repeats vertices that another part already holds")
            part_map[indices] = part
    else:
        try:
            part_map = np.load(path, allow_pickle=False).astype(np.int64)
        except (OSError, ValueError) as error:
            raise numpy_file_error(path, error, "part map ") from error
        _check_shape("part map", part_map, (NUM_VERTICES,), str(path))
    if part_map.min() < 0 or part_map.max() >= NUM_JOINTS:
        raise AssetError(f"{path}: every vertex needs a part in 0..23; {int((part_map < 0).sum())} have none")
    return part_map


def load_body_model_assets(
    folder: str | Path, gender: Gender = "neutral", part_map_file: str | Path | None = None
) -> BodyModelAssets:
    """Read and validate an asset folder for one gender."""
    folder = Path(folder)
    if gender not in GENDERS:
        raise AssetError(f"unknown gender {gender!r}; valid: {list(GENDERS)}")
    if not folder.is_dir():
        raise AssetError(f"body model folder {folder} does not exist. " + DOWNLOAD_HINT)
    path = model_file(folder, gender)
    manifest_path = folder / PROCEDURAL_MANIFEST
    metadata = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    return BodyModelAssets(
        model=read_model_file(path),
        j_regressor_extra=_read_regressor(folder, EXTRA_REGRESSOR_FILE, 9),
        j_regressor_h36m=_read_regressor(folder, H36M_REGRESSOR_FILE, 17),
        mean_params=_read_mean_params(folder),
        gender=gender,
        part_map=read_part_map(Path(part_map_file)) if part_map_file else None,
        procedural=bool(metadata.get("procedural_stand_in", False)),
        source=str(path),
        metadata=metadata,
    )
