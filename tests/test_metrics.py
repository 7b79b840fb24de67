"""Evaluation metrics: hand-computed cases, Procrustes invariances, protocol, streaming and merging."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from pare_model.geometry import axis_angle_to_matrix, procrustes_align
from pare_model.joint_sets import H36M_TO_LSP14
from pare_model.metrics import (
    MetricAccumulator,
    mpjpe,
    pa_mpjpe,
    pa_per_joint_error,
    per_joint_error,
    protocol_joints,
    pve,
)


def _random_rotations(n: int, generator: torch.Generator) -> torch.Tensor:
    return axis_angle_to_matrix(torch.randn(n, 3, generator=generator, dtype=torch.float64) * 2.0)


def _joints(n: int, seed: int, joints: int = 14) -> torch.Tensor:
    """(n, J, 3) body-sized random point sets in metres."""
    return 0.4 * torch.randn(n, joints, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _similarity(points: torch.Tensor, seed: int) -> torch.Tensor:
    """A random scale (0.5..2), rotation and translation applied to each sample."""
    generator = torch.Generator().manual_seed(seed)
    n = points.shape[0]
    scale = 0.5 + 1.5 * torch.rand(n, 1, 1, generator=generator, dtype=torch.float64)
    shift = torch.randn(n, 1, 3, generator=generator, dtype=torch.float64)
    return scale * torch.einsum("bij,bnj->bni", _random_rotations(n, generator), points) + shift


def _umeyama_numpy(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Independent reference: the HMR/SPIN compute_similarity_transform, written out for one sample."""
    x, y = source.T, target.T  # (3, N)
    mu_x, mu_y = x.mean(1, keepdims=True), y.mean(1, keepdims=True)
    x0, y0 = x - mu_x, y - mu_y
    k = x0 @ y0.T
    u, _, vh = np.linalg.svd(k)
    z = np.eye(3)
    z[-1, -1] = np.sign(np.linalg.det(u @ vh))
    rotation = vh.T @ z @ u.T
    scale = np.trace(rotation @ k) / (x0**2).sum()
    return (scale * rotation @ x + (mu_y - scale * rotation @ mu_x)).T


def test_offset_prediction_has_mpjpe_equal_to_the_offset_in_mm():
    gt = _joints(4, 0)
    offset = torch.tensor([0.003, -0.004, 0.012], dtype=torch.float64)  # 13 mm
    assert torch.allclose(mpjpe(gt + offset, gt), torch.full((4,), 13.0, dtype=torch.float64))
    assert torch.allclose(per_joint_error(gt + offset, gt), torch.full((4, 14), 13.0, dtype=torch.float64))
    # A translation is a similarity: nothing left after alignment.
    assert torch.allclose(pa_mpjpe(gt + offset, gt), torch.zeros(4, dtype=torch.float64), atol=1e-9)


def test_metres_in_millimetres_out_per_joint():
    gt = torch.zeros(1, 3, 3)
    pred = gt.clone()
    pred[0, 1, 0] = 0.25
    assert per_joint_error(pred, gt).tolist() == [[0.0, 250.0, 0.0]]
    assert mpjpe(pred, gt).item() == pytest.approx(250.0 / 3)


def test_pa_mpjpe_is_zero_after_any_similarity_transform():
    gt = _joints(16, 1)
    pred = _similarity(gt, seed=2)
    assert mpjpe(pred, gt).min() > 10.0
    assert pa_mpjpe(pred, gt).abs().max().item() < 1e-6
    # float32 inputs too (the alignment itself runs in float64)
    assert pa_mpjpe(pred.float(), gt.float()).abs().max().item() < 1e-2


def test_pa_mpjpe_is_unchanged_by_a_similarity_transform_of_the_prediction():
    pred, gt = _joints(16, 3), _joints(16, 4)
    before = pa_per_joint_error(pred, gt)
    after = pa_per_joint_error(_similarity(pred, seed=5), gt)
    assert torch.allclose(before, after, atol=1e-6)
    assert before.min() > 0


