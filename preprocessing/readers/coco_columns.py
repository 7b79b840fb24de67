"""COCO person-keypoint files as columns (:mod:`preprocessing.readers.columns`), and the order the reader visits them.

Tables ``images`` (``id``, ``file_name``, and ``height`` / ``width`` as ``int()`` of the file's values)
and ``annotations`` (``id``, ``image_id``, ``category_id``, ``iscrowd``'s truth, and ``keypoints`` and
``bbox`` converted as the reader converts them). A row whose values the columns cannot hold as the
reader would read them (keypoints that are not 51 numbers, a box without area, an image without a
name) keeps the fields the reader reads as JSON, and the reader treats it as before. An annotation whose
``id`` or ``image_id`` is not an integer (NaN, text) is kept as JSON with ``valid_ids`` 0: the reader
rejects it, as it rejects one whose ``image_id`` names no image (:func:`unvisited`). An image id that is
not an integer stops the conversion with a message naming it.

:func:`visit_order` gives what pycocotools' index gave the reader: images in id order (a repeated
image id: its last entry), each image's person annotations by annotation id (then file order),
and an annotation's index among its image's people.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from preprocessing.crop import square_box
from preprocessing.readers.columns import Column, Tables, TableWriter, converted
from preprocessing.readers.eft_columns import join_key
from preprocessing.readers.files import SourceError, SourceFiles
from preprocessing.readers.json_stream import stream_object

KIND, VERSION = "coco-keypoints", 2
IMAGE_COLUMNS = [Column("id", "i8"), Column("height", "i8"), Column("width", "i8"), Column("has_size", "u1")]
ANNOTATION_COLUMNS = [
    Column("id", "i8"),
    Column("image_id", "i8"),
    Column("category_id", "f8"),
    Column("crowd", "u1"),
    Column("keypoints", "f8", (51,)),
    Column("bbox", "f8", (4,)),
    Column("valid_ids", "u1"),
]
ANNOTATION_FIELDS = ("id", "image_id", "category_id", "iscrowd", "keypoints", "bbox")
"""The fields the reader reads; a kept annotation keeps these."""
_NUMBER = (int, float)


def _is_id(value: Any) -> bool:
    return type(value) is int and -(2**63) <= value < 2**63


def _id(item: Any, field: str, where: str, url: str) -> int:
    value = item.get(field) if isinstance(item, dict) else None
    if not _is_id(value):
        raise SourceError(
            f"COCO annotation file {url}: {where} has {field} {value!r}; COCO ids are integers. "
            "Is it a COCO keypoints file?"
        )
    return value


def _image_row(image: Any, index: int, url: str) -> tuple[dict, Any]:
    values = {"id": _id(image, "id", f"images[{index}]", url)}
    name, height, width = image.get("file_name"), image.get("height"), image.get("width")
    sized = "height" in image
    if type(name) is str and (not sized or _whole(height) and _whole(width)):
        values.update(file_name=name, has_size=sized)
        if sized:
            values.update(height=int(height), width=int(width))
        return values, None
    return values, {key: image[key] for key in ("id", "file_name", "height", "width") if key in image}


def _whole(value: Any) -> bool:
    """Whether ``int(value)`` gives an int64 (the reader's image size)."""
    return type(value) in _NUMBER and np.isfinite(value) and abs(value) < 2**63


def _box_ok(box: Any) -> bool:
    """Whether ``square_box`` takes ``box`` (4 plain numbers with area) as it would take the column's copy."""
    if not isinstance(box, list) or len(box) != 4 or any(type(v) not in _NUMBER for v in box):
        return False
    try:
        square_box(box, 1.2)
    except (ValueError, OverflowError):
        return False
    return True


def _annotation_row(ann: Any, index: int, url: str) -> tuple[dict, Any]:
    if not isinstance(ann, dict):
        _id(ann, "id", f"annotations[{index}]", url)  # not an object: not a COCO file
    if not (_is_id(ann.get("id")) and _is_id(ann.get("image_id"))):
        kept = {key: ann[key] for key in ANNOTATION_FIELDS if key in ann}
        return {"category_id": join_key(ann.get("category_id")), "valid_ids": False}, kept
    values = {"id": ann["id"], "image_id": ann["image_id"], "valid_ids": True}
    values.update(category_id=join_key(ann.get("category_id")), crowd=bool(ann.get("iscrowd", 0)))
    try:
        keypoints = np.asarray(ann.get("keypoints", []), dtype=np.float64)
    except (TypeError, ValueError):
        keypoints = None
    box = ann.get("bbox")
    if keypoints is not None and keypoints.shape == (51,) and _box_ok(box):
        values.update(keypoints=keypoints, bbox=np.asarray(box, np.float64))
        return values, None
    return values, {key: ann[key] for key in ANNOTATION_FIELDS if key in ann}


def _person_categories(members: dict) -> list[float]:
    """Ids of the categories named ``person`` (pycocotools' ``getCatIds(catNms=["person"])``), as join keys."""
    categories = members.get("categories")
    if not isinstance(categories, list):
        return []
    return [join_key(c.get("id")) for c in categories if isinstance(c, dict) and c.get("name") == "person"]


def _converter(url: str):
    def convert(raw: IO[bytes], folder: Path) -> dict:
        images = TableWriter(folder, "images", IMAGE_COLUMNS, texts=("file_name",))
        annotations = TableWriter(folder, "annotations", ANNOTATION_COLUMNS)
        arrays = {
            "images": lambda item: images.add(*_image_row(item, len(images), url)),
            "annotations": lambda item: annotations.add(*_annotation_row(item, len(annotations), url)),
        }
        members, _ = stream_object(raw, arrays, "COCO annotation file", url)
        wrong = [f"{key} is not a list" for key in ("images", "annotations") if key in members]
        if "" in members or wrong:
            problem = "its top level is not an object" if "" in members else f"its {wrong[0]}"
            raise SourceError(f"COCO annotation file {url} is not a COCO keypoints file: {problem}")
        tables = {"images": images.close(), "annotations": annotations.close()}
        return {"tables": tables, "person_categories": _person_categories(members)}

    return convert


def coco_tables(files: SourceFiles, relative: str, cache_root: Path | None) -> Tables:
    """The COCO file ``relative`` as tables (converted once per file content when ``cache_root`` is set)."""
    return converted(files, relative, KIND, VERSION, _converter(files.url(relative)), cache_root)


@dataclass
class Visits:
    """The annotations the reader visits, in its order: their rows, image rows, person index among the image's
    people, and whether an earlier visit had the same annotation id."""

    rows: np.ndarray
    image_rows: np.ndarray
    person: np.ndarray
    repeated: np.ndarray


def visit_order(tables: Tables) -> Visits:
    image_ids = tables.column("images", "id")
    order = np.argsort(image_ids, kind="stable")
    unique_ids = np.unique(image_ids)
    last_row = order[np.searchsorted(image_ids[order], unique_ids, side="right") - 1]
    annotation_image = tables.column("annotations", "image_id")
    annotation_id = tables.column("annotations", "id")
    person, valid = _people_rows(tables)
    wanted = person & valid & np.isin(annotation_image, unique_ids)
    rows = np.nonzero(wanted)[0]
    rows = rows[np.lexsort((rows, annotation_id[rows], annotation_image[rows]))]
    image = annotation_image[rows]
    first_of_image = np.ones(len(rows), bool)
    first_of_image[1:] = image[1:] != image[:-1]
    group_start = np.maximum.accumulate(np.where(first_of_image, np.arange(len(rows)), 0))
    repeated = np.ones(len(rows), bool)
    repeated[np.unique(annotation_id[rows], return_index=True)[1]] = False
    return Visits(rows, last_row[np.searchsorted(unique_ids, image)], np.arange(len(rows)) - group_start, repeated)


def _people_rows(tables: Tables) -> tuple[np.ndarray, np.ndarray]:
    """(whether each annotation is a person's, whether its ``id`` and ``image_id`` are integers)."""
    categories = tables.meta["person_categories"] or [1.0]
    person = np.isin(tables.column("annotations", "category_id"), categories)
    return person, tables.column("annotations", "valid_ids").astype(bool)


def unvisited(tables: Tables) -> list[tuple[str, str]]:
    """(sample id, why) of each person annotation :func:`visit_order` leaves out: an ``id`` or ``image_id`` that
    is not an integer, or an ``image_id`` naming no image of the file (pycocotools files it under that id, which
    no image visits). The reader rejects them; without this they would be lost without a word."""
    person, valid = _people_rows(tables)
    found = [
        (str(raw.get("id", "")), f"id {raw.get('id')!r}, image_id {raw.get('image_id')!r}: COCO ids are integers")
        for raw in tables.raw("annotations", np.nonzero(person & ~valid)[0])
    ]
    image_ids = tables.column("annotations", "image_id")
    orphans = np.nonzero(person & valid & ~np.isin(image_ids, tables.column("images", "id")))[0]
    identities = tables.take("annotations", "id", orphans).tolist()
    found += [
        (str(ident), f"image_id {image} names no image of the file")
        for ident, image in zip(identities, image_ids[orphans].tolist(), strict=True)
    ]
    return found
