"""``pare occlusion-analysis``: the paper's occlusion sensitivity analysis, on Ray actors, with its figures.

Writes to ``evaluate.occlusion.output_dir``:

- ``occlusion.npz``: per image the clean (14,) and occluded (side, side, 14) per-joint MPJPE and
  PA-MPJPE, the part coverage of every patch position, the 2D joints, and the keys;
- ``figure1_mean_mpjpe.png`` / ``figure1_mean_pa_mpjpe.png``: per-joint error maps averaged over
  every image (over the mean crop); ``figure1_<key>.png``: the same for single images (the key made a
  plain file name by :func:`~pipelines.file_names.safe_file_name`);
- ``figure3_part_sensitivity.png`` and ``part_sensitivity.csv``: how much hiding each body part
  raises MPJPE and PA-MPJPE;
- the local sensitivity (:func:`pipelines.occlusion_sensitivity.analysis.local_sensitivity`): the
  mean MPJPE increase of a joint when the patch covers it against when the patch is far from it,
  and their ratio;

and logs them (with ``occlusion/*`` metrics) to MLflow like ``pare evaluate``.
"""

from __future__ import annotations

import csv
import functools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pare_model.body_model.parts import PART_NAMES
from pipelines.config.schema import PareConfig
from pipelines.evaluation.job import actor_gpus, context_spec, shard_folders
from pipelines.evaluation.source import EvaluationError, ModelSource, resolve_source
from pipelines.evaluation.tracking import Logged, check_logging, log_results
from pipelines.evaluation.workers import EvaluationActors, plan_units, run_units
from pipelines.file_names import safe_file_name
from pipelines.occlusion_sensitivity.analysis import Grid, OcclusionPart, analyse_unit, local_sensitivity
from pipelines.occlusion_sensitivity.figures import joint_heatmaps, part_sensitivity, part_sensitivity_figure
from pipelines.preflight import check_output_folder


@dataclass(frozen=True)
class OcclusionResult:
    output_dir: Path
    files: list[Path]
    num_images: int
    clean: dict[str, float]
    occluded: dict[str, float]
    worst_parts: list[tuple[str, float]]
    local: dict[str, float]  # MPJPE increase (mm) with the patch over the joint (near) and far from it, and near / far
    source: ModelSource
    logged: Logged | None
    seconds: float


def _body(asset_dir: str):
    import torch

    from pare_model.body_model import BodyModel, load_body_model_assets

    body = BodyModel.from_assets(load_body_model_assets(asset_dir))
    rotations = torch.eye(3).repeat(1, 24, 1, 1)
    with torch.no_grad():
        vertices = body(rotations[:, :1], rotations[:, 1:], torch.zeros(1, 10))["vertices"][0].numpy()
    return vertices, body.faces.numpy(), body.part_map.numpy()


def _write_csv(path: Path, sensitivity: dict[str, np.ndarray]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["part", *(f"{metric}_increase_mm" for metric in sensitivity)])
        for index, name in enumerate(PART_NAMES):
            writer.writerow([name, *(f"{values[index]:.3f}" for values in sensitivity.values())])
    return path


def _figures(
    folder: Path,
    part: OcclusionPart,
    arrays: dict,
    grid: Grid,
    label: str,
    figures: int,
    asset_dir: str,
    sensitivity: dict[str, np.ndarray],
) -> list[Path]:
    files = []
    mean_image = part.mean_image()
    count = len(part)
    for metric in ("mpjpe", "pa_mpjpe"):
        name = metric.upper().replace("PA_", "PA-")
        files.append(
            joint_heatmaps(
                folder / f"figure1_mean_{metric}.png",
                mean_image,
                arrays[metric].mean(axis=0),
                grid.stride,
                None,
                arrays[f"clean_{metric}"].mean(axis=0),
                f"{label}: per-joint {name} with a {grid.patch}-px patch at each position, mean of {count} images",
                metric=name,
            )
        )
    index = {key: k for k, key in enumerate(part.keys)}
    for key, image in list(part.images.items())[:figures]:
        k = index[key]
        files.append(
            joint_heatmaps(
                folder / f"figure1_{safe_file_name(key)}.png",
                image,
                arrays["mpjpe"][k],
                grid.stride,
                arrays["joints_2d"][k],
                arrays["clean_mpjpe"][k],
                f"{label}: {key}, per-joint MPJPE with a {grid.patch}-px patch at each position",
            )
        )
    vertices, faces, part_map = _body(asset_dir)
    rows = {metric.upper().replace("PA_", "PA-"): values for metric, values in sensitivity.items()}
    files.append(
        part_sensitivity_figure(
            folder / "figure3_part_sensitivity.png",
            vertices,
            faces,
            part_map,
            rows,
            f"{label}: error increase when each body part is hidden ({count} images)",
        )
    )
    return files


