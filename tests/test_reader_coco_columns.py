"""The ``coco_eft`` reader over its columnar conversions: pycocotools' order, the same rejects, the cache.

The reader no longer indexes the COCO file with pycocotools (whose index holds the whole file as
Python objects); these tests hold its order to that index, built by pycocotools itself on the same
files, and its rejects of odd annotations and fits to what the per-dict code gives.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest

from preprocessing.readers import SourceError, build_reader, validated
from preprocessing.record import Rejected, SampleRecord

ANNOTATIONS = "annotations/person_keypoints.json"
EFT = "eft/fits.json"


def _keypoints(rng: random.Random) -> list:
    return [v for _ in range(17) for v in (rng.randint(0, 600), rng.uniform(0, 600), rng.choice([0, 2, 2, 2]))]


def _fit(annot_id) -> dict:
    return {
        "annotId": annot_id,
        "imageName": "x.jpg",
        "parm_pose": [np.eye(3).tolist()] * 24,
        "parm_shape": [0.1] * 10,
        "parm_cam": [0.9, 0.01, 0.2],
        "bbox_center": [100.0, 120.0],
        "bbox_scale": 1.1,
        "gt_keypoint_2d": [[50.0, 60.0, 1.0]] * 49,
    }


def _write(root: Path, coco: dict, fits: list | None = None) -> Path:
    (root / ANNOTATIONS).parent.mkdir(parents=True, exist_ok=True)
    (root / ANNOTATIONS).write_text(json.dumps(coco))
    if fits is not None:
        (root / EFT).parent.mkdir(parents=True, exist_ok=True)
        (root / EFT).write_text(json.dumps({"ver": 1, "data": fits}))
    return root


def _items(root: Path, cache_root: Path | None = None, **options) -> list[SampleRecord | Rejected]:
    options = {"annotations": ANNOTATIONS, "images": "images", "min_keypoints": 0, **options}
    reader = build_reader("coco_eft", str(root), "train", options)
    reader.cache_root = cache_root
    return list(validated(reader.records(), 0))


def _random_coco(seed: int) -> dict:
    rng = random.Random(seed)
    images = [
        {"id": rng.randint(1, 40), "file_name": f"{i}.jpg", "height": 700, "width": 700}
        for i in range(rng.randint(1, 40))
    ]
    annotations = [
        {
            "id": rng.randint(1, 80),
            "image_id": rng.randint(1, 45),  # some have no image: pycocotools' index never reaches them
            "category_id": rng.choice([1, 1, 1, 2]),
            "iscrowd": rng.choice([0, 0, 0, 1]),
            "keypoints": _keypoints(rng),
            "bbox": [rng.uniform(0, 300), rng.uniform(0, 300), rng.uniform(5, 200), rng.uniform(5, 200)],
            "segmentation": [[1, 2, 3, 4]],
        }
        for _ in range(rng.randint(0, 90))
    ]
    categories = [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}]
    return {"info": {}, "images": images, "annotations": annotations, "categories": categories}


def _pycocotools_visits(coco_data: dict) -> list[tuple]:
    """(sample id, person index, image file) per visited annotation, or (sample id, 'duplicate_id'), as the
    reader used to walk pycocotools' index; first, in file order, (sample id, 'bad_annotation') for each person
    annotation whose image_id names no image, which that index never reached (the reader lost them silently)."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = coco_data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    persons = set(coco.getCatIds(catNms=["person"])) or {1}
    seen: set[int] = set()
    visits: list[tuple] = [
        (str(a["id"]), "bad_annotation")
        for a in coco_data["annotations"]
        if a.get("category_id") in persons and a["image_id"] not in coco.imgs
    ]
    for image_id in sorted(coco.imgs):
        people = [a for a in coco.imgToAnns.get(image_id, []) if a.get("category_id") in persons]
        for person, ann in enumerate(sorted(people, key=lambda a: a["id"])):
            if ann["id"] in seen:
                visits.append((str(ann["id"]), "duplicate_id"))
                continue
            seen.add(ann["id"])
            if not ann.get("iscrowd", 0):
                visits.append((str(ann["id"]), person, coco.imgs[image_id]["file_name"]))
    return visits


@pytest.mark.parametrize("seed", range(12))
def test_the_reader_visits_annotations_in_pycocotools_index_order(tmp_path, seed):
    coco = _random_coco(seed)
    items = _items(_write(tmp_path, coco))
    got = [
        (item.sample_id, item.reason)
        if isinstance(item, Rejected)
        else (item.sample_id, item.person_index, Path(item.image.path).name)
        for item in items
    ]
    assert got == _pycocotools_visits(coco)


