"""The body model layer: same vertices as plain smplx, both file formats, joint sets, flips, errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import smplx
import torch

from pare_model.body_model import BodyModel, load_body_model, load_body_model_assets
from pare_model.body_model.assets import SEGMENTATION_PART_NAMES
from pare_model.errors import AssetError
from pare_model.geometry import axis_angle_to_matrix
from pare_model.joint_sets import H36M_TO_LSP14, JOINT_SETS, SPIN_JOINT_NAMES, flip_smpl_pose

SPIN = {name: i for i, name in enumerate(SPIN_JOINT_NAMES)}


def _random_pose(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    axis_angle = torch.randn(batch, 24, 3, generator=generator) * 0.4
    betas = torch.randn(batch, 10, generator=generator)
    return axis_angle, betas


def _forward(body: BodyModel, axis_angle: torch.Tensor, betas: torch.Tensor, transl=None) -> dict:
    rotations = axis_angle_to_matrix(axis_angle)
    with torch.no_grad():
        return body(rotations[:, :1], rotations[:, 1:], betas, transl)


def test_vertices_match_plain_smplx_on_the_same_file(procedural_dir, body_model):
    """smplx reading the pickle itself gives the same mesh, to float32 rounding (1 micrometre).

    Bit equality is not expected: smplx keeps the sparse regressor's column-major layout,
    which changes the order of float32 sums.
    """
    axis_angle, betas = _random_pose(3)
    rotations = axis_angle_to_matrix(axis_angle)
    layer = smplx.SMPLLayer(model_path=str(procedural_dir))  # smplx's own pickle loading
    with torch.no_grad():
        reference = layer(global_orient=rotations[:, :1], body_pose=rotations[:, 1:], betas=betas)
        ours = body_model(rotations[:, :1], rotations[:, 1:], betas)
        plain = smplx.SMPL(model_path=str(procedural_dir))(
            global_orient=axis_angle[:, 0], body_pose=axis_angle[:, 1:].reshape(3, -1), betas=betas
        )
    assert (ours["vertices"] - reference.vertices).abs().max() < 1e-6
    assert (ours["vertices"] - plain.vertices).abs().max() < 1e-5  # axis-angle input: Rodrigues in smplx
    assert (ours["smpl_joints"] - reference.joints[:, :24]).abs().max() < 1e-6


def test_pickle_and_npz_files_give_identical_outputs(body_model, procedural_npz_dir):
    from_npz = load_body_model(procedural_npz_dir)
    axis_angle, betas = _random_pose(2, seed=1)
    a, b = _forward(body_model, axis_angle, betas), _forward(from_npz, axis_angle, betas)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_outputs_and_joint_sets(body_model):
    axis_angle, betas = _random_pose(2, seed=2)
    transl = torch.tensor([[0.1, 0.2, 3.0], [0.0, 0.0, 5.0]])
    out = _forward(body_model, axis_angle, betas, transl)
    shapes = {
        "vertices": (2, 6890, 3),
        "joints": (2, 49, 3),
        "smpl_joints": (2, 24, 3),
        "h36m_joints": (2, 17, 3),
        "lsp14_joints": (2, 14, 3),
    }
    assert {k: tuple(v.shape) for k, v in out.items()} == shapes
    joints, smpl = out["joints"], out["smpl_joints"]
    assert torch.equal(joints[:, SPIN["Right Ankle"]], smpl[:, 8])
    assert torch.equal(joints[:, SPIN["OP MidHip"]], smpl[:, 0])
    assert torch.equal(joints[:, SPIN["OP Nose"]], out["vertices"][:, 332])  # smplx's nose vertex
    assert torch.equal(out["lsp14_joints"], out["h36m_joints"][:, list(H36M_TO_LSP14)])
    centred = out["vertices"] - transl[:, None]
    assert centred[:, :, 2].abs().max() < 1.5  # translation is applied to the body


def test_mirrored_pose_gives_the_mirrored_body(procedural_dir, body_model):
    """A flipped pose must produce the mirror image: this checks every flip table at once."""
    from pare_model.safe_pickle import load_pickle

    vert_sym = load_pickle(procedural_dir / "SMPL_NEUTRAL.pkl")["vert_sym_idxs"]  # the file's own map
    axis_angle, _ = _random_pose(2, seed=3)
    betas = torch.zeros(2, 10)
    flipped_pose = torch.as_tensor(flip_smpl_pose(axis_angle.reshape(2, 72).numpy())).reshape(2, 24, 3)
    original, flipped = _forward(body_model, axis_angle, betas), _forward(body_model, flipped_pose, betas)
    mirror_x = torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(flipped["vertices"], (original["vertices"] * mirror_x)[:, vert_sym], atol=1e-5)
    for key, joint_set in (
        ("joints", "spin49"),
        ("smpl_joints", "smpl24"),
        ("h36m_joints", "h36m17"),
        ("lsp14_joints", "lsp14"),
    ):
        perm = list(JOINT_SETS[joint_set].flip_perm)
        assert torch.allclose(flipped[key], (original[key] * mirror_x)[:, perm], atol=1e-5), key


def test_gradients_reach_pose_and_shape(body_model):
    axis_angle, betas = _random_pose(1, seed=4)
    axis_angle.requires_grad_(True)
    betas.requires_grad_(True)
    rotations = axis_angle_to_matrix(axis_angle)
    body_model(rotations[:, :1], rotations[:, 1:], betas)["joints"].sum().backward()
    assert axis_angle.grad.abs().sum() > 0 and betas.grad.abs().sum() > 0


def test_part_map_defaults_to_argmax_and_reads_files(procedural_dir, body_model, tmp_path):
    weights = load_body_model_assets(procedural_dir).model["weights"]
    default = body_model.part_map.numpy()
    assert np.array_equal(default, weights.argmax(1))
    assert set(default) == set(range(24))
    np.save(tmp_path / "parts.npy", default)
    segmentation = {name: np.flatnonzero(default == k).tolist() for k, name in enumerate(SEGMENTATION_PART_NAMES)}
    (tmp_path / "parts.json").write_text(json.dumps(segmentation))
    for name in ("parts.npy", "parts.json"):
        loaded = load_body_model_assets(procedural_dir, part_map_file=tmp_path / name).part_map
        assert np.array_equal(loaded, default)
    del segmentation["head"]
    (tmp_path / "partial.json").write_text(json.dumps(segmentation))
    with pytest.raises(AssetError, match="every vertex needs a part"):
        load_body_model_assets(procedural_dir, part_map_file=tmp_path / "partial.json")


def test_genders_and_official_file_names(procedural_dir, tmp_path):
    heights = {}
    for gender in ("male", "female"):
        body = load_body_model(procedural_dir, gender)
        out = _forward(body, torch.zeros(1, 24, 3), torch.zeros(1, 10))
        heights[gender] = float(out["vertices"][0, :, 1].max() - out["vertices"][0, :, 1].min())
    assert heights["male"] > heights["female"]
    official = tmp_path / "official"
    official.mkdir()
    shutil.copy(procedural_dir / "SMPL_NEUTRAL.pkl", official / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl")
    for name in ("J_regressor_extra.npy", "J_regressor_h36m.npy", "smpl_mean_params.npz"):
        shutil.copy(procedural_dir / name, official / name)
    assert load_body_model_assets(official).source.endswith("basicModel_neutral_lbs_10_207_0_v1.0.0.pkl")


def _copy_folder(source, target, skip=()):
    target.mkdir()
    for path in source.iterdir():
        if path.name not in skip:
            shutil.copy(path, target / path.name)
    return target


def test_missing_and_malformed_assets_are_named(procedural_dir, tmp_path):
    with pytest.raises(AssetError, match="does not exist.*smpl.is.tue.mpg.de"):
        load_body_model_assets(tmp_path / "nowhere")
    no_model = _copy_folder(procedural_dir, tmp_path / "a", skip={"SMPL_NEUTRAL.pkl"})
    with pytest.raises(AssetError, match="SMPL_NEUTRAL.pkl.*found"):
        load_body_model_assets(no_model)
    no_extra = _copy_folder(procedural_dir, tmp_path / "b", skip={"J_regressor_extra.npy"})
    with pytest.raises(AssetError, match="J_regressor_extra.npy"):
        load_body_model_assets(no_extra)
    wrong = _copy_folder(procedural_dir, tmp_path / "c")
    np.save(wrong / "J_regressor_h36m.npy", np.zeros((14, 6890)))
    with pytest.raises(AssetError, match=r"J_regressor_h36m.npy.*\(14, 6890\).*\(17, 6890\)"):
        load_body_model_assets(wrong)


def test_bad_model_arrays_are_named(procedural_npz_dir, tmp_path):
    folder = _copy_folder(procedural_npz_dir, tmp_path / "npz")
    with np.load(folder / "SMPL_NEUTRAL.npz") as archive:
        arrays = {key: archive[key] for key in archive.files}
    broken = dict(arrays, shapedirs=arrays["shapedirs"][:, :, :5])
    np.savez(folder / "SMPL_NEUTRAL.npz", **broken)
    with pytest.raises(AssetError, match="shapedirs"):
        load_body_model_assets(folder)
    nan = dict(arrays, v_template=np.full_like(arrays["v_template"], np.nan))
    np.savez(folder / "SMPL_NEUTRAL.npz", **nan)
    with pytest.raises(AssetError, match="NaN"):
        load_body_model_assets(folder)
    missing = {key: value for key, value in arrays.items() if key != "posedirs"}
    np.savez(folder / "SMPL_NEUTRAL.npz", **missing)
    with pytest.raises(AssetError, match="posedirs"):
        load_body_model_assets(folder)


def test_part_label_conventions():
    from pare_model.body_model.parts import NUM_PART_LABELS, PART_NAMES, face_parts, label_flip_perm

    assert face_parts(np.array([[0, 1, 2], [2, 3, 1]]), np.array([5, 3, 9, 7])).tolist() == [3, 3]
    perm = label_flip_perm()
    assert len(perm) == NUM_PART_LABELS == 25 and perm[0] == 0  # background stays
    assert (perm[perm] == np.arange(25)).all()
    left_hip_label = PART_NAMES.index("left_hip") + 1
    assert PART_NAMES[perm[left_hip_label] - 1] == "right_hip"
