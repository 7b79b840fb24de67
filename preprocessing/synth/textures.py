"""Procedural textures for backgrounds and occluders: gradients, stripes, checkers, value noise, shapes.

Every texture is an (H, W, 3) uint8 image drawn from a ``numpy.random.Generator`` only, so the
same generator state gives the same pixels on every machine. ``random_texture`` picks a kind
and may blend a second texture over the first for variety.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np


def random_color(rng: np.random.Generator, low: int = 0, high: int = 256) -> np.ndarray:
    """(3,) float64 colour with channels in [low, high)."""
    return rng.uniform(low, high, size=3)


def _coordinates(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) pixel-centre coordinates x and y, normalised by the larger side."""
    size = float(max(height, width))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return (x + 0.5) / size, (y + 0.5) / size


def _mix(weight: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(H, W) weights in [0, 1] blending two (3,) colours -> (H, W, 3) float32."""
    weight = weight.astype(np.float32)[..., None]
    return (1.0 - weight) * first.astype(np.float32) + weight * second.astype(np.float32)


def gradient(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A linear gradient between two colours in a random direction."""
    x, y = _coordinates(height, width)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    t = np.cos(angle) * x + np.sin(angle) * y
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    return _mix(t, random_color(rng), random_color(rng))


def stripes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Hard or soft stripes at a random angle and period."""
    x, y = _coordinates(height, width)
    angle = rng.uniform(0.0, np.pi)
    period = rng.uniform(0.02, 0.2)
    phase = np.sin(2.0 * np.pi * (np.cos(angle) * x + np.sin(angle) * y) / period)
    weight = (phase > 0).astype(np.float32) if rng.random() < 0.5 else 0.5 + 0.5 * phase
    return _mix(weight, random_color(rng), random_color(rng))


def checker(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A checkerboard with random cell size and rotation."""
    x, y = _coordinates(height, width)
    angle = rng.uniform(0.0, np.pi / 2)
    cell = rng.uniform(0.03, 0.15)
    u = np.floor((np.cos(angle) * x + np.sin(angle) * y) / cell)
    v = np.floor((-np.sin(angle) * x + np.cos(angle) * y) / cell)
    return _mix(((u + v) % 2).astype(np.float32), random_color(rng), random_color(rng))


def value_noise(rng: np.random.Generator, height: int, width: int, octaves: int = 4) -> np.ndarray:
    """Multi-octave value noise (random grids upsampled bicubically) mapped between two colours."""
    total = np.zeros((height, width), np.float32)
    amplitude, weight_sum = 1.0, 0.0
    cells = int(rng.integers(2, 6))
    for _ in range(octaves):
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        total += amplitude * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        weight_sum += amplitude
        amplitude *= 0.5
        cells *= 2
    total = np.clip(total / weight_sum, 0.0, 1.0)
    return _mix(total, random_color(rng), random_color(rng))


def shapes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Random filled circles, rectangles and polygons on a flat colour."""
    image = np.empty((height, width, 3), np.float32)
    image[:] = random_color(rng)
    size = max(height, width)
    for _ in range(int(rng.integers(4, 16))):
        color = tuple(float(c) for c in random_color(rng))
        center = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        radius = int(rng.uniform(0.03, 0.2) * size) + 1
        kind = rng.integers(3)
        if kind == 0:
            cv2.circle(image, center, radius, color, -1, lineType=cv2.LINE_AA)
        elif kind == 1:
            corner = (center[0] + int(rng.uniform(-2, 2) * radius), center[1] + int(rng.uniform(-2, 2) * radius))
            cv2.rectangle(image, center, corner, color, -1)
        else:
            points = random_polygon(rng, np.array(center, np.float64), radius)
            cv2.fillPoly(image, [np.round(points).astype(np.int32)], color, lineType=cv2.LINE_AA)
    return image


def random_polygon(rng: np.random.Generator, center: np.ndarray, radius: float, num_vertices: int = 0) -> np.ndarray:
    """(K, 2) vertices of a random star-shaped polygon around ``center`` (K from 3 to 9 if 0)."""
    num = num_vertices or int(rng.integers(3, 10))
    angles = np.sort(rng.uniform(0.0, 2.0 * np.pi, num))
    radii = radius * rng.uniform(0.4, 1.0, num)
    return center + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None]


TEXTURES: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "gradient": gradient,
    "stripes": stripes,
    "checker": checker,
    "value_noise": value_noise,
    "shapes": shapes,
}


def texture(kind: str, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 texture of the named kind (one of :data:`TEXTURES`)."""
    try:
        make = TEXTURES[kind]
    except KeyError:
        raise KeyError(f"unknown texture {kind!r}; valid names: {sorted(TEXTURES)}") from None
    return np.clip(make(rng, height, width), 0, 255).astype(np.uint8)


def random_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8: a texture of a random kind, half of the time blended with a second one."""
    kinds = sorted(TEXTURES)
    base = TEXTURES[kinds[rng.integers(len(kinds))]](rng, height, width)
    if rng.random() < 0.5:
        overlay = TEXTURES[kinds[rng.integers(len(kinds))]](rng, height, width)
        alpha = rng.uniform(0.2, 0.5)
        base = (1.0 - alpha) * base + alpha * overlay
    return np.clip(base, 0, 255).astype(np.uint8)
