"""SPIN/PARE ``dataset_extras`` npz files over an image folder (``spin_npz``), for any dataset.

Keys (``docs/data-formats.md``): ``imgname`` (N,) image paths relative to
``options.images``, ``center`` (N, 2) and ``scale`` (N,) = box side / 200 (SPIN's box, margin
included), ``part`` (N, 24, 3) SPIN's ground-truth joints with visibility (SPIN joints 25..48),
optional ``openpose`` (N, 25, 3) (SPIN joints 0..24), ``S`` (N, 24, 4) 3D joints in metres with
validity, ``pose`` (N, 72) and ``shape`` (N, 10) with ``has_smpl`` (N,),
``gender`` (N,) 'm' / 'f' (or SPIN's integer code, 0 male, 1 female). A missing optional key
means "not annotated"; other keys are ignored. ``options.joints = "mpi_inf_3dhp17"`` reads
``part`` and ``S`` in MPI-INF-3DHP's 17-joint test order (mmpose's npz files) instead.

``S``'s frame depends on who wrote the file: SPIN's preprocessing root-centres it (the pelvis, slot 14, at 0;
``options.joints_frame: root_centred``, the default), mmpose's files keep the camera frame
(``joints_frame: camera``). A file whose rows contradict the option is refused naming it
(:mod:`.joints_frame`); root-centred joints never place a fit (the job fits the camera to the 24
ground-truth joints' 2D keypoints, as PARE does).

The npz is memory-mapped (:mod:`preprocessing.readers.npz_arrays`) and read one row at a time.
The files carry no camera: the job fits PARE's crop camera to the keypoints (a subclass that
knows the intrinsics, such as ``h36m_npz``, sets a pinhole camera instead).

A file that cannot be read, lacks ``imgname`` / ``center`` / ``scale`` (or both ``part`` and
``openpose``), or holds an array whose shape is not (N, ...) raises
:class:`~preprocessing.readers.files.SourceError` naming the key and the expected shape. A bad
row is rejected alone: NaN or infinity in a value it uses (``nan_parameters``), an unknown
gender code (``bad_annotation``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from preprocessing.keypoints import MPI_INF_3DHP17_TO_SPIN_GT, NUM_GT, NUM_OPENPOSE, gt_indices
from preprocessing.readers.base import Item, Reader, pixel_offset
from preprocessing.readers.files import SourceError, SourceFiles
from preprocessing.readers.joints_frame import check_rows, contradiction
from preprocessing.readers.npz_arrays import load_source_npz
from preprocessing.record import GENDERS, JOINTS_FRAMES, ImageRef, RecordRejected, SampleRecord

JOINT_LAYOUTS: dict[str, tuple[np.ndarray, str]] = {
    "spin24": (np.arange(NUM_GT), "SPIN's 24-joint layout"),
    "mpi_inf_3dhp17": (gt_indices(MPI_INF_3DHP17_TO_SPIN_GT), "MPI-INF-3DHP's 17 test joints"),
}
"""``options.joints`` -> (indices of the file's joints among SPIN's 24 GT joints, description)."""
GENDER_CODES = {"m": "male", "male": "male", "0": "male", "f": "female", "female": "female", "1": "female"}
GENDER_CODES |= {"n": "neutral", "neutral": "neutral"}
NO_GENDER = ("", "-1")
"""Codes that mean "gender unknown": the fit uses ``options.gender``."""
NUMERIC = ("center", "scale", "part", "openpose", "S", "pose", "shape", "has_smpl")
FRAME = "options.joints_frame"


@dataclass(frozen=True)
class SpinNpzOptions:
    """Options of the ``spin_npz`` reader."""

    npz: str = ""
    """The npz file, relative to the root; empty: the only ``*.npz`` at the root."""
    images: str = ""
    """Folder the ``imgname`` paths are relative to, relative to the root (empty: the root)."""
    joints: str = "spin24"
    """Layout of ``part`` and ``S``: ``spin24`` (SPIN's 24 GT joints) or ``mpi_inf_3dhp17`` (mmpose's 3DHP files)."""
    joints_frame: str = "root_centred"
    """Frame of ``S``: ``root_centred`` (pelvis at 0: SPIN's and PARE's files) or ``camera`` (mmpose's files)."""
    gender: str = "neutral"
    """Body model of fits whose file has no ``gender`` key (or codes it as unknown)."""
    pixel_offset: float | None = None
    """Added to every coordinate to reach the project's pixel convention; None: 0.5 for real data, 0 for ``pare synth`` output."""

    def __post_init__(self):
        if self.joints not in JOINT_LAYOUTS:
            raise ValueError(f"joints must be one of {sorted(JOINT_LAYOUTS)}, got {self.joints!r}")
        if self.joints_frame not in JOINTS_FRAMES:
            raise ValueError(f"joints_frame must be one of {JOINTS_FRAMES}, got {self.joints_frame!r}")
        if self.gender not in GENDERS:
            raise ValueError(f"gender must be one of {GENDERS}, got {self.gender!r}")


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def gender_name(value, default: str = "neutral") -> str | None:
    """'male' / 'female' / 'neutral' from 'm' / 'f' / 'n', SPIN's 0 / 1, or ``default`` for '' and -1; None if unknown."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    code = _text(value).strip().lower()
    return default if code in NO_GENDER else GENDER_CODES.get(code)


def only_npz(files: SourceFiles) -> str:
    """The one ``*.npz`` at the root, relative to it; :class:`SourceError` when there are none or several."""
    found = files.glob("*.npz")
    if len(found) != 1:
        raise SourceError(
            f"set options.npz to the npz file: {files.uri} holds {len(found)} npz files ({', '.join(found) or 'none'})"
        )
    return found[0]


class SpinNpzReader(Reader):
    """A SPIN/PARE dataset_extras npz file over an image folder."""

    name = "spin_npz"
    default_dataset = "spin-npz"
    Options = SpinNpzOptions

    def npz_path(self) -> str:
        if self.options.npz:
            return self.options.npz
        if getattr(self, "_found_npz", None) is None:  # listed once, not per record
            self._found_npz = only_npz(self.files)
        return self._found_npz

    def annotation_files(self) -> list[str]:
        return [self.npz_path()]

    def joint_layout(self) -> tuple[np.ndarray, str]:
        # Subclasses' Options (h36m_npz) may have no ``joints``: their files use SPIN's layout.
        return JOINT_LAYOUTS[getattr(self.options, "joints", "spin24")]

    def load(self) -> dict[str, np.ndarray]:
        """The npz's arrays (memory-mapped), shape-checked as a whole: a wrong shape is a broken file, not a bad row."""
        relative = self.npz_path()
        url = self.files.url(relative)
        data = load_source_npz(self.files, relative)
        missing = [key for key in ("imgname", "center", "scale") if key not in data]
        if missing:
            raise SourceError(f"{url} has no {missing} array; its keys: {sorted(data)}")
        # SPIN's own Human3.6M validation files hold imgname, center, scale and S alone (h36m_extract's np.savez)
        if not any(key in data for key in ("part", "openpose", "S")):
            raise SourceError(
                f"{url} has neither 2D keypoints ('part', 'openpose') nor 3D joints ('S'); its keys: {sorted(data)}"
            )
        if data["imgname"].ndim != 1:
            raise SourceError(f"{url}: 'imgname' has shape {data['imgname'].shape}, expected (N,) image paths")
        count = len(data["imgname"])
        indices, layout = self.joint_layout()
        shapes = {"imgname": (), "center": (2,), "scale": (), "part": (len(indices), 3), "openpose": (25, 3)}
        shapes |= {"S": (len(indices), 4), "pose": (72,), "shape": (10,), "has_smpl": (), "gender": ()}
        for key, shape in shapes.items():
            if key in data and data[key].shape != (count, *shape):
                hint = f" ({layout})" if key in ("part", "S") else ""
                if key in ("part", "S") and data[key].shape[1:2] == (17,):
                    hint += "; a 17-joint MPI-INF-3DHP file (mmpose) needs options.joints: mpi_inf_3dhp17"
                raise SourceError(f"{url}: {key!r} has shape {data[key].shape}, expected {(count, *shape)}{hint}")
        if "S" in data:
            problem = check_rows(count, lambda i: self.joints_24(data["S"][i]), self.options.joints_frame, FRAME, url)
            if problem:
                raise SourceError(problem)
        return data

    def joints_24(self, joints: np.ndarray) -> np.ndarray:
        """(24, 4) SPIN ground-truth joints of one row of ``S`` (in ``options.joints``' layout)."""
        indices, _ = self.joint_layout()
        full = np.zeros((NUM_GT, 4))
        full[indices] = joints
        return full

    def records(self) -> Iterator[Item]:
        data = self.load()
        offset = pixel_offset(self.files, self.options.pixel_offset)
        source = self.npz_path()
        for index in range(len(data["imgname"])):
            try:
                yield self.record(data, index, offset)
            except RecordRejected as error:
                name = _text(data["imgname"][index])
                yield self.rejected(error.reason, error.detail, self.sample_id(name, index), source)

    def sample_id(self, imgname: str, index: int) -> str:
        return f"{index:07d}_{imgname.rsplit('/', 1)[-1].rsplit('.', 1)[0]}"

    def image_path(self, imgname: str) -> str:
        return f"{self.options.images}/{imgname}" if self.options.images else imgname

    def record(self, data: dict[str, np.ndarray], index: int, offset: float) -> SampleRecord:
        """Row ``index`` as a record, or :class:`RecordRejected` for NaN values or an unknown gender."""
        name = _text(data["imgname"][index])
        # np.array copies: a float64 memmap row would stay a read-only view.
        row = {key: np.array(data[key][index], np.float64) for key in NUMERIC if key in data}
        has_smpl = "pose" in row and "shape" in row and ("has_smpl" not in row or bool(row["has_smpl"] > 0))
        used = [key for key in ("center", "scale", "part", "openpose", "S") if key in row]
        bad = [key for key in used + (["pose", "shape"] if has_smpl else []) if not np.isfinite(row[key]).all()]
        if bad:
            raise RecordRejected("nan_parameters", f"row {index} ({name}): {', '.join(bad)} has NaN or infinity")
        default_gender = getattr(self.options, "gender", "neutral")
        gender = gender_name(data["gender"][index], default_gender) if "gender" in data else default_gender
        if has_smpl and gender is None:
            raise RecordRejected("bad_annotation", f"row {index} ({name}): unknown gender {data['gender'][index]!r}")
        indices, _ = self.joint_layout()
        keypoints = np.zeros((49, 3))
        if "part" in row:
            keypoints[NUM_OPENPOSE + indices] = row["part"]
        if "openpose" in row:
            keypoints[:NUM_OPENPOSE] = row["openpose"]
        labelled = keypoints[:, 2] > 0
        keypoints[~labelled] = 0.0
        keypoints[labelled, :2] += offset
        joints_3d = None
        if "S" in row:
            joints_3d = self.joints_24(row["S"])
            problem = contradiction(joints_3d, self.options.joints_frame, FRAME, f"row {index} ({name})")
            if problem:
                raise RecordRejected("bad_annotation", problem)
        return SampleRecord(
            dataset=self.dataset,
            split=self.split,
            sample_id=self.sample_id(name, index),
            image=ImageRef(self.files.url(self.image_path(name))),
            center=row["center"] + offset,
            box_size=float(row["scale"]) * 200.0,
            keypoints_2d=keypoints,
            joints_3d=joints_3d,
            joints_frame=self.options.joints_frame,
            pose=row["pose"] if has_smpl else None,
            betas=row["shape"] if has_smpl else None,
            gender=gender if has_smpl else "neutral",
            source=self.npz_path(),
            person_index=0,
            fit_source="npz" if has_smpl else "",
            extra={"imgname": name, "index": index},
        )
