"""Occluders: the VOC bank built by `pare occluders build` (a Ray job) and the pasting in the loader."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipelines.config.loader import load_config
from pipelines.config.train import OcclusionConfig
from pipelines.training.job import PROCEDURAL_OCCLUDERS, _check_occluders
from preprocessing.augment.synthetic_occlusion import BANK_PREFIX, Occluder, OccluderBankError, load_bank, paste

ROOT = Path(__file__).resolve().parents[1]

# A Pascal VOC 2012 folder in the real layout: JPEG, annotation XML (filename, segmented, objects with VOC's
# 1-based inclusive bndbox) and a palette SegmentationObject PNG (object index per pixel, 255 = 'void' outline).
# Each object: class, flags, the shape drawn into the segmentation and, where the annotator's box differs from
# the mask's extent, its own box (xmin, ymin, xmax, ymax).
VOC_IMAGES = [
    (
        "2008_000001",
        (160, 200),
        1,
        [
            {"name": "person", "shape": ("rect", 10, 20, 60, 150)},
            {"name": "chair", "shape": ("ellipse", 130, 60, 38, 27, 20)},
            {"name": "dog", "shape": ("rect", 80, 100, 190, 155), "truncated": 1},
        ],
    ),
    (
        "2008_000002",
        (150, 180),
        1,
        [
            {"name": "bottle", "shape": ("rect", 5, 5, 20, 25)},  # 336 px: too small
            {"name": "car", "shape": ("rect", 30, 30, 120, 70), "difficult": 1},
            {"name": "sofa", "shape": ("poly", [(20, 80), (170, 85), (160, 140), (90, 120), (25, 145)])},
            {"name": "cat", "shape": ("ellipse", 140, 35, 22, 17, 0), "box": (112, 12, 169, 59)},  # a loose box
        ],
    ),
    ("2008_000003", (120, 140), 0, [{"name": "horse", "shape": ("rect", 20, 20, 100, 100)}]),  # not segmented
    (
        "2008_000004",
        (140, 170),
        1,
        [
            {"name": "tvmonitor", "shape": ("rect", 10, 12, 55, 47)},  # cut 45 x 35: halving rounds 22.5 and 17.5
            {"name": "bird", "shape": ("ellipse", 110, 90, 40, 30, 35), "box": (71, 63, 131, 118)},  # box cuts the mask
            {"name": "pottedplant", "shape": ("ring", 40, 100, 26, 12)},  # a hole in the middle
        ],
    ),
]

# The original PARE's Pascal bank of that folder: `load_pascal_occluders` in pare/dataset/coco_occlusion.py
# (mkocabas/PARE at f848b2f; its copy `load_occluders` in pare/dataset/occlusion.py gives the same arrays), run
# on the folder write_voc writes, through ../shared/tools/original-pare. Per cut-out, in bank order: class,
# shape, the first 16 hex digits of the alpha channel's SHA-256, the alpha sum, the pixels at alpha 0, 192 and
# 255, and the R, G, B sums.
ORIGINAL_BANK = [
    ("chair", (28, 37, 4), "944e8ae0d35c95c4", 187772, (225, 115, 578), (99758, 172034, 197844)),
    ("sofa", (32, 75, 4), "b13a88f552943a66", 405661, (607, 186, 1250), (459628, 323747, 385132)),
    ("cat", (24, 28, 4), "66aaba245389ebfa", 65304, (352, 37, 145), (39648, 132796, 117677)),
    ("tvmonitor", (18, 22, 4), "919bd44a0d0f0dff", 92339, (0, 21, 300), (21421, 19524, 24929)),
    ("bird", (28, 30, 4), "42cee05813bd46d2", 175730, (114, 42, 602), (137182, 126680, 159916)),
    ("pottedplant", (26, 26, 4), "9581fe44e7fa0fab", 83434, (254, 150, 113), (123362, 40834, 95362)),
]


def _draw(instances: np.ndarray, index: int, shape: tuple) -> None:
    kind, *args = shape
    if kind == "rect":
        x0, y0, x1, y1 = args
        instances[y0 : y1 + 1, x0 : x1 + 1] = index
    elif kind == "ellipse":
        cx, cy, ax, ay, angle = args
        cv2.ellipse(instances, (cx, cy), (ax, ay), angle, 0, 360, index, -1)
    elif kind == "poly":
        cv2.fillPoly(instances, [np.array(args[0], np.int32)], index)
    else:  # a ring
        cx, cy, outer, inner = args
        cv2.circle(instances, (cx, cy), outer, index, -1)
        cv2.circle(instances, (cx, cy), inner, 0, -1)


def _object_xml(obj: dict, box: tuple) -> str:
    return (
        f"<object><name>{obj['name']}</name><pose>Unspecified</pose><truncated>{obj.get('truncated', 0)}</truncated>"
        f"<difficult>{obj.get('difficult', 0)}</difficult><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>"
        f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"
    )


def write_voc(root: Path) -> None:
    """:data:`VOC_IMAGES` as a VOC2012 folder."""
    for folder in ("JPEGImages", "Annotations", "SegmentationObject"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for image_id, (height, width), segmented, objects in VOC_IMAGES:
        rows, cols = np.mgrid[0:height, 0:width]
        rng = np.random.default_rng(int(image_id[-1]))
        image = np.stack([rows * 255 // height, cols * 255 // width, (rows + cols) % 256], axis=-1)
        image = np.clip(image + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
        instances = np.zeros((height, width), np.uint8)
        for index, obj in enumerate(objects, start=1):
            _draw(instances, index, obj["shape"])
        body = []
        for index, obj in enumerate(objects, start=1):
            mask = (instances == index).astype(np.uint8)
            ys, xs = np.nonzero(mask)
            body.append(_object_xml(obj, obj.get("box", (xs.min() + 1, ys.min() + 1, xs.max() + 1, ys.max() + 1))))
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(instances, contours, -1, 255, 1)  # VOC's 'void' outline
        cv2.imwrite(str(root / "JPEGImages" / f"{image_id}.jpg"), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><folder>VOC2012</folder><filename>{image_id}.jpg</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size><segmented>{segmented}</segmented>{''.join(body)}"
            "</annotation>"
        )
        png = Image.fromarray(instances, mode="P")
        png.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
        png.save(root / "SegmentationObject" / f"{image_id}.png")


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("VOC2012")
    write_voc(root)
    (root / "JPEGImages" / "2008_000005.jpg").write_bytes(b"not a jpeg")
    (root / "Annotations" / "2008_000005.xml").write_text(
        "<annotation><segmented>1</segmented>" + _object_xml({"name": "cat"}, (1, 1, 40, 40)) + "</annotation>"
    )
    Image.fromarray(np.zeros((50, 50), np.uint8), mode="P").save(root / "SegmentationObject" / "2008_000005.png")
    return root


def assert_the_original_bank(cutouts: list[np.ndarray]) -> None:
    """``cutouts`` are the original PARE's Pascal occluders of the :func:`write_voc` folder (:data:`ORIGINAL_BANK`)."""
    assert [c.shape for c in cutouts] == [row[1] for row in ORIGINAL_BANK]
    for cutout, (name, _, digest, alpha_sum, levels, rgb_sums) in zip(cutouts, ORIGINAL_BANK, strict=True):
        alpha = np.ascontiguousarray(cutout[..., 3])
        assert int(alpha.astype(np.int64).sum()) == alpha_sum, name
        assert tuple(int((alpha == v).sum()) for v in (0, 192, 255)) == levels, name
        assert hashlib.sha256(alpha.tobytes()).hexdigest()[:16] == digest, name
        # The colours pass through a JPEG written here: allow an encoder that rounds a little differently.
        sums = cutout[..., :3].astype(np.int64).sum(axis=(0, 1))
        np.testing.assert_allclose(sums, rgb_sums, rtol=2e-3, err_msg=name)


