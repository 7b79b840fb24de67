"""Readers on the real-format fixtures and on hand-made files of the documented structure."""

from __future__ import annotations

import json
import pickle

import h5py
import numpy as np
import pytest

from preprocessing.readers import SourceError, build_reader
from tests.conftest import require_real_fixture
from tests.reader_helpers import split_items


def test_coco_on_the_real_fixture():
    path = require_real_fixture("mmpose/coco/test_coco.json")
    data = json.loads(path.read_text())
    reader = build_reader("coco_eft", str(path.parent), "train", {"annotations": path.name, "images": "."})
    good, rejected = split_items(reader)
    people = [a for a in data["annotations"] if a["category_id"] == 1 and not a["iscrowd"]]
    assert len(good) + len(rejected) == len(people)
    assert all(r.reason == "no_visible_keypoints" for r in rejected)
    assert all(
        sum(1 for v in a["keypoints"][2::3] if v > 0) >= 6
        for a in people
        if str(a["id"]) in {g.sample_id for g in good}
    )
    first = good[0]
    ann = next(a for a in people if str(a["id"]) == first.sample_id)
    coco = np.asarray(ann["keypoints"], float).reshape(17, 3)
    nose = 25 + 19  # SPIN GT "Nose"
    np.testing.assert_allclose(first.keypoints_2d[nose, :2], coco[0, :2] + 0.5)  # real data: pixel centres at integers
    assert first.image_size == (
        next(i for i in data["images"] if i["id"] == ann["image_id"])["height"],
        first.image_size[1],
    )
    assert not first.has_smpl and first.image.path.endswith(".jpg")


def test_coco_numbers_that_are_nan_are_rejects_not_crashes_or_losses(tmp_path):
    """The real fixture's file with NaN where COCO has whole numbers: an image's height (int() used to raise and end
    the job), an annotation's id and another's image_id, and a fourth annotation whose image_id names no image
    (pycocotools filed it under that id, which no image visits: it was lost without a reject). Every person
    annotation ends up a record or a reject."""
    path = require_real_fixture("mmpose/coco/test_coco.json")
    data = json.loads(path.read_text())
    people = [a for a in data["annotations"] if a["category_id"] == 1 and not a["iscrowd"]]
    assert len(people) >= 4 and len(data["images"]) >= 2
    data["images"][0]["height"] = float("nan")
    spoiled = {people[1]["id"], people[2]["id"], people[3]["id"]}
    people[1]["id"] = float("nan")
    people[2]["image_id"] = float("nan")
    people[3]["image_id"] = 987654321
    (tmp_path / "coco.json").write_text(json.dumps(data))
    reader = build_reader("coco_eft", str(tmp_path), "train", {"annotations": "coco.json", "images": "."})
    good, rejected = split_items(reader)
    assert len(good) + len(rejected) == len(people)
    bad = [r for r in rejected if r.reason == "bad_annotation"]
    on_first_image = [a for a in people if a["image_id"] == data["images"][0]["id"]]
    assert len(bad) == len({id(a) for a in on_first_image} | {id(people[1]), id(people[2]), id(people[3])})
    assert any("height is nan" in r.detail for r in bad)
    assert sum("COCO ids are integers" in r.detail for r in bad) == 2
    assert any("image_id 987654321 names no image" in r.detail for r in bad)
    assert not {str(key) for key in spoiled} & {g.sample_id for g in good}


def test_mpii_json_and_h5_real_fixtures():
    json_path = require_real_fixture("mmpose/mpii/test_mpii.json")
    good, rejected = split_items(
        build_reader("mpii", str(json_path.parent), "validation", {"annotations": json_path.name, "images": "."})
    )
    entries = json.loads(json_path.read_text())
    assert len(good) == len(entries) and not rejected
    entry = entries[0]
    np.testing.assert_allclose(
        good[0].center, [entry["center"][0] + 0.5, entry["center"][1] + 15 * entry["scale"] + 0.5]
    )
    assert good[0].box_size == pytest.approx(entry["scale"] * 1.25 * 200)
    h5_path = require_real_fixture("pose-hg-train/mpii/valid.h5")
    good, rejected = split_items(build_reader("mpii", str(h5_path.parent), "validation", {"annotations": h5_path.name}))
    with h5py.File(h5_path) as f:
        assert len(good) + len(rejected) == len(f["imgname"]) == 2958
        np.testing.assert_allclose(good[0].center, f["center"][0] + 0.5)  # already adjusted in the h5
    keys = [g.key for g in good]
    assert len(set(keys)) == len(keys)


def test_h36m_npz_real_fixture_projects_through_its_cameras():
    npz = require_real_fixture("mmpose/h36m/test_h36m.npz")
    options = {"npz": npz.name, "joints_frame": "camera"}  # mmpose's file keeps the camera frame
    good, rejected = split_items(build_reader("h36m_npz", str(npz.parent), "train", options))
    assert len(good) == 4 and not rejected and all(record.joints_frame == "camera" for record in good)
    for record in good:
        assert "." not in record.key and record.image.path.endswith(record.sample_id + ".jpg")
        joints = record.joints_3d[record.joints_3d[:, 3] > 0, :3]
        projected = joints @ record.camera.intrinsics.T
        projected = projected[:, :2] / projected[:, 2:]
        keypoints = record.keypoints_2d[25:][record.joints_3d[:, 3] > 0, :2]
        assert np.abs(projected - keypoints).max() < 3.0  # lens distortion (k, p) is not modelled: ~2 px
    test_split, rejected = split_items(build_reader("h36m_npz", str(npz.parent), "test", options))
    assert not test_split and {r.reason for r in rejected} == {"bad_annotation"}  # S1..S8 are not test subjects


