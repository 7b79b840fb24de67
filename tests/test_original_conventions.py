"""Joint conventions and protocols against the original code's output on the same inputs.

``tests/data/original_conventions.npz`` holds inputs and the numbers the ORIGINAL code computed from them (run
in a scratch environment outside the repository, never copied here):

- mkocabas/PARE at f848b2f (through ``../shared/tools/original-pare``'s glue):
  ``pare.utils.geometry.estimate_translation(joints49, keypoints49, focal_length=5000., img_size=224.)`` with
  ``use_all_joints=False`` (``pare_translation``, what ``PARETrainer.training_step`` places its part labels
  with) and ``True`` (``pare_translation_all49``); ``PARETrainer.validation_step`` run on a stand-in trainer
  whose "mesh" is ``eval_pred17`` and whose ``J_regressor`` is the identity, with ``batch['pose_3d'] =
  eval_S[:, J24_TO_J14, :-1]`` as ``BaseDataset.__getitem__`` builds it for Human3.6M (``pare_mpjpe``,
  ``pare_pa_mpjpe`` in metres, ``pare_per_joint_*``), and ``pare.core.constants``' index tables;
- nkolot/SPIN: ``datasets/preprocess/h36m.py`` ``h36m_extract(protocol=2)`` on a Human3.6M-layout folder
  holding one S9 ``D3_Positions_mono`` CDF of ``h36m_pose32`` (millimetres, the 32-joint layout; read
  through cdflib for spacepy) and its masks (``spin_h36m_S``: frames 1, 6, 11), and
  ``datasets/preprocess/mpi_inf_3dhp.py`` ``mpi_inf_3dhp_extract(mode='test')`` on a TS1 ``annot_data.mat``
  holding ``mpi_test17`` (metres, MPI-INF-3DHP's 17 test joints) and ``mpi_pixels17`` (``spin_mpi_S``,
  ``spin_mpi_part``);
- open-mmlab/mmhuman3d: ``convert_kps`` as its ``H36mConverter`` (``'h36m'``), ``MpiInf3dhpConverter``
  test set (``'mpi_inf_3dhp_test'``) and ``SpinConverter`` (``'smpl_24'``) call it, with joint ``k`` carrying
  the value ``k + 1``: where each joint lands among the 190 ``human_data`` keypoints, and the masks.

The inputs are posed seed-0 procedural bodies (``fit_pose``, ``fit_betas``), the body model of the tests.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pare_model.joint_sets import GT24_TO_LSP14, GT24_TO_MPI_INF_3DHP17, H36M_TO_LSP14
from pare_model.metrics import protocol_joints
from pipelines.evaluation.measure import errors, ground_truth
from pipelines.evaluation.predictors import ContextSpec, EvalContext
from preprocessing.bodies import BodyModels, pose_bodies
from preprocessing.keypoints import (
    NUM_OPENPOSE,
    SPIN_IN_HUMAN_DATA,
    h36m17_as_spin_gt,
    h36m17_human_data_indices,
    human_data_indices,
)
from preprocessing.readers.h36m_raw import H36M32_TO_17
from preprocessing.record import ImageRef, SampleRecord
from preprocessing.samples import CropConfig, QualityConfig
from preprocessing.samples.build import SampleBuilder
from preprocessing.synth.h36m_capture import all_cameras
from preprocessing.synth.layouts.h36m_raw import write_cdf
from preprocessing.synth.layouts.humandata import attributes, masked_keypoints, object_member
from tests.reader_helpers import read_source

ORIGINAL = np.load(Path(__file__).parent / "data" / "original_conventions.npz")


def test_index_tables_are_the_originals():
    assert GT24_TO_LSP14 == tuple(ORIGINAL["pare_J24_TO_J14"])  # slots 0-12, then 18 "Head (H36M)"
    assert GT24_TO_MPI_INF_3DHP17 == tuple(ORIGINAL["pare_J24_TO_J17"])
    assert H36M_TO_LSP14 == tuple(ORIGINAL["pare_H36M_TO_J14"])


def test_human36m_evaluation_gives_the_original_validation_step_numbers(procedural_dir):
    """SPIN-style root-centred ``S`` (head in slot 18, slot 13 empty) against predicted Human3.6M joints."""
    context = EvalContext(ContextSpec(str(procedural_dir), predictor="mean_pose"))
    count = len(ORIGINAL["eval_S"])
    batch = {
        "has_smpl": torch.zeros(count),
        "has_joints_3d": torch.ones(count),
        "pose": torch.zeros(count, 72),
        "betas": torch.zeros(count, 10),
        "joints_3d": torch.as_tensor(ORIGINAL["eval_S"], dtype=torch.float32),
    }
    target = ground_truth(context, batch)
    assert target.keep.all() and not target.incomplete.any()
    predicted = protocol_joints(torch.as_tensor(ORIGINAL["eval_pred17"], dtype=torch.float64))
    ours = errors(predicted, torch.zeros_like(target.vertices), torch.eye(3).expand(count, 3, 3), target)
    np.testing.assert_allclose(ours["mpjpe"], ORIGINAL["pare_mpjpe"] * 1000, atol=1e-3)
    np.testing.assert_allclose(ours["pa_mpjpe"], ORIGINAL["pare_pa_mpjpe"] * 1000, atol=1e-3)
    np.testing.assert_allclose(ours["per_joint_mpjpe"], ORIGINAL["pare_per_joint_mpjpe"] * 1000, atol=1e-3)
    np.testing.assert_allclose(ours["per_joint_pa_mpjpe"], ORIGINAL["pare_per_joint_pa_mpjpe"] * 1000, atol=1e-3)


def test_part_labels_are_placed_as_the_original_places_them(procedural_dir, tmp_path):
    """A record without a camera: the builder's camera is PARE's estimate_translation on the 24 ground-truth
    joints' keypoints only (OpenPose detections off by 6 px do not move it; with them it would move)."""
    fits = pose_bodies(BodyModels(procedural_dir).get(), ORIGINAL["fit_pose"], ORIGINAL["fit_betas"])
    np.testing.assert_allclose(fits.joints, ORIGINAL["fit_joints49"], atol=1e-6)  # the same bodies as the original's
    Image.new("RGB", (224, 224)).save(tmp_path / "crop.jpg")
    records = [
        SampleRecord(
            "ref",
            "train",
            f"{k}",
            ImageRef(str(tmp_path / "crop.jpg")),
            np.array([112.0, 112.0]),
            224.0,
            keypoints,
            pose=pose.reshape(72),
            betas=betas,
        )
        for k, (keypoints, pose, betas) in enumerate(
            zip(ORIGINAL["keypoints49"], ORIGINAL["fit_pose"], ORIGINAL["fit_betas"], strict=True)
        )
    ]
    quality = QualityConfig(min_keypoints_in_silhouette=0, max_reprojection_error=0)
    built = SampleBuilder(BodyModels(procedural_dir), CropConfig(), quality).build(records)
    for k, sample in enumerate(built):
        annotation = json.loads(dict(sample.members)[f"{sample.key}.json"])
        translation = np.asarray(annotation["camera"]["translation"])
        np.testing.assert_allclose(translation, ORIGINAL["pare_translation"][k], rtol=2e-6, atol=1e-6)
        assert np.abs(translation - ORIGINAL["pare_translation_all49"][k]).max() > 5e-3  # what 49 joints give


