"""``pare synth --layout h36m`` (and ``h36m_mmpose``): frames, cameras pickle and SPIN-style npz files against the
real samples and SPIN's conventions (root-centred ``S``, the head in slot 18, slot 13 empty)."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from pare_model.safe_pickle import load_pickle
from preprocessing.bodies import pose_bodies
from preprocessing.keypoints import H36M17_TO_SPIN_GT, gt_indices, h36m_gt_mask
from tests.conftest import require_real_fixture
from tests.synth_helpers import check_dtype_like, generate

NUM = 9
PELVIS, HEAD = gt_indices(("Pelvis (MPII)", "Head (H36M)"))
NAME = re.compile(r"^(S\d+)_([A-Za-z]+(?:_\d)?)\.(\d{8})_(\d{6})\.jpg$")


@pytest.fixture(scope="module")
def h36m(procedural_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_h36m")
    generate(procedural_dir, out, "h36m", NUM, seed=5, occluders=0.3)
    train = dict(np.load(out / "h36m_train.npz"))
    valid = dict(np.load(out / "h36m_valid_protocol1.npz"))
    with (out / "cameras.pkl").open("rb") as handle:
        cameras = pickle.load(handle, encoding="latin1")
    return out, train, valid, cameras


@pytest.fixture(scope="module")
def mmpose(procedural_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_h36m_mmpose")
    generate(procedural_dir, out, "h36m_mmpose", NUM, seed=5, occluders=0.3)
    return out, dict(np.load(out / "h36m_train.npz")), dict(np.load(out / "h36m_valid_protocol1.npz"))


def test_cameras_pickle_matches_the_real_one(h36m):
    _, _, _, cameras = h36m
    real = load_pickle(require_real_fixture("mmpose/h36m/cameras.pkl"))
    real_entry = next(iter(real.values()))
    assert {cid for _, cid in cameras} == {cid for _, cid in real}
    assert {s for s, _ in cameras} == {"S1", "S5", "S6", "S7", "S8", "S9", "S11"}
    for key, camera in cameras.items():
        assert all(isinstance(part, str) for part in key)
        assert set(camera) == set(real_entry)
        for field, value in real_entry.items():
            if isinstance(value, np.ndarray):
                assert camera[field].shape == value.shape and camera[field].dtype == value.dtype, field
            else:
                assert type(camera[field]) is type(value), field
        rotation = camera["R"]
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
        assert camera["id"] == key[1] and camera["name"] == real[("S1", key[1])]["name"]
        assert 1.3 < camera["T"][2, 0] < 1.8  # camera centres about 1.5 m up, world z up


def test_npz_files_match_the_real_sample(h36m, mmpose):
    out, train, valid, cameras = h36m
    real = np.load(require_real_fixture("mmpose/h36m/test_h36m.npz"))
    for ours in (train, valid, *mmpose[1:]):
        for key in real.files:
            if key == "iuv_names":  # DensePose renderings, not written
                continue
            check_dtype_like(ours[key], real[key], key)
        # unannotated joints are zero, as real: slot 13 "Top of Head (LSP)" among them, the head is in 18
        np.testing.assert_array_equal(ours["part"][:, ~h36m_gt_mask()], 0.0)
        np.testing.assert_array_equal(ours["S"][:, ~h36m_gt_mask()], 0.0)
        np.testing.assert_array_equal(ours["S"][:, h36m_gt_mask(), 3], 1.0)
        np.testing.assert_array_equal(real["S"][:, ~h36m_gt_mask()], 0.0)  # the real file leaves the same slots
    assert "has_smpl" in train and "has_smpl" not in mmpose[1]  # mmpose's files have none
    assert len(train["imgname"]) + len(valid["imgname"]) == NUM and len(valid["imgname"]) >= 3
    protocol2 = dict(np.load(out / "h36m_valid_protocol2.npz"))
    frontal = [name for name in valid["imgname"] if NAME.match(name).group(3) == "60457274"]
    assert protocol2["imgname"].tolist() == frontal and 2 <= len(frontal) < len(valid["imgname"])
    for split, subjects in ((train, {"S1", "S5", "S6", "S7", "S8"}), (valid, {"S9", "S11"})):
        for name in split["imgname"]:
            subject, action, camera, frame = NAME.match(name).groups()
            assert subject in subjects and (int(frame) - 1) % 5 == 0
            image = Image.open(out / subject / f"{subject}_{action}.{camera}" / name)
            assert image.size == (cameras[(subject, camera)]["w"], cameras[(subject, camera)]["h"])


def test_annotations_are_exact_and_consistent_with_the_cameras(h36m, mmpose, body_model):
    _, train, valid, cameras = h36m
    slots = gt_indices(H36M17_TO_SPIN_GT)
    for split, camera_frame in ((train, mmpose[1]), (valid, mmpose[2])):
        assert split["imgname"].tolist() == camera_frame["imgname"].tolist()  # the same frames
        bodies = pose_bodies(body_model, split["pose"].reshape(-1, 24, 3), split["shape"])
        for k, name in enumerate(split["imgname"]):
            subject, _, camera_id, _ = NAME.match(name).groups()
            camera = cameras[(subject, camera_id)]
            # SPIN's S: the body's Human3.6M-regressor joints at SPIN's slots, root-centred (S17 -= S17[0]).
            h36m = bodies.h36m_joints[k]
            np.testing.assert_allclose(split["S"][k, slots, :3], h36m - h36m[0], atol=1e-5)
            # mmpose's S: the same joints in the camera frame; they project onto part through the camera.
            S = camera_frame["S"][k, slots, :3]
            np.testing.assert_allclose(S - S[0], h36m - h36m[0], atol=1e-5)
            assert S[0, 2] > 2.0
            projected = S[:, :2] / S[:, 2:] * camera["f"].ravel() + camera["c"].ravel()
            assert np.abs(projected - split["part"][k, slots, :2]).max() < 0.5
            np.testing.assert_array_equal(camera_frame["part"][k], split["part"][k])
            # In the world (R camera-to-world, T centre; z up) the person stands upright.
            world = camera_frame["S"][k, :, :3] @ camera["R"].T + camera["T"].ravel()
            assert world[HEAD, 2] > world[PELVIS, 2] + 0.25
            # The root is in the camera frame: the body's up axis (rest y) points up the screen (-y).
            root = Rotation.from_rotvec(split["pose"][k, :3]).as_matrix()
            assert root[1, 1] < -0.5


def test_cameras_pickle_also_loads_through_the_restricted_unpickler(h36m):
    from pare_model.safe_pickle import load_pickle

    out, _, _, cameras = h36m
    safe = load_pickle(out / "cameras.pkl")
    assert sorted(safe) == sorted(cameras)
    for key, camera in cameras.items():
        np.testing.assert_array_equal(safe[key]["R"], camera["R"])
