"""The occlusion analysis's local sensitivity: error increase with the patch on a joint against far from it."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.occlusion_sensitivity.analysis import Grid, _ratio, local_sensitivity

GRID = Grid(image_size=120, patch=20, stride=20)  # a 6 x 6 tiling


def _joints(points) -> np.ndarray:
    """(1, 14, 3): the given (x, y) for the first joints, the others unknown."""
    joints = np.zeros((1, 14, 3), np.float32)
    for index, (x, y) in enumerate(points):
        joints[0, index] = (x, y, 1.0)
    return joints


def _increase_map(joint_xy, near: float, far: float) -> np.ndarray:
    """(6, 6) increase: ``near`` in the box holding the joint, ``far`` everywhere else."""
    values = np.full((GRID.side, GRID.side), far, np.float64)
    x, y = joint_xy
    values[int(y // GRID.stride), int(x // GRID.stride)] = near
    return values


def test_a_model_that_reads_each_joint_locally_has_a_high_ratio():
    points = [(10.0, 10.0), (65.0, 95.0)]
    clean = np.full((1, 14), 50.0)
    errors = np.full((1, GRID.side, GRID.side, 14), 50.0)
    for joint, xy in enumerate(points):
        errors[0, :, :, joint] = 50.0 + _increase_map(xy, near=30.0, far=2.0)
    local = local_sensitivity(errors, clean, _joints(points), GRID)
    assert local["near"] == pytest.approx(30.0)
    assert local["far"] == pytest.approx(2.0)  # every far box holds 2.0
    assert local["ratio"] == pytest.approx(15.0)


def test_a_model_blind_to_local_evidence_has_a_ratio_of_one():
    clean = np.zeros((1, 14))
    errors = np.full((1, GRID.side, GRID.side, 14), 5.0)  # the patch hurts the same wherever it is
    local = local_sensitivity(errors, clean, _joints([(30.0, 30.0), (100.0, 20.0)]), GRID)
    assert local["near"] == pytest.approx(5.0) and local["far"] == pytest.approx(5.0)
    assert local["ratio"] == pytest.approx(1.0)


def test_unknown_or_outside_joints_are_left_out_and_no_joint_gives_nan():
    errors = np.ones((1, GRID.side, GRID.side, 14))
    outside = _joints([(500.0, 10.0)])
    assert np.isnan(local_sensitivity(errors, np.zeros((1, 14)), outside, GRID)["ratio"])
    assert np.isnan(local_sensitivity(errors, np.zeros((1, 14)), np.zeros((1, 14, 3)), GRID)["near"])


def test_far_means_at_least_two_patch_sides_away():
    points = [(10.0, 10.0)]
    clean = np.zeros((1, 14))
    errors = np.zeros((1, GRID.side, GRID.side, 14))
    errors[0, 0, 1, 0] = 100.0  # the neighbouring box: neither near nor far
    errors[0, 0, 0, 0] = 10.0
    errors[0, 5, 5, 0] = 7.0  # the opposite corner: far
    local = local_sensitivity(errors, clean, _joints(points), GRID)
    boxes = GRID.boxes()
    centres = np.stack([(boxes[:, 1] + boxes[:, 3]) / 2, (boxes[:, 0] + boxes[:, 2]) / 2], axis=1)
    far = np.hypot(centres[:, 0] - 10, centres[:, 1] - 10) >= 2 * GRID.patch
    assert local["near"] == pytest.approx(10.0)
    assert local["far"] == pytest.approx(7.0 / far.sum())


def test_a_patch_that_lowers_the_error_everywhere_is_no_local_sensitivity():
    """Measured on a quickstart model: -34.9 mm on the joint, -4.3 far. That once gave a ratio of inf: 'met'."""
    clean = np.full((1, 14), 50.0)
    points = [(30.0, 30.0), (100.0, 20.0)]
    errors = np.full((1, GRID.side, GRID.side, 14), 45.0)  # a patch far away lowers the error by 5 mm
    for joint, (x, y) in enumerate(points):
        errors[0, int(y) // GRID.stride, int(x) // GRID.stride, joint] = 10.0  # on the joint by 40 mm
    local = local_sensitivity(errors, clean, _joints(points), GRID)
    assert local["near"] < local["far"] < 0
    assert local["ratio"] == 0.0


def test_a_patch_that_only_hurts_on_the_joint_has_an_infinite_ratio():
    clean = np.zeros((1, 14))
    points = [(30.0, 30.0)]
    errors = np.zeros((1, GRID.side, GRID.side, 14))
    errors[0, 30 // GRID.stride, 30 // GRID.stride, 0] = 12.0
    local = local_sensitivity(errors, clean, _joints(points), GRID)
    assert local["far"] == 0.0 and local["near"] > 0 and local["ratio"] == float("inf")


def test_the_quickstart_line_of_the_local_ratio_names_its_two_figures():
    from pipelines.quickstart import Target, _local_detail

    far_lowers = {"near": 14.6, "far": -1.1, "ratio": _ratio(14.6, -1.1)}
    line = Target("occlusion", far_lowers["ratio"], 2.0, at_least=True, detail=_local_detail(far_lowers)).line()
    assert "[met]" in line and "inf" in line
    assert "on the joint +14.6 mm, far -1.1 mm: the far patch did not raise the error" in line
    ordinary = {"near": 20.4, "far": 1.0, "ratio": _ratio(20.4, 1.0)}
    line = Target("occlusion", ordinary["ratio"], 2.0, at_least=True, detail=_local_detail(ordinary)).line()
    assert "20.40" in line and line.endswith("far +1.0 mm)") and "infinite" not in line
    no_effect = {"near": -0.5, "far": -1.0, "ratio": _ratio(-0.5, -1.0)}
    assert "[MISSED]" in Target("o", no_effect["ratio"], 2.0, at_least=True, detail=_local_detail(no_effect)).line()