def run_occlusion_analysis(config: PareConfig, shared: EvaluationActors | None = None) -> OcclusionResult:
    """Run the analysis as configured; returns the headline numbers and where the files are. ``shared``: as for
    :func:`~pipelines.evaluation.job.run_evaluation`."""
    from pipelines.io.cluster import init_ray

    start = time.monotonic()
    evaluate, occlusion = config.evaluate, config.evaluate.occlusion
    check_output_folder(occlusion.output_dir, "evaluate.occlusion.output_dir (--out)")
    source = resolve_source(config)
    check_logging(config, source)
    folders, _ = shard_folders(config)
    init_ray(evaluate.ray_address)
    spec = context_spec(config, source)
    job = functools.partial(
        analyse_unit,
        patch=occlusion.patch_size,
        stride=occlusion.stride,
        batch_size=evaluate.batch_size,
        keep_images=occlusion.figures,
    )
    units = plan_units(folders, evaluate.num_actors, occlusion.num_images)
    part: OcclusionPart | None = None
    for result in run_units(
        spec,
        job,
        units,
        evaluate.num_actors,
        evaluate.cpus_per_actor,
        actor_gpus(config),
        f"occlusion {source.label}",
        shared,
    ):
        part = result if part is None else part.extend(result)
    if part is None or not len(part):
        raise EvaluationError(f"no image of {[f.uri for f in folders]} has 3D ground truth to analyse")
    arrays = part.arrays()
    folder = Path(occlusion.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / "occlusion.npz", keys=np.array(part.keys), **arrays)
    sensitivity = {
        metric: part_sensitivity(arrays[metric], arrays[f"clean_{metric}"], arrays["coverage"])
        for metric in ("mpjpe", "pa_mpjpe")
    }
    files = [folder / "occlusion.npz", _write_csv(folder / "part_sensitivity.csv", sensitivity)]
    files += _figures(folder, part, arrays, part.grid, source.label, occlusion.figures, spec.asset_dir, sensitivity)
    clean = {metric: float(arrays[f"clean_{metric}"].mean()) for metric in ("mpjpe", "pa_mpjpe")}
    occluded = {metric: float(arrays[metric].mean()) for metric in ("mpjpe", "pa_mpjpe")}
    local = local_sensitivity(arrays["mpjpe"], arrays["clean_mpjpe"], arrays["joints_2d"], part.grid)
    metrics = {f"occlusion/clean_{k}": v for k, v in clean.items()} | {f"occlusion/{k}": v for k, v in occluded.items()}
    metrics |= {f"occlusion/local_{k}": v for k, v in local.items() if np.isfinite(v)}
    params = {f"occlusion.{k}": v for k, v in vars(occlusion).items()}
    logged = log_results(config, source, metrics, files, "occlusion", params, "occlusion")
    order = np.argsort(-np.nan_to_num(sensitivity["mpjpe"], nan=-np.inf))
    worst = [(PART_NAMES[i], float(sensitivity["mpjpe"][i])) for i in order[:3] if np.isfinite(sensitivity["mpjpe"][i])]
    return OcclusionResult(
        folder, files, len(part), clean, occluded, worst, local, source, logged, time.monotonic() - start
    )


def summary_text(result: OcclusionResult) -> str:
    parts = ", ".join(f"{name} {value:+.1f} mm" for name, value in result.worst_parts) or "none hidden"
    lines = [
        f"Occlusion sensitivity of {result.source.label} on {result.num_images} images in {result.seconds:.0f} s:",
        f"  MPJPE {result.clean['mpjpe']:.1f} mm clean, {result.occluded['mpjpe']:.1f} mm on average with the patch;"
        f" PA-MPJPE {result.clean['pa_mpjpe']:.1f} -> {result.occluded['pa_mpjpe']:.1f} mm",
        f"  parts whose occlusion hurts most (MPJPE): {parts}",
        f"  {local_text(result.local)}",
        f"  figures: {result.output_dir.resolve()} (figure1_*.png per-joint heatmaps, figure3_part_sensitivity.png)",
    ]
    if result.logged:
        lines.append(f"  MLflow run {result.logged.run_id}: mlflow ui --backend-store-uri {result.logged.tracking_uri}")
    return "\n".join(lines)


def local_text(local: dict[str, float]) -> str:
    """One line on the local sensitivity: the increase with the patch on a joint against far from it."""
    return (
        f"a joint's MPJPE rises {local['near']:+.1f} mm with the patch on it, {local['far']:+.1f} mm with the "
        f"patch far from it (ratio {local['ratio']:.1f}{'' if local['near'] > 0 else ': no local sensitivity'})"
    )
