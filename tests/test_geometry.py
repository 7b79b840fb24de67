"""Property tests of the rotation, camera and alignment functions."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pare_model import geometry as g

finite = st.floats(-4.0, 4.0, allow_nan=False)
vectors = st.tuples(finite, finite, finite)
SETTINGS = settings(max_examples=150, deadline=None)


@pytest.fixture(autouse=True, scope="module")
def double_precision():
    """Run these property tests in float64 so tolerances can be tight; restore afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _random_rotations(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=generator))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    return q * torch.linalg.det(q)[:, None, None]


@SETTINGS
@given(vectors)
def test_axis_angle_gives_proper_rotations(v):
    rotation = g.axis_angle_to_matrix(torch.tensor(v))
    assert torch.allclose(rotation @ rotation.T, torch.eye(3), atol=1e-10)
    assert torch.linalg.det(rotation).item() == pytest.approx(1.0, abs=1e-10)


@SETTINGS
@given(vectors)
def test_axis_angle_round_trip(v):
    aa = torch.tensor(v)
    angle = aa.norm().item()
    if angle > math.pi - 1e-3:  # the representation wraps at pi
        aa = aa / angle * (angle % (2 * math.pi))
        if aa.norm() > math.pi - 1e-3:
            aa = aa / aa.norm() * (math.pi - 1e-2)
    back = g.matrix_to_axis_angle(g.axis_angle_to_matrix(aa))
    assert torch.allclose(back, aa, atol=1e-8)


def test_rodrigues_matches_closed_form_about_z():
    theta = 0.7
    expected = torch.tensor(
        [[math.cos(theta), -math.sin(theta), 0], [math.sin(theta), math.cos(theta), 0], [0, 0, 1.0]]
    )
    assert torch.allclose(g.axis_angle_to_matrix(torch.tensor([0, 0, theta])), expected, atol=1e-12)


def test_matrix_round_trip_for_all_angles_including_pi():
    rotations = _random_rotations(500)
    assert torch.allclose(g.axis_angle_to_matrix(g.matrix_to_axis_angle(rotations)), rotations, atol=1e-9)
    flips = torch.diag_embed(torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]))
    assert torch.allclose(g.axis_angle_to_matrix(g.matrix_to_axis_angle(flips)), flips, atol=1e-9)
    assert torch.allclose(g.matrix_to_axis_angle(flips).norm(dim=-1), torch.full((3,), math.pi))


def test_gradients_are_finite_at_zero_rotation():
    aa = torch.zeros(4, 3, requires_grad=True)
    g.axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()
    rotation = torch.eye(3).repeat(2, 1, 1).requires_grad_(True)
    g.matrix_to_axis_angle(rotation).sum().backward()
    assert torch.isfinite(rotation.grad).all()


@SETTINGS
@given(st.lists(finite, min_size=6, max_size=6))
def test_rot6d_gives_proper_rotations(values):
    x = torch.tensor(values).reshape(3, 2)
    a1, a2 = x[:, 0], x[:, 1]
    if a1.norm() < 1e-2 or a2.norm() < 1e-2 or torch.linalg.cross(a1, a2).norm() < 1e-2 * a1.norm() * a2.norm():
        return  # degenerate input: the two vectors are (nearly) parallel
    rotation = g.rot6d_to_matrix(torch.tensor(values))
    assert torch.allclose(rotation @ rotation.T, torch.eye(3), atol=1e-9)
    assert torch.linalg.det(rotation).item() == pytest.approx(1.0, abs=1e-9)
    assert torch.allclose(rotation[:, 0], a1 / a1.norm(), atol=1e-9)  # first column keeps a1's direction


def test_rot6d_round_trip_and_layout():
    rotations = _random_rotations(100, seed=1)
    assert torch.allclose(g.rot6d_to_matrix(g.matrix_to_rot6d(rotations)), rotations, atol=1e-10)
    # Layout of smpl_mean_params.npz: the rotation of pi about x is [1, 0, 0, -1, 0, 0].
    half_turn = g.axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0]))
    assert torch.allclose(g.matrix_to_rot6d(half_turn), torch.tensor([1.0, 0, 0, -1.0, 0, 0]), atol=1e-12)


@SETTINGS
@given(st.floats(0.2, 3.0), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0))
def test_weak_perspective_round_trip(s, tx, ty):
    cam = torch.tensor([[s, tx, ty]])
    translation = g.weak_perspective_to_translation(cam)
    assert translation[0, 2].item() == pytest.approx(2 * 5000.0 / (224 * s))
    assert torch.allclose(g.translation_to_weak_perspective(translation), cam, atol=1e-12)


def test_project_to_crop_by_hand():
    # A point 0.1 m right of the body centre, camera [s=1, 0, 0]: depth 2f/224, so it lands at
    # f * 0.1 / depth pixels from the centre, divided by 112 to normalise.
    depth = 2 * 5000.0 / 224
    pixels = 5000.0 * 0.1 / depth
    projected = g.project_to_crop(torch.tensor([[[0.1, 0.0, 0.0]]]), torch.tensor([[1.0, 0.0, 0.0]]))
    assert projected[0, 0, 0].item() == pytest.approx(pixels / 112.0)
    assert projected[0, 0, 1].item() == pytest.approx(0.0)


def test_perspective_projection_rotation_and_intrinsics():
    points = torch.randn(2, 5, 3)
    rotation = _random_rotations(2, seed=3)
    translation = torch.tensor([[0.1, -0.2, 5.0], [0.0, 0.3, 7.0]])
    focal = torch.tensor([[1000.0, 1100.0], [900.0, 950.0]])
    center = torch.tensor([[320.0, 240.0], [100.0, 50.0]])
    projected = g.perspective_projection(points, translation, focal, center, rotation)
    camera = torch.einsum("bij,bnj->bni", rotation, points) + translation[:, None]
    expected = camera[..., :2] / camera[..., 2:] * focal[:, None] + center[:, None]
    assert torch.allclose(projected, expected)


def _similarity(points: torch.Tensor, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    rotation = _random_rotations(points.shape[0], seed)
    scale = torch.rand(points.shape[0], 1, 1, generator=generator) * 2 + 0.3
    shift = torch.randn(points.shape[0], 1, 3, generator=generator)
    return scale * torch.einsum("bij,bnj->bni", rotation, points) + shift


def test_procrustes_recovers_a_similarity_transform():
    target = torch.randn(8, 14, 3)
    source = _similarity(target, seed=4)
    assert torch.allclose(g.procrustes_align(source, target), target, atol=1e-9)


def test_procrustes_error_is_invariant_to_transforming_the_prediction():
    target = torch.randn(6, 14, 3)
    prediction = target + 0.05 * torch.randn(6, 14, 3)
    error = (g.procrustes_align(prediction, target) - target).norm(dim=-1).mean(-1)
    moved = _similarity(prediction, seed=5)
    moved_error = (g.procrustes_align(moved, target) - target).norm(dim=-1).mean(-1)
    assert torch.allclose(error, moved_error, atol=1e-9)
    assert (error > 0).all()


def test_procrustes_never_reflects():
    target = torch.randn(1, 14, 3)
    mirrored = target * torch.tensor([-1.0, 1.0, 1.0])
    aligned = g.procrustes_align(mirrored, target)
    assert (aligned - target).norm(dim=-1).mean() > 0.1  # a reflection would have fitted exactly
