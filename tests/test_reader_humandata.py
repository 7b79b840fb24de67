"""The ``humandata`` reader on files written to mmhuman3d's documented HumanData structure, and on
``pare synth --layout humandata``: the same shards as the native reader of the same source."""

from __future__ import annotations

import fractions
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pare_model.joint_sets import SPIN_JOINT_NAMES
from pipelines.config.loader import load_config
from pipelines.evaluation.subsets import subsets_of
from preprocessing.keypoints import HUMAN_DATA_NUM_KEYPOINTS, NUM_OPENPOSE, SPIN_IN_HUMAN_DATA
from preprocessing.readers import SourceError, build_reader
from preprocessing.readers.npz_arrays import read_npz
from preprocessing.synth.layouts.humandata import from_spin_npz
from tests.reader_helpers import read_source
from tests.synth_helpers import generate

NUM = 4
HUMAN_DATA_INDEX = np.array([SPIN_IN_HUMAN_DATA[name][1] for name in SPIN_JOINT_NAMES])


def read(root, split="train", dataset=None, **options):
    return read_source("humandata", root, split, dataset, **options)


def spin_rows(n: int = NUM, seed: int = 0) -> dict:
    """Per-row annotations in SPIN's joint order, to be stored the HumanData way."""
    rng = np.random.default_rng(seed)
    keypoints = np.concatenate([rng.uniform(40, 160, (n, 49, 2)), np.ones((n, 49, 1))], axis=2)
    keypoints[:, ::7, 2] = 0.0  # some joints unlabelled
    joints = np.concatenate([rng.normal(scale=0.3, size=(n, 24, 3)) + [0, 0, 5], np.ones((n, 24, 1))], axis=2)
    return {
        "image_path": np.array([f"train2014/COCO_{i:03d}.jpg" for i in range(n)]),
        "box": np.column_stack([rng.uniform(10, 30, (n, 2)), rng.uniform(100, 140, (n, 2))]),
        "keypoints": keypoints,
        "joints": joints,
        "pose": rng.normal(scale=0.2, size=(n, 72)),
        "betas": rng.normal(size=(n, 10)),
        "gender": np.array(["m", "f", "n", "m", "f", "m"][:n]),
    }


def place(values: np.ndarray, first_joint: int = 0) -> np.ndarray:
    """(N, 190, C) with SPIN joints ``first_joint..`` of ``values`` (N, J, C) at their human_data places;
    a non-SPIN keypoint (index 0, 'pelvis') is set too, to show it is not read."""
    full = np.zeros((len(values), HUMAN_DATA_NUM_KEYPOINTS, values.shape[2]))
    full[:, HUMAN_DATA_INDEX[first_joint : first_joint + values.shape[1]]] = values
    full[:, 0] = 77.0
    return full


def write_human_data(path: Path, rows: dict, save=np.savez_compressed, compressed=True, **variant) -> None:
    """A HumanData file as mmhuman3d's ``HumanData.dump`` writes it (its ``docs/human_data.md``).

    ``variant``: ``mask`` (False: no keypoint masks), ``keypoints3d``, ``smpl``, ``meta`` (False leaves
    them out), ``config``, ``box_columns`` (4: an older file) and extra members.
    """
    n = len(rows["image_path"])
    mask = np.zeros(HUMAN_DATA_NUM_KEYPOINTS, np.uint8)
    mask[HUMAN_DATA_INDEX] = 1
    mask[0] = 1
    boxes = np.column_stack([rows["box"], np.ones(n)])[:, : variant.pop("box_columns", 5)]
    members = {"image_path": rows["image_path"], "bbox_xywh": boxes, "config": np.array(variant.pop("config", "eft"))}
    keypoints = {"keypoints2d": place(rows["keypoints"])}
    if variant.pop("keypoints3d", True):
        keypoints["keypoints3d"] = place(rows["joints"], NUM_OPENPOSE)
    for key, value in keypoints.items():
        members[key] = value[:, mask > 0] if compressed else value
        if variant.get("mask", True):
            members[f"{key}_mask"] = mask
    variant.pop("mask", None)
    if variant.pop("smpl", True):
        pose = rows["pose"]
        smpl = {"global_orient": pose[:, :3], "body_pose": pose[:, 3:].reshape(n, 23, 3), "betas": rows["betas"]}
        members["smpl"] = np.array(smpl | {"transl": np.zeros((n, 3))})
    if variant.pop("meta", True):
        members["meta"] = np.array({"gender": rows["gender"]})
    attributes = {"__key_strict__": True, "__temporal_len__": n, "__keypoints_compressed__": compressed}
    save(path, **members, **{key: np.array(value) for key, value in attributes.items()}, **variant)


