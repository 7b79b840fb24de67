"""``pare predict``: SMPL parameters, joints and cameras per person, with overlay pictures.

Per image ``<stem>``: ``<stem>_person<k>.json`` for each person, ``<stem>_mesh.png`` (all
predicted meshes drawn over the image) and, for the PARE head, ``<stem>_person<k>_attention.png``
(crop, 2D part labels, part attention). ``predictions.jsonl`` collects every person and
``rejects.jsonl`` every image that produced no prediction, with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pare_model.geometry import matrix_to_axis_angle
from pare_model.image_input import to_model_input
from pare_model.model import PareModel
from pipelines.config.predict import PredictConfig
from pipelines.inference.boxes import check_detector
from pipelines.inference.camera import crop_camera_in_image
from pipelines.inference.people import ImagePeople, PersonCrop, find_images, iter_people
from pipelines.visualize.attention import attention_panel
from pipelines.visualize.mesh_overlay import draw_meshes
from preprocessing.render.cameras import apply_affine, invert_affine


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
        output = model(to_model_input(crops).to(device))
    return {k: v.float().cpu().numpy() for k, v in output.items()}


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


def run_predict(model: PareModel, images_dir: str | Path, boxes: dict | None, config: PredictConfig) -> PredictSummary:
    """Predict every person in ``images_dir`` and write the results to ``config.output_dir``."""
    check_detector(config.detector)
    paths = find_images(images_dir)
    folder = Path(config.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    summary = PredictSummary(folder)
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
                records, files = _write_image(item, out, start, model, faces, config, folder)
                start += len(item.people)
                summary.num_people += len(records)
                summary.files += files
                jsonl.writelines(json.dumps(r) + "\n" for r in records)
            summary.num_images += len(with_people)
            bar.update(len(group))
        bar.update(len(paths) - bar.n)  # unreadable images never reach a group
    with open(folder / "rejects.jsonl", "w") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in summary.rejects)
    return summary
