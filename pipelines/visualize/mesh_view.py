"""Preview pictures of a body mesh: flat-shaded faces painted back to front with PIL.

This is a picture for people, not a label renderer: faces are sorted by depth (painter's
algorithm) and drawn at twice the size, then downsampled for smooth edges. The exact part
labels for training come from the z-buffer rasterizer in ``preprocessing``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 2
LIGHT_DIRECTION = np.array([0.35, 0.45, 0.82]) / np.linalg.norm([0.35, 0.45, 0.82])
AMBIENT = 0.38


def view_rotation(yaw_degrees: float, pitch_degrees: float = 0.0) -> np.ndarray:
    """Rotation turning the body by ``yaw`` about the vertical axis, then tilting by ``pitch``."""
    yaw, pitch = np.radians(yaw_degrees), np.radians(pitch_degrees)
    turn = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    tilt = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    return tilt @ turn


@dataclass(frozen=True)
class View:
    """An orthographic view: world points -> pixels, and depth towards the viewer."""

    rotation: np.ndarray  # (3, 3) world -> view
    center: np.ndarray  # (3,) world point at the image centre
    pixels_per_metre: float
    width: int
    height: int

    @classmethod
    def fit(cls, points: np.ndarray, rotation: np.ndarray, width: int, height: int, margin: float = 0.08) -> View:
        """A view of ``points`` filling the image but for a margin."""
        rotated = points @ rotation.T
        low, high = rotated.min(axis=0), rotated.max(axis=0)
        extent = np.maximum(high - low, 1e-6)
        scale = min(width * (1 - 2 * margin) / extent[0], height * (1 - 2 * margin) / extent[1])
        center = rotation.T @ ((low + high) / 2)
        return cls(rotation, center, float(scale), width, height)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) pixel coordinates (x right, y down) and (N,) depth (larger is nearer)."""
        rotated = (points - self.center) @ self.rotation.T
        pixels = np.stack(
            [
                self.width / 2 + rotated[:, 0] * self.pixels_per_metre,
                self.height / 2 - rotated[:, 1] * self.pixels_per_metre,
            ],
            axis=1,
        )
        return pixels, rotated[:, 2]


def shade(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(F, 3) uint8 Lambert-shaded face colours for a light fixed to the viewer."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    normals = np.cross(b - a, c - a) @ rotation.T
    normals /= np.linalg.norm(normals, axis=1, keepdims=True).clip(1e-12)
    lambert = np.clip(normals @ LIGHT_DIRECTION, 0.0, 1.0)
    intensity = AMBIENT + (1 - AMBIENT) * lambert
    return np.clip(colors * intensity[:, None], 0, 255).astype(np.uint8)


def render_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    face_colors: np.ndarray,
    view: View,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Paint the front-facing faces of a closed mesh, far to near, into an RGB image."""
    pixels, depth = view.project(vertices)
    pixels = pixels * SUPERSAMPLE
    tri = pixels[faces]  # (F, 3, 2)
    # Counter-clockwise faces seen from outside turn clockwise on screen, because y points down.
    edge1, edge2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    signed_area = edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0]  # the z of their cross product
    visible = np.flatnonzero(signed_area < 0)
    order = visible[np.argsort(depth[faces[visible]].mean(axis=1), kind="stable")]
    colors = shade(vertices, faces, np.asarray(face_colors, dtype=np.float64), view.rotation)

    image = Image.new("RGB", (view.width * SUPERSAMPLE, view.height * SUPERSAMPLE), background)
    draw = ImageDraw.Draw(image)
    for face in order:
        color = tuple(int(c) for c in colors[face])
        draw.polygon([tuple(p) for p in tri[face]], fill=color, outline=color)
    return image.resize((view.width, view.height), Image.Resampling.LANCZOS)


def draw_skeleton(
    image: Image.Image,
    joints: np.ndarray,
    parents: tuple[int, ...],
    view: View,
    colors: np.ndarray,
    radius: float = 4.0,
) -> Image.Image:
    """Draw bones (parent to child) and joint dots over a rendered view."""
    pixels, _ = view.project(joints)
    draw = ImageDraw.Draw(image)
    for child, parent in enumerate(parents):
        if parent >= 0:
            draw.line([tuple(pixels[parent]), tuple(pixels[child])], fill=(20, 20, 20), width=3)
    for k, (x, y) in enumerate(pixels):
        color = tuple(int(c) for c in colors[k])
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color, outline=(0, 0, 0), width=2)
    return image