def reload(path: Path) -> dict[str, np.ndarray]:
    """A file's members as writable arrays, dicts read through the restricted unpickler, to change and save again."""
    return {key: np.array(value) for key, value in read_npz(str(path)).items()}


def check_records(records, rows: dict, root: Path, offset: float = 0.5, smpl: bool = True, joints: bool = True):
    """The records are the rows, in the project's conventions."""
    assert len(records) == len(rows["image_path"])
    for k, record in enumerate(records):
        x, y, w, h = rows["box"][k]
        np.testing.assert_allclose(record.center, [x + w / 2 + offset, y + h / 2 + offset])
        assert record.box_size == pytest.approx(max(w, h))
        expected = rows["keypoints"][k].copy()
        labelled = expected[:, 2] > 0
        expected[labelled, :2] += offset
        expected[~labelled] = 0.0
        np.testing.assert_allclose(record.keypoints_2d, expected)
        assert record.image.path == str(root / "images" / rows["image_path"][k]) and record.camera is None
        assert record.sample_id == f"{k:07d}_COCO_{k:03d}" and record.extra["image_path"] == rows["image_path"][k]
        if joints:
            np.testing.assert_allclose(record.joints_3d, rows["joints"][k])
        else:
            assert record.joints_3d is None
        if smpl:
            np.testing.assert_allclose(record.pose, rows["pose"][k])
            np.testing.assert_allclose(record.betas, rows["betas"][k])
            assert record.gender == {"m": "male", "f": "female", "n": "neutral"}[rows["gender"][k]]
            assert record.fit_source == "eft"
        else:
            assert not record.has_smpl and record.gender == "neutral" and record.fit_source == ""


def test_spin_joints_have_their_human_data_places():
    """Each SPIN joint sits at its own place among the 190, under a name of the same side and kind."""
    assert len(set(HUMAN_DATA_INDEX)) == 49 and HUMAN_DATA_INDEX.max() < HUMAN_DATA_NUM_KEYPOINTS
    for spin, (name, _) in SPIN_IN_HUMAN_DATA.items():
        assert name.startswith("left") == spin.startswith(("Left", "OP L")) and name.endswith("openpose") == (
            spin.startswith("OP")
        ), (spin, name)
    # Spot checks against mmhuman3d's list (core/conventions/keypoints_mapping/human_data.py).
    assert SPIN_IN_HUMAN_DATA["Right Ankle"] == ("right_ankle", 8)
    assert SPIN_IN_HUMAN_DATA["Top of Head (LSP)"] == ("headtop", 147)
    assert SPIN_IN_HUMAN_DATA["OP Nose"] == ("nose_openpose", 153)
    assert SPIN_IN_HUMAN_DATA["Right Ear"] == ("right_ear", 58)


@pytest.mark.parametrize(
    "save, compressed, variant",
    [
        (np.savez_compressed, True, {}),  # what HumanData.dump writes
        (np.savez, True, {}),
        (np.savez, False, {"keypoints3d": False, "smpl": False, "mask": False}),
        (np.savez_compressed, False, {"smpl": False, "box_columns": 4}),
        (np.savez, False, {"keypoints3d": False, "meta": False}),
    ],
    ids=["dump", "savez", "2d-only-no-mask", "uncompressed-no-smpl-4-column-box", "no-meta"],
)
def test_documented_structure_variants(tmp_path, save, compressed, variant):
    rows = spin_rows()
    write_human_data(tmp_path / "eft_coco_all.npz", rows, save, compressed, **variant)
    good, rejected = read(tmp_path, images="images")
    assert not rejected
    if variant.get("meta") is False:
        rows["gender"][:] = "n"  # no meta: options.gender, neutral
    has_smpl, has_joints = variant.get("smpl", True), variant.get("keypoints3d", True)
    check_records(good, rows, tmp_path, smpl=has_smpl, joints=has_joints)
    assert {r.dataset for r in good} == {"eft-coco-all"}


