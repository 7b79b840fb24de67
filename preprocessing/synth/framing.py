"""Cameras and placements that keep a synthetic person inside the frame.

Camera frames follow OpenCV and the datasets: x right, y down, z forward (depth). The body
model's rest frame has y up and faces +z, so a person standing upright in front of a camera
and facing it has the root rotation pi about x (the "rotation of pi about x" that SPIN
applies to Human3.6M's MoSh fits).
"""

from __future__ import annotations

import numpy as np

from preprocessing.render.cameras import CROP_SIZE
from preprocessing.synth.poses import axis_angle_to_matrix

UPRIGHT_IN_CAMERA = axis_angle_to_matrix(np.array([np.pi, 0.0, 0.0]))
"""(3, 3) root rotation of an upright person facing a camera (rest frame y up -> camera y down)."""


def random_lean(rng: np.random.Generator, max_tilt: float = 0.15) -> np.ndarray:
    """(3, 3) small random tilt about the body's horizontal axes (x and z)."""
    lean = rng.uniform(-max_tilt, max_tilt, size=2)
    return axis_angle_to_matrix(np.array([lean[0], 0.0, lean[1]]))


def yaw_rotation(angle: float) -> np.ndarray:
    """(3, 3) turn by ``angle`` radians about the vertical axis y of the body's rest frame."""
    return axis_angle_to_matrix(np.array([0.0, angle, 0.0]))


def yaw_tilt(rng: np.random.Generator, max_tilt: float = 0.15) -> np.ndarray:
    """(3, 3) random turn about the body's vertical axis (any yaw), with a small lean."""
    yaw = rng.uniform(-np.pi, np.pi)
    return random_lean(rng, max_tilt) @ yaw_rotation(yaw)


def camera_root(rng: np.random.Generator) -> np.ndarray:
    """(3, 3) root rotation of an upright, randomly turned person in a camera frame."""
    return UPRIGHT_IN_CAMERA @ yaw_tilt(rng)


def random_image_size(rng: np.random.Generator, long_side: int) -> tuple[int, int]:
    """(height, width): landscape, square or portrait with the given longer side."""
    short = int(round(long_side * rng.uniform(0.6, 1.0)))
    return (short, long_side) if rng.random() < 0.6 else (long_side, short)


def random_crop_box(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, float]:
    """Centre (2,) and side of a square person box, mostly inside a (height, width) image."""
    side = rng.uniform(0.55, 0.95) * min(height, width)
    margin = 0.4 * side
    center = np.array([rng.uniform(margin, width - margin), rng.uniform(margin, height - margin)])
    return center, float(side)


def fit_crop_camera(rng: np.random.Generator, vertices: np.ndarray, crop_size: int = CROP_SIZE) -> np.ndarray:
    """(3,) weak-perspective ``[s, tx, ty]`` that puts (V, 3) vertices inside the crop.

    The body's larger extent covers 60-85 % of the crop and its centre is shifted by up to
    5 % of the crop, like a person box from a detector.
    """
    low, high = vertices[:, :2].min(axis=0), vertices[:, :2].max(axis=0)
    extent = float(np.max(high - low))
    scale = 2.0 * rng.uniform(0.6, 0.85) / extent  # crop pixels ~ (crop/2) s (X + t)
    shift = rng.uniform(-0.05, 0.05, size=2) * 2.0 / scale
    translation = -(low + high) / 2.0 + shift
    return np.array([scale, translation[0], translation[1]])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera ``(R (3, 3), t (3,))`` of a camera at ``eye`` looking at ``target``.

    ``x_cam = R x_world + t``; the camera's y axis points along ``-up`` on screen (down).
    """
    forward = np.asarray(target, np.float64) - np.asarray(eye, np.float64)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, np.float64))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    return rotation, -rotation @ np.asarray(eye, np.float64)


def intrinsics(focal: float, center_x: float, center_y: float) -> np.ndarray:
    """(3, 3) pinhole camera matrix with square pixels."""
    return np.array([[focal, 0.0, center_x], [0.0, focal, center_y], [0.0, 0.0, 1.0]])


def extrinsics_matrix(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(4, 4) homogeneous world-to-camera matrix."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix


def box_center_scale(points: np.ndarray, factor: float = 1.2) -> tuple[np.ndarray, float]:
    """Centre (2,) and ``scale`` (square side / 200) of a box ``factor`` times the extent of (N, 2) points."""
    low, high = points.min(axis=0), points.max(axis=0)
    return (low + high) / 2.0, float(factor * np.max(high - low) / 200.0)


def place_in_view(
    rng: np.random.Generator, vertices: np.ndarray, camera: np.ndarray, height: int, width: int
) -> np.ndarray:
    """(3,) translation that puts (V, 3) camera-oriented vertices in a (height, width) pinhole view.

    The body's larger extent covers 50-85 % of the image's shorter side, at a random place
    where it stays mostly inside the picture.
    """
    low, high = vertices[:, :2].min(axis=0), vertices[:, :2].max(axis=0)
    fraction = rng.uniform(0.5, 0.85)
    depth = camera[0, 0] * float(np.max(high - low)) / (fraction * min(height, width))
    half = 0.4 * fraction * min(height, width)
    target = np.array([rng.uniform(half, max(half, width - half)), rng.uniform(half, max(half, height - half))])
    offset = (target - camera[:2, 2]) * depth / np.diag(camera)[:2]
    return np.array([offset[0] - (low[0] + high[0]) / 2.0, offset[1] - (low[1] + high[1]) / 2.0, depth])