def test_spin_npz_checks_shapes_and_rows(tmp_path):
    n = 3
    arrays = {
        "imgname": np.array([f"images/{i}.jpg" for i in range(n)]),
        "center": np.full((n, 2), 50.0),
        "scale": np.ones(n),
        "part": np.ones((n, 24, 3)),
        "pose": np.zeros((n, 72)),
        "shape": np.zeros((n, 10)),
        "gender": np.array(["m", "f", "m"]),
    }
    arrays["pose"][1, 5] = np.nan
    np.savez(tmp_path / "data.npz", **arrays)
    good, rejected = split_items(build_reader("spin_npz", str(tmp_path), "train"))
    assert [r.gender for r in good] == ["male", "male"] and [r.reason for r in rejected] == ["nan_parameters"]
    np.savez(tmp_path / "data.npz", **{**arrays, "part": np.ones((n, 17, 3))})
    with pytest.raises(SourceError, match="part.*24-joint"):
        split_items(build_reader("spin_npz", str(tmp_path), "train"))
    with pytest.raises(SourceError, match="no option.*bogus.*npz"):
        build_reader("spin_npz", str(tmp_path), "train", {"bogus": 1})


def test_3dpw_hand_made_pickle(tmp_path):
    """A 3DPW sequence in the documented structure (latin1 pickle): invalid camera poses and NaN frames are rejected."""
    folder = tmp_path / "sequenceFiles/test"
    folder.mkdir(parents=True)
    frames = 3
    poses2d = np.zeros((frames, 3, 18))
    poses2d[:, 0, :] = np.linspace(100, 200, 18)
    poses2d[:, 1, :] = np.linspace(50, 300, 18)
    poses2d[:, 2, :] = 1.0
    cam_poses = np.tile(np.eye(4), (frames, 1, 1))
    cam_poses[:, 2, 3] = 5.0
    poses = np.zeros((frames, 72))
    poses[2, 10] = np.nan
    sequence = {
        "sequence": "downtown_walking_00",
        "genders": ["f"],
        "betas": [np.zeros(10)],
        "poses": [poses],
        "trans": [np.zeros((frames, 3))],
        "poses2d": [poses2d],
        "jointPositions": [np.zeros((frames, 72))],
        "cam_poses": cam_poses,
        "campose_valid": [np.array([1, 0, 1])],
        "cam_intrinsics": np.array([[1000.0, 0, 540], [0, 1000.0, 960], [0, 0, 1]]),
        "img_frame_ids": np.arange(frames),
    }
    with open(folder / "downtown_walking_00.pkl", "wb") as f:
        pickle.dump(sequence, f, protocol=2)
    good, rejected = split_items(build_reader("3dpw", str(tmp_path), "test"))
    assert [g.sample_id for g in good] == ["downtown_walking_00_00000_0"]
    assert [r.reason for r in rejected] == ["invalid_camera_pose", "nan_parameters"]
    record = good[0]
    assert record.gender == "female" and record.camera.frame_rotation is not None
    np.testing.assert_allclose(record.camera.translation, [0, 0, 5.0])
    np.testing.assert_allclose(record.camera.intrinsics[:2, 2], [540.5, 960.5])
    occ, _ = split_items(build_reader("3dpw", str(tmp_path), "test", {"occlusion_only": True}))
    assert occ == []


def test_mpii_mat_single_person_and_point(tmp_path):
    """scipy collapses a single person or point to a scalar struct: both must still be read."""
    import scipy.io

    point = {"x": 10.0, "y": 20.0, "id": 3, "is_visible": np.array([])}
    points = [{"x": 30.0 + k, "y": 40.0, "id": k, "is_visible": "1"} for k in range(5)]

    def rect(pts):
        return {"scale": 1.0, "objpos": {"x": 50.0, "y": 60.0}, "annopoints": {"point": pts}}

    annolist = np.empty(2, dtype=object)
    annolist[0] = {"image": {"name": "a.jpg"}, "annorect": rect(point)}
    annolist[1] = {"image": {"name": "b.jpg"}, "annorect": rect(points)}
    scipy.io.savemat(tmp_path / "mpii.mat", {"RELEASE": {"annolist": annolist, "img_train": np.array([1, 1])}})
    good, rejected = split_items(
        build_reader("mpii", str(tmp_path), "train", {"annotations": "mpii.mat", "min_keypoints": 4})
    )
    assert [g.sample_id for g in good] == ["b_0"] and [r.reason for r in rejected] == ["no_visible_keypoints"]
    np.testing.assert_allclose(good[0].center, [50.5, 60 + 15 + 0.5])