def test_a_mask_hides_keypoints_and_has_smpl_selects_fits(tmp_path):
    rows = spin_rows()
    write_human_data(tmp_path / "data.npz", rows, np.savez, compressed=False, has_smpl=np.array([1, 0, 1, 0]))
    data = reload(tmp_path / "data.npz")
    data["keypoints2d_mask"][SPIN_IN_HUMAN_DATA["Left Ear"][1]] = 0  # the values stay; the mask drops them
    np.savez(tmp_path / "data.npz", **data)
    good, _ = read(tmp_path)
    assert [r.has_smpl for r in good] == [True, False, True, False]
    assert not any(r.keypoints_2d[SPIN_JOINT_NAMES.index("Left Ear")].any() for r in good)
    assert all(r.keypoints_2d[SPIN_JOINT_NAMES.index("Right Ear"), 2] == 1 for r in good)


def test_bad_rows_are_rejected_alone(tmp_path):
    rows = spin_rows(6)
    rows["keypoints"][1, 30, 0] = np.nan
    rows["pose"][2, 5] = np.inf
    rows["gender"][3] = "x"
    rows["box"][4, 2:] = 0.0
    rows["image_path"][5] = ""
    write_human_data(tmp_path / "data.npz", rows)
    good, rejected = read(tmp_path)
    assert [r.sample_id for r in good] == ["0000000_COCO_000"]
    assert [(r.sample_id, r.reason) for r in rejected] == [
        ("0000001_COCO_001", "nan_parameters"),
        ("0000002_COCO_002", "nan_parameters"),
        ("0000003_COCO_003", "bad_annotation"),
        ("0000004_COCO_004", "bad_box"),
        ("0000005_", "bad_annotation"),
    ]
    assert "keypoints2d" in rejected[0].detail and "smpl" in rejected[1].detail and "'x'" in rejected[2].detail
    assert all(r.source == "data.npz" and r.dataset == "data" for r in rejected)


def test_whole_file_problems_name_the_member_and_the_fix(tmp_path):
    rows = spin_rows(3)
    path = tmp_path / "data.npz"
    for variant, message in (
        ({"box_columns": 3}, r"'bbox_xywh' has shape \(3, 3\), expected \(3, 5\) or \(3, 4\)"),
        ({"keypoints2d_convention": np.array("coco")}, r"'coco' keypoint convention.*convert_kps"),
        ({"smpl": False, "meta": False, "has_smpl": np.ones(2)}, r"'has_smpl' has shape \(2,\), expected \(3,\)"),
    ):
        write_human_data(path, rows, **variant)
        with pytest.raises(SourceError, match=message):
            read(tmp_path)
    write_human_data(path, rows)
    data = reload(path)
    for change, message in (
        ({"keypoints2d": data["keypoints2d"][:, :40]}, r"'keypoints2d' holds 40 keypoints; expected 190.*or the 50"),
        ({"keypoints2d_mask": np.ones(17)}, r"'keypoints2d_mask' has shape \(17,\), expected \(190,\)"),
        ({"smpl": np.array([1.0, 2.0])}, r"'smpl' is not a dict"),
        ({"smpl": np.array({"betas": np.zeros((3, 10))})}, r"'smpl' has no \['global_orient', 'body_pose'\]"),
        ({"meta": np.array({"gender": ["m"]})}, r"meta\['gender'\] has shape \(1,\), expected \(3,\)"),
        ({"config": np.array([1, 2])}, r"'config' is not one string"),
        ({"bbox_xywh": np.array([["a"] * 5] * 3)}, r"'bbox_xywh' holds <U1 values, not numbers"),
    ):
        np.savez(path, **(data | change))
        with pytest.raises(SourceError, match=message):
            read(tmp_path)
    smpl = data["smpl"].item()
    np.savez(path, **(data | {"smpl": np.array(smpl | {"betas": np.zeros((3, 300))})}))
    with pytest.raises(SourceError, match=r"smpl\['betas'\] has shape \(3, 300\), expected \(3, 10\)"):
        read(tmp_path)
    # mmhuman3d's pw3d_test.npz: boxes, fits, genders and a camera per row, but no keypoints and no body translation
    cameras = np.array([{"in_mat": np.eye(3).tolist(), "H": 1920, "W": 1080}] * 3)
    pw3d_test = {k: v for k, v in data.items() if not k.startswith("keypoints") and k != "config"}
    np.savez(path, **pw3d_test, cam_param=cameras, config=np.array("pw3d"))
    with pytest.raises(SourceError, match=r"has no \['keypoints2d'\] array.*pw3d_test\.npz.*the 3dpw reader"):
        read(tmp_path)
    path.write_bytes(b"not a zip")
    with pytest.raises(SourceError, match=r"data\.npz is not a readable npz file"):
        read(tmp_path)
    with pytest.raises(SourceError, match="no option.*bogus.*'npz', 'images', 'config'"):
        build_reader("humandata", str(tmp_path), "train", {"bogus": 1})
    with pytest.raises(SourceError, match="protocol must be 1 or 2"):
        build_reader("humandata", str(tmp_path), "train", {"protocol": 3})


