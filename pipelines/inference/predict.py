"""``pare predict``: SMPL parameters, joints and cameras per person, with overlay pictures.

Per image ``<stem>``: ``<stem>_person<k>.json`` for each person, ``<stem>_mesh.png`` (all
predicted meshes drawn over the image) and, for the PARE head, ``<stem>_person<k>_attention.png``
(crop, 2D part labels, part attention). ``predictions.jsonl`` collects every person and
``rejects.jsonl`` every input that produced no prediction, with the reason: an image that is
unreadable, too large or not a regular file, a box mostly outside its image or for an image
that is not in the folder, a person whose prediction is not finite. Every image of the folder
and every box of the boxes file ends up in exactly one of the two. Outputs are written into a
hidden folder first and moved into place at the end: a failed run leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pare_model.errors import UserFacingError
from pare_model.geometry import matrix_to_axis_angle
from pare_model.image_input import to_model_input
from pare_model.model import PareModel
from pipelines.config.predict import PredictConfig
from pipelines.inference.boxes import check_detector
from pipelines.inference.camera import crop_camera_in_image
from pipelines.inference.people import ImagePeople, PersonCrop, find_images, iter_people, missing_images
from pipelines.visualize.attention import attention_panel
from pipelines.visualize.mesh_overlay import draw_meshes
from preprocessing.render.cameras import apply_affine, invert_affine

FINITE_KEYS = (
    "pred_pose",
    "pred_shape",
    "pred_cam",
    "pred_cam_t",
    "pred_keypoints_3d",
    "pred_keypoints_2d",
    "pred_vertices",
)
"""Outputs that must be finite for a person's record and overlay to be written."""


@dataclass
class PredictSummary:
    output_dir: Path
    num_images: int = 0
    num_people: int = 0
    rejects: list[dict] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def _batches(images: Iterator[ImagePeople], batch_size: int) -> Iterator[list[ImagePeople]]:
    """Group whole images so that each group holds about ``batch_size`` people."""
    group: list[ImagePeople] = []
    for item in images:
        group.append(item)
        if sum(len(g.people) for g in group) >= batch_size:
            yield group
            group = []
    if group:
        yield group


def _person_record(person: PersonCrop, out: dict[str, np.ndarray], index: int, model: PareModel, image: np.ndarray):
    pose = out["pred_pose"][index]
    axis_angle = matrix_to_axis_angle(torch.as_tensor(pose)).reshape(-1).numpy()
    crop_pixels = (out["pred_keypoints_2d"][index] + 1.0) * model.image_size / 2.0
    image_pixels = apply_affine(crop_pixels.astype(np.float64), invert_affine(person.affine))
    return {
        "image": person.image_name,
        "person": person.person,
        "bbox": person.bbox,
        "box_source": person.box_source,
        "crop": {"center": person.center.tolist(), "size": person.box_size, "affine": person.affine.tolist()},
        "smpl": {
            "global_orient": axis_angle[:3].tolist(),
            "body_pose": axis_angle[3:].tolist(),
            "betas": out["pred_shape"][index].tolist(),
            "rotation_matrices": pose.tolist(),
        },
        "camera": {
            "weak_perspective": out["pred_cam"][index].tolist(),
            "crop_translation": out["pred_cam_t"][index].tolist(),
            "crop_focal_length": model.focal_length,
            "image": crop_camera_in_image(
                out["pred_cam_t"][index],
                person.center,
                person.box_size,
                image.shape[1],
                image.shape[0],
                model.focal_length,
                model.image_size,
            ),
        },
        "joints_3d": out["pred_keypoints_3d"][index].tolist(),
        "joints_2d_image": image_pixels.tolist(),
    }


def _run_batch(model: PareModel, group: list[ImagePeople], device: torch.device) -> dict[str, np.ndarray]:
    crops = np.stack([p.crop for item in group for p in item.people])
    with torch.no_grad():
        output = model(to_model_input(crops, device))
    return {k: v.float().cpu().numpy() for k, v in output.items()}


def _finite(out: dict[str, np.ndarray], index: int) -> bool:
    return all(np.isfinite(out[key][index]).all() for key in FINITE_KEYS if key in out)