@pytest.fixture(scope="module")
def spin_h36m_root(tmp_path_factory) -> Path:
    """The Human3.6M folder SPIN read: S9's CDF of the 32 joints, and a cameras pickle for the frontal camera."""
    root = tmp_path_factory.mktemp("spin_h36m")
    write_cdf(root / "S9/MyPoseFeatures/D3_Positions_mono/Directions 1.60457274.cdf", ORIGINAL["h36m_pose32"])
    cameras = all_cameras(0, 1.0)
    (root / "cameras.pkl").write_bytes(pickle.dumps({("S9", "60457274"): cameras["S9", "60457274"]}, protocol=2))
    return root


def test_human36m_readers_and_layouts_hold_spin_s(spin_h36m_root):
    """The raw reader's joints, root-centred, are SPIN's ``S`` slot for slot (head in 18, 13 empty); the synthetic
    layouts' conversion of the same 17 joints writes it."""
    good, rejected = read_source("h36m", spin_h36m_root, "test", cameras="cameras.pkl")
    assert not rejected and [f"images/{r.sample_id}.jpg" for r in good] == ORIGINAL["spin_h36m_imgname"].tolist()
    for record, spin in zip(good, ORIGINAL["spin_h36m_S"], strict=True):
        joints = record.joints_3d
        assert record.joints_frame == "camera" and joints[14, 2] > 3.0
        valid = spin[:, 3] > 0
        np.testing.assert_array_equal(joints[:, 3], spin[:, 3])
        np.testing.assert_allclose(joints[valid, :3] - joints[14, :3], spin[valid, :3], atol=1e-9)
        assert not joints[~valid].any()  # the 7 joints Human3.6M lacks stay empty (13 "Top of Head (LSP)" too)
    kept = ORIGINAL["h36m_pose32"].reshape(-1, 32, 3)[::5, H36M32_TO_17] / 1000.0
    for joints17, spin in zip(kept, ORIGINAL["spin_h36m_S"], strict=True):
        np.testing.assert_allclose(h36m17_as_spin_gt(joints17 - joints17[0]), spin, atol=1e-9)