def test_an_early_humandata_file_is_named_with_the_fix(tmp_path):
    """Early mmhuman3d files hold 144 keypoints (SMPL-X's) and one 'mask' member, not the 190 human_data ones with
    'keypoints2d_mask': the error names that layout and the fix, not a member such a file never had."""
    rows = spin_rows(3)
    path = tmp_path / "data.npz"
    write_human_data(path, rows, compressed=False, mask=False, keypoints3d=False)
    data = reload(path)
    early = data | {"keypoints2d": data["keypoints2d"][:, :144], "mask": np.ones(144, np.uint8)}
    np.savez(path, **early)
    with pytest.raises(SourceError, match=r"early mmhuman3d HumanData file.*144 keypoints.*current mmhuman3d") as error:
        read(tmp_path)
    assert "'keypoints2d_mask' keeps" not in str(error.value)


def test_object_members_load_through_the_restricted_unpickler(tmp_path):
    rows = spin_rows(3)
    hostile = np.array([fractions.Fraction(1, 2)], dtype=object)  # pickles as a call to fractions.Fraction
    write_human_data(tmp_path / "data.npz", rows, cam_param=hostile, misc=hostile)
    assert len(read(tmp_path)[0]) == 3  # members the reader does not use are never unpickled
    write_human_data(tmp_path / "data.npz", rows, smpl=False)
    data = reload(tmp_path / "data.npz")
    smpl = {"global_orient": np.zeros((3, 3)), "body_pose": hostile, "betas": np.zeros((3, 10))}
    np.savez(tmp_path / "data.npz", **(data | {"smpl": np.array(smpl)}))
    with pytest.raises(SourceError, match=r"data\.npz is not a readable npz.*refusing.*fractions"):
        read(tmp_path)


def test_human36m_rows_follow_the_split_and_protocol_2(tmp_path):
    names = ["S1_Directions_1.54138969_000001", "S9_Walking.60457274_000006", "S11_Eating.55011271_000011"]
    rows = spin_rows(3)
    rows["image_path"] = np.array([f"{n.split('_')[0]}/images/{n.rsplit('_', 1)[0]}/{n}.jpg" for n in names])
    write_human_data(tmp_path / "h36m_mosh_train.npz", rows, config="h36m", meta=False)
    train, rejected = read(tmp_path, "train")
    assert [r.extra["subject"] for r in train] == ["S1"] and len(rejected) == 2
    assert {r.reason for r in rejected} == {"bad_annotation"} and "S9" in rejected[0].detail
    test, rejected = read(tmp_path, "test")
    assert [r.extra["camera"] for r in test] == ["60457274"] and "protocol 2" in rejected[-1].detail
    record = test[0]
    assert record.dataset == "h36m" and record.fit_source == "mosh" and record.gender == "neutral"
    assert record.extra["action"] == "Walking" and record.extra["frame"] == 6
    assert subsets_of(record.dataset, record.extra) == ["h36m-p1", "h36m-p2"]  # a frontal view is in both
    assert len(read(tmp_path, "test", protocol=1)[0]) == 2


