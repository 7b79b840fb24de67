"""Cameras that take mesh vertices to screen coordinates ``(x, y, z)`` for the rasterizer.

Pixel convention (the one used everywhere in :mod:`preprocessing.render`): pixel ``(i, j)``
(row ``i``, column ``j``) covers the square ``[j, j + 1) x [i, i + 1)`` of continuous image
coordinates, so its centre is ``(j + 0.5, i + 0.5)``; an image of width ``W`` spans
``[0, W]``. Rendering samples coverage at pixel centres. ``x`` points right, ``y`` down, and
``z`` is the camera depth (positive in front of the camera).

- The weak-perspective crop camera ``[s, tx, ty]`` is PARE's: a pinhole camera with focal
  length ``f`` (5000 px), translation ``[tx, ty, 2 f / (crop_size s)]`` and its principal
  point at the crop centre ``crop_size / 2``; its normalised coordinates ``[-1, 1]``
  (:func:`pare_model.geometry.project_to_crop`) map to ``[0, crop_size]``.
- Intrinsics ``K`` are read in the same continuous convention. A calibration made with pixel
  centres at integer coordinates (OpenCV's) is half a pixel off: pass
  ``compose_affine(affine, translation_affine(0.5, 0.5))`` to convert it first.
- A 2 x 3 affine maps continuous image coordinates to continuous output coordinates;
  :func:`crop_affine` builds the one of a square crop. OpenCV's ``warpAffine`` puts pixel
  centres at integer coordinates, so warp images with :func:`affine_for_cv2` of the affine.

Everything here is float64 NumPy (the projection itself is a small numba kernel); no torch.
"""

from __future__ import annotations

import numpy as np

FOCAL_LENGTH = 5000.0
"""Focal length in pixels that SPIN and PARE assume for the 224 x 224 crop."""

CROP_SIZE = 224
"""Side of PARE's square input crop in pixels."""


def apply_affine(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """(N, 2) points -> (N, 2) points ``affine[:, :2] @ p + affine[:, 2]``."""
    affine = np.asarray(affine, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ affine[:, :2].T + affine[:, 2]


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """(2, 3) affine applying ``inner`` first, then ``outer``."""
    outer = np.asarray(outer, dtype=np.float64)
    inner = np.asarray(inner, dtype=np.float64)
    return np.concatenate([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]], axis=1)


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """(2, 3) inverse of an invertible (2, 3) affine."""
    affine = np.asarray(affine, dtype=np.float64)
    linear = np.linalg.inv(affine[:, :2])
    return np.concatenate([linear, (-linear @ affine[:, 2])[:, None]], axis=1)


def translation_affine(dx: float, dy: float) -> np.ndarray:
    """(2, 3) affine that adds ``(dx, dy)``."""
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])


def scale_affine(scale: float) -> np.ndarray:
    """(2, 3) affine that resizes an image by ``scale`` (e.g. 0.25: 224 px -> 56 px)."""
    return np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]])


def crop_affine(center, box_size: float, out_size: int, rotation_deg: float = 0.0) -> np.ndarray:
    """(2, 3) affine from image coordinates to a square crop of ``out_size`` pixels.

    The square of side ``box_size`` image pixels centred at ``center`` ``(x, y)`` fills the
    crop ``[0, out_size]^2``. A positive ``rotation_deg`` turns the image content
    counter-clockwise as displayed (``cv2.getRotationMatrix2D``'s and SPIN's sense), about the
    crop centre.
    """
    if box_size <= 0 or out_size <= 0:
        raise ValueError(f"box_size and out_size must be positive, got {box_size} and {out_size}")
    center = np.asarray(center, dtype=np.float64).reshape(2)
    angle = np.deg2rad(rotation_deg)
    cos, sin = np.cos(angle), np.sin(angle)
    # With y pointing down, [[c, s], [-s, c]] turns +x towards -y (up): counter-clockwise on screen.
    linear = (out_size / box_size) * np.array([[cos, sin], [-sin, cos]])
    offset = out_size / 2.0 - linear @ center
    return np.concatenate([linear, offset[:, None]], axis=1)


def affine_for_cv2(affine: np.ndarray) -> np.ndarray:
    """The ``cv2.warpAffine`` matrix of an affine in this module's convention.

    OpenCV samples pixel ``q`` at the integer coordinate ``q``, which is ``q + 0.5`` here.
    """
    return compose_affine(translation_affine(-0.5, -0.5), compose_affine(affine, translation_affine(0.5, 0.5)))


