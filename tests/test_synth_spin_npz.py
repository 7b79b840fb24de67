"""``pare synth --layout spin_npz``: a dataset_extras-style npz checked against the real SPIN-style sample."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pare_model.body_model import load_body_model
from preprocessing.bodies import pose_bodies
from preprocessing.keypoints import NUM_OPENPOSE
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


def test_annotations_are_one_exact_pinhole_view_of_the_body(spin, procedural_dir):
    out, data = spin
    models = {"m": load_body_model(procedural_dir, "male"), "f": load_body_model(procedural_dir, "female")}
    for k in range(NUM):
        body = pose_bodies(models[data["gender"][k]], data["pose"][k].reshape(1, 24, 3), data["shape"][k][None])
        model, S = body.joints[0, NUM_OPENPOSE:], data["S"][k, :, :3]
        np.testing.assert_allclose(model - model[0], S - S[0], atol=1e-5)
        np.testing.assert_array_equal(data["S"][k, :, 3], 1.0)
        # The camera is a pinhole with its principal point at the image centre: fit the one focal
        # length to all joints; the 2D joints then agree to a fraction of a pixel.
        width, height = Image.open(out / data["imgname"][k]).size
        normalised = S[:, :2] / S[:, 2:]
        offset = data["part"][k, :, :2] - [width / 2, height / 2]
        focal = (normalised * offset).sum() / (normalised**2).sum()
        assert np.abs(focal * normalised - offset).max() < 0.5
        inside = (data["part"][k, :, 0] >= 0) & (data["part"][k, :, 0] < width)
        inside &= (data["part"][k, :, 1] >= 0) & (data["part"][k, :, 1] < height)
        np.testing.assert_array_equal(data["part"][k, :, 2], inside)
        # The OpenPose joints are the same view of the same body, moved by the same translation.
        openpose_3d = body.joints[0, :NUM_OPENPOSE] + (S[0] - model[0])
        projected = focal * openpose_3d[:, :2] / openpose_3d[:, 2:] + [width / 2, height / 2]
        assert np.abs(projected - data["openpose"][k, :, :2]).max() < 0.5
        center, scale = data["center"][k], data["scale"][k]
        assert np.all(np.abs(data["part"][k, :, :2] - center).max(axis=0) <= scale * 100)  # joints in the box
