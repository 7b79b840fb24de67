"""From records to samples: loose crop, keypoints in the crop, part labels rendered from the fit, fit quality.

A :class:`SampleBuilder` lives as long as a worker (it holds the body models and the compiled
rasterizer) and builds samples a chunk of records at a time, so that the body model runs
batched. Every record comes back either as a :class:`BuiltSample` or as a
:class:`~preprocessing.record.Rejected` item with its reason.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import cv2
import numpy as np

from preprocessing.bodies import BodyModels, pose_bodies
from preprocessing.record import CropCamera, PerspectiveCamera, RecordRejected, Rejected, SampleRecord, reject
from preprocessing.render import (
    CROP_SIZE,
    affine_for_cv2,
    apply_affine,
    compose_affine,
    crop_affine,
    invert_affine,
    perspective_to_screen,
    render_part_labels,
    scale_affine,
    weak_perspective_translation,
)
from preprocessing.samples.camera_fit import (
    CROP_INTRINSICS,
    fit_crop_camera,
    fit_label_translation,
    translation_from_joints,
)
from preprocessing.samples.encode import (
    SAMPLE_FORMAT,
    SAMPLE_FORMAT_VERSION,
    encode_jpeg,
    encode_json,
    encode_png,
    sample_members,
    stored_labels,
)
from preprocessing.samples.images import ImageLoader, reduction_for
from preprocessing.samples.quality import FitQuality, check_fit, measure_fit
from preprocessing.samples.spec import CropConfig, QualityConfig

NUM_OPENPOSE = 25
NO_QUALITY = FitQuality(float("nan"), float("nan"))


@dataclass(frozen=True)
class PosedFit:
    """A record's SMPL fit posed with its root in the camera frame and no translation."""

    vertices: np.ndarray  # (V, 3)
    joints: np.ndarray  # (49, 3) SPIN joints
    root: np.ndarray  # (3,) rest root joint j0 (rotation is about it, so it does not move)


@dataclass(frozen=True)
class BuiltSample:
    """One sample ready for a shard."""

    key: str
    members: list[tuple[str, bytes]]
    quality: FitQuality
    has_smpl: bool


GROUND_TRUTH = ("keypoints_2d", "joints_3d", "pose", "betas")
"""The annotation's arrays training and evaluation read as ground truth, besides the fit's camera."""


def check_finite_ground_truth(annotation: dict) -> None:
    """Reject (``nan_parameters``) a sample whose ground truth came out NaN or infinite although the record's was
    finite: the camera a tiny crop-camera scale puts at infinite depth, a degenerate translation fit."""
    camera = annotation.get("camera") or {}
    values = {name: annotation[name] for name in GROUND_TRUTH} | {
        f"camera.{name}": camera[name] for name in ("intrinsics", "translation") if name in camera
    }
    bad = [name for name, value in values.items() if not np.isfinite(np.asarray(value, dtype=np.float64)).all()]
    if bad:
        raise RecordRejected("nan_parameters", f"{', '.join(bad)} of the built sample came out NaN or infinite")


def _homogeneous(affine: np.ndarray) -> np.ndarray:
    return np.vstack([affine, [0.0, 0.0, 1.0]])


