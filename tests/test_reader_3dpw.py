"""The ``3dpw`` reader on ``pare synth --layout 3dpw`` (exact ground truth) and on hand-made sequence pickles."""

from __future__ import annotations

import os
import pickle

import cv2
import numpy as np
import pytest
from PIL import Image

from pare_model.body_model import load_body_model
from preprocessing.bodies import pose_bodies
from preprocessing.keypoints import OPENPOSE18_TO_SPIN, spin_indices
from preprocessing.readers import SourceError, build_reader
from preprocessing.readers.pw3d_sequences import in_occlusion_subset
from tests.reader_helpers import read_source
from tests.synth_helpers import generate

OP = spin_indices(OPENPOSE18_TO_SPIN)
NUM = 8  # four sequences of two frames; seed 0 puts a male and a female actor in the test split


def read(root, split="test", **options):
    return read_source("3dpw", root, split, **options)


@pytest.fixture(scope="module")
def synth(procedural_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reader_3dpw")
    generate(procedural_dir, out, "3dpw", NUM, seed=0, occluders=0.5)
    sequences = {}
    for path in sorted((out / "sequenceFiles").glob("*/*.pkl")):
        sequences[path.stem] = pickle.loads(path.read_bytes(), encoding="latin1")
    models = {g: load_body_model(procedural_dir, g) for g in ("male", "female")}
    return out, sequences, models


def test_every_actor_and_frame_of_each_split_becomes_a_record(synth):
    out, sequences, _ = synth
    for split in ("train", "validation", "test"):
        good, rejected = read(out, split)
        assert not rejected
        names = [p.stem for p in (out / "sequenceFiles" / split).glob("*.pkl")]
        expected = [
            f"{name}_{f:05d}_{a}"
            for name in sorted(names)
            for f in range(len(sequences[name]["img_frame_ids"]))
            for a in range(len(sequences[name]["genders"]))
        ]
        assert [r.sample_id for r in good] == expected
        for record in good:
            seq = sequences[record.extra["sequence"]]
            frame = out / "imageFiles" / seq["sequence"] / f"image_{record.extra['frame']:05d}.jpg"
            assert record.image.path == str(frame) and record.image.frame is None
            assert record.image_size == Image.open(frame).size[::-1]
            assert record.dataset == "3dpw" and record.split == split and record.fit_source == "3dpw"
            assert record.joints_3d is None  # jointPositions are SMPL joints, not SPIN's GT joints
    genders = {r.gender for r in read(out, "test")[0]}
    assert genders == {"male", "female"}


def test_fit_and_camera_reproduce_the_rendered_joints(synth):
    """Pose the fit, translate it per PerspectiveCamera (incl. (R - I) j0), project with K: the 2D poses, exactly."""
    out, sequences, models = synth
    worst_px = worst_m = 0.0
    for split in ("train", "validation", "test"):
        for record in read(out, split)[0]:
            seq, f, actor = sequences[record.extra["sequence"]], record.extra["frame"], record.extra["actor"]
            assert record.gender == {"m": "male", "f": "female"}[seq["genders"][actor]]
            posed = pose_bodies(models[record.gender], record.pose.reshape(1, 24, 3), record.betas[None])
            camera = record.camera
            j0 = posed.smpl_joints[0, 0]  # the root joint: rotations about it leave it in place
            translation = camera.translation + (camera.frame_rotation - np.eye(3)) @ j0
            projected = (posed.joints[0, OP] + translation) @ camera.intrinsics.T
            projected = projected[:, :2] / projected[:, 2:]
            stored = seq["poses2d"][actor][f].T  # (18, 3)
            labelled = stored[:, 2] > 0
            assert labelled.sum() >= 2
            np.testing.assert_allclose(record.keypoints_2d[OP][labelled], stored[labelled])  # synthetic: offset 0
            assert not record.keypoints_2d[OP][~labelled].any()
            worst_px = max(worst_px, np.abs(projected[labelled] - stored[labelled, :2]).max())
            # In 3D: 3DPW's world joints seen by the frame's camera are the record's fit in the camera frame.
            world = seq["jointPositions"][actor][f].reshape(24, 3)
            in_camera = world @ seq["cam_poses"][f][:3, :3].T + seq["cam_poses"][f][:3, 3]
            worst_m = max(worst_m, np.abs(posed.smpl_joints[0] + translation - in_camera).max())
            # SPIN's box: the labelled keypoints' tight box, 1.2 times its longer side.
            low, high = stored[labelled, :2].min(0), stored[labelled, :2].max(0)
            np.testing.assert_allclose(record.center, (low + high) / 2)
            assert record.box_size == pytest.approx(1.2 * (high - low).max())
    assert worst_px < 0.01 and worst_m < 1e-5, (worst_px, worst_m)  # measured: 4e-5 px, 6e-7 m (float32 model)


def test_occlusion_only_keeps_the_3dpw_occ_sequences(synth):
    out, _, _ = synth
    everything = {r.extra["sequence"] for r in read(out, "all")[0]}
    occluded = {r.extra["sequence"] for r in read(out, "all", occlusion_only=True)[0]}
    assert occluded and occluded < everything
    assert all(in_occlusion_subset(name) for name in occluded)
    assert not any(in_occlusion_subset(name) for name in everything - occluded)


def test_split_all_reads_the_three_splits_in_one_go(synth):
    """The original's 3dpw-all set: train, validation and test sequences, each record tagged with its own split."""
    out, _, _ = synth
    every, rejected = read(out, "all")
    assert not rejected and {r.split for r in every} == {"all"}
    by_split = {split: read(out, split)[0] for split in ("train", "validation", "test")}
    assert [r.sample_id for r in every] == [r.sample_id for s in ("train", "validation", "test") for r in by_split[s]]
    for split, records in by_split.items():
        assert {r.extra["split"] for r in records} == {split}
    assert [r.extra["split"] for r in every] == [r.extra["split"] for s in by_split.values() for r in s]
    (out / "sequenceFiles" / "validation").rename(out / "elsewhere")
    try:
        with pytest.raises(SourceError, match="sequenceFiles/validation.*split all needs"):
            read(out, "all")
    finally:
        (out / "elsewhere").rename(out / "sequenceFiles" / "validation")


class Py2Array:
    """Pickles like a Python 2 numpy array: the buffer is a str, which loading with latin1 gives back."""

    def __init__(self, array):
        self.array = np.ascontiguousarray(array, np.float64)

    def __reduce__(self):
        state = (1, self.array.shape, self.array.dtype, False, self.array.tobytes().decode("latin1"))
        return np._core.multiarray._reconstruct, (np.ndarray, (0,), "b"), state


def write_sequence(folder, sequence: dict, py2: bool = True) -> None:
    """A sequence pickle written with the standard module: protocol 2, numpy's Python 2 module path."""
    wrap = Py2Array if py2 else np.asarray

    def convert(value):
        if isinstance(value, list):
            return [convert(v) for v in value]
        return wrap(value) if isinstance(value, np.ndarray) else value

    data = pickle.dumps({k: convert(v) for k, v in sequence.items()}, protocol=2)
    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{sequence['sequence']}.pkl").write_bytes(data)


def hand_made_sequence(frames: int = 4) -> dict:
    """Two actors in the documented 3DPW structure, with a moving camera and non-trivial roots."""
    rng = np.random.default_rng(3)
    poses2d = np.zeros((2, frames, 3, 18))
    poses2d[:, :, 0] = rng.uniform(100, 900, (2, frames, 18))
    poses2d[:, :, 1] = rng.uniform(200, 1700, (2, frames, 18))
    poses2d[:, :, 2] = rng.uniform(0.2, 1.0, (2, frames, 18))
    poses2d[0, 0, 2, 4] = 0.0  # an undetected joint
    poses2d[0, 3, 2] = 0.0  # nobody detected
    cam_poses = np.tile(np.eye(4), (frames, 1, 1))
    for f in range(frames):
        cam_poses[f, :3, :3] = cv2.Rodrigues(np.array([0.1, 0.3 + 0.05 * f, -0.2]))[0]
        cam_poses[f, :3, 3] = [0.2, -0.4, 4.0 + f]
    trans = rng.normal(size=(2, frames, 3))
    trans[1, 2, 1] = np.nan
    return {
        "sequence": "downtown_walking_00",
        "genders": ["m", "f"],
        "betas": [rng.normal(size=10), rng.normal(size=16)],  # some actors carry more than 10
        "poses": list(rng.normal(scale=0.3, size=(2, frames, 72))),
        "trans": list(trans),
        "poses2d": list(poses2d),
        "jointPositions": list(rng.normal(size=(2, frames, 72))),
        "cam_poses": cam_poses,
        "campose_valid": [np.array([1, 0, 1, 1], bool), np.ones(frames, bool)],
        "cam_intrinsics": np.array([[1961.9, 0, 540.0], [0, 1969.2, 960.0], [0, 0, 1]]),
        "img_frame_ids": 2 * np.arange(frames),
    }


def test_hand_made_python2_pickle(tmp_path):
    """Invalid camera poses, a NaN frame and an empty frame are rejected alone; the rest as SPIN converts them."""
    sequence = hand_made_sequence()
    write_sequence(tmp_path / "sequenceFiles/test", sequence)
    (tmp_path / "imageFiles/downtown_walking_00").mkdir(parents=True)
    Image.new("RGB", (1080, 1920)).save(tmp_path / "imageFiles/downtown_walking_00/image_00000.jpg")
    good, rejected = read(tmp_path)
    assert [r.sample_id for r in good] == [
        f"downtown_walking_00_{i}" for i in ("00000_0", "00000_1", "00001_1", "00002_0", "00003_1")
    ]
    assert [(r.sample_id, r.reason) for r in rejected] == [
        ("downtown_walking_00_00001_0", "invalid_camera_pose"),
        ("downtown_walking_00_00002_1", "nan_parameters"),
        ("downtown_walking_00_00003_0", "no_visible_keypoints"),
    ]
    assert "trans" in rejected[1].detail and rejected[1].source == "sequenceFiles/test/downtown_walking_00.pkl"
    for record in good:
        f, a = record.extra["frame"], record.extra["actor"]
        assert record.extra["img_frame_id"] == 2 * f and record.image.path.endswith(f"image_{f:05d}.jpg")
        assert record.gender == ("male", "female")[a] and record.image_size == (1920, 1080)
        rotation, t = sequence["cam_poses"][f][:3, :3], sequence["cam_poses"][f][:3, 3]
        pose = sequence["poses"][a][f]
        root = cv2.Rodrigues(rotation @ cv2.Rodrigues(pose[:3])[0])[0].ravel()  # SPIN's pw3d.py
        np.testing.assert_allclose(record.pose, np.concatenate([root, pose[3:]]), atol=1e-10)
        np.testing.assert_allclose(record.betas, sequence["betas"][a][:10])
        np.testing.assert_allclose(record.camera.translation, rotation @ sequence["trans"][a][f] + t)
        np.testing.assert_allclose(record.camera.frame_rotation, rotation)
        np.testing.assert_allclose(record.camera.intrinsics[:2, 2], [540.5, 960.5])  # real data: +0.5
        points = sequence["poses2d"][a][f].T
        labelled = points[:, 2] > 0
        np.testing.assert_allclose(record.keypoints_2d[OP][labelled, :2], points[labelled, :2] + 0.5)
        np.testing.assert_allclose(record.keypoints_2d[OP][:, 2], points[:, 2])
        assert (record.keypoints_2d[25:] == 0).all() and not record.keypoints_2d[OP][~labelled].any()
        low, high = points[labelled, :2].min(0), points[labelled, :2].max(0)
        np.testing.assert_allclose(record.center, (low + high) / 2 + 0.5)
        assert record.box_size == pytest.approx(1.2 * (high - low).max())
    assert not good[0].keypoints_2d[OP[4]].any()
    assert read(tmp_path, occlusion_only=True) == ([], [])


def test_python3_pickles_read_the_same(tmp_path):
    sequence = hand_made_sequence()
    write_sequence(tmp_path / "py2/sequenceFiles/test", sequence)
    write_sequence(tmp_path / "py3/sequenceFiles/test", sequence, py2=False)
    py2, py3 = read(tmp_path / "py2"), read(tmp_path / "py3")
    assert len(py2[0]) == len(py3[0]) == 5 and len(py2[1]) == len(py3[1]) == 3
    for a, b in zip(py2[0], py3[0], strict=True):
        np.testing.assert_array_equal(a.pose, b.pose)
        np.testing.assert_array_equal(a.keypoints_2d, b.keypoints_2d)


def test_broken_sources_name_the_file_and_the_fix(tmp_path):
    folder = tmp_path / "sequenceFiles/test"
    with pytest.raises(SourceError, match="sequenceFiles/test.*Point root"):
        read(tmp_path)
    with pytest.raises(SourceError, match="no option.*bogus.*occlusion_only"):
        build_reader("3dpw", str(tmp_path), "test", {"bogus": 1})
    with pytest.raises(SourceError, match="no split 'val'"):
        build_reader("3dpw", str(tmp_path), "val")
    sequence = hand_made_sequence()
    write_sequence(folder, {k: v for k, v in sequence.items() if k != "cam_poses"})
    with pytest.raises(SourceError, match=r"downtown_walking_00\.pkl is not a 3DPW sequence.*cam_poses"):
        read(tmp_path)
    write_sequence(folder, {**sequence, "poses": [p[:, :69] for p in sequence["poses"]]})
    with pytest.raises(SourceError, match=r"'poses' has shape \(2, 4, 69\), expected \(2, 4, 72\)"):
        read(tmp_path)
    write_sequence(folder, {**sequence, "genders": ["m"]})
    with pytest.raises(SourceError, match="'betas' has 2 entries for 1 actors"):
        read(tmp_path)
    (folder / "downtown_walking_00.pkl").write_bytes(b"not a pickle")
    with pytest.raises(SourceError, match=r"cannot read the 3DPW sequence .*downtown_walking_00\.pkl"):
        read(tmp_path)
    # A pickle that names code is refused before anything runs.
    (folder / "downtown_walking_00.pkl").write_bytes(pickle.dumps({**sequence, "hook": os.getcwd}, protocol=2))
    with pytest.raises(SourceError, match="refusing to load.*getcwd"):
        read(tmp_path)


@pytest.mark.parametrize("name", ["../../../outside", "/etc", "a\x00b", ".."])
def test_a_sequence_name_that_is_not_a_plain_name_is_refused(tmp_path, name):
    """The name picks the frame folder and the sample keys: it must not lead out of imageFiles/."""
    folder = tmp_path / "sequenceFiles/test"
    folder.mkdir(parents=True)
    (folder / "downtown_walking_00.pkl").write_bytes(pickle.dumps({**hand_made_sequence(), "sequence": name}))
    with pytest.raises(SourceError, match=r"downtown_walking_00\.pkl: its sequence name .* is not a plain name"):
        read(tmp_path)
