"""Sample records as JSON text: how records travel from the job's driver to its workers.

JSON rather than pickle: the workers never unpickle data, the text is the same on every Python
and NumPy version (so it also identifies a chunk's input for idempotent reruns), and Python's
float repr round-trips float64 exactly, so a decoded record equals the one encoded.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from preprocessing.record import CropCamera, ImageRef, PerspectiveCamera, SampleRecord

ARRAYS = ("center", "keypoints_2d", "joints_3d", "pose", "betas")


def _array(value: np.ndarray | None) -> list | None:
    return None if value is None else np.asarray(value, np.float64).tolist()


def _camera_to_json(camera) -> dict | None:
    if isinstance(camera, CropCamera):
        return {"kind": "crop", "cam": _array(camera.cam), "center": _array(camera.center), "box_size": camera.box_size}
    if isinstance(camera, PerspectiveCamera):
        fields = ("intrinsics", "translation", "frame_rotation")
        return {"kind": "perspective", **{name: _array(getattr(camera, name)) for name in fields}}
    if camera is None:
        return None
    raise TypeError(f"cannot encode camera of type {type(camera).__name__}")


def _camera_from_json(data: dict | None):
    if data is None:
        return None
    arrays = {
        key: None if value is None else np.asarray(value, np.float64) for key, value in data.items() if key != "kind"
    }
    if data["kind"] == "crop":
        return CropCamera(arrays["cam"], arrays["center"], float(data["box_size"]))
    return PerspectiveCamera(arrays["intrinsics"], arrays["translation"], arrays["frame_rotation"])


def record_to_json(record: SampleRecord) -> dict:
    """A JSON-ready dict of ``record`` (arrays as nested lists)."""
    data = {field.name: getattr(record, field.name) for field in dataclasses.fields(record)}
    data.update({name: _array(data[name]) for name in ARRAYS})
    data["image"] = {"path": record.image.path, "frame": record.image.frame}
    data["camera"] = _camera_to_json(record.camera)
    data["image_size"] = None if record.image_size is None else list(record.image_size)
    data["box_size"] = float(record.box_size)
    return data


def record_from_json(data: dict) -> SampleRecord:
    """The record :func:`record_to_json` encoded."""
    values = dict(data)
    values.update({name: None if data[name] is None else np.asarray(data[name], np.float64) for name in ARRAYS})
    values["image"] = ImageRef(**data["image"])
    values["camera"] = _camera_from_json(data["camera"])
    values["image_size"] = None if data["image_size"] is None else tuple(data["image_size"])
    return SampleRecord(**values)


def encode_records(records: list[SampleRecord]) -> str:
    """Records as one JSON text; the same records give the same text."""
    return json.dumps([record_to_json(r) for r in records], sort_keys=True, separators=(",", ":"))


def decode_records(text: str) -> list[SampleRecord]:
    """The records of :func:`encode_records`'s text."""
    return [record_from_json(item) for item in json.loads(text)]
