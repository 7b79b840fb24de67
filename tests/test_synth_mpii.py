"""``pare synth --layout mpii``: the official ``.mat`` structure via scipy and the JSON list form."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io
from PIL import Image

from tests.conftest import require_real_fixture
from tests.synth_helpers import generate, on_foreground

NUM = 6  # image 5 (index 4) is a test image


@pytest.fixture(scope="module")
def mpii(procedural_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_mpii")
    run = generate(procedural_dir, out, "mpii", NUM, seed=2, occluders=0.5, preview=True)
    release = scipy.io.loadmat(out / "mpii_human_pose_v1_u12_1.mat", struct_as_record=False, squeeze_me=True)["RELEASE"]
    entries = json.loads((out / "annot" / "train.json").read_text())
    return out, release, entries, run


def _points(annorect) -> list:
    points = annorect.annopoints.point
    return [points] if not isinstance(points, np.ndarray) else list(points)


def test_mat_has_the_official_structure(mpii):
    out, release, _, _ = mpii
    assert set(release._fieldnames) >= {"annolist", "img_train", "single_person", "act", "video_list"}
    assert len(release.annolist) == NUM and release.img_train.shape == (NUM,)
    np.testing.assert_array_equal(release.img_train, [1, 1, 1, 1, 0, 1])
    for k, image in enumerate(release.annolist):
        assert Image.open(out / "images" / image.image.name).size[0] > 0
        rect = image.annorect  # one person: a scalar struct, as with the real file
        assert {"scale", "objpos"} <= set(rect._fieldnames) and rect.scale > 0
        if release.img_train[k] == 0:
            assert "annopoints" not in rect._fieldnames  # test images carry no joints
            continue
        assert rect.x1 < rect.x2 and rect.y1 < rect.y2
        points = _points(rect)
        ids = [int(p.id) for p in points]
        assert len(set(ids)) == len(ids) >= 10 and set(ids) <= set(range(16))
        assert {int(p.is_visible) for p in points} <= {0, 1}
        head_top = next(p for p in points if p.id == 9)
        # The head-top joint lies in (or at the top edge of) the head box.
        assert rect.x1 - 2 <= head_top.x <= rect.x2 + 2 and rect.y1 - 3 <= head_top.y <= rect.y2 + 2


def test_json_matches_the_real_sample_and_the_mat(mpii):
    _, release, entries, _ = mpii
    real = json.loads(require_real_fixture("mmpose/mpii/test_mpii.json").read_text())
    assert len(entries) == int(release.img_train.sum())
    train_images = [image for image, train in zip(release.annolist, release.img_train, strict=True) if train]
    for entry, image in zip(entries, train_images, strict=True):
        assert set(entry) == set(real[0])
        assert np.array(entry["joints"]).shape == np.array(real[0]["joints"]).shape == (16, 2)
        assert len(entry["joints_vis"]) == 16 and set(entry["joints_vis"]) <= {0, 1}
        assert entry["image"] == image.image.name
        rect = image.annorect
        assert entry["center"] == pytest.approx([rect.objpos.x, rect.objpos.y]) and entry["scale"] == rect.scale
        for point in _points(rect):
            assert entry["joints"][point.id] == pytest.approx([point.x, point.y])
            assert entry["joints_vis"][point.id] == 1
        missing = set(range(16)) - {int(p.id) for p in _points(rect)}
        assert all(entry["joints"][j] == [-1.0, -1.0] and entry["joints_vis"][j] == 0 for j in missing)


def test_visible_joints_lie_on_the_rendered_body(mpii):
    """The preview tiles carry the rendered labels: visible MPII joints fall on labelled pixels."""
    _, _, _, run = mpii
    hits = total = 0
    for tile in run.result.previews:
        visible = tile.visible == 2
        hits += on_foreground(tile.labels, tile.keypoints[visible]).sum()
        total += visible.sum()
    assert total > 30 and hits >= 0.9 * total
    assert run.preview_png.is_file()
