"""Which frame a file's 3D joints are in, told from the values, to refuse a file whose declared frame is wrong.

Producers differ (``docs/data-formats.md``): SPIN's preprocessing root-centres Human3.6M's and MPI-INF-3DHP's
``S`` (``S17 -= S17[0]``: the pelvis, slot 14, is exactly 0), mmpose's npz files keep the camera frame (every
joint metres in front of the camera), mmhuman3d's converters subtract the pelvis. A reader declares the frame
(an option where producers differ); these checks catch a file that contradicts it, which would otherwise put the
camera inside the body (root-centred joints read as camera-frame ones) or throw away a usable placement.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from preprocessing.record import JOINTS_FRAMES

PELVIS = 14
"""Slot of the pelvis among SPIN's 24 ground-truth joints (Human3.6M's and MPI-INF-3DHP's root)."""
ROOT_TOLERANCE = 1e-3
"""Metres: a pelvis this close to the origin is a root-centred row."""
MIN_CAMERA_DEPTH = 0.5
"""Metres: a row whose joints are all in front of the camera, this far on average, is in the camera frame."""
SAMPLED_ROWS = 64
"""Rows of a file checked before any record is read (evenly spaced, first and last included)."""


def frame_of(joints: np.ndarray) -> str:
    """``root_centred``, ``camera`` or ``""`` (cannot tell) for (24, 4) joints with a validity column."""
    valid = joints[:, 3] > 0
    if not valid.any():
        return ""
    if valid[PELVIS] and np.linalg.norm(joints[PELVIS, :3]) <= ROOT_TOLERANCE:
        return "root_centred"
    depth = joints[valid, 2]
    if (depth > 0).all() and depth.mean() >= MIN_CAMERA_DEPTH:
        return "camera"
    return ""


def contradiction(joints: np.ndarray, declared: str, option: str, where: str) -> str:
    """A one-line message when (24, 4) ``joints`` are clearly not in the ``declared`` frame, else ``""``."""
    found = frame_of(joints)
    if not found or found == declared:
        return ""
    if found == "camera":
        depth = float(joints[joints[:, 3] > 0, 2].mean())
        evidence = f"are in the camera frame (joints {depth:.2f} m in front of the camera, as mmpose's files)"
    else:
        evidence = "are root-centred (the pelvis, slot 14, at the origin, as SPIN's and mmhuman3d's files)"
    return f"{where}: the 3D joints {evidence}, but {option} is {declared}; set {option}: {found}"


def check_rows(count: int, row: Callable[[int], np.ndarray | None], declared: str, option: str, where: str) -> str:
    """The first :func:`contradiction` among up to :data:`SAMPLED_ROWS` evenly spaced rows (``row(i)``: (24, 4)
    joints or None), or ``""``."""
    if declared not in JOINTS_FRAMES:
        raise ValueError(f"{option} must be one of {JOINTS_FRAMES}, got {declared!r}")
    for index in np.unique(np.linspace(0, count - 1, min(count, SAMPLED_ROWS)).round().astype(int)):
        joints = row(int(index))
        message = "" if joints is None else contradiction(joints, declared, option, f"{where} row {index}")
        if message:
            return message
    return ""
