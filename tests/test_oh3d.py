"""3DOH50K: ``pare synth --layout 3doh`` in the release's layout, and the ``3doh`` reader against PARE's own
3DOH preprocessing (figures from the original functions) and on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pare_model.body_model import load_body_model
from preprocessing.bodies import pose_bodies
from preprocessing.keypoints import NUM_OPENPOSE
from preprocessing.readers import SourceError, build_reader
from preprocessing.render import perspective_to_screen
from tests.reader_helpers import read_source
from tests.synth_helpers import generate

NUM = 6  # pictures 3 of 0..5 go to the training set: 5 test, 1 train
# The keys and shapes of an annots.json entry, as PARE's 3DOH preprocessing lists them ("Dictionary keys").
RELEASE_SHAPES = {
    "extri": (4, 4),
    "intri": (3, 3),
    "bbox": (2, 2),
    "betas": (1, 10),
    "pose": (1, 72),
    "trans": (1, 3),
    "scale": (1,),
    "smpl_joints_2d": (24, 2),
    "smpl_joints_3d": (24, 3),
    "lsp_joints_2d": (14, 2),
    "lsp_joints_3d": (14, 3),
}


def read(root, split="test", **options):
    return read_source("3doh", root, split, **options)


@pytest.fixture(scope="module")
def synth(procedural_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_3doh")
    generate(procedural_dir, out, "3doh", NUM, seed=3, occluders=0.5)
    annots = {split: json.loads((out / f"{split}set" / "annots.json").read_text()) for split in ("train", "test")}
    return out, annots, load_body_model(procedural_dir, "neutral")


def test_the_release_layout_keys_and_shapes(synth):
    out, annots, _ = synth
    assert [len(annots["test"]), len(annots["train"])] == [5, 1]
    for split, entries in annots.items():
        assert list(entries) == [f"{k:05d}" for k in range(len(entries))]
        for image_id, entry in entries.items():
            assert {key: np.asarray(entry[key]).shape for key in RELEASE_SHAPES} == RELEASE_SHAPES
            assert entry["img_path"] == f"images\\{image_id}.jpg"  # Windows separators, as the original expects
            assert Image.open(out / f"{split}set" / "images" / f"{image_id}.jpg").size[0] > 0
            assert ("mask_path" in entry) == (split == "train")
    mask = np.asarray(Image.open(out / "trainset" / "masks" / "00000.png"))
    assert set(np.unique(mask)) == {0, 255}


def test_world_fit_camera_and_keypoints_are_one_exact_view(synth):
    """body(pose, betas) + trans in the world, mapped by extri and projected by intri: the 2D joints and the box."""
    _, annots, neutral = synth
    for entry in [*annots["test"].values(), *annots["train"].values()]:
        pose, betas = np.asarray(entry["pose"]).reshape(1, 24, 3), np.asarray(entry["betas"])
        world = pose_bodies(neutral, pose, betas, np.asarray(entry["trans"]))
        extri, intri = np.asarray(entry["extri"]), np.asarray(entry["intri"])
        lsp = perspective_to_screen(world.joints[0, NUM_OPENPOSE : NUM_OPENPOSE + 14], intri, extri)
        assert np.abs(lsp[:, :2] - entry["lsp_joints_2d"]).max() < 1e-3
        in_camera = world.joints[0, NUM_OPENPOSE : NUM_OPENPOSE + 14] @ extri[:3, :3].T + extri[:3, 3]
        np.testing.assert_allclose(in_camera, entry["lsp_joints_3d"], atol=1e-5)
        screen = perspective_to_screen(world.vertices[0], intri, extri)
        np.testing.assert_allclose([screen[:, :2].min(0), screen[:, :2].max(0)], entry["bbox"], atol=1e-3)


def test_synthetic_entries_become_records_as_pare_reads_them(synth):
    out, annots, neutral = synth
    good, rejected = read(out)
    assert [r.sample_id for r in good] == list(annots["test"]) and not rejected
    for record in good:
        entry = annots["test"][record.sample_id]
        assert record.dataset == "3doh" and record.split == "test" and record.gender == "neutral"
        assert record.image.path == str(out / "testset" / "images" / f"{record.sample_id}.jpg")
        (x1, y1), (x2, y2) = entry["bbox"]
        np.testing.assert_allclose(record.center, [(x1 + x2) / 2, (y1 + y2) / 2])
        assert record.box_size == pytest.approx(1.2 * (y2 - y1))  # PARE: 1.2 x the box's height
        assert record.joints_3d is None and record.camera.translation is None
        # The record's fit (root in the camera frame) is the world fit seen by the camera, up to a translation.
        world = pose_bodies(neutral, np.asarray(entry["pose"]).reshape(1, 24, 3), np.asarray(entry["betas"]))
        ours = pose_bodies(neutral, record.pose.reshape(1, 24, 3), record.betas[None])
        extri = np.asarray(entry["extri"])
        seen = world.vertices[0] @ extri[:3, :3].T
        np.testing.assert_allclose(ours.vertices[0] - ours.vertices[0].mean(0), seen - seen.mean(0), atol=1e-5)
    assert len(read(out, "train")[0]) == 1


# One annots.json entry and what the original PARE functions make of it (mkocabas/PARE f848b2f, run unmodified
# through shared/tools/original-pare): the root as the PARE authors' 3DOH preprocessing rectifies it,
# batch_rot2aa(R_extri @ batch_rodrigues(root)) (pare.utils.geometry); the box, center = bbox centre and
# scale = 1.2 (y2 - y1) / 200; the LSP keypoints through kp_utils.convert_kps(src="common", dst="spin").
EXTRI_R = [
    [0.8732176732845905, 0.14383689994796162, 0.46561984630898884],
    [-0.04631203324380039, 0.9756187833239597, -0.21453014986780233],
    [-0.48512481964982107, 0.1657677165157217, 0.8585889432789663],
]
ROOT_WORLD = [0.3, -2.1, 0.4]
ORIGINAL_ROOT_CAMERA = [0.3675088027862225, -1.6536533417380876, 0.04302239908254248]
BBOX = [[100.5, 50.25], [300.75, 450.5]]
ORIGINAL_CENTER, ORIGINAL_SCALE = [200.625, 250.375], 2.4015
LSP_2D = (np.arange(28.0).reshape(14, 2) * 10 + 5).tolist()
ORIGINAL_SPIN_ROWS = list(range(25, 39))  # the 14 LSP joints land on SPIN joints 25..38, in order


def _entry(**changes) -> dict:
    extri = np.eye(4)
    extri[:3, :3] = EXTRI_R
    body_pose = np.linspace(-0.3, 0.3, 69)
    entry = {
        "extri": extri.tolist(),
        "intri": [[1500.0, 0.0, 960.0], [0.0, 1500.0, 540.0], [0.0, 0.0, 1.0]],
        "img_path": "images\\00000.jpg",
        "bbox": BBOX,
        "betas": [np.linspace(-1, 1, 10).tolist()],
        "pose": [[*ROOT_WORLD, *body_pose]],
        "trans": [[0.1, 0.2, 3.0]],
        "scale": [1.0],
        "lsp_joints_2d": LSP_2D,
    }
    return entry | changes


def _write(root, entries: dict, split: str = "testset") -> None:
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / split / "annots.json").write_text(json.dumps(entries))


def test_a_real_style_entry_reads_as_the_original_preprocesses_it(tmp_path):
    _write(tmp_path, {"00000": _entry()})
    (record,), rejected = read(tmp_path)
    assert not rejected and record.sample_id == "00000"
    np.testing.assert_allclose(record.pose[:3], ORIGINAL_ROOT_CAMERA, atol=1e-9)
    np.testing.assert_allclose(record.pose[3:], np.linspace(-0.3, 0.3, 69))
    np.testing.assert_allclose(record.center, np.add(ORIGINAL_CENTER, 0.5))  # real data: + 0.5 px
    assert record.box_size == pytest.approx(ORIGINAL_SCALE * 200)
    labelled = np.flatnonzero(record.keypoints_2d[:, 2])
    np.testing.assert_array_equal(labelled, ORIGINAL_SPIN_ROWS)
    np.testing.assert_allclose(record.keypoints_2d[labelled, :2], np.add(LSP_2D, 0.5))
    np.testing.assert_allclose(record.camera.intrinsics[:2, 2], [960.5, 540.5])
    assert record.image.path == str(tmp_path / "testset" / "images" / "00000.jpg")


def test_bad_entries_are_rejected_and_broken_files_named(tmp_path):
    entries = {
        "00000": _entry(),
        "00001": {k: v for k, v in _entry().items() if k != "extri"},
        "00002": _entry(pose=[[float("nan")] * 72]),
        "00003": _entry(img_path="..\\..\\secret.jpg"),
        "00004": _entry(bbox=[[10, 50], [20, 50]]),
        "00005": _entry(lsp_joints_2d=[[1.0, 2.0]] * 13),
    }
    _write(tmp_path, entries)
    good, rejected = read(tmp_path)
    assert [r.sample_id for r in good] == ["00000"]
    reasons = {r.sample_id: (r.reason, r.detail) for r in rejected}
    assert reasons["00001"][0] == "bad_annotation" and "extri" in reasons["00001"][1]
    assert reasons["00002"][0] == "nan_parameters"
    assert reasons["00003"][0] == "bad_annotation" and "not inside" in reasons["00003"][1]
    assert reasons["00004"][0] == "bad_annotation" and "no height" in reasons["00004"][1]
    assert reasons["00005"] == ("bad_annotation", "'lsp_joints_2d' has shape (13, 2), expected (14, 2)")
    (tmp_path / "testset" / "annots.json").write_text("[1, 2]")
    with pytest.raises(SourceError, match="not a mapping of image ids"):
        read(tmp_path)
    (tmp_path / "testset" / "annots.json").write_text("{")
    with pytest.raises(SourceError, match="annots.json is not valid JSON"):
        read(tmp_path)
    with pytest.raises(SourceError, match="3doh annotation file not found.*trainset/annots.json"):
        read(tmp_path, "train")
    with pytest.raises(SourceError, match="no split 'validation'"):
        build_reader("3doh", str(tmp_path), "validation")
    _write(tmp_path, {"00000": _entry()}, split="test")  # PARE's own copy calls the folder test/
    assert len(read(tmp_path, folder="test")[0]) == 1
