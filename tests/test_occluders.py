"""Occluders: the VOC bank built by `pare occluders build` (a Ray job) and the pasting in the loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipelines.config.train import OcclusionConfig
from preprocessing.augment.synthetic_occlusion import BANK_PREFIX, Occluder, OccluderBankError, load_bank, paste

OBJECT_XML = """<object><name>{name}</name><truncated>{truncated}</truncated><difficult>{difficult}</difficult>
<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>"""


def write_voc_image(root: Path, image_id: str, objects: list[dict], size=(120, 160)) -> np.ndarray:
    """One VOC-layout image: JPEG, annotation XML and a palette SegmentationObject PNG."""
    rng = np.random.default_rng(len(image_id) + len(objects))
    image = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    instances = np.zeros(size, np.uint8)
    for index, obj in enumerate(objects, start=1):
        top, left, height, width = obj["box"]
        instances[top : top + height, left : left + width] = index
        instances[top, left : left + width] = 255  # VOC draws a 'void' boundary
    for folder in ("JPEGImages", "Annotations", "SegmentationObject"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "JPEGImages" / f"{image_id}.jpg"), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    body = "".join(
        OBJECT_XML.format(name=o["name"], truncated=int(o.get("truncated", 0)), difficult=int(o.get("difficult", 0)))
        for o in objects
    )
    (root / "Annotations" / f"{image_id}.xml").write_text(
        f"<annotation><filename>{image_id}.jpg</filename>{body}</annotation>"
    )
    palette = Image.fromarray(instances, mode="P")
    palette.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    palette.save(root / "SegmentationObject" / f"{image_id}.png")
    return cv2.imread(str(root / "JPEGImages" / f"{image_id}.jpg"))[..., ::-1]


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("VOC2012")
    write_voc_image(
        root,
        "2008_000001",
        [
            {"name": "person", "box": (10, 10, 60, 30)},
            {"name": "chair", "box": (20, 60, 50, 40)},  # used
            {"name": "dog", "box": (80, 10, 30, 60), "truncated": 1},
        ],
    )
    write_voc_image(
        root,
        "2008_000002",
        [
            {"name": "bottle", "box": (5, 5, 10, 10)},  # too small: 100 px
            {"name": "car", "box": (30, 30, 40, 90), "difficult": 1},
            {"name": "sofa", "box": (70, 20, 40, 100)},  # used
        ],
    )
    (root / "JPEGImages" / "2008_000003.jpg").write_bytes(b"not a jpeg")
    (root / "Annotations" / "2008_000003.xml").write_text(
        "<annotation>" + OBJECT_XML.format(name="cat", truncated=0, difficult=0) + "</annotation>"
    )
    Image.fromarray(np.zeros((50, 50), np.uint8), mode="P").save(root / "SegmentationObject" / "2008_000003.png")
    return root


def test_occluders_build_cuts_the_usable_objects(voc, tmp_path, ray_cluster):
    bank = tmp_path / "occluders.npz"
    address = ray_cluster.get_runtime_context().gcs_address
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("pare")),
            "occluders",
            "build",
            "--voc",
            str(voc),
            "--out",
            str(bank),
            "--ray-address",
            address,
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 cut-outs from 3 segmented images" in done.stdout
    cutouts = load_bank(bank)
    # The top row of each object is VOC's 'void' boundary (255), so the masks are one row shorter than the boxes.
    assert [c.shape for c in cutouts] == [(49, 40, 4), (39, 100, 4)]
    image = cv2.imread(str(voc / "JPEGImages" / "2008_000001.jpg"))[..., ::-1]
    chair = cutouts[0]
    np.testing.assert_array_equal(chair[..., :3], image[21:70, 60:100])  # the image's own pixels
    assert (chair[1:-1, 1:-1, 3] == 255).all()
    assert (chair[0, :, 3] == 191).all() and (chair[:, 0, 3] == 191).all()  # the eroded border, softened to 0.75
    rejects = [json.loads(line) for line in bank.with_name("occluders.npz.rejects.jsonl").read_text().splitlines()]
    reasons = sorted((r["image"], r.get("class"), r["reason"]) for r in rejects)
    assert reasons == [
        ("2008_000001", "dog", "truncated"),
        ("2008_000001", "person", "person"),
        ("2008_000002", "bottle", "too_small"),
        ("2008_000002", "car", "difficult"),
        ("2008_000003", "cat", "unreadable_image"),
    ]


def test_occluders_build_names_a_wrong_folder(tmp_path):
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("pare")),
            "occluders",
            "build",
            "--voc",
            str(tmp_path),
            "--out",
            str(tmp_path / "b.npz"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "VOCdevkit/VOC2012" in done.stderr


def test_a_missing_or_foreign_bank_is_refused(tmp_path):
    with pytest.raises(OccluderBankError, match="pare occluders build"):
        load_bank(tmp_path / "none.npz")
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3))
    with pytest.raises(OccluderBankError, match="no RGBA cut-outs"):
        load_bank(tmp_path / "foreign.npz")


def test_paste_blends_by_alpha_and_clips_at_the_border():
    image = np.full((50, 50, 3), 100, np.uint8)
    cutout = np.zeros((10, 10, 4), np.uint8)
    cutout[..., :3] = 200
    cutout[..., 3] = 255
    cutout[:, :5, 3] = 128
    paste(image, cutout, np.array([2.0, 25.0]), 1.0)  # half of it hangs off the left edge
    assert (image[20:30, 0:2] == 150).all()  # 100 + (200 - 100) * 128 / 255, rounded
    assert (image[20:30, 2:7] == 200).all() and (image[:, 7:] == 100).all()


def test_occluder_counts_and_scales_follow_the_config(tmp_path):
    rng = np.random.default_rng(0)
    config = OcclusionConfig(min_count=2, max_count=3)
    occluder = Occluder(config, seed=0)
    assert occluder.kind == "procedural" and len(occluder.cutouts) == 64
    counts = []
    for _ in range(50):
        image = np.zeros((224, 224, 3), np.uint8)
        counts.append(occluder(image, rng))
        assert image.any()
    assert set(counts) == {2, 3}
    off = Occluder(OcclusionConfig(probability=0.0), seed=0)
    image = np.zeros((64, 64, 3), np.uint8)
    assert off(image, rng) == 0 and not image.any()
    bank = tmp_path / "bank.npz"
    np.savez(bank, **{f"{BANK_PREFIX}00000": np.full((8, 8, 4), 255, np.uint8)})
    assert Occluder(OcclusionConfig(bank=str(bank)), seed=0).kind == "voc"
