"""Joint tables and flip permutations, checked against the published PARE/SPIN constants."""

from __future__ import annotations

import numpy as np
import pytest
import smplx.joint_names
from smplx.vertex_ids import vertex_ids

from pare_model import joint_sets as js

# Published in the original PARE/SPIN code (constants.py): reference values, not derived here.
PUBLISHED_SMPL_FLIP = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
PUBLISHED_J24_FLIP = [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16, 17, 18, 19, 21, 20, 23, 22]
PUBLISHED_J49_FLIP = [0, 1, 5, 6, 7, 2, 3, 4, 8, 12, 13, 14, 9, 10, 11, 16, 15, 18, 17, 22, 23, 24, 19, 20, 21] + [
    25 + i for i in PUBLISHED_J24_FLIP
]
PUBLISHED_JOINT_MAP = [
    24,
    12,
    17,
    19,
    21,
    16,
    18,
    20,
    0,
    2,
    5,
    8,
    1,
    4,
    7,
    25,
    26,
    27,
    28,
    29,
    30,
    31,
    32,
    33,
    34,
    8,
    5,
    45,
    46,
    4,
    7,
    21,
    19,
    17,
    16,
    18,
    20,
    47,
    48,
    49,
    50,
    51,
    52,
    53,
    24,
    26,
    25,
    28,
    27,
]


@pytest.mark.parametrize("name", sorted(js.JOINT_SETS))
def test_flip_permutation_is_an_involution_that_swaps_sides(name):
    joint_set = js.JOINT_SETS[name]
    perm = np.array(joint_set.flip_perm)
    assert sorted(perm) == list(range(joint_set.num_joints))
    assert (perm[perm] == np.arange(joint_set.num_joints)).all()
    for i, joint in enumerate(joint_set.names):
        partner = joint_set.names[perm[i]]
        assert partner == js.mirror_joint_name(joint)
        lowered = joint.lower()
        if "left" in lowered or "right" in lowered or joint.startswith(("OP L", "OP R")):
            assert perm[i] != i, f"{joint} should swap sides"
        else:
            assert perm[i] == i, f"{joint} is central and should stay"


def test_flip_permutations_match_the_published_ones():
    assert list(js.JOINT_SETS["smpl24"].flip_perm) == PUBLISHED_SMPL_FLIP
    assert list(js.JOINT_SETS["spin49"].flip_perm) == PUBLISHED_J49_FLIP


def test_spin_joint_map_matches_the_published_one():
    assert js.spin_joint_map().tolist() == PUBLISHED_JOINT_MAP


def test_tables_agree_with_smplx():
    assert js.SMPL_JOINT_NAMES[:22] == tuple(smplx.joint_names.JOINT_NAMES[:22])
    assert set(js.SMPLX_VERTEX_ID_KEYS) == set(vertex_ids["smplh"])
    assert len(js.SMPL45_JOINT_NAMES) == 45 and len(js.SPIN_JOINT_NAMES) == 49


def test_h36m_to_lsp14_keeps_sides():
    h36m = js.H36M_JOINT_NAMES
    for lsp_name, h36m_index in zip(js.LSP14_JOINT_NAMES, js.H36M_TO_LSP14, strict=True):
        if lsp_name.startswith(("left_", "right_")):
            assert h36m[h36m_index] == lsp_name
    assert h36m[js.H36M_TO_LSP14[12]] == "thorax" and h36m[js.H36M_TO_LSP14[13]] == "head"


def test_pose_flip_is_an_involution_and_negates_y_and_z():
    rng = np.random.default_rng(0)
    pose = rng.normal(size=(5, 72))
    flipped = js.flip_smpl_pose(pose)
    assert np.allclose(js.flip_smpl_pose(flipped), pose)
    left_hip, right_hip = 1, 2
    assert np.allclose(
        flipped[:, 3 * left_hip : 3 * left_hip + 3], pose[:, 3 * right_hip : 3 * right_hip + 3] * [1, -1, -1]
    )


def test_unknown_joint_set_and_joint_name_errors_list_the_choices():
    with pytest.raises(KeyError, match="spin49"):
        js.get_joint_set("coco")
    with pytest.raises(KeyError, match="left_knee"):
        js.get_joint_set("smpl24").index("left_kne")


def test_mirror_joint_name_rules():
    assert js.mirror_joint_name("OP LBigToe") == "OP RBigToe"
    assert js.mirror_joint_name("OP Nose") == "OP Nose"
    assert js.mirror_joint_name("Left Eye") == "Right Eye"
    assert js.mirror_joint_name("right_collar") == "left_collar"
    assert js.mirror_joint_name("Top of Head (LSP)") == "Top of Head (LSP)"
