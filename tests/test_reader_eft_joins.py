"""EFT fits joined to their people: ``coco_eft`` by annotation id, ``mpii`` by image and keypoints.

On ``pare synth`` output the fits are exact, so a joined record must carry its own person's fit:
the sample builder then reprojects the fit onto that person's keypoints within a pixel. A fit
joined to the wrong person (or not at all) cannot pass.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from preprocessing.bodies import BodyModels
from preprocessing.readers import SourceError
from preprocessing.record import Rejected, SampleRecord
from preprocessing.samples import CropConfig, QualityConfig
from preprocessing.samples.build import SampleBuilder
from tests.reader_helpers import read_source
from tests.synth_helpers import generate

EFT_MPII = "eft_fits/MPII_ver01.json"
EFT_COCO = "eft_fits/COCO2014-All-ver01.json"
COCO = {"annotations": "annotations/person_keypoints_train2014.json", "images": "images/train2014"}


def read(name, root, split="train", **options):
    return read_source(name, root, split, **options)


def assert_fit_matches(record: SampleRecord, entry: dict) -> None:
    rotations = Rotation.from_rotvec(record.pose.reshape(24, 3)).as_matrix()
    np.testing.assert_allclose(rotations, entry["parm_pose"], atol=1e-9)
    np.testing.assert_allclose(record.betas, entry["parm_shape"])
    np.testing.assert_allclose(record.camera.cam, entry["parm_cam"])
    np.testing.assert_allclose(record.center, entry["bbox_center"])  # synthetic: pixel offset 0
    assert record.box_size == pytest.approx(entry["bbox_scale"] * 200) and record.fit_source == "eft"


def assert_fits_reproject(models, records) -> None:
    built = SampleBuilder(models, CropConfig(), QualityConfig()).build(records)
    assert not [b for b in built if isinstance(b, Rejected)]
    for sample in built:
        assert sample.has_smpl and sample.quality.reprojection_error < 1.0, sample.quality
        assert sample.quality.keypoints_in_silhouette > 0.85, sample.quality


@pytest.fixture(scope="module")
def models(procedural_dir):
    return BodyModels(procedural_dir)


@pytest.fixture(scope="module")
def coco(procedural_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("coco_eft_join")
    generate(procedural_dir, out, "coco_eft", 6, seed=2)
    return out


@pytest.fixture(scope="module")
def mpii(procedural_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("mpii_eft_join")
    generate(procedural_dir, out, "mpii", 10, seed=5)
    return out


def test_coco_fits_join_by_annotation_id(coco, models):
    entries = {e["annotId"]: e for e in json.loads((coco / EFT_COCO).read_text())["data"]}
    good, rejected = read("coco_eft", coco, eft=EFT_COCO, **COCO)
    assert len(good) == 6 and not rejected
    for record in good:
        assert_fit_matches(record, entries[int(record.sample_id)])
    assert_fits_reproject(models, good)
    plain, _ = read("coco_eft", coco, **COCO)  # without EFT: 2D only, box from the COCO bbox
    assert [r.sample_id for r in plain] == [r.sample_id for r in good] and not any(r.has_smpl for r in plain)


@pytest.mark.parametrize("annotations", ["mpii_human_pose_v1_u12_1.mat", "annot/train.json"])
def test_mpii_fits_join_by_image_and_keypoints(mpii, models, annotations):
    entries = json.loads((mpii / EFT_MPII).read_text())["data"]
    good, rejected = read("mpii", mpii, annotations=annotations, eft=EFT_MPII)
    assert len(good) == 8 == len(entries) and not rejected  # 10 images, every 5th is a test image
    by_image = {e["imageName"]: e for e in entries}
    for record in good:
        assert_fit_matches(record, by_image[record.extra["image"]])
    assert_fits_reproject(models, good)


def test_mpii_join_picks_the_right_person_among_decoys(mpii, models, tmp_path):
    """Two people on one image, shuffled fits, a duplicate and a fit of nobody: each person gets their own."""
    root = tmp_path / "mpii"
    shutil.copytree(mpii, root)
    people = json.loads((root / "annot/train.json").read_text())
    entries = json.loads((root / EFT_MPII).read_text())["data"]
    # Person 1 of image 1 is the person of image 2, moved onto image 1 with its fit.
    first, second = people[0], dict(people[1], image=people[0]["image"])
    moved = dict(next(e for e in entries if e["imageName"] == people[1]["image"]), imageName=first["image"])
    decoy = dict(moved, gt_keypoint_2d=(np.asarray(moved["gt_keypoint_2d"]) + [300.0, 0.0, 0.0]).tolist())
    shuffled = [moved, decoy, dict(entries[0]), *entries[::-1]]
    (root / "annot/train.json").write_text(json.dumps([first, second]))
    (root / EFT_MPII).write_text(json.dumps({"ver": 1, "data": shuffled}))
    good, rejected = read("mpii", root, annotations="annot/train.json", eft=EFT_MPII)
    assert not rejected and [r.person_index for r in good] == [0, 1]
    assert_fit_matches(good[0], entries[0])
    assert_fit_matches(good[1], moved)
    assert_fits_reproject(models, good[:1])  # the moved person's fit no longer matches the pixels of image 1
    # A person no fit matches stays 2D-only, or is rejected with require_fit.
    (root / EFT_MPII).write_text(json.dumps({"ver": 1, "data": [decoy]}))
    good, _ = read("mpii", root, annotations="annot/train.json", eft=EFT_MPII)
    assert [r.has_smpl for r in good] == [False, False]
    good, rejected = read("mpii", root, annotations="annot/train.json", eft=EFT_MPII, require_fit=True)
    assert not good and [r.reason for r in rejected] == ["no_fit", "no_fit"]
    assert "no EFT fit in eft_fits/MPII_ver01.json matches this person" in rejected[0].detail


def test_eft_file_problems_are_named(mpii, tmp_path):
    root = tmp_path / "mpii"
    shutil.copytree(mpii, root)
    text = (root / EFT_MPII).read_text()
    (root / EFT_MPII).write_text(text[: len(text) // 2])
    with pytest.raises(SourceError, match=r"EFT fit file .*MPII_ver01\.json is not valid JSON.*truncated"):
        read("mpii", root, annotations="annot/train.json", eft=EFT_MPII)
    with pytest.raises(SourceError, match=r"mpii annotation file not found: .*missing\.json"):
        read("mpii", root, annotations="annot/train.json", eft="missing.json")
    with pytest.raises(SourceError, match="eft_camera must be one of"):
        read("mpii", root, annotations="annot/train.json", eft=EFT_MPII, eft_camera="weak")


def lspet_from_mpii(mpii, root, layout: str = "hr-lspet") -> list[dict]:
    """An LSPet-layout source from the synthetic MPII one: joints.mat, im%05d.png images, EFT file."""
    import cv2
    import scipy.io

    entries = json.loads((mpii / EFT_MPII).read_text())["data"]
    root.mkdir()
    shutil.copy(mpii / "synthetic.json", root / "synthetic.json")
    joints, fits = [], []
    for k, entry in enumerate(entries):
        name = f"im{k + 1:05d}.png"
        image = cv2.imread(str(mpii / "images" / entry["imageName"]))
        cv2.imwrite(str(root / name), image)
        joints.append(np.asarray(entry["gt_keypoint_2d"])[25:39])  # SPIN GT 0..13 = LSP's 14 joints
        fits.append(dict(entry, imageName=name))
    stacked = np.stack(joints)  # (N, 14, 3)
    stacked[2, :9, 2] = 0  # too few annotated joints left
    matrix = stacked.transpose(1, 2, 0) if layout == "hr-lspet" else stacked
    scipy.io.savemat(root / "joints.mat", {"joints": matrix})
    (root / "eft_fits").mkdir()
    (root / "eft_fits/LSPet_train_ver10.json").write_text(json.dumps({"ver": 10, "data": fits[::-1]}))
    return fits


@pytest.mark.parametrize("layout", ["hr-lspet", "rows"])
def test_lspet_fits_join_by_image_and_keypoints(mpii, models, tmp_path, layout):
    fits = lspet_from_mpii(mpii, tmp_path / "lspet", layout)
    good, rejected = read("lspet", tmp_path / "lspet", eft="eft_fits/LSPet_train_ver10.json")
    assert [r.sample_id for r in rejected] == ["im00003"] and rejected[0].reason == "no_visible_keypoints"
    assert [r.sample_id for r in good] == [f"im{k + 1:05d}" for k in range(len(fits)) if k != 2]
    for record in good:
        assert_fit_matches(record, fits[record.extra["index"]])
    assert_fits_reproject(models, good)
    plain, _ = read("lspet", tmp_path / "lspet")
    assert not any(r.has_smpl for r in plain)
    gt = np.asarray(fits[0]["gt_keypoint_2d"])[25:39]
    np.testing.assert_array_equal(plain[0].keypoints_2d[25:39], gt)  # LSP's 14 joints on SPIN's first 14 GT joints
    low, high = gt[:, :2].min(axis=0), gt[:, :2].max(axis=0)
    assert plain[0].box_size == pytest.approx(1.2 * (high - low).max())


def test_lspet_joints_of_another_shape_are_named(tmp_path):
    import scipy.io

    scipy.io.savemat(tmp_path / "joints.mat", {"joints": np.zeros((14, 2, 5))})
    with pytest.raises(SourceError, match=r"joints\.mat: 'joints' has shape \(14, 2, 5\), expected \(14, 3, N\)"):
        read("lspet", tmp_path)
    scipy.io.savemat(tmp_path / "joints.mat", {"other": np.zeros(3)})
    with pytest.raises(SourceError, match=r"joints\.mat is not LSP's joints\.mat"):
        read("lspet", tmp_path)