@pytest.mark.parametrize("config", ["pw3d", "3dpw"])
def test_3dpw_rows_carry_their_sequence_and_the_occlusion_subset(tmp_path, config):
    rows = spin_rows(3)
    sequences = ["flat_packBags_00", "downtown_walking_00", "outdoors_fencing_01"]  # test sequences
    rows["image_path"] = np.array([f"imageFiles/{s}/image_{k:05d}.jpg" for k, s in enumerate(sequences)])
    write_human_data(tmp_path / "pw3d_test.npz", rows, config=config, keypoints3d=False)
    good, _ = read(tmp_path, "test")
    assert [r.extra["sequence"] for r in good] == sequences and {r.dataset for r in good} == {"3dpw"}
    assert {r.extra["split"] for r in good} == {"test"}
    occ = ["3dpw", "3dpw-occ", "3dpw-test-occ"]
    assert [subsets_of(r.dataset, r.extra) for r in good] == [occ, ["3dpw"], occ]
    assert [r.gender for r in good] == ["male", "female", "neutral"] and good[0].fit_source == "3dpw"
    occluded, rejected = read(tmp_path, "test", occlusion_only=True)
    assert [r.extra["sequence"] for r in occluded] == [sequences[0], sequences[2]]
    assert [(r.reason, r.sample_id) for r in rejected] == [("not_in_subset", "0000001_image_00001")]


def test_dataset_names_and_config(tmp_path):
    write_human_data(tmp_path / "mpi_inf_3dhp_train.npz", spin_rows(2), config="mpi_inf_3dhp", smpl=False)
    reader = build_reader("humandata", str(tmp_path), "train")
    reader.check()  # names the dataset before any record is read, as the job needs
    assert reader.dataset == "mpi-inf-3dhp"
    assert build_reader("humandata", str(tmp_path), "train", dataset="3dhp").dataset == "3dhp"
    good, rejected = read(tmp_path, "test", config="h36m")  # options.config overrides the file's
    assert good == [] and {r.reason for r in rejected} == {"bad_annotation"}  # not Human3.6M frame names
    reader = build_reader("humandata", str(tmp_path), "train", {"config": "pw3d"})
    reader.check()
    assert reader.dataset == "3dpw"


@pytest.mark.slow
def test_synthetic_layout_holds_the_spin_npz_people(procedural_dir, tmp_path):
    """``pare synth --layout humandata``: spin_npz's pictures and people, read back the same by both readers."""
    generate(procedural_dir, tmp_path / "hd", "humandata", 2, seed=0)
    generate(procedural_dir, tmp_path / "spin", "spin_npz", 2, seed=0)
    data = read_npz(str(tmp_path / "hd/humandata_train.npz"))
    assert {"image_path", "bbox_xywh", "keypoints2d", "keypoints2d_mask", "keypoints3d", "smpl", "meta"} <= set(data)
    assert data["keypoints2d"].shape == (2, 49, 3) and bool(data["__keypoints_compressed__"])
    assert data["smpl"].item()["body_pose"].shape == (2, 23, 3) and str(data["config"]) == "synthetic"
    assert not (tmp_path / "hd/synth_train.npz").exists()
    ours, rejected = read(tmp_path / "hd")
    native, _ = read_source("spin_npz", tmp_path / "spin", "train")
    assert not rejected and len(ours) == len(native) == 2
    for a, b in zip(ours, native, strict=True):
        assert a.sample_id == b.sample_id and a.gender == b.gender and a.dataset == "humandata"
        np.testing.assert_array_equal(np.asarray(Image.open(a.image.path)), np.asarray(Image.open(b.image.path)))
        np.testing.assert_allclose(a.center, b.center, atol=1e-9)
        np.testing.assert_array_equal(a.keypoints_2d, b.keypoints_2d)
        np.testing.assert_array_equal(a.joints_3d, b.joints_3d)
        np.testing.assert_array_equal(a.pose, b.pose)
        np.testing.assert_array_equal(a.betas, b.betas)
        assert a.box_size == pytest.approx(b.box_size)


