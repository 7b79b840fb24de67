"""``pare synth``'s job: synthetic data in a real dataset's file layout, and its preview sheet.

The body model comes from the config (``body_model.*``; the procedural stand-in by default,
generated on first use); each layout picks the genders it needs. The rendering defaults are
in ``synth.*`` (:class:`pipelines.config.synth.SynthConfig`).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pare_model.errors import UserFacingError
from preprocessing.synth.layouts import LAYOUTS  # registered by module path: no torch for --help

PREVIEW_FILE = "preview.png"
PREVIEW_COLUMNS = 4
"""Samples per row of the preview; each sample takes two cells (image, image with labels)."""


@dataclass(frozen=True)
class SynthRun:
    """What ``pare synth`` wrote and how long it took."""

    out: Path
    result: object  # preprocessing.synth.LayoutResult
    seconds: float
    preview_png: Path | None


def _check_out(out: Path, force: bool) -> None:
    """Refuse a non-empty --out unless --force, and never delete what synth did not write."""
    from preprocessing.synth.common import MANIFEST_FILE

    if not (out.exists() and any(out.iterdir())):
        return
    if not force:
        raise UserFacingError(f"{out} is not empty; pass --force to replace its contents, or choose another --out")
    if not (out / MANIFEST_FILE).is_file():
        raise UserFacingError(
            f"{out} holds files that pare synth did not write (no {MANIFEST_FILE}); refusing to replace them"
        )
    shutil.rmtree(out)


def _person_crop(image: np.ndarray, labels: np.ndarray, margin: float = 0.15) -> np.ndarray:
    """The square part of ``image`` around the labelled pixels (all of it if there are none)."""
    rows, cols = np.nonzero(labels)
    if len(rows) == 0:
        return image
    center = np.array([(rows.min() + rows.max() + 1) / 2.0, (cols.min() + cols.max() + 1) / 2.0])
    half = (1.0 + 2.0 * margin) * max(rows.max() + 1 - rows.min(), cols.max() + 1 - cols.min()) / 2.0
    top, left = (np.maximum(center - half, 0)).astype(int)
    bottom, right = np.minimum(center + half, labels.shape).astype(int)
    return image[top:bottom, left:right]


def preview_sheet(result, title: str):
    """Contact sheet of the result's preview tiles: each image, then a close-up with labels and keypoints."""
    from pipelines.visualize.contact_sheet import contact_sheet
    from pipelines.visualize.overlays import draw_keypoints, overlay_labels

    tiles, captions = [], []
    for tile in result.previews:
        rows, cols = np.nonzero(tile.labels)
        extent = max(np.ptp(rows), np.ptp(cols)) if len(rows) else max(tile.labels.shape)
        radius = max(1.5, extent / 70.0)  # dots scale with the person, who is shown close up
        overlay = draw_keypoints(overlay_labels(tile.image, tile.labels, 0.55), tile.keypoints, tile.visible, radius)
        tiles += [tile.image, _person_crop(overlay, tile.labels)]
        captions += [tile.caption, "parts, keypoints (red: hidden)"]
    return contact_sheet(tiles, 2 * PREVIEW_COLUMNS, captions, title, cell_size=(220, 220))


def run_synth(
    config,
    layout: str,
    out: str | Path,
    num: int,
    seed: int = 0,
    preview: bool = False,
    occluders: float | None = None,
    force: bool = False,
) -> SynthRun:
    """Write ``num`` synthetic samples of ``layout`` into ``out``.

    Args:
        config: the resolved :class:`~pipelines.config.schema.PareConfig` (its ``body_model``
            and ``synth`` sections are used).
        occluders: probability of occluders per picture; ``config.synth.occluders`` if None.
        preview: also write ``preview.png``, a contact sheet of the first samples.
        force: replace the contents of a non-empty ``out`` written by an earlier ``pare synth``.
    """
    from pipelines.body_model_source import prepare_assets
    from preprocessing.synth import BodyModels, SynthOptions, synthesize

    LAYOUTS.check(layout)
    if num < 1:
        raise UserFacingError(f"--num must be >= 1, got {num}")
    if seed < 0:
        raise UserFacingError(f"--seed must be >= 0, got {seed}")
    probability = config.synth.occluders if occluders is None else occluders
    if not 0.0 <= probability <= 1.0:
        raise UserFacingError(f"--occluders must be a probability in [0, 1], got {probability}")
    out = Path(out)
    _check_out(out, force)
    settings = config.synth
    options = SynthOptions(
        image_size=settings.image_size,
        occluder_probability=probability,
        jpeg_quality=settings.jpeg_quality,
        sequence_length=settings.sequence_length,
        pw3d_scale=settings.pw3d_scale,
        h36m_scale=settings.h36m_scale,
        batch_size=settings.batch_size,
        pose_variation=settings.pose_variation,
        preview_count=settings.preview_samples if preview else 0,
    )
    models = BodyModels(prepare_assets(config.body_model), config.body_model.part_map or None)
    start = time.perf_counter()
    result = synthesize(layout, out, num, seed, models, options)
    seconds = time.perf_counter() - start
    preview_png = None
    if preview:
        kind = "procedural body model, NOT SMPL" if models.procedural else "SMPL-format body model"
        title = f"pare synth --layout {layout}: SYNTHETIC ({kind}), seed {seed}"
        preview_png = out / PREVIEW_FILE
        preview_sheet(result, title).save(preview_png)
    return SynthRun(out=out, result=result, seconds=seconds, preview_png=preview_png)
