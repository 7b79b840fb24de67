"""Rotations, cameras and rigid alignment: pure, batched, differentiable torch functions.

Conventions (those of SMPL, SPIN and PARE):
- Rotation matrices act on column vectors: ``x' = R @ x``.
- Axis-angle vectors have the rotation angle as their norm, in radians.
- The 6D rotation representation (Zhou et al., CVPR 2019) is the first two columns of the
  matrix, flattened row-major from a (3, 2) view: ``[R00, R01, R10, R11, R20, R21]``; this is
  the layout of ``smpl_mean_params.npz`` and of PARE's pose regressor.
- The weak-perspective camera ``[s, tx, ty]`` of a square crop of ``crop_size`` pixels maps to
  the translation ``[tx, ty, 2 f / (crop_size s)]`` of a pinhole camera of focal length ``f``
  whose principal point is the crop centre.

The 6D decoding and the camera functions run in float32 under autocast (:mod:`pare_model.full_precision`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pare_model.full_precision import float32

FOCAL_LENGTH = 5000.0
"""Focal length in pixels that SPIN and PARE assume for the 224 x 224 crop."""

CROP_SIZE = 224
"""Side of the square network input in pixels."""

_SMALL_ANGLE = 1e-4


def _sinc_half(angle: torch.Tensor) -> torch.Tensor:
    """sin(angle / 2) / angle, with its Taylor series near 0 so gradients stay finite."""
    small = angle.abs() < _SMALL_ANGLE
    safe = torch.where(small, torch.ones_like(angle), angle)
    taylor = 0.5 - angle * angle / 48.0
    return torch.where(small, taylor, torch.sin(safe / 2.0) / safe)


def axis_angle_to_quaternion(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 4) unit quaternion ``[w, x, y, z]``."""
    angle = torch.linalg.vector_norm(axis_angle, dim=-1, keepdim=True)
    return torch.cat([torch.cos(angle / 2.0), axis_angle * _sinc_half(angle)], dim=-1)


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternion ``[w, x, y, z]`` (any norm > 0) -> (..., 3, 3) rotation matrix."""
    w, x, y, z = F.normalize(quaternion, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(quaternion.shape[:-1] + (3, 3))


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrix (Rodrigues, stable at angle 0)."""
    return quaternion_to_matrix(axis_angle_to_quaternion(axis_angle))


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrix -> (..., 4) unit quaternion with w >= 0.

    Picks, per matrix, the best conditioned of the four standard formulas (Shepperd's method),
    so it is accurate for every angle including pi.
    """
    m = matrix
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4 q_i^2 for i = w, x, y, z; the largest one gives the stable formula.
    four_sq = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22],
        dim=-1,
    )
    root = torch.sqrt(four_sq.clamp_min(1e-12))  # 2 |q_i|
    candidates = torch.stack(
        [
            torch.stack(
                [
                    four_sq[..., 0],
                    m[..., 2, 1] - m[..., 1, 2],
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] - m[..., 0, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    four_sq[..., 1],
                    m[..., 1, 0] + m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] + m[..., 0, 1],
                    four_sq[..., 2],
                    m[..., 2, 1] + m[..., 1, 2],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 2, 0] + m[..., 0, 2],
                    m[..., 2, 1] + m[..., 1, 2],
                    four_sq[..., 3],
                ],
                -1,
            ),
        ],
        dim=-2,
    ) / (2.0 * root[..., None])  # (..., 4 candidates, 4 components)
    best = four_sq.argmax(dim=-1)
    quaternion = torch.gather(candidates, -2, best[..., None, None].expand(best.shape + (1, 4)))
    quaternion = F.normalize(quaternion.squeeze(-2), dim=-1)
    return torch.where(quaternion[..., :1] < 0, -quaternion, quaternion)


def quaternion_to_axis_angle(quaternion: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternion ``[w, x, y, z]`` -> (..., 3) axis-angle with angle in [0, pi]."""
    quaternion = torch.where(quaternion[..., :1] < 0, -quaternion, quaternion)
    vector = quaternion[..., 1:]
    sin_half = torch.linalg.vector_norm(vector, dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(sin_half, quaternion[..., :1])
    return vector / _sinc_half(angle)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrix -> (..., 3) axis-angle with angle in [0, pi]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


@float32
def rot6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """(..., 6) 6D rotation -> (..., 3, 3) rotation matrix by Gram-Schmidt (Zhou et al.).

    ``b1 = normalise(a1)``, ``b2 = normalise(a2 - <b1, a2> b1)``, ``b3 = b1 x b2``; the
    columns of the result are ``b1, b2, b3``.
    """
    columns = rot6d.reshape(rot6d.shape[:-1] + (3, 2))
    a1, a2 = columns[..., 0], columns[..., 1]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrix -> (..., 6) 6D rotation (its first two columns)."""
    return matrix[..., :, :2].reshape(matrix.shape[:-2] + (6,))


@float32
def weak_perspective_to_translation(
    cam: torch.Tensor, focal_length: float = FOCAL_LENGTH, crop_size: float = CROP_SIZE
) -> torch.Tensor:
    """(..., 3) weak-perspective ``[s, tx, ty]`` -> (..., 3) camera translation.

    The scale must be positive; PARE adds 1e-9 to the denominator, which only hides a
    degenerate prediction, so this function keeps the division exact.
    """
    s, tx, ty = cam.unbind(-1)
    return torch.stack([tx, ty, 2.0 * focal_length / (crop_size * s)], dim=-1)


def translation_to_weak_perspective(
    translation: torch.Tensor, focal_length: float = FOCAL_LENGTH, crop_size: float = CROP_SIZE
) -> torch.Tensor:
    """(..., 3) camera translation -> (..., 3) weak-perspective ``[s, tx, ty]``."""
    tx, ty, tz = translation.unbind(-1)
    return torch.stack([2.0 * focal_length / (crop_size * tz), tx, ty], dim=-1)


@float32
def perspective_projection(
    points: torch.Tensor,
    translation: torch.Tensor,
    focal_length: torch.Tensor | float,
    camera_center: torch.Tensor | float = 0.0,
    rotation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Project (B, N, 3) points through a pinhole camera to (B, N, 2) pixels.

    Args:
        points: (B, N, 3) points in the model frame.
        translation: (B, 3) camera translation, applied after ``rotation``.
        focal_length: scalar, (B,) or (B, 2) focal lengths in pixels.
        camera_center: scalar or (B, 2) principal point in pixels.
        rotation: optional (B, 3, 3) model-to-camera rotation; identity when omitted.
    """
    if rotation is not None:
        points = torch.einsum("bij,bnj->bni", rotation, points)
    points = points + translation[:, None, :]
    return points[..., :2] / points[..., 2:3] * _per_batch(focal_length, points) + _per_batch(camera_center, points)


def _per_batch(value: torch.Tensor | float, points: torch.Tensor) -> torch.Tensor | float:
    """A scalar as it is (a Python number never becomes a device tensor: that copy would wait for the GPU); a
    (B,) or (B, 2) tensor shaped to broadcast over (B, N, 2)."""
    if not isinstance(value, torch.Tensor):
        return float(value)
    value = value.to(device=points.device, dtype=points.dtype)
    return value.reshape(-1, 1, 1) if value.ndim <= 1 else value[:, None, :]


@float32
def project_to_crop(
    points: torch.Tensor,
    cam: torch.Tensor,
    focal_length: float = FOCAL_LENGTH,
    crop_size: float = CROP_SIZE,
) -> torch.Tensor:
    """Project (B, N, 3) points with a weak-perspective crop camera (B, 3) to (B, N, 2) in [-1, 1].

    This is PARE's ``pred_keypoints_2d``: a perspective projection with the translation
    from :func:`weak_perspective_to_translation` and the principal point at the crop centre,
    divided by half the crop size.
    """
    translation = weak_perspective_to_translation(cam, focal_length, crop_size)
    return perspective_projection(points, translation, focal_length) / (crop_size / 2.0)


def procrustes_align(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Similarity-align (B, N, 3) ``source`` to ``target``: scale, rotation and translation.

    Solves ``min_{s, R, t} ||s R source + t - target||`` per sample (Umeyama), with the sign
    fix that keeps ``R`` a proper rotation (no reflection). Returns the aligned source.
    """
    mu_source = source.mean(dim=1, keepdim=True)
    mu_target = target.mean(dim=1, keepdim=True)
    x = source - mu_source
    y = target - mu_target
    covariance = torch.einsum("bni,bnj->bij", y, x)  # (B, 3, 3) = Y^T X
    u, sigma, vh = torch.linalg.svd(covariance)
    sign = torch.sign(torch.linalg.det(u @ vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    correction = torch.ones_like(sigma)
    correction[:, -1] = sign
    rotation = u @ torch.diag_embed(correction) @ vh
    variance = (x * x).sum(dim=(1, 2))
    scale = (sigma * correction).sum(-1) / variance.clamp_min(1e-12)
    aligned = scale[:, None, None] * torch.einsum("bij,bnj->bni", rotation, x)
    return aligned + mu_target