_IDENTITY_AFFINE = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _project(points, rotation, translation, intrinsics, affine) -> np.ndarray:
    """``x_cam = R p + t``, pixels ``(K x_cam)[:2] / (K x_cam)[2]``, then ``affine``; z = ``x_cam[2]``.

    All of it folds into one (4, 4) matrix and one compiled pass over the vertices (NumPy
    broadcasting over a (V, 3) array is several times slower than the rasterizer needs).
    """
    from preprocessing.render import _kernels

    points = np.ascontiguousarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {points.shape}")
    affine = _IDENTITY_AFFINE if affine is None else np.asarray(affine, dtype=np.float64)
    if affine.shape != (2, 3):
        raise ValueError(f"affine must have shape (2, 3), got {affine.shape}")
    # Rows of the homogeneous output pixel: affine @ (K x_cam) over (K x_cam)[2], so rows affine @ K and K[2].
    image = np.concatenate([affine @ intrinsics, intrinsics[2:]])  # (3, 3)
    camera = np.eye(4)
    camera[:3, :3], camera[:3, 3] = rotation, translation
    matrix = np.zeros((4, 4))
    matrix[:3] = image @ camera[:3]
    matrix[3] = camera[2]
    return _kernels.project(points, matrix)


def weak_perspective_translation(cam, crop_size: int = CROP_SIZE, focal_length: float = FOCAL_LENGTH) -> np.ndarray:
    """(3,) camera translation ``[tx, ty, 2 f / (crop_size s)]`` of PARE's crop camera ``[s, tx, ty]``."""
    s, tx, ty = (float(c) for c in np.asarray(cam, dtype=np.float64).reshape(3))
    if not s > 0:
        raise ValueError(f"weak-perspective scale must be positive, got cam={[s, tx, ty]}")
    return np.array([tx, ty, 2.0 * focal_length / (crop_size * s)])


def weak_perspective_to_screen(
    vertices: np.ndarray,
    cam,
    crop_size: int = CROP_SIZE,
    focal_length: float = FOCAL_LENGTH,
    affine: np.ndarray | None = None,
) -> np.ndarray:
    """(V, 3) model-frame vertices and PARE's crop camera ``[s, tx, ty]`` -> (V, 3) screen points.

    ``x, y`` are crop pixels (then mapped by ``affine`` if given, e.g. ``scale_affine(0.25)``
    for a 56 px label map) and ``z`` is the camera depth ``z + 2 f / (crop_size s)``.
    """
    translation = weak_perspective_translation(cam, crop_size, focal_length)
    center = crop_size / 2.0
    intrinsics = np.array([[focal_length, 0.0, center], [0.0, focal_length, center], [0.0, 0.0, 1.0]])
    return _project(vertices, np.eye(3), translation, intrinsics, affine)


def perspective_to_screen(
    vertices_world: np.ndarray,
    intrinsics: np.ndarray,
    extrinsics,
    affine: np.ndarray | None = None,
) -> np.ndarray:
    """(V, 3) world points through a pinhole camera -> (V, 3) screen points.

    Args:
        vertices_world: (V, 3) points in the world frame.
        intrinsics: (3, 3) camera matrix ``K`` (3DPW ``cam_intrinsics``; H36M ``f``, ``c``).
        extrinsics: (4, 4) world-to-camera matrix (3DPW ``cam_poses``) or a pair
            ``(R (3, 3), t (3,))`` with ``x_cam = R x_world + t``.
        affine: optional (2, 3) map from image pixels to the output frame (see :func:`crop_affine`).

    Returns:
        (V, 3): ``x, y`` in output pixels, ``z`` the camera depth.
    """
    if isinstance(extrinsics, tuple | list):
        rotation, translation = (np.asarray(a, dtype=np.float64) for a in extrinsics)
    else:
        matrix = np.asarray(extrinsics, dtype=np.float64)
        if matrix.shape != (4, 4):
            raise ValueError(f"extrinsics must be a (4, 4) matrix or a pair (R, t), got shape {matrix.shape}")
        rotation, translation = matrix[:3, :3], matrix[:3, 3]
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    if rotation.shape != (3, 3) or translation.size != 3 or intrinsics.shape != (3, 3):
        raise ValueError(
            f"need R (3, 3), t (3,) and K (3, 3), got {rotation.shape}, {translation.shape}, {intrinsics.shape}"
        )
    return _project(vertices_world, rotation, translation.reshape(3), intrinsics, affine)
