"""``pare synth --layout coco_eft``: COCO keypoints JSON plus EFT fits, checked with pycocotools and json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

from preprocessing.keypoints import COCO17_TO_SPIN, spin_indices
from preprocessing.render import crop_affine, invert_affine, weak_perspective_to_screen
from tests.conftest import require_real_fixture
from tests.synth_helpers import generate, labels_from_screen, on_foreground

NUM = 6
EFT_KEYS = {
    "parm_pose",
    "parm_shape",
    "parm_cam",
    "bbox_scale",
    "bbox_center",
    "gt_keypoint_2d",
    "joint_validity_openpose18",
    "smpltype",
    "annotId",
    "imageName",
}


@pytest.fixture(scope="module")
def coco_eft(procedural_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_coco")
    generate(procedural_dir, out, "coco_eft", NUM, seed=3, occluders=0.5)
    coco = COCO(str(out / "annotations" / "person_keypoints_train2014.json"))
    eft = json.loads((out / "eft_fits" / "COCO2014-All-ver01.json").read_text())
    return out, coco, eft


def _reproject(body_model, fit: dict) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) vertices and (49, 3) joints of an EFT fit in image pixels, through its crop camera."""
    rotations = torch.tensor(fit["parm_pose"], dtype=torch.float32)[None]
    output = body_model(rotations[:, :1], rotations[:, 1:], torch.tensor([fit["parm_shape"]], dtype=torch.float32))
    affine = invert_affine(crop_affine(fit["bbox_center"], fit["bbox_scale"] * 200.0, 224))
    project = lambda points: weak_perspective_to_screen(points[0].double().numpy(), fit["parm_cam"], affine=affine)  # noqa: E731
    return project(output["vertices"]), project(output["joints"])


def test_coco_json_has_the_real_structure(coco_eft):
    out, coco, _ = coco_eft
    real = json.loads(require_real_fixture("mmpose/coco/test_coco.json").read_text())
    ours = json.loads((out / "annotations" / "person_keypoints_train2014.json").read_text())
    assert list(ours) == list(real)  # same top-level keys in the same order
    assert ours["categories"][0] == {k: real["categories"][0][k] for k in ours["categories"][0]}
    assert set(ours["annotations"][0]) == set(real["annotations"][0])
    assert set(ours["images"][0]) <= set(real["images"][0])
    assert len(coco.getImgIds()) == NUM and len(coco.getAnnIds(catIds=[1])) == NUM
    for annotation in coco.loadAnns(coco.getAnnIds()):
        image = coco.loadImgs(annotation["image_id"])[0]
        assert Image.open(out / "images" / "train2014" / image["file_name"]).size == (image["width"], image["height"])
        keypoints = np.array(annotation["keypoints"]).reshape(17, 3)
        assert set(keypoints[:, 2]) <= {0, 1, 2}
        assert annotation["num_keypoints"] == (keypoints[:, 2] > 0).sum() >= 10
        assert (keypoints[keypoints[:, 2] == 0, :2] == 0).all()
        x, y, w, h = annotation["bbox"]
        assert 0 <= x and 0 <= y and x + w <= image["width"] and y + h <= image["height"]
        assert coco.annToMask(annotation).sum() == annotation["area"] > 0  # the polygons rasterise


def test_eft_fits_reproduce_the_keypoints_exactly(coco_eft, body_model):
    _, coco, eft = coco_eft
    assert set(eft) == {"ver", "data", "meta"} and len(eft["data"]) == NUM
    coco_index = spin_indices(COCO17_TO_SPIN)
    for fit in eft["data"]:
        assert set(fit) == EFT_KEYS and fit["smpltype"] == "smpl"
        pose = np.array(fit["parm_pose"])
        assert pose.shape == (24, 3, 3) and len(fit["parm_shape"]) == 10 and len(fit["parm_cam"]) == 3
        np.testing.assert_allclose(pose @ np.swapaxes(pose, 1, 2), np.broadcast_to(np.eye(3), pose.shape), atol=1e-9)
        annotation = coco.loadAnns([fit["annotId"]])[0]
        assert coco.loadImgs(annotation["image_id"])[0]["file_name"] == fit["imageName"]

        _, joints = _reproject(body_model, fit)
        stored = np.array(fit["gt_keypoint_2d"])
        assert stored.shape == (49, 3)
        assert np.abs(joints[:, :2] - stored[:, :2]).max() < 0.5
        keypoints = np.array(annotation["keypoints"], dtype=np.float64).reshape(17, 3)
        labelled = keypoints[:, 2] > 0
        assert np.abs(joints[coco_index][labelled, :2] - keypoints[labelled, :2]).max() < 0.5
        np.testing.assert_array_equal(stored[coco_index, 2] > 0, labelled)  # the same keypoints inside the image
        assert len(fit["joint_validity_openpose18"]) == 18


def test_part_labels_of_the_fit_sit_on_the_keypoints(coco_eft, body_model):
    """Re-render the labels from the stored fit: visible keypoints land on the body."""
    _, coco, eft = coco_eft
    hits, total, exact_silhouettes = 0, 0, 0
    for fit in eft["data"]:
        annotation = coco.loadAnns([fit["annotId"]])[0]
        image = coco.loadImgs(annotation["image_id"])[0]
        vertices, _ = _reproject(body_model, fit)
        labels = labels_from_screen(body_model, vertices, image["height"], image["width"])
        keypoints = np.array(annotation["keypoints"], dtype=np.float64).reshape(17, 3)
        visible = keypoints[:, 2] == 2
        hits += on_foreground(labels, keypoints[visible, :2]).sum()
        total += visible.sum()
        # The visible body (segmentation, bbox) is the rendered silhouette less what occluders cover.
        silhouette = labels > 0
        segmentation = coco.annToMask(annotation).astype(bool)
        assert (segmentation & ~silhouette).sum() <= 0.05 * silhouette.sum()
        rows, cols = np.nonzero(silhouette)
        box = [cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()]
        x, y, w, h = annotation["bbox"]
        assert box[0] <= x and box[1] <= y and x + w <= box[0] + box[2] and y + h <= box[1] + box[3]
        exact_silhouettes += [x, y, w, h] == box
    assert hits >= 0.9 * total
    assert exact_silhouettes >= 1  # an unoccluded person: the boxes agree to the pixel