def test_mpi_inf_3dhp_17_joints_land_in_spins_slots(tmp_path):
    """mmpose's 17-joint 3DHP npz (MPI-INF-3DHP's test order, camera frame) read into SPIN's slots: head top in 18,
    head in 17, as SPIN's own test file, so that J24_TO_J17 takes what the original takes."""
    count = len(ORIGINAL["mpi_test17"])
    part = np.concatenate([ORIGINAL["mpi_pixels17"], np.ones((count, 17, 1))], axis=2)
    S = np.concatenate([ORIGINAL["mpi_test17"], np.ones((count, 17, 1))], axis=2)
    arrays = {"imgname": np.array(["a.jpg", "b.jpg"]), "center": np.full((2, 2), 1024.0), "scale": np.full(2, 5.0)}
    np.savez(tmp_path / "test.npz", **arrays, part=part, S=S)
    options = {"joints": "mpi_inf_3dhp17", "joints_frame": "camera", "pixel_offset": 0.0}
    good, rejected = read_source("spin_npz", tmp_path, "test", **options)
    assert not rejected
    for record, spin_S, spin_part in zip(good, ORIGINAL["spin_mpi_S"], ORIGINAL["spin_mpi_part"], strict=True):
        joints, valid = record.joints_3d, spin_S[:, 3] > 0
        np.testing.assert_array_equal(joints[:, 3], spin_S[:, 3])
        np.testing.assert_allclose(joints[valid, :3] - joints[14, :3], spin_S[valid, :3], atol=1e-9)
        assert not joints[~valid].any()
        np.testing.assert_allclose(record.keypoints_2d[NUM_OPENPOSE:], spin_part, atol=1e-9)


def _human_data_file(path: Path, joints17: np.ndarray, indices: np.ndarray, mask: np.ndarray, config: str) -> None:
    """A HumanData file whose ``keypoints3d`` / ``keypoints2d`` hold 17 joints at ``indices`` (uncompressed)."""
    count = len(joints17)
    ones = np.ones((count, 17, 1))
    full3d, _ = masked_keypoints(np.concatenate([joints17, ones], axis=2), indices, compressed=False)
    full2d, _ = masked_keypoints(np.concatenate([joints17[..., :2] * 100 + 500, ones], axis=2), indices, False)
    members = {
        "image_path": np.array(
            [f"S9/images/S9_Directions_1.60457274/S9_Directions_1.60457274_{k:06d}.jpg" for k in range(count)]
        ),
        "bbox_xywh": np.tile([400.0, 300.0, 300.0, 300.0, 1.0], (count, 1)),
        "keypoints2d": full2d,
        "keypoints2d_mask": mask,
        "keypoints3d": full3d,
        "keypoints3d_mask": mask,
        "smpl": object_member(
            {
                "global_orient": np.zeros((count, 3)),
                "body_pose": np.zeros((count, 23, 3)),
                "betas": np.zeros((count, 10)),
            }
        ),
        "config": np.array(config),
    }
    np.savez(path, **members, **attributes(count, compressed=False))