def test_odd_annotations_and_fits_are_rejected_as_the_dict_code_rejects_them(tmp_path):
    image = {"id": 1, "file_name": "a.jpg", "height": 480.7, "width": 640}
    rng = random.Random(0)
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "keypoints": [1] * 50, "bbox": [1, 2, 3, 4]},
        {"id": 2, "image_id": 1, "category_id": 1, "keypoints": _keypoints(rng), "bbox": [10, 20, 0, 5]},
        {"id": 3, "image_id": 1, "category_id": 1, "keypoints": _keypoints(rng)},
        {"id": 4, "image_id": 1, "category_id": 1, "keypoints": _keypoints(rng), "bbox": [10, 20, 30, 40]},
        {"id": 5, "image_id": 2, "category_id": 1, "keypoints": _keypoints(rng), "bbox": [10, 20, 30, 40]},
    ]
    coco = {"images": [image, {"id": 2, "file_name": "b.jpg"}], "annotations": annotations, "categories": []}
    root = _write(tmp_path, coco)
    items = {item.sample_id: item for item in _items(root)}  # no fits: keypoints and COCO boxes only
    assert (items["1"].reason, items["1"].detail) == ("bad_annotation", "keypoints must hold 17 x 3 numbers, got (50,)")
    assert items["2"].reason == "bad_box"
    assert items["2"].detail.startswith("bbox [10, 20, 0, 5]: box [10, 20, 0, 5] has no area")  # the file's numbers
    assert (items["3"].reason, items["3"].detail) == ("bad_box", "bbox None: 'bbox'")
    assert items["4"].image_size == (480, 640) and items["4"].box_size == pytest.approx(48.0)
    assert items["5"].image_size is None  # the image states no size
    missing_cam = {k: v for k, v in _fit(3).items() if k != "parm_cam"}
    nan_shape = dict(_fit(4), parm_shape=[0.1] * 9 + [float("nan")])
    fits = [_fit(1), _fit(1), missing_cam, nan_shape, dict(_fit(5.0)), "not a fit", _fit("2")]
    _write(root, dict(coco, annotations=[dict(a, keypoints=_keypoints(rng)) for a in annotations]), fits)
    items = {item.sample_id: item for item in _items(root, eft=EFT)}
    assert (items["1"].reason, items["1"].detail) == ("duplicate_id", "EFT file has several fits for annotation 1")
    assert (items["2"].reason, items["2"].detail) == (
        "no_fit",
        f"no EFT fit for annotation 2 in {EFT} (options.require_fit)",
    )
    assert (items["3"].reason, items["3"].detail) == ("bad_annotation", "EFT entry has no parm_cam")
    assert (items["4"].reason, items["4"].detail) == ("nan_parameters", "EFT parm_shape contains NaN or infinity")
    assert items["5"].fit_source == "eft"  # annotId 5.0 joins annotation 5, as a dict lookup by 5 finds it


def test_an_image_id_that_is_not_an_integer_stops_the_source(tmp_path):
    root = _write(tmp_path, {"images": [{"id": "1", "file_name": "a.jpg"}], "annotations": [], "categories": []})
    with pytest.raises(SourceError, match=r"images\[0\] has id '1'.*COCO ids are integers"):
        _items(root)


def test_a_person_annotation_whose_ids_are_not_integers_is_a_reject(tmp_path):
    image = {"id": 1, "file_name": "a.jpg"}
    annotations = [
        {"id": 1.5, "image_id": 1, "category_id": 1},
        {"id": 2, "category_id": 1},
        {"id": "3", "image_id": 1, "category_id": 2},  # not a person: not a record of this reader
    ]
    root = _write(tmp_path, {"images": [image], "annotations": annotations, "categories": []})
    items = _items(root)
    assert [(i.sample_id, i.reason) for i in items] == [("1.5", "bad_annotation"), ("2", "bad_annotation")]
    assert "id 1.5, image_id 1: COCO ids are integers" in items[0].detail
    assert "id 2, image_id None" in items[1].detail


def test_a_conversion_is_made_once_per_file_content(tmp_path):
    root = _write(tmp_path / "source", _random_coco(1), [_fit(1)])
    cache = tmp_path / "cache"
    first = _items(root, cache, eft=EFT)
    folders = sorted(cache.iterdir())
    assert [f.name.rsplit("-v", 1)[0] for f in folders] == ["coco-keypoints", "eft-fits"]
    made = {f: (f / "meta.json").stat().st_mtime_ns for f in folders}
    assert [repr(i) for i in _items(root, cache, eft=EFT)] == [repr(i) for i in first]
    assert {f: (f / "meta.json").stat().st_mtime_ns for f in folders} == made  # read again, not converted again
    _write(root, _random_coco(2))
    _items(root, cache, eft=EFT)
    assert len(list(cache.iterdir())) == 3  # the changed COCO file has its own conversion; the EFT one is reused
