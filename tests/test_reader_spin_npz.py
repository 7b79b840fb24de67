"""The ``spin_npz`` reader on ``pare synth --layout spin_npz``, the real mmpose npz samples and hand-made files."""

from __future__ import annotations

import fractions

import numpy as np
import pytest
from PIL import Image

from pare_model.body_model import load_body_model
from pare_model.joint_sets import SPIN_JOINT_NAMES
from preprocessing.bodies import pose_bodies
from preprocessing.keypoints import H36M17_TO_SPIN_GT, NUM_OPENPOSE, gt_indices, h36m_gt_mask
from preprocessing.readers import SourceError, build_reader
from preprocessing.readers.npz_arrays import read_npz
from tests.conftest import require_real_fixture
from tests.reader_helpers import read_source
from tests.synth_helpers import generate

NUM = 5
GT = {name: k for k, name in enumerate(SPIN_JOINT_NAMES[NUM_OPENPOSE:])}
H36M_ORDER = np.argsort(gt_indices(H36M17_TO_SPIN_GT))
"""The 17 Human3.6M joints in the order of their SPIN slots."""


def read(root, split="train", dataset=None, **options):
    return read_source("spin_npz", root, split, dataset, **options)


@pytest.fixture(scope="module")
def synth(procedural_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reader_spin_npz")
    generate(procedural_dir, out, "spin_npz", NUM, seed=0, occluders=0.5)  # seed 0: both genders
    return out, dict(np.load(out / "synth_train.npz"))


def test_synthetic_rows_become_records_exactly(synth, procedural_dir):
    out, data = synth
    good, rejected = read(out, dataset="synth-spin")  # the only npz at the root; imgname relative to it
    assert len(good) == NUM and not rejected
    models = {"m": load_body_model(procedural_dir, "male"), "f": load_body_model(procedural_dir, "female")}
    for k, record in enumerate(good):
        name = data["imgname"][k]
        assert record.sample_id == f"{k:07d}_{name[7:-4]}" and record.image.path == str(out / name)
        assert record.dataset == "synth-spin" and record.camera is None and record.source == "synth_train.npz"
        expected = np.concatenate([data["openpose"][k], data["part"][k]])
        expected[expected[:, 2] <= 0] = 0.0  # synthetic: pixel offset 0
        np.testing.assert_array_equal(record.keypoints_2d, expected)
        np.testing.assert_array_equal(record.center, data["center"][k])
        assert record.box_size == pytest.approx(data["scale"][k] * 200)
        np.testing.assert_array_equal(record.joints_3d, data["S"][k])
        np.testing.assert_array_equal(record.pose, data["pose"][k])
        np.testing.assert_array_equal(record.betas, data["shape"][k])
        assert record.gender == {"m": "male", "f": "female"}[data["gender"][k]] and record.fit_source == "npz"
        # The fit, posed with its gender's model, gives the record's 3D joints: its Human3.6M joints at SPIN's
        # slots, root-centred as SPIN's files (the default joints_frame).
        body = pose_bodies(models[data["gender"][k]], record.pose.reshape(1, 24, 3), record.betas[None])
        h36m = body.h36m_joints[0]
        np.testing.assert_allclose(record.joints_3d[h36m_gt_mask(), :3], (h36m - h36m[0])[H36M_ORDER], atol=1e-5)
        assert record.joints_frame == "root_centred" and Image.open(record.image.path).size[0] > 0
    assert {r.gender for r in good} == {"male", "female"}


def test_uncompressed_npz_is_memory_mapped_and_compressed_reads_the_same(synth, tmp_path):
    out, data = synth  # pare synth writes compressed members (reproducible bytes); np.savez stores them
    compressed = read_npz(str(out / "synth_train.npz"))
    assert not any(isinstance(a, np.memmap) for a in compressed.values())
    np.savez(tmp_path / "stored.npz", **data)
    stored = read_npz(str(tmp_path / "stored.npz"))
    assert all(isinstance(stored[key], np.memmap) for key in data)  # rows are read on demand
    for key in data:
        np.testing.assert_array_equal(compressed[key], stored[key])
    good, _ = read(out)
    again, _ = read(tmp_path, images=str(out), pixel_offset=0.0)  # no synthetic.json here
    assert [r.sample_id for r in again] == [r.sample_id for r in good]
    assert [r.image.path for r in again] == [r.image.path for r in good]
    for a, b in zip(again, good, strict=True):
        np.testing.assert_array_equal(a.keypoints_2d, b.keypoints_2d)
        np.testing.assert_array_equal(a.pose, b.pose)


def test_real_h36m_npz():
    npz = require_real_fixture("mmpose/h36m/test_h36m.npz")
    data = np.load(npz)
    # mmpose's file keeps S in the camera frame: read as SPIN's root-centred S it is refused, naming the option.
    with pytest.raises(
        SourceError, match=r"row 0: the 3D joints are in the camera frame.*set options.joints_frame: camera"
    ):
        read(npz.parent, dataset="h36m-npz", npz=npz.name)
    good, rejected = read(npz.parent, dataset="h36m-npz", npz=npz.name, joints_frame="camera")
    assert len(good) == len(data["imgname"]) == 4 and not rejected
    for k, record in enumerate(good):
        labelled = data["part"][k, :, 2] > 0
        np.testing.assert_allclose(
            record.keypoints_2d[NUM_OPENPOSE:][labelled, :2], data["part"][k, labelled, :2] + 0.5
        )
        assert not record.keypoints_2d[:NUM_OPENPOSE].any()  # no openpose key
        np.testing.assert_array_equal(record.joints_3d, data["S"][k])
        assert record.joints_frame == "camera" and not record.joints_3d[13].any()  # the head is in slot 18
        np.testing.assert_allclose(record.center, data["center"][k] + 0.5)
        assert record.has_smpl and record.gender == "neutral"  # no has_smpl or gender key: fit, neutral model
        assert record.sample_id == f"{k:07d}_{data['imgname'][k][:-4]}"


@pytest.mark.parametrize("name", ["test_3dhp_train.npz", "test_3dhp_test.npz"])
def test_real_mpi_inf_3dhp_npz_with_17_joints(name):
    npz = require_real_fixture(f"mmpose/mpi_inf_3dhp/{name}")
    with pytest.raises(SourceError, match=r"'part' has shape \(2, 17, 3\), expected \(2, 24, 3\).*mpi_inf_3dhp17"):
        read(npz.parent, npz=name)
    data = np.load(npz)
    good, rejected = read(npz.parent, npz=name, joints="mpi_inf_3dhp17", joints_frame="camera")  # mmpose's frame
    assert len(good) == 2 and not rejected
    for k, record in enumerate(good):
        assert Image.open(record.image.path).size[0] > 0 and not record.has_smpl
        keypoints, joints = record.keypoints_2d[NUM_OPENPOSE:], record.joints_3d
        # SPIN's slots (its mpi_inf_3dhp.py test_data; tests/test_original_conventions.py runs it): head top in
        # 18 "Head (H36M)", head in 17 "Jaw (H36M)", 13 "Top of Head (LSP)" empty.
        named = ("Head (H36M)", "Neck (LSP)", "Pelvis (MPII)", "Left Knee", "Jaw (H36M)")
        for index, joint in zip((0, 1, 14, 12, 16), named, strict=True):
            np.testing.assert_allclose(keypoints[GT[joint], :2], data["part"][k, index, :2] + 0.5)
            np.testing.assert_array_equal(joints[GT[joint]], data["S"][k, index])
        assert (joints[:, 3] > 0).sum() == (data["S"][k, :, 3] > 0).sum() >= 15  # wrists unlabelled in one frame
        assert (keypoints[:, 2] > 0).sum() == (data["part"][k, :, 2] > 0).sum()
        assert not joints[~h36m_gt_mask()].any()  # SPIN joints 3DHP does not have stay empty, as in Human3.6M

        def at(joint, joints=joints):
            return joints[GT[joint], :3]

        # Anatomy only the right mapping gives: pelvis between the hips, shins and arm bones equal left and
        # right (3DHP's skeleton is symmetric there; its hip joints are not), thighs of thigh length, head up.
        assert np.linalg.norm(at("Pelvis (MPII)") - (at("Left Hip") + at("Right Hip")) / 2) < 0.03
        for a, b in (("Hip", "Knee"), ("Knee", "Ankle"), ("Shoulder", "Elbow"), ("Elbow", "Wrist")):
            left, right = (np.linalg.norm(at(f"{s} {a}") - at(f"{s} {b}")) for s in ("Left", "Right"))
            if joints[GT[f"Left {b}"], 3] > 0 and joints[GT[f"Right {b}"], 3] > 0:
                assert 0.2 < left < 0.6 and 0.2 < right < 0.6, (a, b, left, right)
                assert a == "Hip" or abs(left - right) < 0.01 * left, (a, b, left, right)
        top = at("Head (H36M)")
        assert 0.1 < np.linalg.norm(top - at("Neck (LSP)")) < 0.4 < np.linalg.norm(top - at("Pelvis (MPII)"))
        assert np.linalg.norm(at("Jaw (H36M)") - top) < 0.2  # both on the head
        assert top[1] < at("Jaw (H36M)")[1]  # the head top above the head (camera y points down)


def rows(n: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    part = np.concatenate([rng.uniform(50, 150, (n, 24, 2)), np.ones((n, 24, 1))], axis=2)
    return {
        "imgname": np.array([f"images/{i:03d}.jpg" for i in range(n)]),
        "center": np.full((n, 2), 100.0),
        "scale": np.full(n, 0.6),
        "part": part,
        "pose": rng.normal(scale=0.2, size=(n, 72)),
        "shape": rng.normal(size=(n, 10)),
        "has_smpl": np.ones(n),
        "gender": np.array(["m", "f", "m", "m", "x", "f"][:n]),
    }


def test_bad_rows_are_rejected_alone(tmp_path):
    arrays = rows()
    arrays["part"][1, 3, 0] = np.nan
    arrays["pose"][2, 5] = np.nan
    arrays["pose"][3, 5], arrays["has_smpl"][3] = np.inf, 0  # no fit on this row: its pose is not used
    np.savez(tmp_path / "data.npz", **arrays)
    good, rejected = read(tmp_path)
    assert [r.sample_id for r in good] == ["0000000_000", "0000003_003", "0000005_005"]
    assert [(r.sample_id, r.reason) for r in rejected] == [
        ("0000001_001", "nan_parameters"),
        ("0000002_002", "nan_parameters"),
        ("0000004_004", "bad_annotation"),
    ]
    assert "part" in rejected[0].detail and "pose" in rejected[1].detail and "'x'" in rejected[2].detail
    assert [r.gender for r in good] == ["male", "neutral", "female"] and not good[1].has_smpl
    np.testing.assert_allclose(good[0].keypoints_2d[NUM_OPENPOSE:, :2], arrays["part"][0, :, :2] + 0.5)


def test_gender_codes_and_defaults(tmp_path):
    arrays = {**rows(4), "gender": np.array([0, 1, -1, 1])}  # SPIN's integer code: 0 male, 1 female
    np.savez(tmp_path / "data.npz", **arrays)
    good, _ = read(tmp_path, gender="female")
    assert [r.gender for r in good] == ["male", "female", "female", "female"]
    del arrays["gender"]
    np.savez(tmp_path / "data.npz", **arrays)
    assert {r.gender for r in read(tmp_path, gender="male")[0]} == {"male"}


def test_object_arrays_load_through_the_restricted_unpickler(tmp_path):
    arrays = rows(3)
    np.savez(tmp_path / "data.npz", **{**arrays, "imgname": arrays["imgname"].astype(object)})
    assert [r.image.path for r in read(tmp_path)[0]] == [str(tmp_path / n) for n in arrays["imgname"]]
    hostile = np.array([fractions.Fraction(1, 2)] * 3, dtype=object)  # pickles as a call to fractions.Fraction
    np.savez(tmp_path / "data.npz", **{**arrays, "imgname": hostile})
    with pytest.raises(SourceError, match=r"data\.npz is not a readable npz.*refusing.*fractions"):
        read(tmp_path)


def test_whole_file_problems_name_the_key_and_the_fix(tmp_path):
    arrays = rows(3)
    for broken, message in (
        ({**arrays, "part": arrays["part"][..., :2]}, r"'part' has shape \(3, 24, 2\), expected \(3, 24, 3\)"),
        ({**arrays, "center": arrays["center"][:2]}, r"'center' has shape \(2, 2\), expected \(3, 2\)"),
        ({**arrays, "shape": np.zeros((3, 300))}, r"'shape' has shape \(3, 300\), expected \(3, 10\)"),
        ({k: v for k, v in arrays.items() if k != "scale"}, r"has no \['scale'\] array; its keys"),
        ({k: v for k, v in arrays.items() if k not in ("part", "openpose", "S")}, r"neither 2D keypoints .* nor 3D"),
    ):
        np.savez(tmp_path / "data.npz", **broken)
        with pytest.raises(SourceError, match=message):
            read(tmp_path)
    (tmp_path / "data.npz").write_bytes(b"not a zip")
    with pytest.raises(SourceError, match=r"data\.npz is not a readable npz file"):
        read(tmp_path)
    with pytest.raises(SourceError, match=r"annotation file not found: .*other\.npz"):
        read(tmp_path, npz="other.npz")
    np.savez(tmp_path / "second.npz", **arrays)
    with pytest.raises(SourceError, match=r"set options\.npz .* holds 2 npz files \(data\.npz, second\.npz\)"):
        read(tmp_path)
    with pytest.raises(SourceError, match="no option.*bogus.*'npz', 'images', 'joints'"):
        build_reader("spin_npz", str(tmp_path), "train", {"bogus": 1})
    with pytest.raises(SourceError, match="joints must be one of"):
        build_reader("spin_npz", str(tmp_path), "train", {"joints": "coco17"})
