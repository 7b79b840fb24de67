"""EFT fit files (``COCO2014-All-ver01.json``, ``MPII_ver01.json``, ``LSPet_train_ver10.json``).

Each entry holds an SMPL fit (``parm_pose`` 24 x 3 x 3 rotation matrices with the root in the
camera frame, ``parm_shape``), its weak-perspective camera ``parm_cam = [s, tx, ty]`` in the
224 crop of the box (``bbox_center``, ``bbox_scale * 200``), the 49 SPIN keypoints
``gt_keypoint_2d`` in image pixels, and the ids that join it to its dataset (``annotId``,
``imageName``).

Camera convention: EFT's fitter (built on SPIN) projects with SPIN's perspective camera,
translation ``[tx, ty, 2 f / (224 s)]`` and f = 5000; that is ``eft_camera="spin"``, the
default, and what the synthetic layout writes. EFT's visualiser draws ``112 (s X + t) + 112``
instead, which puts ``t`` inside the scale; ``eft_camera="eft_visualizer"`` converts such
cameras to SPIN's (``t / s``). The job's fit-quality reprojection error (``manifest.json``,
``pare shards stats``) tells which one a set of files needs: the wrong one shows errors of
many pixels on every sample.
"""

from __future__ import annotations

import json
import posixpath
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from preprocessing.keypoints import NUM_OPENPOSE
from preprocessing.readers.files import SourceError, SourceFiles
from preprocessing.record import CropCamera, RecordRejected, SampleRecord

EFT_CAMERAS = ("spin", "eft_visualizer")


@dataclass(frozen=True)
class EftFit:
    """One EFT fit in the project's conventions."""

    pose: np.ndarray  # (72,) axis-angle, root in the camera frame
    betas: np.ndarray  # (10,)
    camera: CropCamera
    keypoints: np.ndarray  # (49, 3) image pixels (+ pixel offset), confidence
    center: np.ndarray  # (2,)
    box_size: float


def attach_fit(record: SampleRecord, fit: EftFit) -> SampleRecord:
    """Give ``record`` the fit, its camera and box, and EFT's OpenPose keypoints (the dataset's own joints stay)."""
    record.keypoints_2d[:NUM_OPENPOSE] = fit.keypoints[:NUM_OPENPOSE]
    record.center, record.box_size, record.camera = fit.center, fit.box_size, fit.camera
    record.pose, record.betas, record.fit_source = fit.pose, fit.betas, "eft"
    return record


def check_camera_option(value: str) -> None:
    if value not in EFT_CAMERAS:
        raise SourceError(f"eft_camera must be one of {list(EFT_CAMERAS)}, got {value!r}")


def read_json(files: SourceFiles, relative: str, what: str):
    """Parse a JSON file of a source; a broken one raises :class:`SourceError` naming it."""
    data = files.read_bytes(relative)
    try:
        return json.loads(data)
    except ValueError as error:
        raise SourceError(
            f"{what} {files.url(relative)} is not valid JSON ({error}; {len(data)} bytes): "
            "the file is truncated or damaged, download it again"
        ) from None


def read_eft_entries(files: SourceFiles, relative: str) -> list[dict]:
    """The ``data`` list of an EFT file."""
    content = read_json(files, relative, "EFT fit file")
    if not isinstance(content, dict) or not isinstance(content.get("data"), list):
        raise SourceError(f"EFT fit file {files.url(relative)} has no 'data' list; is it an EFT JSON?")
    return content["data"]


def _array(entry: dict, key: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        value = np.asarray(entry[key], dtype=np.float64)
    except KeyError:
        raise RecordRejected("bad_annotation", f"EFT entry has no {key}") from None
    except (TypeError, ValueError):
        raise RecordRejected("bad_annotation", f"EFT {key} is not numeric") from None
    if value.shape != shape:
        raise RecordRejected("bad_annotation", f"EFT {key} has shape {value.shape}, expected {shape}")
    if not np.isfinite(value).all():
        raise RecordRejected("nan_parameters", f"EFT {key} contains NaN or infinity")
    return value


def parse_fit(entry: dict, pixel_offset: float, eft_camera: str = "spin") -> EftFit:
    """An :class:`EftFit` from one entry; a malformed entry raises :class:`RecordRejected`."""
    rotations = _array(entry, "parm_pose", (24, 3, 3))
    error = np.abs(rotations @ rotations.transpose(0, 2, 1) - np.eye(3)).max()
    if error > 1e-3 or (np.linalg.det(rotations) < 0).any():
        raise RecordRejected(
            "bad_annotation", f"EFT parm_pose holds matrices that are not rotations (error {error:.2g})"
        )
    betas = _array(entry, "parm_shape", (10,))
    cam = _array(entry, "parm_cam", (3,))
    if cam[0] <= 0:
        raise RecordRejected("bad_annotation", f"EFT parm_cam scale must be positive, got {cam[0]}")
    if eft_camera == "eft_visualizer":
        cam = np.array([cam[0], cam[1] / cam[0], cam[2] / cam[0]])
    center = _array(entry, "bbox_center", (2,)) + pixel_offset
    box_size = float(_array(entry, "bbox_scale", ()).item()) * 200.0
    keypoints = _array(entry, "gt_keypoint_2d", (49, 3)).copy()
    keypoints[:, :2] += pixel_offset
    keypoints[keypoints[:, 2] <= 0, :2] = 0.0
    pose = Rotation.from_matrix(rotations).as_rotvec().reshape(72)
    return EftFit(pose, betas, CropCamera(cam, center, box_size), keypoints, center, box_size)


def fits_by_image(
    files: SourceFiles, relative: str, pixel_offset: float, eft_camera: str
) -> dict[str, list[EftFit | RecordRejected]]:
    """An EFT file's fits grouped by image basename (``imageName``); a malformed entry stays as its reject."""
    fits: dict[str, list[EftFit | RecordRejected]] = defaultdict(list)
    for entry in read_eft_entries(files, relative):
        name = entry.get("imageName") if isinstance(entry, dict) else None
        try:
            fit: EftFit | RecordRejected = parse_fit(entry, pixel_offset, eft_camera)
        except RecordRejected as error:
            fit = error
        fits[posixpath.basename(str(name))].append(fit)
    return fits


def join_by_keypoints(
    people: list[tuple[np.ndarray, float]], fits: list[EftFit | RecordRejected], max_distance: float
) -> list[EftFit | None]:
    """The fit of each of one image's people, for EFT files without annotation ids (MPII, LSPet).

    ``people`` holds each person's (49, 3) SPIN keypoints (in the fits' pixel convention) and
    box side. A pair's distance is the mean over the joints both label, divided by the box
    side; pairs are taken closest first, each person and fit once, up to ``max_distance``.
    """
    pairs = []
    for p, (keypoints, box_size) in enumerate(people):
        for f, fit in enumerate(fits):
            if isinstance(fit, EftFit):
                both = (keypoints[:, 2] > 0) & (fit.keypoints[:, 2] > 0)
                if both.any():
                    gap = np.linalg.norm(fit.keypoints[both, :2] - keypoints[both, :2], axis=1).mean()
                    pairs.append((float(gap) / box_size, p, f))
    joined: list[EftFit | None] = [None] * len(people)
    taken: set[int] = set()
    for distance, p, f in sorted(pairs):
        if distance <= max_distance and joined[p] is None and f not in taken:
            joined[p] = fits[f]
            taken.add(f)
    return joined