class SampleBuilder:
    """Builds samples from records with one set of body models and settings."""

    def __init__(self, bodies: BodyModels, crop: CropConfig, quality: QualityConfig):
        self.bodies, self.crop, self.quality = bodies, crop, quality
        self.faces, self.face_parts = bodies.faces(), bodies.face_parts()
        self.images = ImageLoader()
        self.timings: dict[str, float] = defaultdict(float)
        """Seconds spent per stage (decode, crop, fit, render, encode) since construction."""

    def build(self, records: list[SampleRecord]) -> list[BuiltSample | Rejected]:
        """One result per record, in order."""
        start = time.perf_counter()
        fits = self._pose(records)
        self.timings["fit"] += time.perf_counter() - start
        results: list[BuiltSample | Rejected] = []
        for index, record in enumerate(records):
            try:
                results.append(self._build_one(record, fits.get(index)))
            except RecordRejected as error:
                results.append(reject(record, error))
        return results

    def _pose(self, records: list[SampleRecord]) -> dict[int, PosedFit]:
        """Pose every fitted record, batched per gender."""
        fits: dict[int, PosedFit] = {}
        by_gender: dict[str, list[int]] = defaultdict(list)
        for index, record in enumerate(records):
            if record.has_smpl:
                by_gender[record.gender].append(index)
        for gender, indices in by_gender.items():
            pose = np.stack([records[i].pose.reshape(24, 3) for i in indices])
            betas = np.stack([records[i].betas for i in indices])
            posed = pose_bodies(self.bodies.get(gender), pose, betas)
            for k, index in enumerate(indices):
                fits[index] = PosedFit(posed.vertices[k], posed.joints[k], posed.smpl_joints[k, 0])
        return fits

    def _build_one(self, record: SampleRecord, fit: PosedFit | None) -> BuiltSample:
        timings, crop_config = self.timings, self.crop
        size = crop_config.resolution
        loose_side = record.box_size * crop_config.loose_factor
        to_crop = crop_affine(record.center, loose_side, size)  # full-resolution image -> crop

        start = time.perf_counter()
        image, reduction = self.images.load(record.image, reduction_for(loose_side, size))
        decoded = time.perf_counter()
        from_decoded = compose_affine(to_crop, scale_affine(float(reduction)))
        crop = cv2.warpAffine(
            image, affine_for_cv2(from_decoded), (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        keypoints = record.keypoints_2d.copy()
        keypoints[:, :2] = apply_affine(record.keypoints_2d[:, :2], to_crop)
        cropped = time.perf_counter()
        timings["decode"] += decoded - start
        timings["crop"] += cropped - decoded

        labels, quality, camera = np.zeros((size, size), np.uint8), NO_QUALITY, None
        if fit is not None:
            labels, quality, camera = self._render_fit(record, fit, to_crop, keypoints)
        start = time.perf_counter()
        annotation = self._annotation(record, to_crop, keypoints, camera, quality, image.shape[:2], reduction)
        check_finite_ground_truth(annotation)
        members = sample_members(
            record.key,
            encode_jpeg(crop, crop_config.jpeg_quality),
            encode_png(stored_labels(labels, crop_config.label_stride)),
            encode_json(annotation),
        )
        timings["encode"] += time.perf_counter() - start
        return BuiltSample(record.key, members, quality, fit is not None)

    def _camera(self, record: SampleRecord, fit: PosedFit, to_crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fit's camera in crop pixels: (3, 3) intrinsics and (3,) body translation.

        A record without a camera or a translation is placed as PARE places its labels: by the 24 ground-truth
        joints' 2D keypoints (never the OpenPose ones), or by its 3D joints when they are in the camera frame.
        """
        camera = record.camera
        if camera is None:
            camera = fit_crop_camera(fit.joints, record.keypoints_2d, record.center, record.box_size)
        if isinstance(camera, CropCamera):
            from_network = invert_affine(crop_affine(camera.center, camera.box_size, CROP_SIZE))
            intrinsics = _homogeneous(compose_affine(to_crop, from_network)) @ CROP_INTRINSICS
            return intrinsics, weak_perspective_translation(camera.cam)
        assert isinstance(camera, PerspectiveCamera)
        translation = camera.translation
        if translation is not None and camera.frame_rotation is not None:
            translation = translation + (camera.frame_rotation - np.eye(3)) @ fit.root
        elif translation is None and record.has_joints_3d and record.joints_frame == "camera":
            translation = translation_from_joints(fit.joints[NUM_OPENPOSE:], record.joints_3d)
        elif translation is None:
            translation = fit_label_translation(fit.joints, record.keypoints_2d, camera.intrinsics)
        return _homogeneous(to_crop) @ camera.intrinsics, np.asarray(translation, np.float64)

    def _render_fit(self, record, fit, to_crop, keypoints):
        start = time.perf_counter()
        intrinsics, translation = self._camera(record, fit, to_crop)
        pose = (np.eye(3), translation)
        screen = perspective_to_screen(fit.vertices, intrinsics, pose)
        joints = perspective_to_screen(fit.joints, intrinsics, pose)
        rendered = time.perf_counter()
        size = self.crop.resolution
        labels = render_part_labels(screen, self.faces, self.face_parts, size, size)
        self.timings["fit"] += rendered - start
        self.timings["render"] += time.perf_counter() - rendered
        quality = measure_fit(
            joints[:, :2], keypoints, labels, size / (self.crop.network_resolution * self.crop.loose_factor)
        )
        check_fit(quality, self.quality)
        return labels, quality, {"intrinsics": intrinsics, "translation": translation}

    def _annotation(self, record, to_crop, keypoints, camera, quality, decoded_size, reduction) -> dict:
        size, factor = self.crop.resolution, self.crop.loose_factor
        has_smpl = record.has_smpl
        return {
            "format": SAMPLE_FORMAT,
            "version": SAMPLE_FORMAT_VERSION,
            "key": record.key,
            "dataset": record.dataset,
            "split": record.split,
            "sample_id": record.sample_id,
            "source": record.source,
            "person_index": record.person_index,
            "extra": dict(record.extra),
            "image": {
                "path": record.image.path,
                "frame": record.image.frame,
                "size": [int(decoded_size[0] * reduction), int(decoded_size[1] * reduction)],
            },
            "crop": {
                "size": size,
                "affine": to_crop,
                "box_center": [size / 2.0, size / 2.0],
                "box_size": size / factor,
                "network_resolution": self.crop.network_resolution,
            },
            "keypoints_2d": keypoints,
            "joints_3d": record.joints_3d if record.joints_3d is not None else np.zeros((24, 4)),
            "pose": record.pose if has_smpl else np.zeros(72),
            "betas": record.betas if has_smpl else np.zeros(10),
            "gender": record.gender,
            "has_smpl": int(has_smpl),
            "has_joints_3d": int(record.has_joints_3d),
            "has_segm": int(has_smpl),
            "fit_source": record.fit_source,
            "camera": camera,
            "fit_quality": quality.to_json(),
        }
