"""Records travel to the job's workers as JSON text: decoding gives back exactly the record encoded."""

from __future__ import annotations

import dataclasses

import numpy as np

from preprocessing.record import CropCamera, ImageRef, PerspectiveCamera, SampleRecord
from preprocessing.record_codec import decode_records, encode_records


def records() -> list[SampleRecord]:
    rng = np.random.default_rng(0)
    base = SampleRecord(
        dataset="h36m",
        split="train",
        sample_id="S1_Directions_1.54138969_000001",
        image=ImageRef("/data/S1/Videos/Directions 1.54138969.mp4", frame=5),
        center=rng.normal(size=2) * 100,
        box_size=float(rng.uniform(50, 500)),
        keypoints_2d=rng.normal(size=(49, 3)),
    )
    return [
        base,  # no fit, no camera, no joints
        dataclasses.replace(
            base,
            image=ImageRef("s3://bucket/coco/x.jpg"),
            pose=rng.normal(size=72),
            betas=rng.normal(size=10),
            gender="female",
            camera=CropCamera(rng.normal(size=3), rng.normal(size=2), 123.25),
            extra={"annotation_id": 7, "note": "dotted.name"},
        ),
        dataclasses.replace(
            base,
            joints_3d=rng.normal(size=(24, 4)),
            camera=PerspectiveCamera(rng.normal(size=(3, 3)), rng.normal(size=3), np.eye(3)),
            image_size=(1002, 1000),
        ),
        dataclasses.replace(base, camera=PerspectiveCamera(rng.normal(size=(3, 3)))),
    ]


def test_round_trip_is_exact_and_deterministic():
    original = records()
    text = encode_records(original)
    decoded = decode_records(text)
    assert encode_records(decoded) == text
    for a, b in zip(original, decoded, strict=True):
        for field in dataclasses.fields(SampleRecord):
            x, y = getattr(a, field.name), getattr(b, field.name)
            if field.name == "camera" and x is not None:
                assert type(x) is type(y)
                for inner in dataclasses.fields(x):
                    u, v = getattr(x, inner.name), getattr(y, inner.name)
                    assert (u is None and v is None) or np.array_equal(u, v)  # bit-exact floats
            elif isinstance(x, np.ndarray):
                assert y.dtype == np.float64 and np.array_equal(x, y)
            else:
                assert x == y, field.name
        assert b.key == a.key and b.has_smpl == a.has_smpl
    assert decoded[1].camera.box_size == 123.25 and decoded[2].image_size == (1002, 1000)
    assert "pickle" not in text and text.startswith("[{")
