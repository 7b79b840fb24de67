"""``pare synth --layout spin_npz``: a dataset_extras-style npz checked against the real SPIN-style sample."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pare_model.body_model import load_body_model
from preprocessing.bodies import pose_bodies
from preprocessing.keypoints import H36M17_TO_SPIN_GT, NUM_OPENPOSE, gt_indices
from tests.conftest import require_real_fixture
from tests.synth_helpers import check_dtype_like, generate

NUM = 5
KEYS = {"imgname", "center", "scale", "part", "openpose", "S", "pose", "shape", "has_smpl", "gender"}


@pytest.fixture(scope="module")
def spin(procedural_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_spin")
    generate(procedural_dir, out, "spin_npz", NUM, seed=4, occluders=0.5)
    return out, dict(np.load(out / "synth_train.npz"))


def test_keys_shapes_and_dtypes_match_the_real_sample(spin):
    out, data = spin
    real = np.load(require_real_fixture("mmpose/h36m/test_h36m.npz"))
    assert set(data) == KEYS
    for key in set(real.files) & KEYS:
        check_dtype_like(data[key], real[key], key)
    assert data["openpose"].shape == (NUM, 25, 3) and data["has_smpl"].shape == (NUM,)
    assert set(data["gender"]) <= {"m", "f"}
    for name in data["imgname"]:
        assert name.startswith("images/") and Image.open(out / name).size[0] > 0


def pinhole_view(joints: np.ndarray, pixels: np.ndarray, center: np.ndarray) -> tuple[float, np.ndarray]:
    """(focal, translation) of the pinhole at ``center`` that best projects (K, 3) ``joints`` onto (K, 2) ``pixels``.

    ``(u - c)(Z + t_z) = f X + f t_x`` is linear in (f, f t_x, f t_y, t_z)."""
    du = pixels - center
    rows = np.concatenate(
        [
            np.stack([joints[:, 0], np.ones(len(du)), np.zeros(len(du)), -du[:, 0]], axis=1),
            np.stack([joints[:, 1], np.zeros(len(du)), np.ones(len(du)), -du[:, 1]], axis=1),
        ]
    )
    rhs = np.concatenate([du[:, 0] * joints[:, 2], du[:, 1] * joints[:, 2]])
    focal, a, b, tz = np.linalg.lstsq(rows, rhs, rcond=None)[0]
    return focal, np.array([a / focal, b / focal, tz])


def test_annotations_are_one_exact_pinhole_view_of_the_body(spin, procedural_dir):
    out, data = spin
    models = {"m": load_body_model(procedural_dir, "male"), "f": load_body_model(procedural_dir, "female")}
    slots = gt_indices(H36M17_TO_SPIN_GT)
    for k in range(NUM):
        body = pose_bodies(models[data["gender"][k]], data["pose"][k].reshape(1, 24, 3), data["shape"][k][None])
        # S as SPIN's files with 3D joints: the 17 Human3.6M joints at SPIN's slots, root-centred, 7 slots empty.
        h36m, S = body.h36m_joints[0], data["S"][k]
        np.testing.assert_allclose(S[slots, :3], h36m - h36m[0], atol=1e-5)
        np.testing.assert_array_equal(S[:, 3], np.isin(np.arange(24), slots))
        assert not S[13].any() and not S[14, :3].any()  # "Top of Head (LSP)" empty, the pelvis at the origin
        # part and openpose are one pinhole view (principal point at the image centre) of the body's joints.
        width, height = Image.open(out / data["imgname"][k]).size
        centre = np.array([width / 2, height / 2])
        focal, shift = pinhole_view(body.joints[0, NUM_OPENPOSE:], data["part"][k, :, :2], centre)
        for joints, pixels in (
            (body.joints[0, NUM_OPENPOSE:], data["part"][k]),
            (body.joints[0, :NUM_OPENPOSE], data["openpose"][k]),
        ):
            placed = joints + shift
            assert np.abs(focal * placed[:, :2] / placed[:, 2:] + centre - pixels[:, :2]).max() < 0.5
        inside = (data["part"][k, :, 0] >= 0) & (data["part"][k, :, 0] < width)
        inside &= (data["part"][k, :, 1] >= 0) & (data["part"][k, :, 1] < height)
        np.testing.assert_array_equal(data["part"][k, :, 2], inside)
        center, scale = data["center"][k], data["scale"][k]
        assert np.all(np.abs(data["part"][k, :, :2] - center).max(axis=0) <= scale * 100)  # joints in the box
