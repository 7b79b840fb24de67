"""The frame of a file's 3D joints: declared per reader, checked against the values, and never used to place a
body when root-centred.

SPIN's preprocessing root-centres Human3.6M's ``S`` (``S17 -= S17[0]`` in ``datasets/preprocess/h36m.py``;
``tests/test_original_conventions.py`` runs it), mmpose's npz keeps the camera frame (its ``test_h36m.npz``,
``tests/test_readers.py``). Root-centred joints read as camera-frame ones put the camera inside the body.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from preprocessing.bodies import BodyModels, pose_bodies
from preprocessing.readers import SourceError
from preprocessing.record import Rejected
from preprocessing.render import perspective_to_screen, render_part_labels
from preprocessing.samples import CropConfig, QualityConfig
from preprocessing.samples.build import SampleBuilder
from preprocessing.samples.encode import stored_labels
from tests.reader_helpers import read_source
from tests.synth_helpers import generate

NUM = 30


def spin_rows(n: int, root_centred: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    S = np.concatenate([rng.normal(0, 0.3, (n, 24, 3)), np.ones((n, 24, 1))], axis=2)
    S[:, 14, :3] = 0.0
    if not root_centred:
        S[:, :, 2] += 5.0
        S[:, 14, :3] = [0.0, 0.0, 5.0]
    part = np.concatenate([rng.uniform(50, 150, (n, 24, 2)), np.ones((n, 24, 1))], axis=2)
    names = np.array([f"images/{i:03d}.jpg" for i in range(n)])
    return {"imgname": names, "center": np.full((n, 2), 100.0), "scale": np.full(n, 0.6), "part": part, "S": S}


@pytest.mark.parametrize("root_centred", [True, False])
def test_a_file_that_contradicts_the_declared_frame_is_refused_naming_the_option(tmp_path, root_centred):
    np.savez(tmp_path / "data.npz", **spin_rows(5, root_centred))
    wrong, right = ("camera", "root_centred") if root_centred else ("root_centred", "camera")
    with pytest.raises(SourceError, match=f"options.joints_frame is {wrong}; set options.joints_frame: {right}$"):
        read_source("spin_npz", tmp_path, "train", joints_frame=wrong)
    good, rejected = read_source("spin_npz", tmp_path, "train", joints_frame=right)
    assert len(good) == 5 and not rejected and {r.joints_frame for r in good} == {right}


def test_a_row_the_file_check_did_not_sample_is_rejected_alone(tmp_path):
    rows = spin_rows(130, root_centred=True)
    rows["S"][1, :, 2] += 5.0  # one camera-frame row among root-centred ones (the check samples 64 of 130)
    np.savez(tmp_path / "data.npz", **rows)
    good, rejected = read_source("spin_npz", tmp_path, "train")
    assert len(good) == 129 and [(r.sample_id, r.reason) for r in rejected] == [("0000001_001", "bad_annotation")]
    assert "set options.joints_frame: camera" in rejected[0].detail


@pytest.fixture(scope="module")
def frames(procedural_dir, tmp_path_factory):
    """The same synthetic Human3.6M frames as SPIN writes them (root-centred S) and as mmpose does (camera frame)."""
    root = tmp_path_factory.mktemp("frames")
    generate(procedural_dir, root / "spin", "h36m", NUM, seed=11, occluders=0.3)
    generate(procedural_dir, root / "mmpose", "h36m_mmpose", NUM, seed=11, occluders=0.3)
    return root


def _built(procedural_dir, root, **options):
    records, rejected = read_source("h36m_npz", root, "train", **options)
    assert not rejected
    built = SampleBuilder(BodyModels(procedural_dir), CropConfig(), QualityConfig()).build(records)
    return records, built


def test_root_centred_joints_never_place_the_body(procedural_dir, frames):
    """SPIN's root-centred files preprocess (at most 1 % rejected) and their part labels cover the body where the
    camera saw it: the placement comes from the 24 ground-truth joints' 2D keypoints, as PARE's; mmpose's
    camera-frame files of the same frames are placed by their joints, to the same place."""
    truth = dict(np.load(frames / "mmpose/h36m_train.npz"))
    records, built = _built(procedural_dir, frames / "spin")
    assert sum(isinstance(b, Rejected) for b in built) <= 0.01 * len(built)
    _, built_mmpose = _built(procedural_dir, frames / "mmpose", joints_frame="camera")
    bodies = BodyModels(procedural_dir)
    posed = pose_bodies(
        bodies.get(), np.stack([r.pose.reshape(24, 3) for r in records]), np.stack([r.betas for r in records])
    )
    ious = []
    for k, (sample, camera_frame) in enumerate(zip(built, built_mmpose, strict=True)):
        members = dict(sample.members)
        annotation = json.loads(members[f"{sample.key}.json"])
        labels = np.asarray(Image.open(io.BytesIO(members[f"{sample.key}.labels.png"])))
        translation = truth["S"][k, 14, :3] - posed.h36m_joints[k, 0]  # where the camera saw the pelvis
        # Metres, at 4-6 m from the camera: the fit's SPIN joints and the file's Human3.6M joints differ by a few cm.
        for placed in (annotation, json.loads(dict(camera_frame.members)[f"{camera_frame.key}.json"])):
            found = np.asarray(placed["camera"]["translation"])
            assert np.abs(found - translation)[:2].max() < 0.03 and abs(found[2] / translation[2] - 1) < 0.025
        intrinsics = np.asarray(annotation["camera"]["intrinsics"])
        screen = perspective_to_screen(posed.vertices[k], intrinsics, (np.eye(3), translation))
        size = annotation["crop"]["size"]  # rendered at the crop's side, stored every stride-th pixel (format 2)
        rendered = render_part_labels(screen, bodies.faces(), bodies.face_parts(), size, size)
        rendered = stored_labels(rendered, size // labels.shape[0])
        ious.append(((labels > 0) & (rendered > 0)).sum() / ((labels > 0) | (rendered > 0)).sum())
    assert np.mean(ious) >= 0.95 and min(ious) >= 0.9, ious
