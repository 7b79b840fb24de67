"""``pare synth --layout 3dpw``: sequence pickles read with plain pickle, re-posed and re-projected."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from pare_model.body_model import load_body_model
from preprocessing.bodies import pose_bodies
from preprocessing.keypoints import OPENPOSE18_TO_SPIN, spin_indices
from preprocessing.render import perspective_to_screen
from tests.synth_helpers import generate, labels_from_screen, on_foreground
from tests.test_pw3d_occ import ORIGINAL_CAM_VALIDATION, ORIGINAL_OCCLUDED, ORIGINAL_TEST

NUM = 8  # four sequences of two frames
PER_ACTOR = {"betas": (10,), "betas_clothed": (10,), "poses": (72,), "trans": (3,), "jointPositions": (72,)}


def occluded(name: str) -> bool:
    """The original's 3DPW-OCC rule: the first two words of the name are one of pw3d_occluded_sequences."""
    return "_".join(name.split("_")[:2]) in ORIGINAL_OCCLUDED


@pytest.fixture(scope="module")
def pw3d(procedural_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_3dpw")
    generate(procedural_dir, out, "3dpw", NUM, seed=1, occluders=0.5)
    sequences = {}
    for path in sorted((out / "sequenceFiles").glob("*/*.pkl")):
        with path.open("rb") as handle:
            sequences[(path.parent.name, path.stem)] = pickle.load(handle, encoding="latin1")
    return out, sequences


@pytest.fixture(scope="module")
def gendered(procedural_dir):
    return {"m": load_body_model(procedural_dir, "male"), "f": load_body_model(procedural_dir, "female")}


def test_sequences_have_the_real_keys_shapes_and_splits(pw3d):
    out, sequences = pw3d
    assert {split for split, _ in sequences} == {"train", "validation", "test"}
    test_names = [name for split, name in sequences if split == "test"]
    assert any(occluded(name) for name in test_names) and any(not occluded(name) for name in test_names)
    assert set(test_names) <= ORIGINAL_TEST
    assert not {name for split, name in sequences if split != "test"} & ORIGINAL_TEST
    assert all(occluded(name) for split, name in sequences if split != "test")  # 3DPW-OCC spans every split
    assert sum(len(s["img_frame_ids"]) for s in sequences.values()) == NUM
    for (_, name), seq in sequences.items():
        num_frames, num_actors = len(seq["img_frame_ids"]), len(seq["genders"])
        assert seq["sequence"] == name and set(seq["genders"]) <= {"m", "f"}
        for key, shape in PER_ACTOR.items():
            assert len(seq[key]) == num_actors
            for array in seq[key]:
                assert array.dtype == np.float64 and array.shape[-len(shape) :] == shape
        for a in range(num_actors):
            assert seq["poses"][a].shape == (num_frames, 72) and seq["trans"][a].shape == (num_frames, 3)
            assert seq["poses2d"][a].shape == (num_frames, 3, 18)
            assert seq["campose_valid"][a].shape == (num_frames,) and seq["campose_valid"][a].all()
            assert seq["poses_60Hz"][a].shape == (2 * num_frames - 1, 72)
            np.testing.assert_allclose(seq["poses_60Hz"][a][::2], seq["poses"][a], atol=1e-12)
        assert seq["cam_poses"].shape == (num_frames, 4, 4) and seq["cam_intrinsics"].shape == (3, 3)
        rotations = seq["cam_poses"][:, :3, :3]
        np.testing.assert_allclose(
            rotations @ np.swapaxes(rotations, 1, 2), np.broadcast_to(np.eye(3), rotations.shape), atol=1e-9
        )
        for frame in seq["img_frame_ids"]:
            image = Image.open(out / "imageFiles" / name / f"image_{frame:05d}.jpg")
            assert image.height > image.width  # portrait
            np.testing.assert_allclose(seq["cam_intrinsics"][:2, 2], [image.width / 2, image.height / 2], atol=0.5)
    assert any(len(seq["genders"]) == 2 for seq in sequences.values())


def test_parameters_reproduce_joints_and_2d_poses_exactly(pw3d, gendered):
    _, sequences = pw3d
    op_index = spin_indices(OPENPOSE18_TO_SPIN)
    for seq in sequences.values():
        for a, gender in enumerate(seq["genders"]):
            num_frames = len(seq["img_frame_ids"])
            bodies = pose_bodies(
                gendered[gender],
                seq["poses"][a].reshape(-1, 24, 3),
                np.tile(seq["betas"][a], (num_frames, 1)),
                seq["trans"][a],
            )
            np.testing.assert_allclose(bodies.smpl_joints.reshape(num_frames, 72), seq["jointPositions"][a], atol=1e-5)
            for f in range(num_frames):
                projected = perspective_to_screen(
                    bodies.joints[f, op_index], seq["cam_intrinsics"], seq["cam_poses"][f]
                )
                stored = seq["poses2d"][a][f]
                assert np.abs(projected[:, :2].T - stored[:2]).max() < 0.5
                assert set(np.round(stored[2], 3)) <= {0.0, 0.5, 1.0}


def test_part_labels_sit_on_the_visible_2d_poses(pw3d, gendered):
    out, sequences = pw3d
    hits = total = 0
    for (_, name), seq in sequences.items():
        image = Image.open(out / "imageFiles" / name / "image_00000.jpg")
        screens = []
        for a, gender in enumerate(seq["genders"]):
            pose, trans = seq["poses"][a][:1].reshape(1, 24, 3), seq["trans"][a][:1]
            vertices = pose_bodies(gendered[gender], pose, seq["betas"][a][None], trans).vertices[0]
            screens.append(perspective_to_screen(vertices, seq["cam_intrinsics"], seq["cam_poses"][0]))
        for a, screen in enumerate(screens):
            labels = labels_from_screen(gendered["m"], screen, image.height, image.width)
            keypoints = seq["poses2d"][a][0]
            visible = keypoints[2] == 1.0
            hits += on_foreground(labels, keypoints[:2, visible].T).sum()
            total += visible.sum()
    assert total > 20 and hits >= 0.9 * total


def test_many_sequences_use_real_names_in_their_real_splits(procedural_dir, tmp_path):
    """24 sequences: every split gets sequences with and without a 3DPW-OCC prefix, each a real one of its split."""
    from preprocessing.synth.layouts.pw3d import plan_sequences

    plans = plan_sequences(24, 1)
    assert len({p.name for p in plans}) == 24
    for split in ("train", "validation", "test"):
        names = [p.name for p in plans if p.split == split]
        assert any(occluded(n) for n in names) and any(not occluded(n) for n in names), split
        assert (set(names) <= ORIGINAL_TEST) == (split == "test")
    validation = {p.name for p in plan_sequences(10_000, 1) if p.split == "validation"}
    assert ORIGINAL_CAM_VALIDATION <= validation and len(validation) == 12  # 48 sequences at most: 12 per cycle split
    assert len(plan_sequences(10_000, 1)) == 48


def test_motion_is_smooth_and_the_camera_drifts_slowly(procedural_dir, tmp_path):
    generate(procedural_dir, tmp_path, "3dpw", 16, seed=2, occluders=0.0, overrides=["synth.sequence_length=8"])
    path = next((tmp_path / "sequenceFiles" / "train").glob("*.pkl"))
    seq = pickle.loads(path.read_bytes(), encoding="latin1")
    poses, cameras = seq["poses"][0], seq["cam_poses"]
    assert len(poses) == 4  # at least four sequences: 16 frames make four of four
    assert np.abs(np.diff(poses, axis=0)).max() < 0.6  # no jumps between consecutive frames
    assert np.abs(np.diff(poses, axis=0)).max() > 1e-3  # but it moves
    centres = -np.einsum("nji,nj->ni", cameras[:, :3, :3], cameras[:, :3, 3])
    assert np.linalg.norm(np.diff(centres, axis=0), axis=1).max() < 0.5


def test_sequence_files_also_load_through_the_restricted_unpickler(pw3d):
    """The project's readers open user pickles with pare_model.safe_pickle; our files must pass it."""
    from pare_model.safe_pickle import load_pickle

    out, sequences = pw3d
    for (split, name), plain in sequences.items():
        safe = load_pickle(out / "sequenceFiles" / split / f"{name}.pkl")
        assert sorted(safe) == sorted(plain)
        np.testing.assert_array_equal(safe["cam_poses"], plain["cam_poses"])
        for actor_safe, actor_plain in zip(safe["poses"], plain["poses"], strict=True):
            np.testing.assert_array_equal(actor_safe, actor_plain)
