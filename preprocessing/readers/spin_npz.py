"""SPIN/PARE ``dataset_extras`` npz files over an image folder (``spin_npz``), for any dataset.

Keys (``../shared/docs/data-formats.md``): ``imgname`` (N,), ``center`` (N, 2), ``scale`` (N,)
= box side / 200, ``part`` (N, 24, 3) ground-truth joints with visibility, optional
``openpose`` (N, 25, 3), ``S`` (N, 24, 4) 3D joints in metres, ``pose`` (N, 72) and
``shape`` (N, 10) with ``has_smpl`` (N,), ``gender`` (N,). Missing keys mean "not annotated".
The files carry no camera: the job fits PARE's crop camera to the keypoints (or, where 3D
joints exist and a subclass knows the intrinsics, the translation to the 3D joints).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from preprocessing.keypoints import NUM_OPENPOSE
from preprocessing.readers.base import Item, Reader, pixel_offset
from preprocessing.readers.files import SourceError
from preprocessing.record import ImageRef, RecordRejected, SampleRecord

GENDER_NAMES = {"m": "male", "f": "female", "n": "neutral", "male": "male", "female": "female", "neutral": "neutral"}
SHAPES = {
    "center": (2,),
    "scale": (),
    "part": (24, 3),
    "openpose": (25, 3),
    "S": (24, 4),
    "pose": (72,),
    "shape": (10,),
}


@dataclass(frozen=True)
class SpinNpzOptions:
    """Options of the ``spin_npz`` reader."""

    npz: str = ""
    """The npz file, relative to the root; empty: the only ``*.npz`` at the root."""
    images: str = ""
    """Folder the ``imgname`` paths are relative to, relative to the root (empty: the root)."""
    gender: str = "neutral"
    """Body model of fits whose file has no ``gender`` key."""
    pixel_offset: float | None = None
    """Added to every coordinate to reach the project's pixel convention; None: 0.5 for real data, 0 for ``pare synth`` output."""


def gender_name(value) -> str:
    """'male' / 'female' / 'neutral' from SPIN's 'm' / 'f' (or 0 = male, 1 = female)."""
    if isinstance(value, np.integer | int):
        return ("male", "female")[int(value)] if int(value) in (0, 1) else "neutral"
    return GENDER_NAMES.get(str(value).strip().lower(), "neutral")


class SpinNpzReader(Reader):
    """A SPIN/PARE dataset_extras npz file over an image folder."""

    name = "spin_npz"
    default_dataset = "spin-npz"
    Options = SpinNpzOptions

    def npz_path(self) -> str:
        if self.options.npz:
            return self.options.npz
        found = [p for p in self.files.glob("*.npz")]
        if len(found) != 1:
            raise SourceError(
                f"set options.npz: {self.files.uri} holds {len(found)} npz files ({', '.join(found) or 'none'})"
            )
        return found[0]

    def annotation_files(self) -> list[str]:
        return [self.npz_path()]

    def load(self) -> dict[str, np.ndarray]:
        """The arrays of the npz, shape-checked as a whole (a wrong shape is a broken file, not a bad row)."""
        relative = self.npz_path()
        try:
            data = dict(np.load(io.BytesIO(self.files.read_bytes(relative)), allow_pickle=False))
        except (ValueError, OSError) as error:
            raise SourceError(f"{self.files.url(relative)} is not a readable npz file: {error}") from None
        for key in ("imgname", "center", "scale", "part"):
            if key not in data:
                raise SourceError(f"{self.files.url(relative)} has no {key!r} array; keys: {sorted(data)}")
        count = len(data["imgname"])
        for key, shape in SHAPES.items():
            if key in data and data[key].shape != (count, *shape):
                raise SourceError(
                    f"{self.files.url(relative)}: {key!r} has shape {data[key].shape}, expected {(count, *shape)} "
                    "(SPIN's 24-joint layout)"
                )
        return data

    def records(self) -> Iterator[Item]:
        data = self.load()
        offset = pixel_offset(self.files, self.options.pixel_offset)
        source = self.npz_path()
        for index in range(len(data["imgname"])):
            name = str(data["imgname"][index])
            try:
                yield self.record(data, index, offset)
            except RecordRejected as error:
                yield self.rejected(error.reason, error.detail, self.sample_id(name, index), source)

    def sample_id(self, imgname: str, index: int) -> str:
        return f"{index:07d}_{imgname.rsplit('/', 1)[-1].rsplit('.', 1)[0]}"

    def image_path(self, imgname: str) -> str:
        return f"{self.options.images}/{imgname}" if self.options.images else imgname

    def record(self, data: dict[str, np.ndarray], index: int, offset: float) -> SampleRecord:
        name = str(data["imgname"][index])
        keypoints = np.zeros((49, 3))
        keypoints[NUM_OPENPOSE:] = data["part"][index]
        if "openpose" in data:
            keypoints[:NUM_OPENPOSE] = data["openpose"][index]
        keypoints[keypoints[:, 2] <= 0, :2] = 0.0
        keypoints[keypoints[:, 2] > 0, :2] += offset
        has_smpl = (
            "pose" in data and "shape" in data and (float(data["has_smpl"][index]) > 0 if "has_smpl" in data else True)
        )
        gender = gender_name(data["gender"][index]) if "gender" in data else self.options.gender
        return SampleRecord(
            dataset=self.dataset,
            split=self.split,
            sample_id=self.sample_id(name, index),
            image=ImageRef(self.files.url(self.image_path(name))),
            center=np.asarray(data["center"][index], np.float64) + offset,
            box_size=float(data["scale"][index]) * 200.0,
            keypoints_2d=keypoints,
            joints_3d=np.asarray(data["S"][index], np.float64) if "S" in data else None,
            pose=np.asarray(data["pose"][index], np.float64) if has_smpl else None,
            betas=np.asarray(data["shape"][index], np.float64) if has_smpl else None,
            gender=gender if has_smpl else "neutral",
            source=self.npz_path(),
            person_index=0,
            fit_source="npz" if has_smpl else "",
            extra={"imgname": name, "index": index},
        )