def _rms(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return (pred.double() - gt.double()).pow(2).sum(-1).mean(-1).sqrt()


def test_pa_mpjpe_does_not_exceed_mpjpe_on_random_data():
    pred, gt = _joints(200, 6), _joints(200, 7)
    pred = pred + 0.1  # a global offset as well as shape differences
    assert (pa_mpjpe(pred, gt) <= mpjpe(pred, gt) + 1e-9).all()
    # What alignment guarantees for any data: the squared error (identity is a candidate).
    assert (_rms(procrustes_align(pred, gt), gt) <= _rms(pred, gt) + 1e-12).all()


def test_procrustes_matches_an_independent_umeyama_including_reflections():
    pred, gt = _joints(32, 8), _joints(32, 9)
    mirrored = _joints(32, 10) * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    cases = [(pred, gt), (mirrored, _joints(32, 10))]
    for source, target in cases:
        ours = procrustes_align(source, target).numpy()
        reference = np.stack([_umeyama_numpy(s, t) for s, t in zip(source.numpy(), target.numpy(), strict=True)])
        assert np.allclose(ours, reference, atol=1e-9)


def test_a_mirrored_prediction_is_not_explained_away_by_a_reflection():
    """The reflection fix keeps R proper: a chiral pose and its mirror image stay apart."""
    gt = _joints(8, 11)
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert (pa_mpjpe(mirrored, gt) > 10.0).all()
    aligned = procrustes_align(mirrored, gt)
    # Recover s R from aligned = s R x + t (least squares on centred points): det must be > 0.
    x = mirrored - mirrored.mean(1, keepdim=True)
    a = aligned - aligned.mean(1, keepdim=True)
    s_rt = torch.linalg.lstsq(x, a).solution  # (B, 3, 3) = s R^T
    assert (torch.linalg.det(s_rt) > 0).all()


def test_pve_is_unaligned_and_in_mm():
    gt = torch.randn(2, 6890, 3, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    shifted = gt + torch.tensor([0.0, 0.0, 0.02], dtype=torch.float64)
    assert torch.allclose(pve(shifted, gt), torch.full((2,), 20.0, dtype=torch.float64))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        mpjpe(torch.zeros(2, 14, 3), torch.zeros(2, 13, 3))
    with pytest.raises(ValueError, match="H36M"):
        protocol_joints(torch.zeros(2, 14, 3))


def test_protocol_joints_centre_on_the_h36m_pelvis_of_the_body_model(body_model):
    generator = torch.Generator().manual_seed(13)
    rotations = axis_angle_to_matrix(0.3 * torch.randn(2, 24, 3, generator=generator))
    betas = torch.randn(2, 10, generator=generator)
    with torch.no_grad():
        out = body_model(rotations[:, :1], rotations[:, 1:], betas)
        moved = body_model(rotations[:, :1], rotations[:, 1:], betas, transl=torch.tensor([[1.0, 2.0, 3.0]] * 2))
    joints = protocol_joints(out["h36m_joints"])
    assert joints.shape == (2, 14, 3)
    assert torch.allclose(joints, out["lsp14_joints"] - out["h36m_joints"][:, :1], atol=1e-6)
    assert torch.allclose(protocol_joints(moved["h36m_joints"]), joints, atol=1e-5)
    assert torch.allclose(mpjpe(joints, joints), torch.zeros(2))
    # A different pose of the same body: a real error, partly removed by alignment.
    bent = rotations.clone()
    bent[:, 18] = axis_angle_to_matrix(torch.tensor([0.0, 0.0, 1.2]))  # left elbow
    with torch.no_grad():
        other = protocol_joints(body_model(bent[:, :1], bent[:, 1:], betas)["h36m_joints"])
    assert (mpjpe(other, joints) > 1.0).all()
    # Alignment minimises the squared error, so only the root-mean-square error is sure to drop;
    # an error confined to one arm gets spread over all joints and the mean distance can grow.
    assert (_rms(procrustes_align(other.double(), joints.double()), joints) < _rms(other, joints)).all()
    assert (pa_mpjpe(other, joints) > mpjpe(other, joints)).all()
    assert list(H36M_TO_LSP14) == [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]


def _dataset(n: int = 23):
    pred, gt = _joints(n, 20), _joints(n, 21)
    generator = torch.Generator().manual_seed(22)
    gt_vertices = torch.randn(n, 50, 3, generator=generator, dtype=torch.float64)
    pred_vertices = gt_vertices + 0.01 * torch.randn(n, 50, 3, generator=generator, dtype=torch.float64)
    return pred, gt, pred_vertices, gt_vertices


def test_streaming_over_batches_equals_one_shot():
    pred, gt, pred_v, gt_v = _dataset()
    accumulator = MetricAccumulator(keep_per_sample=True)
    for start in range(0, 23, 5):
        part = slice(start, start + 5)
        ids = [f"sample_{i}" for i in range(start, min(start + 5, 23))]
        accumulator.update(pred[part], gt[part], pred_v[part], gt_v[part], sample_ids=ids)
    result = accumulator.compute()
    assert result["num_samples"] == 23 and result["num_pve_samples"] == 23
    assert result["mpjpe"] == pytest.approx(mpjpe(pred, gt).mean().item(), rel=1e-12)
    assert result["pa_mpjpe"] == pytest.approx(pa_mpjpe(pred, gt).mean().item(), rel=1e-12)
    assert result["pve"] == pytest.approx(pve(pred_v, gt_v).mean().item(), rel=1e-12)
    per_joint = accumulator.per_joint()
    assert np.allclose(per_joint["mpjpe"], per_joint_error(pred, gt).mean(0).numpy())
    assert np.allclose(per_joint["pa_mpjpe"], pa_per_joint_error(pred, gt).mean(0).numpy())
    samples = accumulator.per_sample()
    assert samples["mpjpe"].dtype == np.float32 and samples["per_joint_pa_mpjpe"].shape == (23, 14)
    assert np.allclose(samples["mpjpe"], mpjpe(pred, gt).numpy(), rtol=1e-6)
    assert samples["sample_ids"] == [f"sample_{i}" for i in range(23)]


def test_merge_equals_one_accumulator_over_all_data():
    pred, gt, pred_v, gt_v = _dataset()
    whole = MetricAccumulator(keep_per_sample=True)
    whole.update(pred, gt, pred_v, gt_v)
    first, second = MetricAccumulator(keep_per_sample=True), MetricAccumulator(keep_per_sample=True)
    first.update(pred[:9], gt[:9], pred_v[:9], gt_v[:9])
    second.update(pred[9:], gt[9:], pred_v[9:], gt_v[9:])
    # Workers ship their state (picklable) to be merged.
    merged = first.merge(pickle.loads(pickle.dumps(second.state())))
    for key, value in whole.compute().items():
        assert merged.compute()[key] == pytest.approx(value, rel=1e-12), key
    for key in ("mpjpe", "pa_mpjpe"):
        assert np.allclose(merged.per_joint()[key], whole.per_joint()[key], rtol=1e-12)
    assert np.array_equal(merged.per_sample()["per_joint_mpjpe"], whole.per_sample()["per_joint_mpjpe"])
    restored = MetricAccumulator.from_state(whole.state())
    assert restored.compute() == whole.compute()


def test_vertices_are_optional_per_batch():
    pred, gt, pred_v, gt_v = _dataset()
    accumulator = MetricAccumulator(keep_per_sample=True)
    accumulator.update(pred[:10], gt[:10])
    assert "pve" not in accumulator.compute()
    accumulator.update(pred[10:], gt[10:], pred_v[10:], gt_v[10:])
    result = accumulator.compute()
    assert result["num_pve_samples"] == 13
    assert result["pve"] == pytest.approx(pve(pred_v[10:], gt_v[10:]).mean().item(), rel=1e-12)
    assert np.isnan(accumulator.per_sample()["pve"][:10]).all()


def test_accumulator_errors_say_what_is_wrong():
    accumulator = MetricAccumulator()
    with pytest.raises(ValueError, match="no samples"):
        accumulator.compute()
    with pytest.raises(ValueError, match="14 joints"):
        accumulator.update(torch.zeros(2, 17, 3), torch.zeros(2, 17, 3))
    with pytest.raises(ValueError, match="both"):
        accumulator.update(torch.zeros(2, 14, 3), torch.zeros(2, 14, 3), pred_vertices=torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="sample ids"):
        accumulator.update(torch.zeros(2, 14, 3), torch.zeros(2, 14, 3), sample_ids=["a"])
    with pytest.raises(ValueError, match="keep_per_sample"):
        accumulator.per_sample()
    with pytest.raises(ValueError, match="per-sample"):
        MetricAccumulator(keep_per_sample=True).merge(accumulator)
    with pytest.raises(ValueError, match="merge"):
        accumulator.merge(MetricAccumulator(num_joints=17))


def _about(axis, degrees: float) -> torch.Tensor:
    from pare_model.geometry import axis_angle_to_matrix

    axis = torch.as_tensor(axis, dtype=torch.float64)
    return axis_angle_to_matrix((axis / axis.norm() * np.deg2rad(degrees))[None])[0]


def test_orientation_error_is_the_angle_between_root_rotations():
    from pare_model.metrics import orientation_error

    rng = np.random.default_rng(3)
    angles = [0.0, 0.5, 12.0, 45.0, 90.0, 135.0, 179.5, 180.0]
    gt = torch.stack([_about(rng.normal(size=3), rng.uniform(0, 180)) for _ in angles])
    turns = torch.stack([_about(rng.normal(size=3), a) for a in angles])
    pred = gt @ turns  # the prediction is the ground truth turned by a known angle about a random axis
    measured = orientation_error(pred, gt)
    np.testing.assert_allclose(measured.numpy(), angles, atol=1e-6)
    assert torch.allclose(orientation_error(gt, pred), measured, atol=1e-6)  # symmetric
    # turning both by the same camera rotation changes nothing (same frame for both)
    camera = _about([0.2, 1.0, -0.3], 70.0)
    np.testing.assert_allclose(orientation_error(camera @ pred, camera @ gt).numpy(), angles, atol=1e-6)
    with pytest.raises(ValueError, match="root rotations"):
        orientation_error(pred[:, :2], gt[:, :2])


def test_accumulator_reports_orientation_mean_and_median_and_merges():
    from pare_model.metrics import MetricAccumulator

    joints = torch.zeros(4, 14, 3)
    gt = torch.eye(3, dtype=torch.float64).expand(4, 3, 3)
    pred = torch.stack([_about([0, 1, 0], a) for a in (10.0, 20.0, 30.0, 170.0)])
    first, second = MetricAccumulator(), MetricAccumulator()
    first.update(joints[:3], joints[:3], pred_root=pred[:3], gt_root=gt[:3])
    second.update(joints[3:], joints[3:], pred_root=pred[3:], gt_root=gt[3:])
    merged = MetricAccumulator.from_state(first.state()).merge(second.state())
    result = merged.compute()
    assert result["orient_error"] == pytest.approx(57.5, abs=1e-6)
    assert result["orient_error_median"] == pytest.approx(25.0, abs=1e-6)
    plain = MetricAccumulator()
    plain.update(joints, joints)
    assert "orient_error" not in plain.compute()
    with pytest.raises(ValueError, match="pred_root and gt_root"):
        plain.update(joints, joints, pred_root=pred)