@pytest.mark.parametrize("config", ["h36m", "mpi_inf_3dhp"])
def test_human_data_files_of_mmhumans_converters_land_in_spins_slots(tmp_path, config):
    """mmhuman3d names Human3.6M's head ``headtop`` and its neck/nose ``head_extra``; read by name into SPIN's
    convention they land in slots 18 and 17 (slot 13 empty), where SPIN's own files hold them."""
    indices = ORIGINAL["mmhuman3d_h36m_in_human_data"]
    np.testing.assert_array_equal(h36m17_human_data_indices(), indices)
    test_order = ORIGINAL["mmhuman3d_mpi_inf_3dhp_test_in_human_data"]  # 3DHP's test joints carry the same names
    assert sorted(test_order.tolist()) == sorted(indices.tolist())
    joints17 = ORIGINAL["h36m_pose32"].reshape(-1, 32, 3)[::5, H36M32_TO_17] / 1000.0
    joints17 = joints17 - joints17[:, :1]  # pelvis-relative, as the converters write them
    mask = ORIGINAL["mmhuman3d_h36m_mask"]
    assert not mask[SPIN_IN_HUMAN_DATA["Jaw (H36M)"][1]] and ORIGINAL["mmhuman3d_smpl_24_mask"][151]
    _human_data_file(tmp_path / "data.npz", joints17, indices, mask, config)
    good, rejected = read_source("humandata", tmp_path, "test", protocol=1)
    assert not rejected and len(good) == len(joints17)
    for record, spin in zip(good, ORIGINAL["spin_h36m_S"], strict=True):
        assert record.joints_frame == "root_centred"
        np.testing.assert_array_equal(record.joints_3d[:, 3], spin[:, 3])
        np.testing.assert_allclose(record.joints_3d[:, :3], spin[:, :3], atol=1e-9)
        np.testing.assert_array_equal(record.keypoints_2d[NUM_OPENPOSE:, 2], spin[:, 3])


def test_spin_files_converted_by_mmhuman3d_keep_spins_naming(tmp_path):
    """SpinConverter's files (``smpl_24`` -> ``human_data``; their mask holds ``jaw_extra``) of config h36m keep the
    plain mapping: SPIN's slot 18 came in as ``head_extra`` and goes back to 18."""
    spin_in_human_data = ORIGINAL["mmhuman3d_smpl_24_mask"]
    count = len(ORIGINAL["spin_h36m_S"])
    positions = ORIGINAL["mmhuman3d_smpl_24_in_human_data"]
    np.testing.assert_array_equal(human_data_indices()[NUM_OPENPOSE:], positions)
    full, _ = masked_keypoints(ORIGINAL["spin_h36m_S"], positions, compressed=False)
    full2d, _ = masked_keypoints(
        ORIGINAL["spin_h36m_S"][..., [0, 1, 3]] * [100, 100, 1] + [500, 500, 0], positions, False
    )
    members = {
        "image_path": np.array([f"S9_Directions_1.60457274_{k:06d}.jpg" for k in range(count)]),
        "bbox_xywh": np.tile([400.0, 300.0, 300.0, 300.0, 1.0], (count, 1)),
        "keypoints2d": full2d,
        "keypoints2d_mask": spin_in_human_data,
        "keypoints3d": full,
        "keypoints3d_mask": spin_in_human_data,
        "config": np.array("h36m"),
    }
    np.savez(tmp_path / "data.npz", **members, **attributes(count, compressed=False))
    good, _ = read_source("humandata", tmp_path, "test", protocol=1)
    for record, spin in zip(good, ORIGINAL["spin_h36m_S"], strict=True):
        np.testing.assert_allclose(record.joints_3d, spin, atol=1e-9)
