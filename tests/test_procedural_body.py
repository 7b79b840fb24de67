"""The procedural stand-in: SMPL's sizes and topology, a human shape, a sane rig, exact symmetry."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from smplx.vertex_ids import vertex_ids

from pare_model.body_model.procedural.design import design_joints
from pare_model.body_model.procedural.files import write_asset_folder
from pare_model.body_model.procedural.generator import generate
from pare_model.body_model.procedural.landmarks import extra_joint_targets, h36m_joint_targets
from pare_model.body_model.procedural.mesh import signed_volume, topology_report, vertex_normals
from pare_model.joint_sets import SMPL_JOINT_NAMES
from tests.conftest import require_real_fixture

J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
IDS = vertex_ids["smplh"]


@pytest.fixture(scope="module")
def neutral(procedural_model):
    return procedural_model.models["neutral"]


def test_sizes_and_dtypes_match_smpl(neutral):
    expected = {
        "v_template": (6890, 3),
        "f": (13776, 3),
        "weights": (6890, 24),
        "J_regressor": (24, 6890),
        "J": (24, 3),
        "kintree_table": (2, 24),
        "posedirs": (6890, 3, 207),
        "shapedirs": (6890, 3, 10),
    }
    for key, shape in expected.items():
        assert neutral[key].shape == shape, key
    assert neutral["f"].dtype == np.uint32


def test_surface_is_one_closed_outward_genus0_mesh(neutral):
    faces = neutral["f"].astype(np.int64)
    report = topology_report(faces, 6890)
    assert report["closed_oriented_genus0"], report
    assert report["degenerate_faces"] == 0
    vertices = neutral["v_template"]
    assert signed_volume(vertices, faces) > 0.04  # about 65 litres, outward normals
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    assert np.linalg.norm(np.cross(b - a, c - a), axis=1).min() > 1e-8


def test_rest_shape_has_human_proportions(neutral):
    vertices, joints = neutral["v_template"], neutral["J"]
    height = np.ptp(vertices[:, 1])
    assert 1.6 < height < 1.8
    arm_span = np.ptp(vertices[:, 0])
    assert 0.9 * height < arm_span < 1.1 * height  # T-pose: arm span is about the height
    assert joints[J["head"], 1] > joints[J["neck"], 1] > joints[J["spine3"], 1] > joints[J["pelvis"], 1]
    assert joints[J["pelvis"], 1] > joints[J["left_knee"], 1] > joints[J["left_ankle"], 1]
    for name in ("hip", "knee", "ankle", "collar", "shoulder", "elbow", "wrist", "hand"):
        assert joints[J["left_" + name], 0] > 0 > joints[J["right_" + name], 0]  # left is +x, as in SMPL
    assert vertices[IDS["nose"], 2] == vertices[:, 2][vertices[:, 1] > 0.3].max()  # the face looks towards +z


def test_template_and_rig_are_mirror_symmetric(neutral):
    mirror = neutral["vert_sym_idxs"]
    assert (mirror[mirror] == np.arange(6890)).all()
    assert np.allclose(neutral["v_template"][mirror] * [-1, 1, 1], neutral["v_template"], atol=1e-9)
    flip = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
    assert np.allclose(neutral["weights"][mirror][:, flip], neutral["weights"], atol=1e-12)


def test_skinning_weights_are_sparse_convex_and_cover_every_part(neutral):
    weights = neutral["weights"]
    assert (weights >= 0).all() and np.allclose(weights.sum(1), 1)
    assert ((weights > 0).sum(1) <= 4).all()
    parts = weights.argmax(1)
    counts = np.bincount(parts, minlength=24)
    assert counts.min() >= 40, dict(zip(SMPL_JOINT_NAMES, counts, strict=True))
    centroids = np.stack([neutral["v_template"][parts == p].mean(0) for p in range(24)])
    assert centroids[J["head"], 1] == centroids[:, 1].max()
    assert centroids[[J["left_foot"], J["right_foot"]], 1].max() < centroids[J["left_knee"], 1]
    assert centroids[J["left_hand"], 0] == centroids[:, 0].max()


def test_regressors_are_convex_and_hit_their_targets(procedural_model, neutral):
    nominal = neutral["v_template"] - neutral["shapedirs"] @ procedural_model.identity_betas
    for regressor, targets in (
        (neutral["J_regressor"], design_joints()),
        (procedural_model.j_regressor_extra, extra_joint_targets()),
        (procedural_model.j_regressor_h36m, h36m_joint_targets()),
    ):
        assert (regressor >= 0).all() and np.allclose(regressor.sum(1), 1)
        assert np.abs(regressor @ nominal - targets).max() < 2e-3
    assert np.allclose(neutral["J"], neutral["J_regressor"] @ neutral["v_template"])


def _height(vertices: np.ndarray) -> float:
    return float(np.ptp(vertices[:, 1]))


@pytest.mark.parametrize(
    "component, measure, low, high",
    [
        (0, lambda v, j: _height(v), 0.05, 0.10),  # stature: metres of height per unit
        (2, lambda v, j: j[J["left_hip"], 1] - j[J["left_ankle"], 1], 0.02, 0.05),  # leg length
        (3, lambda v, j: v[:, 0].max(), 0.02, 0.04),  # arm length
        (4, lambda v, j: j[J["left_shoulder"], 0] - j[J["right_shoulder"], 0], 0.02, 0.05),  # shoulders
        (1, lambda v, j: np.ptp(v[np.abs(v[:, 1] + 0.1) < 0.01][:, 2]), 0.01, 0.05),  # waist depth
    ],
)
def test_shape_components_change_the_body_plausibly(neutral, component, measure, low, high):
    def shaped(beta: float):
        betas = np.zeros(10)
        betas[component] = beta
        vertices = neutral["v_template"] + neutral["shapedirs"] @ betas
        return measure(vertices, neutral["J_regressor"] @ vertices)

    change_per_unit = (shaped(1.0) - shaped(-1.0)) / 2
    assert low < change_per_unit < high


@pytest.mark.parametrize("beta", [-3.0, 3.0])
def test_extreme_shapes_stay_valid_surfaces(neutral, beta):
    faces = neutral["f"].astype(np.int64)
    rest_normals = vertex_normals(neutral["v_template"], faces)
    for component in range(10):
        betas = np.zeros(10)
        betas[component] = beta
        vertices = neutral["v_template"] + neutral["shapedirs"] @ betas
        assert signed_volume(vertices, faces) > 0.02
        agreement = (vertex_normals(vertices, faces) * rest_normals).sum(1)
        assert np.quantile(agreement, 0.001) > 0.0, f"component {component} folds the surface"


def test_pose_blend_shapes_bulge_a_bent_knee(neutral):
    posedirs = neutral["posedirs"].reshape(-1, 207).T  # (207, V * 3), as smplx stores it
    angle = np.pi / 2
    bend = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    feature = np.zeros((23, 3, 3))
    feature[J["left_knee"] - 1] = bend - np.eye(3)
    offsets = (feature.reshape(-1) @ posedirs).reshape(6890, 3)
    moved = np.linalg.norm(offsets, axis=1)
    assert 0.005 < moved.max() < 0.03
    knee = neutral["J"][J["left_knee"]]
    assert np.linalg.norm(neutral["v_template"][moved.argmax()] - knee) < 0.1
    assert np.allclose(np.zeros(207) @ posedirs, 0)


def test_smplx_landmark_vertices_sit_where_their_names_say(neutral):
    v = neutral["v_template"]
    assert v[IDS["leye"], 0] > 0 > v[IDS["reye"], 0] and v[IDS["leye"], 1] > v[IDS["nose"], 1]
    assert v[IDS["lear"], 0] > v[IDS["leye"], 0] and v[IDS["lear"], 2] < v[IDS["leye"], 2]
    ankle = neutral["J"][J["left_ankle"]]
    assert v[IDS["LHeel"], 2] < ankle[2] < v[IDS["LBigToe"], 2]
    assert v[IDS["LBigToe"], 0] < v[IDS["LSmallToe"], 0]  # big toe on the inner side
    wrist = neutral["J"][J["left_wrist"]]
    for key in ("lthumb", "lindex", "lmiddle", "lring", "lpinky"):
        assert v[IDS[key], 0] > wrist[0]
    assert v[IDS["lthumb"], 2] > v[IDS["lindex"], 2] > v[IDS["lring"], 2] > v[IDS["lpinky"], 2]


def test_genders_and_seeds_differ_in_shape_only(procedural_model):
    models = procedural_model.models
    assert (
        _height(models["male"]["v_template"])
        > _height(models["neutral"]["v_template"])
        > _height(models["female"]["v_template"])
    )
    other = generate(1)
    assert not np.allclose(other.models["neutral"]["v_template"], models["neutral"]["v_template"])
    for key in ("f", "weights", "J_regressor", "posedirs", "shapedirs"):
        assert np.array_equal(other.models["neutral"][key], models["neutral"][key])


def test_mean_params_follow_the_real_file_layout(procedural_model):
    real = np.load(require_real_fixture("mmpose/smpl/smpl_mean_params.npz"))
    ours = procedural_model.mean_params
    for key in ("pose", "shape", "cam"):
        assert ours[key].shape == real[key].shape and ours[key].dtype == real[key].dtype
    assert np.allclose(ours["pose"][:6], real["pose"][:6], atol=1e-5)  # upright in the camera frame
    assert np.allclose(ours["cam"], real["cam"])


def _digests(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_gives_the_same_bytes_across_processes(procedural_dir, tmp_path):
    script = (
        "import sys; from pathlib import Path;"
        "from pare_model.body_model.procedural.generator import generate;"
        "from pare_model.body_model.procedural.files import write_asset_folder;"
        "write_asset_folder(generate(0), Path(sys.argv[1]), 'pkl')"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "again")], check=True)
    assert _digests(tmp_path / "again") == _digests(procedural_dir)


def test_npz_files_are_reproducible_too(procedural_model, procedural_npz_dir, tmp_path):
    write_asset_folder(procedural_model, tmp_path / "npz", "npz")
    assert _digests(tmp_path / "npz") == _digests(procedural_npz_dir)


def test_folder_is_labelled_as_a_stand_in(procedural_dir):
    readme = (procedural_dir / "README.md").read_text()
    assert "NOT SMPL" in readme
    from pare_model.safe_pickle import load_pickle

    contents = load_pickle(procedural_dir / "SMPL_NEUTRAL.pkl")
    assert contents["procedural_stand_in"] is True and "NOT SMPL" in contents["notice"]
    assert "NOT SMPL" in str(np.load(procedural_dir / "smpl_mean_params.npz")["notice"])


def test_generator_rejects_negative_seeds():
    with pytest.raises(ValueError, match="seed"):
        generate(-1)


def test_posed_mesh_keeps_its_volume(body_model):
    from pare_model.geometry import axis_angle_to_matrix

    pose = torch.zeros(1, 24, 3)
    pose[0, J["left_knee"], 0] = 1.2
    pose[0, J["right_elbow"], 1] = 1.2
    rotations = axis_angle_to_matrix(pose)
    with torch.no_grad():
        posed = body_model(rotations[:, :1], rotations[:, 1:], torch.zeros(1, 10))["vertices"][0].numpy()
        rest = body_model(torch.eye(3)[None, None], torch.eye(3).repeat(1, 23, 1, 1), torch.zeros(1, 10))["vertices"][
            0
        ].numpy()
    faces = body_model.faces.numpy()
    assert signed_volume(posed, faces) == pytest.approx(signed_volume(rest, faces), rel=0.03)