def shard_samples(folder: Path) -> dict[str, dict]:
    """sample id -> annotation, labels and crop of every sample in a shard folder."""
    samples: dict[str, dict] = {}
    for shard in sorted(folder.glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                key, kind = member.name.split(".", 1)
                samples.setdefault(key, {})[kind] = tar.extractfile(member).read()
    decoded = {}
    for sample in samples.values():
        annotation = json.loads(sample["json"])
        labels = np.asarray(Image.open(io.BytesIO(sample["labels.png"])))
        crop = np.asarray(Image.open(io.BytesIO(sample["jpg"])))
        decoded[annotation["sample_id"]] = {"annotation": annotation, "labels": labels, "crop": crop}
    return decoded


@pytest.mark.slow
def test_humandata_made_from_a_source_gives_its_native_shards(procedural_dir, tmp_path, ray_cluster):
    """A synthetic SPIN npz source and its HumanData conversion, through ``pare preprocess``: the same samples."""
    from pipelines.preprocess.job import run_preprocess

    source = tmp_path / "source"
    generate(procedural_dir, source, "spin_npz", 8, seed=5, occluders=0.5)
    with np.load(source / "synth_train.npz") as spin:
        np.savez(source / "converted.npz", **from_spin_npz({key: spin[key] for key in spin.files}, compressed=False))
    overrides = [
        f"body_model.asset_dir={procedural_dir}",
        f"preprocess.output={tmp_path / 'shards'}",
        "preprocess.samples_per_shard=4",
        "preprocess.num_workers=2",
    ]
    for name, reader, npz in (("native", "spin_npz", "synth_train.npz"), ("hd", "humandata", "converted.npz")):
        overrides += [f"preprocess.sources.{name}.{k}={v}" for k, v in (("reader", reader), ("root", source))]
        overrides.append(f"preprocess.sources.{name}.options.npz={npz}")
    run_preprocess(load_config(None, overrides), show_progress=False)
    folders = ("spin-npz", "converted")
    native, ours = (shard_samples(tmp_path / f"shards/{folder}/train") for folder in folders)
    assert len(native) >= 6 and sorted(ours) == sorted(native)
    totals = [json.loads((tmp_path / f"shards/{d}/train/manifest.json").read_text())["totals"] for d in folders]
    counts = [{k: v for k, v in t.items() if k != "bytes"} for t in totals]
    assert counts[0] == counts[1]  # bytes differ by the names (keys, extra, source), padded to 512-byte tar blocks
    for sample_id, theirs in native.items():
        mine, expected = ours[sample_id]["annotation"], theirs["annotation"]
        assert mine["key"] == f"converted_train_{sample_id}" and mine["fit_source"] == "humandata"
        for field in ("keypoints_2d", "joints_3d", "pose", "betas"):
            np.testing.assert_allclose(mine[field], expected[field], atol=1e-6, err_msg=f"{sample_id} {field}")
        np.testing.assert_allclose(mine["crop"]["affine"], expected["crop"]["affine"], atol=1e-6)
        for field in ("gender", "has_smpl", "has_joints_3d", "has_segm"):
            assert mine[field] == expected[field], (sample_id, field)
        for part in ("intrinsics", "translation"):
            np.testing.assert_allclose(mine["camera"][part], expected["camera"][part], rtol=1e-6, atol=1e-6)
        quality, native_quality = mine["fit_quality"], expected["fit_quality"]
        assert quality["reprojection_error"] == pytest.approx(native_quality["reprojection_error"], abs=1e-3)
        # The conversion is exact (the box's corner and side give back SPIN's centre): the same pixels.
        np.testing.assert_array_equal(ours[sample_id]["labels"], theirs["labels"])
        np.testing.assert_array_equal(ours[sample_id]["crop"], theirs["crop"])
