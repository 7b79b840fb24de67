"""From a raw shard sample (bytes) to a training or validation example (arrays).

A sample that cannot be decoded (a broken JPEG, PNG or JSON, a missing member, wrong shapes), and
one whose ground truth holds NaN or infinity (:data:`NON_FINITE`; the geometric augmentation would
turn a NaN root rotation into the identity, silently), is counted by reason in :data:`SKIPPED` and
dropped, never silently: the loader attaches the counts to the next batch, the training loop logs
and shows them, and evaluation reports them.
"""

from __future__ import annotations

import json
from collections import Counter

import cv2
import numpy as np

from pipelines.config.train import LoaderConfig
from preprocessing.augment.crop_geometry import IDENTITY, Draw, augment_geometry, sample_draw
from preprocessing.augment.photometric import apply_photometric, build_photometric
from preprocessing.augment.synthetic_occlusion import Occluder
from preprocessing.samples.images import decode_jpeg_bgr
from preprocessing.samples.spec import LABEL_STRIDES


def label_fits(crop_side: int, label_side: int) -> bool:
    """Whether a label map of ``label_side`` belongs to a crop of ``crop_side``: its side divided by a stride
    (sample format 2) or equal (format 1)."""
    return any(label_side * stride == crop_side for stride in LABEL_STRIDES)


SKIPPED: Counter = Counter()
"""Samples and shards dropped in this process since the last batch, by reason."""
NON_FINITE = "non_finite_ground_truth"
"""The :data:`SKIPPED` reason of a sample whose ground truth holds NaN or infinity."""


class BadSample(ValueError):
    """A shard sample that cannot be used; the message says what is wrong with it, ``reason`` the kind."""

    reason = "bad_sample"


class NonFiniteGroundTruth(BadSample):
    """A sample whose keypoints, or 3D joints, pose or shape where it has them, hold NaN or infinity."""

    reason = NON_FINITE


def decode_raw(sample: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    """Raw members -> (crop BGR uint8, labels uint8, annotation dict); raises BadSample."""
    key = sample.get("__key__", "?")
    missing = [m for m in ("jpg", "labels.png", "json") if m not in sample]
    if missing:
        raise BadSample(f"sample {key} has no {', '.join(missing)} member")
    crop = decode_jpeg_bgr(sample["jpg"])
    labels = cv2.imdecode(np.frombuffer(sample["labels.png"], np.uint8), cv2.IMREAD_UNCHANGED)
    if crop is None or labels is None:
        raise BadSample(f"sample {key}: its {'jpg' if crop is None else 'labels.png'} does not decode")
    try:
        annotation = json.loads(sample["json"])
    except ValueError as error:
        raise BadSample(f"sample {key}: its json does not parse ({error})") from None
    if labels.ndim != 2 or labels.shape[0] != labels.shape[1] or not label_fits(crop.shape[0], labels.shape[0]):
        raise BadSample(f"sample {key}: labels {labels.shape} do not match the crop {crop.shape[:2]}")
    return crop, labels, annotation  # BGR: turned to RGB after the warp, on 4x fewer pixels


def _array(annotation: dict, name: str, shape: tuple[int, ...]) -> np.ndarray:
    value = np.asarray(annotation.get(name), dtype=np.float32)
    if value.shape != shape:
        raise BadSample(f"sample {annotation.get('key', '?')}: {name} has shape {value.shape}, expected {shape}")
    return value


def check_finite(annotation: dict) -> None:
    """Raise :class:`NonFiniteGroundTruth` when ground truth the sample uses holds NaN or infinity: its 2D keypoints,
    its 3D joints when ``has_joints_3d``, its pose and shape when ``has_smpl``."""
    used = ["keypoints_2d"]
    used += ["joints_3d"] if annotation.get("has_joints_3d") else []
    used += ["pose", "betas"] if annotation.get("has_smpl") else []
    for name in used:
        try:
            finite = bool(np.isfinite(np.asarray(annotation.get(name), dtype=np.float64)).all())
        except (TypeError, ValueError):
            continue  # not numbers: refused as a bad shape by _array
        if not finite:
            raise NonFiniteGroundTruth(f"sample {annotation.get('key', '?')}: {name} holds NaN or infinity")


class SampleTransform:
    """Decode + augment + occlude one raw sample; one instance per loader process (it holds the RNG).

    Its examples collate into a :class:`~pipelines.data.batch.TrainingBatch`; a key added here goes there too.

    Args:
        config: the loader section; ``train=False`` never augments or occludes (validation).
        out_size: network input side (model.image_size).
        seed: seeds the geometric draws, the occluder placement and albumentations.
    """

    def __init__(self, config: LoaderConfig, out_size: int, seed: int, train: bool = True) -> None:
        self.config = config
        self.out_size = out_size
        self.train = train
        self.rng = np.random.default_rng(seed)
        self.photometric = build_photometric(config.augment, seed) if train else None
        self.occluder = Occluder(config.occlusion, seed) if train and config.occlusion.enabled else None

    def __call__(self, sample: dict) -> dict | None:
        try:
            return self._example(sample)
        except BadSample as error:
            SKIPPED[error.reason] += 1
            return None

    def draw(self) -> Draw:
        """The geometric draw of the next sample: random when training, the identity otherwise."""
        return sample_draw(self.rng, self.config.augment) if self.train else IDENTITY

    def _example(self, sample: dict) -> dict:
        crop, labels, annotation = decode_raw(sample)
        check_finite(annotation)
        box_size = float(annotation.get("crop", {}).get("box_size", 0) or 0)
        if box_size <= 0:
            raise BadSample(f"sample {sample.get('__key__')}: crop.box_size is missing")
        draw = self.draw()
        result = augment_geometry(
            crop,
            labels,
            _array(annotation, "keypoints_2d", (49, 3)),
            _array(annotation, "joints_3d", (24, 4)),
            _array(annotation, "pose", (72,)),
            box_size,
            draw,
            self.out_size,
            self.config.label_size,
        )
        image = cv2.cvtColor(result.image, cv2.COLOR_BGR2RGB)
        occluders = self.occluder(image, self.rng) if self.occluder is not None else 0
        image = apply_photometric(self.photometric, image)
        example = {
            "image": np.ascontiguousarray(image),
            "segm_mask": result.labels,
            "keypoints": result.keypoints,
            "joints_3d": result.joints_3d,
            "pose": result.pose,
            "betas": _array(annotation, "betas", (10,)),
            "has_smpl": np.float32(annotation.get("has_smpl", 0)),
            "has_joints_3d": np.float32(annotation.get("has_joints_3d", 0)),
            "has_segm": np.float32(annotation.get("has_segm", 0)),
            "occluders": np.int64(occluders),
            "key": str(annotation.get("key", sample.get("__key__"))),
            "dataset": str(annotation.get("dataset", "")),
            "extra": json.dumps(annotation.get("extra") or {}),
        }
        example["skipped"] = np.int64(sum(SKIPPED.values()))
        example["non_finite"] = np.int64(SKIPPED[NON_FINITE])
        SKIPPED.clear()
        return example
