"""``mpii``: MPII Human Pose's official ``.mat`` structure and the common JSON list form.

Writes ``images/{n:09d}.jpg``, ``mpii_human_pose_v1_u12_1.mat`` (``scipy.io.savemat``),
``annot/train.json`` and ``eft_fits/MPII_ver01.json`` (EFT's layout, see the ``coco_eft`` layout;
one fit per training person, joined to the person by ``imageName`` and keypoints, as EFT's MPII
file has no annotation ids).

The ``.mat`` holds the struct ``RELEASE`` with ``annolist`` (per image ``image.name``,
``annorect``, ``frame_sec``, ``vididx``), ``img_train``, ``single_person``, ``act`` and
``video_list``, like the official file. A training image's ``annorect`` has the head box
``x1 y1 x2 y2`` (box of the projected head), ``scale`` (person height / 200), ``objpos.x/y``
(centre of the person's box) and ``annopoints.point`` with ``x, y, id`` (0..15, MPII's order)
and ``is_visible`` (1 visible, 0 hidden by the body or an occluder); joints outside the image
are left out, as MPII does. Every fifth image is a test image (``img_train`` 0) whose
``annorect`` has only ``scale`` and ``objpos``, as the official test set. Load it with
``scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)``: one person or one point
then collapses to a scalar struct, as with the real file.

The JSON list (the training images only) has ``joints_vis``, ``joints`` (16 x [x, y]; [-1, -1]
when outside the image), ``image``, ``scale`` and ``center`` (= ``objpos``, unadjusted) per
person; ``joints_vis`` is 1 for a joint inside the image (annotated), as in that conversion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from preprocessing.bodies import BodyModels
from preprocessing.keypoints import MPII16_TO_SPIN, spin_indices
from preprocessing.synth.common import LayoutResult, PreviewTile, SynthOptions, progress, write_jpeg, write_json
from preprocessing.synth.crop_samples import CropSample, crop_samples
from preprocessing.synth.framing import box_center_scale
from preprocessing.synth.layouts.coco_eft import eft_fit

NAME = "mpii"
MAT_FILE = "mpii_human_pose_v1_u12_1.mat"
JSON_FILE = "annot/train.json"
EFT_FILE = "eft_fits/MPII_ver01.json"
HEAD_PART = 15
MAT_HEADER = "MATLAB 5.0 MAT-file, written by the pare-pipeline synthetic data generator (SYNTHETIC)"
MAT_HEADER_BYTES = 116
TEST_EVERY = 5
"""Every fifth image (indices 4, 9, ...) is a test image without joint annotations."""


def image_name(index: int) -> str:
    return f"{index + 1:09d}.jpg"


def is_train(index: int) -> bool:
    return index % TEST_EVERY != TEST_EVERY - 1


def _struct_array(records: list[dict]) -> np.ndarray:
    """A (1, K) MATLAB struct array from dicts that share their keys."""
    fields = list(records[0])
    array = np.empty((1, len(records)), dtype=[(name, object) for name in fields])
    for k, record in enumerate(records):
        for name in fields:
            array[0, k][name] = record[name]
    return array


def mpii_keypoints(sample: CropSample) -> tuple[np.ndarray, np.ndarray]:
    """(16, 2) image pixels and (16,) visibility of MPII's joints, in MPII's order."""
    index = spin_indices(MPII16_TO_SPIN)
    return sample.joints[index, :2], sample.visibility[index]


def person_record(sample: CropSample, part_map: np.ndarray) -> tuple[dict, dict]:
    """The ``annorect`` of a training image and the JSON entry of the same person."""
    xy, visibility = mpii_keypoints(sample)
    center, scale = box_center_scale(sample.vertices[:, :2], factor=1.0)
    head = sample.vertices[np.asarray(part_map) == HEAD_PART, :2]
    (x1, y1), (x2, y2) = head.min(axis=0), head.max(axis=0)
    points = [
        {"x": float(x), "y": float(y), "id": k, "is_visible": int(v == 2)}
        for k, ((x, y), v) in enumerate(zip(xy, visibility, strict=True))
        if v > 0
    ]
    annorect = {
        **{"x1": float(x1), "y1": float(y1), "x2": float(x2), "y2": float(y2)},
        "annopoints": {"point": _struct_array(points)} if points else np.zeros((0, 0)),
        "scale": scale,
        "objpos": {"x": float(center[0]), "y": float(center[1])},
    }
    entry = {
        "joints_vis": [int(v > 0) for v in visibility],
        "joints": [[float(x), float(y)] if v > 0 else [-1.0, -1.0] for (x, y), v in zip(xy, visibility, strict=True)],
        "image": image_name(sample.index),
        "scale": scale,
        "center": [float(center[0]), float(center[1])],
    }
    return annorect, entry


def _release(annolist: list[dict], num: int) -> dict:
    """The ``RELEASE`` struct around the per-image records."""
    act = _struct_array([{"cat_name": "synthetic", "act_name": "posing", "act_id": -1}] * num).T
    single_person = np.empty((num, 1), dtype=object)
    for k in range(num):
        single_person[k, 0] = np.array([[1.0]])
    return {
        "annolist": _struct_array(annolist),
        "img_train": np.array([[float(is_train(k)) for k in range(num)]]),
        "version": "synthetic-1",
        "single_person": single_person,
        "act": act,
        "video_list": np.array([["synthetic_video"]], dtype=object),
    }


def write_mat(path: Path, variables: dict) -> None:
    """``scipy.io.savemat`` with a fixed header text, so the same content gives the same bytes.

    The MAT 5 header's 116-byte description holds a creation time; it is replaced.
    """
    scipy.io.savemat(path, variables, do_compression=True)
    data = bytearray(path.read_bytes())
    data[:MAT_HEADER_BYTES] = MAT_HEADER.ljust(MAT_HEADER_BYTES).encode("ascii")
    path.write_bytes(bytes(data))


def write(out: Path, num: int, seed: int, models: BodyModels, options: SynthOptions) -> LayoutResult:
    """Write ``num`` single-person images with MPII annotations (see the module docstring)."""
    part_map = models.part_map()
    result = LayoutResult(layout=NAME, num_samples=num, num_images=num)
    annolist, entries, fits = [], [], []
    for sample in progress(crop_samples(models, seed, NAME, num, options), num, NAME):
        name = image_name(sample.index)
        write_jpeg(out / "images" / name, sample.scene.image, options.jpeg_quality)
        annorect, entry = person_record(sample, part_map)
        if is_train(sample.index):
            entries.append(entry)
            fits.append(eft_fit(sample, None, name))
        else:
            annorect = {"scale": annorect["scale"], "objpos": annorect["objpos"]}
        annolist.append(
            {"image": {"name": name}, "annorect": _struct_array([annorect]), "frame_sec": 0.0, "vididx": 1.0}
        )
        result.keep_preview(
            lambda s=sample, n=name: PreviewTile(s.scene.image, s.scene.labels, *mpii_keypoints(s), n),
            options.preview_count,
        )
    write_mat(out / MAT_FILE, {"RELEASE": _release(annolist, num)})
    write_json(out / JSON_FILE, entries)
    meta = {"synthetic": True, "seed": seed, "note": "rendered fits: exact, not optimised to real images"}
    write_json(out / EFT_FILE, {"ver": 1, "data": fits, "meta": meta})
    result.annotation_files += [out / MAT_FILE, out / JSON_FILE, out / EFT_FILE]
    return result