def test_cut_outs_are_the_original_pare_pascal_occluders(voc):
    from pipelines.occluder_bank.voc import extract, segmented_ids

    cutouts = [c for image_id in segmented_ids(voc) for c in extract(voc, image_id)[0]]
    assert_the_original_bank(cutouts)
    # The tv's 45 x 35 box is halved to 22 x 18 (17.5 rounds to even). Its mask fills the box but for VOC's void
    # outline on the last row and column: the 8x8 erosion softens the border there (192, halved with the void
    # to 93..98), and not along the first row and column, where the box cuts the mask.
    alpha = cutouts[3][..., 3]
    assert alpha.shape == (18, 22) and (alpha[:15, :20] == 255).all()
    assert (alpha[16, :21] == 192).all() and (alpha[:16, 21] == 98).all()


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
    assert "6 cut-outs from 5 segmented images" in done.stdout
    assert_the_original_bank(load_bank(bank))
    rejects = [json.loads(line) for line in bank.with_name("occluders.npz.rejects.jsonl").read_text().splitlines()]
    reasons = sorted((r["image"], r.get("class"), r["reason"]) for r in rejects)
    assert reasons == [
        ("2008_000001", "dog", "truncated"),
        ("2008_000001", "person", "person"),
        ("2008_000002", "bottle", "too_small"),
        ("2008_000002", "car", "difficult"),
        ("2008_000003", "horse", "not_segmented"),
        ("2008_000005", "cat", "unreadable_image"),
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


@pytest.mark.parametrize("stage", ["train_stage1.yaml", "train_stage2.yaml"])
def test_the_published_stages_name_a_voc_bank(stage):
    occlusion = load_config(ROOT / "configs" / stage).loader.occlusion
    assert occlusion.enabled and occlusion.probability == 1.0 and occlusion.bank == "outputs/occluders.npz"


def test_train_refuses_a_configured_bank_that_is_missing(tmp_path):
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("pare")),
            "train",
            str(ROOT / "configs" / "train_stage1.yaml"),
            "train.use_gpu=false",
            "train.precision=fp32",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # no outputs/occluders.npz here
        timeout=300,
    )
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-3000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("pare train: error: loader.occlusion.bank: occluder bank outputs/occluders.npz does not")
    assert "pare occluders build --voc VOCdevkit/VOC2012 --out outputs/occluders.npz" in line
    assert PROCEDURAL_OCCLUDERS not in done.stdout


def test_training_without_a_bank_says_so_in_one_line(tmp_path, capsys):
    config = load_config(ROOT / "configs" / "train_synthetic.yaml")
    assert config.loader.occlusion.enabled and not config.loader.occlusion.bank
    _check_occluders(config)
    assert capsys.readouterr().out.splitlines() == [PROCEDURAL_OCCLUDERS]
    _check_occluders(load_config(None, ["loader.occlusion.probability=0"]))  # no occluders at all: nothing to say
    bank = tmp_path / "bank.npz"
    np.savez(bank, **{f"{BANK_PREFIX}00000": np.full((8, 8, 4), 255, np.uint8)})
    _check_occluders(load_config(None, [f"loader.occlusion.bank={bank}"]))
    assert capsys.readouterr().out == ""
