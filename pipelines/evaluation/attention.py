"""``pare attention``: the PARE head's 24 part-attention maps over the crops of test shards.

For the first ``num`` samples of the shards (in shard order): ``attention_<key>.png`` (the key made
a plain file name by :func:`~pipelines.file_names.safe_file_name`) with the
crop, the 2D part branch's labels, the combined attention and one heat map per part (see
:func:`pipelines.visualize.attention.attention_panel`), and ``attention_sheet.png`` with the
combined attention of every sample side by side. For raw images, ``pare predict`` draws the same
panel per detected person.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pare_model.image_input import to_model_input
from pipelines.config.schema import PareConfig
from pipelines.evaluation.job import context_spec, shard_folders
from pipelines.evaluation.measure import Unit, unit_batches
from pipelines.evaluation.predictors import EvalContext
from pipelines.evaluation.source import EvaluationError, resolve_source
from pipelines.file_names import safe_file_name
from pipelines.preflight import check_output_folder
from pipelines.visualize.attention import attention_overlay, attention_panel
from pipelines.visualize.contact_sheet import contact_sheet


def run_attention_pictures(config: PareConfig, num: int, output_dir: str | Path) -> list[Path]:
    """Write the pictures; returns their paths, the contact sheet last."""
    if num < 1:
        raise EvaluationError(f"--num must be at least 1, got {num}")
    check_output_folder(output_dir, "--out")
    context = EvalContext(context_spec(config, resolve_source(config)))
    if context.model is None:
        raise EvaluationError("attention pictures need a checkpoint: pass --checkpoint FILE or --run RUN_ID")
    urls = tuple(url for folder in shard_folders(config)[0] for url in folder.urls)
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    files, tiles, captions = [], [], []
    for batch in unit_batches(Unit(urls, max_samples=num), context.image_size, batch_size=min(num, 16)):
        with torch.no_grad():
            output = context.model(to_model_input(batch["image"], context.device))
        if "pred_part_attention" not in output:
            raise EvaluationError("attention pictures need a PARE-head checkpoint (the HMR head has no part attention)")
        for index, key in enumerate(batch["key"]):
            crop = batch["image"][index].numpy()
            attention = output["pred_part_attention"][index].float().cpu().numpy()
            segm = output["pred_segm_mask"][index].float().cpu().numpy()
            files.append(folder / f"attention_{safe_file_name(key)}.png")
            attention_panel(crop, segm, attention).save(files[-1])
            tiles.append(np.concatenate([crop, attention_overlay(crop, attention)], axis=1))
            captions.append(key)
    if not tiles:
        raise EvaluationError(f"the shards {config.evaluate.shards} gave no readable sample")
    sheet = contact_sheet(
        tiles,
        columns=min(4, len(tiles)),
        captions=captions,
        cell_size=(384, 192),
        title="crop | part attention (each pixel coloured by the part attending to it most)",
    )
    files.append(folder / "attention_sheet.png")
    sheet.save(files[-1])
    return files