def _write_image(
    item: ImagePeople, out: dict, start: int, model: PareModel, faces: np.ndarray, config: PredictConfig, folder: Path
):
    records, files = [], []
    for offset, person in enumerate(item.people):
        record = _person_record(person, out, start + offset, model, item.image)
        path = folder / f"{item.path.stem}_person{person.person}.json"
        path.write_text(json.dumps(record, indent=1))
        records.append(record)
        files.append(path)
        if config.overlays and "pred_part_attention" in out:
            panel = attention_panel(
                person.crop, out["pred_segm_mask"][start + offset], out["pred_part_attention"][start + offset]
            )
            files.append(folder / f"{item.path.stem}_person{person.person}_attention.png")
            panel.save(files[-1])
    if config.overlays:
        meshes = [
            (out["pred_vertices"][start + k], out["pred_cam"][start + k], p.affine) for k, p in enumerate(item.people)
        ]
        files.append(folder / f"{item.path.stem}_mesh.png")
        draw_meshes(item.image, meshes, faces, model.focal_length, model.image_size).save(files[-1])
    return records, files


def _keep_finite(item: ImagePeople, out: dict[str, np.ndarray], start: int, rejects: list[dict]) -> dict:
    """The outputs of ``item``'s people, without (and rejecting) those whose prediction is not finite."""
    indices = list(range(start, start + len(item.people)))
    keep = [k for k, index in enumerate(indices) if _finite(out, index)]
    for k, person in enumerate(item.people):
        if k not in keep:
            rejects.append(
                {
                    "image": person.image_name,
                    "person": person.person,
                    "bbox": person.bbox,
                    "reason": "the model's prediction is not finite (NaN or infinite)",
                }
            )
    item.people = [item.people[k] for k in keep]
    return {key: value[[indices[k] for k in keep]] for key, value in out.items()}


def _output_folder(path: str) -> Path:
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserFacingError(f"--out {folder} is a file, not a folder; pass a folder for the results")
    return folder


def _publish(staging: Path, folder: Path, files: list[Path]) -> list[Path]:
    """Move the finished outputs from ``staging`` into ``folder`` (a rename of the whole folder when it is new)."""
    if not folder.exists():
        os.replace(staging, folder)
    else:
        for path in sorted(staging.iterdir()):
            os.replace(path, folder / path.name)
    return [folder / path.name for path in files]


def run_predict(model: PareModel, images_dir: str | Path, boxes: dict | None, config: PredictConfig) -> PredictSummary:
    """Predict every person in ``images_dir`` and write the results to ``config.output_dir``.

    Everything is written into a hidden folder beside the output folder and moved into it only at the
    end, so an interrupted or failed run leaves no half-written file behind.
    """
    check_detector(config.detector)
    final = _output_folder(config.output_dir)
    summary = PredictSummary(final)
    paths = find_images(images_dir, summary.rejects)
    summary.rejects += missing_images(boxes, paths, summary.rejects)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        _predict_into(model, paths, boxes, config, staging, summary)
        summary.files = _publish(staging, final, summary.files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def _predict_into(
    model: PareModel,
    paths: list[Path],
    boxes: dict | None,
    config: PredictConfig,
    folder: Path,
    summary: PredictSummary,
) -> None:
    device = torch.device(config.device)
    model = model.to(device).eval()
    faces = model.body_model.faces.cpu().numpy()
    people = iter_people(paths, boxes, config.detector, config.box_scale, model.image_size, summary.rejects)
    with open(folder / "predictions.jsonl", "w") as jsonl, tqdm(total=len(paths), desc="predict", unit="image") as bar:
        for group in _batches(people, config.batch_size):
            with_people = [item for item in group if item.people]
            out = _run_batch(model, with_people, device) if with_people else {}
            start = 0
            for item in with_people:
                count = len(item.people)
                item_out = _keep_finite(item, out, start, summary.rejects)
                start += count
                if not item.people:
                    continue
                records, files = _write_image(item, item_out, 0, model, faces, config, folder)
                summary.num_people += len(records)
                summary.files += files
                jsonl.writelines(json.dumps(r) + "\n" for r in records)
            summary.num_images += sum(1 for item in with_people if item.people)
            bar.update(len(group))
        bar.update(len(paths) - bar.n)  # unreadable images never reach a group
    with open(folder / "rejects.jsonl", "w") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in summary.rejects)
