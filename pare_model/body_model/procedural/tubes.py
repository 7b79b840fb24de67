"""Generalised cylinders: rings of vertices swept along a smooth centre line.

A tube is described by stations (centre, two cross-section radii). The centre line is a
cubic spline through the station centres, the radii are monotone (PCHIP) interpolations, and
ring frames are parallel-transported along the curve so rings never twist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline, PchipInterpolator

from pare_model.body_model.procedural.mesh import MeshBuilder, resample_loop


@dataclass(frozen=True)
class Station:
    """One cross-section: an ellipse with semi-axes ``radius_u`` (along u) and ``radius_v``."""

    center: tuple[float, float, float]
    radius_u: float
    radius_v: float


@dataclass(frozen=True)
class TubeSpec:
    """A tube through ``stations`` with one ring per entry of ``ring_sizes``.

    Rings are spread evenly in arc length from the first station to the last. ``u_axis`` is
    the initial direction of the cross-section's u axis; ``tip`` closes the tube with a pole.
    """

    stations: tuple[Station, ...]
    ring_sizes: tuple[int, ...]
    u_axis: tuple[float, float, float]
    tip: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class RingFrames:
    """(R, 3) centres, tangents, u and v axes and (R,) radii of R rings."""

    centers: np.ndarray
    tangents: np.ndarray
    u: np.ndarray
    v: np.ndarray
    radius_u: np.ndarray
    radius_v: np.ndarray


def _rotate_onto(vector: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotate ``vector`` by the smallest rotation that takes unit ``source`` to unit ``target``."""
    axis = np.cross(source, target)
    sin = np.linalg.norm(axis)
    cos = float(np.dot(source, target))
    if sin < 1e-12:
        return vector
    axis = axis / sin
    return vector * cos + np.cross(axis, vector) * sin + axis * np.dot(axis, vector) * (1 - cos)


def ring_frames(spec: TubeSpec) -> RingFrames:
    """Sample the tube's centre line, radii and parallel-transported frames at its rings."""
    centers = np.array([s.center for s in spec.stations], dtype=np.float64)
    chord = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(centers, axis=0), axis=1))])
    curve = CubicSpline(chord, centers, bc_type="natural")
    samples = np.linspace(0.0, chord[-1], len(spec.ring_sizes))
    ring_centers = curve(samples)
    tangents = curve(samples, 1)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    radius_u = PchipInterpolator(chord, [s.radius_u for s in spec.stations])(samples)
    radius_v = PchipInterpolator(chord, [s.radius_v for s in spec.stations])(samples)

    u = np.empty_like(tangents)
    first = np.asarray(spec.u_axis, dtype=np.float64)
    first = first - np.dot(first, tangents[0]) * tangents[0]
    u[0] = first / np.linalg.norm(first)
    for k in range(1, len(samples)):
        transported = _rotate_onto(u[k - 1], tangents[k - 1], tangents[k])
        transported -= np.dot(transported, tangents[k]) * tangents[k]
        u[k] = transported / np.linalg.norm(transported)
    v = np.cross(tangents, u)
    return RingFrames(ring_centers, tangents, u, v, radius_u, radius_v)


def ellipse_points(frames: RingFrames, ring: int, angles: np.ndarray) -> np.ndarray:
    """(N, 3) points of ring ``ring`` at the given elliptic angles."""
    return (
        frames.centers[ring]
        + np.cos(angles)[:, None] * frames.radius_u[ring] * frames.u[ring]
        + np.sin(angles)[:, None] * frames.radius_v[ring] * frames.v[ring]
    )


def ring_angles(count: int, start: float, direction: float) -> np.ndarray:
    return start + direction * 2.0 * np.pi * np.arange(count) / count


def loop_angles(frames: RingFrames, points: np.ndarray) -> tuple[float, float]:
    """Start angle and turning direction (+1/-1) of a loop seen from the tube's first ring."""
    offset = points - frames.centers[0]
    x = offset @ frames.u[0] / frames.radius_u[0]
    y = offset @ frames.v[0] / frames.radius_v[0]
    angles = np.unwrap(np.arctan2(y, x))
    direction = 1.0 if angles[-1] > angles[0] else -1.0
    return float(angles[0]), direction


def sweep(
    builder: MeshBuilder,
    spec: TubeSpec,
    start_angle: float,
    direction: float,
    previous: np.ndarray | None = None,
    frames: RingFrames | None = None,
) -> list[np.ndarray]:
    """Add the tube's rings (joined to ``previous`` if given); close it if it has a tip."""
    frames = frames or ring_frames(spec)
    rings = []
    for k, size in enumerate(spec.ring_sizes):
        ring = builder.add(ellipse_points(frames, k, ring_angles(size, start_angle, direction)))
        if previous is not None:
            builder.zip_loops(previous, ring)
        rings.append(ring)
        previous = ring
    if spec.tip is not None:
        assert previous is not None, "a tube with a tip needs a ring to close"
        builder.fan(previous, int(builder.add(np.asarray(spec.tip))[0]))
    return rings


def grow_from_loop(builder: MeshBuilder, loop: np.ndarray, spec: TubeSpec, num_transition: int) -> list[np.ndarray]:
    """Sweep a tube out of a junction loop, easing from the loop's shape into the first ring.

    ``num_transition`` rings blend linearly between the loop (resampled by arc length) and
    the tube's first ring, so a saddle-shaped junction loop flows into a round limb.
    """
    frames = ring_frames(spec)
    loop_points = builder.positions(loop)
    start, direction = loop_angles(frames, loop_points)
    size = spec.ring_sizes[0]
    target = ellipse_points(frames, 0, ring_angles(size, start, direction))
    source = resample_loop(loop_points, size)
    previous = loop
    for k in range(1, num_transition + 1):
        weight = k / (num_transition + 1)
        ring = builder.add((1.0 - weight) * source + weight * target)
        builder.zip_loops(previous, ring)
        previous = ring
    return sweep(builder, spec, start, direction, previous=previous, frames=frames)
