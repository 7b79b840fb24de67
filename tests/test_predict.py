"""``pare predict`` on real COCO images with random weights and the procedural body model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pare_model.checkpoint import build_model_from_assets, save_model_checkpoint
from pare_model.errors import UserFacingError
from pare_model.model_config import ModelConfig
from pipelines.config.predict import PredictConfig
from pipelines.inference.boxes import read_boxes
from pipelines.inference.predict import run_predict
from tests.conftest import require_real_fixture
from tests.test_cli import run_pare


@pytest.fixture(scope="module")
def coco_dir() -> Path:
    return require_real_fixture("mmpose/coco/test_coco.json").parent


@pytest.fixture(scope="module")
def coco_boxes(coco_dir, tmp_path_factory) -> Path:
    """The fixture's person boxes as a boxes file."""
    coco = json.loads((coco_dir / "test_coco.json").read_text())
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    boxes = [{"image": names[a["image_id"]], "bbox": a["bbox"]} for a in coco["annotations"]]
    path = tmp_path_factory.mktemp("boxes") / "boxes.json"
    path.write_text(json.dumps(boxes))
    return path


@pytest.fixture(scope="module")
def debug_model(procedural_dir):
    torch.manual_seed(0)
    return build_model_from_assets(ModelConfig(backbone="debug"), procedural_dir).eval()


def test_predict_cli_writes_results_and_overlays(coco_dir, procedural_dir, tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(backbone="hrnet_w32")
    model = build_model_from_assets(config, procedural_dir)
    checkpoint = save_model_checkpoint(tmp_path / "random.pt", model.network_state_dict(), config)
    out = tmp_path / "predict"
    result = run_pare(
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--images",
        str(coco_dir),
        "--out",
        str(out),
        "body_model.source=procedural",
        f"body_model.asset_dir={procedural_dir}",
    )
    assert result.returncode == 0, result.stderr
    people = sorted(out.glob("*_person*.json"))
    images = sorted(coco_dir.glob("*.jpg"))
    assert len(people) >= len(images), "at least one person (detected or whole image) per image"
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == len(people)
    record = json.loads(people[0].read_text())
    assert len(record["smpl"]["global_orient"]) == 3 and len(record["smpl"]["body_pose"]) == 69
    assert len(record["smpl"]["betas"]) == 10 and np.array(record["joints_3d"]).shape == (49, 3)
    assert np.array(record["joints_2d_image"]).shape == (49, 2)
    for image in images:
        overlay = np.asarray(Image.open(out / f"{image.stem}_mesh.png"))
        original = np.asarray(Image.open(image).convert("RGB"))
        assert overlay.shape == original.shape
        changed = np.abs(overlay.astype(int) - original.astype(int)).sum(axis=2) > 30
        assert changed.mean() > 0.002, f"no mesh drawn over {image.name}"
    attention = sorted(out.glob("*_attention.png"))
    assert len(attention) == len(people)
    assert Image.open(attention[0]).size == (3 * 224, 16 + 224 + 4 * (112 + 16))  # top row + 24 part maps


def test_boxes_file_gives_one_prediction_per_box_and_consistent_cameras(debug_model, coco_dir, coco_boxes, tmp_path):
    boxes = read_boxes(coco_boxes)
    summary = run_predict(debug_model, coco_dir, boxes, PredictConfig(output_dir=str(tmp_path), overlays=False))
    assert summary.num_people == sum(len(v) for v in boxes.values()) == 14
    assert summary.rejects == []
    for line in (tmp_path / "predictions.jsonl").read_text().splitlines():
        record = json.loads(line)
        cameras = record["camera"]["image"]
        for kind, tolerance in (("exact", 1e-2), ("image_centered", 0.05 * record["crop"]["size"])):
            camera = cameras[kind]
            joints = np.array(record["joints_3d"]) + np.array(camera["translation"])
            projected = joints[:, :2] / joints[:, 2:] * camera["focal_length"] + np.array(camera["principal_point"])
            np.testing.assert_allclose(projected, record["joints_2d_image"], atol=tolerance, err_msg=kind)
        assert record["box_source"] == "boxes file"


def test_unreadable_images_are_rejected_with_a_reason(debug_model, coco_dir, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    (images / "ok.jpg").write_bytes((coco_dir / "000000000785.jpg").read_bytes())
    out = tmp_path / "out"
    summary = run_predict(debug_model, images, None, PredictConfig(output_dir=str(out), detector="none"))
    assert summary.num_images == 1 and summary.num_people == 1
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert rejects == [{"image": "broken.jpg", "reason": "unreadable image file"}]
    assert json.loads((out / "ok_person0.json").read_text())["box_source"] == "whole image"


def test_a_truncated_jpeg_is_rejected_with_a_reason(debug_model, coco_dir, tmp_path):
    """OpenCV decodes the first half of a JPEG without an error (grey below the cut); it used to be predicted on."""
    images = tmp_path / "images"
    images.mkdir()
    whole = (coco_dir / "000000000785.jpg").read_bytes()
    (images / "half.jpg").write_bytes(whole[: len(whole) // 2])
    (images / "ok.jpg").write_bytes(whole)
    out = tmp_path / "out"
    summary = run_predict(debug_model, images, None, PredictConfig(output_dir=str(out), detector="none"))
    assert summary.num_images == 1 and summary.num_people == 1
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert rejects == [{"image": "half.jpg", "reason": "truncated image file (a JPEG without its end marker)"}]


def test_no_real_jpeg_is_taken_for_a_truncated_one():
    """Every JPEG of the real fixtures (COCO, Human3.6M, MPI-INF-3DHP and MPII photographs) is whole."""
    from preprocessing.samples.images import jpeg_is_truncated

    photos = sorted(require_real_fixture("mmpose/coco/test_coco.json").parents[2].rglob("*.jpg"))
    assert len(photos) >= 10
    assert [path.name for path in photos if jpeg_is_truncated(path.read_bytes())] == []
    assert all(jpeg_is_truncated(path.read_bytes()[: path.stat().st_size * 9 // 10]) for path in photos)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"a.jpg": [[1, 2, 3]]}', "is not a box"),
        ('{"a.jpg": [[1, 2, 0, 5]]}', "has no area"),
        ('[{"image": "a.jpg"}]', "needs 'image' and 'bbox'"),
    ],
)
def test_bad_boxes_files_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "boxes.json"
    path.write_text(content)
    with pytest.raises(UserFacingError, match=message):
        read_boxes(path)


def test_empty_image_folder_is_a_user_error(debug_model, tmp_path):
    with pytest.raises(UserFacingError, match="no images"):
        run_predict(debug_model, tmp_path, None, PredictConfig(output_dir=str(tmp_path / "out")))


def test_hog_detector_choice_is_explained_when_opencv_lacks_it(debug_model, coco_dir, tmp_path):
    from pipelines.inference.boxes import hog_available

    config = PredictConfig(output_dir=str(tmp_path), detector="hog")
    if hog_available():
        summary = run_predict(debug_model, coco_dir, None, config)
        assert summary.num_people >= 4
    else:
        with pytest.raises(UserFacingError, match="predict.detector=auto"):
            run_predict(debug_model, coco_dir, None, config)
