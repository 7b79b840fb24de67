"""``pare export``: a checkpoint to a TorchScript or ONNX file, checked against eager PyTorch.

Everything that can be wrong with the inputs (the checkpoint, the body model, the output path) is
checked before anything is written. The file is written under a temporary name beside ``--out``,
loaded back from disk and run on a few crops next to the eager model
(:mod:`pipelines.export.check`); it takes its final name only when every output agrees.

ONNX goes through PyTorch's TorchScript-based exporter (``dynamo=False``): ``torch.export``, behind
the newer exporter, cannot follow smplx's kinematic chain, which indexes a Python list with the
``parents`` buffer, so only the network alone would export that way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pare_model.body_model import BodyModel, load_body_model_assets
from pare_model.checkpoint import read_network_checkpoint
from pare_model.errors import AssetError, UserFacingError
from pare_model.export import (
    INPUT_NAME,
    TRACE_BATCH,
    ExportModule,
    build_network_module,
    example_crops,
    output_names,
    trace,
)
from pare_model.image_input import to_model_input
from pare_model.model import build_model
from pipelines.config.body_model import BodyModelConfig
from pipelines.export.check import EPS, TOLERANCE, Difference, Format, compare, exported_runner, table

BODY_MODEL_ENV = "PARE_BODY_MODEL_DIR"
"""A body model folder that overrides the config's, as for the MLflow model."""
ONNX_OPSET = 17
MAX_CHECK_CROPS = 64
"""Most crops the check may run on (``--check-crops``); enough to cover a batch dimension several times over."""
CHECK_BATCH = 8
"""Crops the check runs at a time, so that its memory does not grow with ``--check-crops``."""
METADATA_KEY = "pare_export"
"""ONNX: the metadata property holding the export's JSON description; TorchScript: the extra file
``pare_export.json``."""


@dataclass(frozen=True)
class ExportRequest:
    checkpoint: str
    format: Format
    out: Path
    with_body_model: bool = False
    body_model_dir: str = ""
    """A body model folder (--body-model-dir); empty: ``PARE_BODY_MODEL_DIR``, else the config's."""
    num_crops: int = 4
    tolerance: float = TOLERANCE
    force: bool = False


@dataclass(frozen=True)
class ExportResult:
    path: Path
    """Where the file is (``--out``), or would have been had the check passed."""
    format: Format
    description: dict
    rows: list[Difference]
    num_crops: int

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)


def check_out(out: Path, force: bool) -> None:
    """``out`` can be written: not a folder, not an existing file (unless ``force``), in a writable place."""
    if out.is_dir():
        raise UserFacingError(f"--out {out} is a folder; name the file to write, e.g. {out / 'model.onnx'}")
    if out.exists() and not force:
        raise UserFacingError(f"{out} exists; pass --force to overwrite it, or choose another --out")
    for parent in out.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserFacingError(
                    f"--out {out}: {parent} is a file, so no file can be made there; choose another --out"
                )
            try:  # a real write: permissions alone say nothing for root, or on a read-only file system
                tempfile.TemporaryFile(dir=parent).close()
            except OSError as error:
                raise UserFacingError(
                    f"--out {out}: cannot write in {parent} ({error.strerror or error}); choose another --out"
                ) from error
            return


def body_model_folder(flag: str, config: BodyModelConfig) -> tuple[Path, str]:
    """The body model folder and what named it: --body-model-dir, else $PARE_BODY_MODEL_DIR, else the config."""
    if flag:
        return Path(flag), "--body-model-dir"
    if os.environ.get(BODY_MODEL_ENV):
        return Path(os.environ[BODY_MODEL_ENV]), BODY_MODEL_ENV
    from pipelines.body_model_source import prepare_assets

    return prepare_assets(config), "body_model.asset_dir"


def _load(request: ExportRequest, config: BodyModelConfig) -> tuple[nn.Module, dict]:
    """The eager model to export (eval mode) and the description stored in the file."""
    checkpoint = read_network_checkpoint(request.checkpoint)
    body = "none"
    if request.with_body_model:
        folder, origin = body_model_folder(request.body_model_dir, config)
        try:
            assets = load_body_model_assets(folder, config.gender)
        except AssetError as error:
            raise AssetError(f"{origin}: {error}") from error
        full = build_model(checkpoint.config, BodyModel.from_assets(assets), assets.mean_params)
        full.load_network_state_dict(checkpoint.network)
        model: nn.Module = full
        body = f"procedural stand-in (not SMPL), {assets.gender}" if assets.procedural else f"SMPL, {assets.gender}"
    else:
        model = build_network_module(checkpoint.config, checkpoint.network)
    config_dict = dataclasses.asdict(checkpoint.config)
    size = checkpoint.config.image_size
    description = {
        "input": f"{INPUT_NAME}: uint8 (B, {size}, {size}, 3) RGB person crops; ImageNet normalisation is inside",
        "outputs": list(output_names(checkpoint.config.head, request.with_body_model)),
        "body_model": body,
        "model_config": config_dict,
        "checkpoint": Path(request.checkpoint).name,
        "exported_with": f"pare-pipeline {_version()}, torch {torch.__version__}",
    }
    return model.eval(), description


def _version() -> str:
    try:
        return metadata.version("pare-pipeline")
    except metadata.PackageNotFoundError:
        return "unknown"


def _write_torchscript(module: ExportModule, path: Path, image_size: int, description: dict) -> None:
    traced = trace(module, image_size)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit.save` is deprecated", category=DeprecationWarning)
        torch.jit.save(traced, str(path), _extra_files={f"{METADATA_KEY}.json": json.dumps(description)})


def _write_onnx(module: ExportModule, path: Path, image_size: int, description: dict) -> None:
    import onnx

    names = list(module.names)
    batch = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        # Chosen on purpose (see the module docstring); its tracer warnings are answered by the check.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        torch.onnx.export(
            module.eval(),
            (example_crops(TRACE_BATCH, image_size),),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes={INPUT_NAME: batch} | {name: batch for name in names},
            opset_version=ONNX_OPSET,
        )
    graph = onnx.load(str(path))
    graph.metadata_props.add(key=METADATA_KEY, value=json.dumps(description))
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


def write_file(module: ExportModule, fmt: Format, path: Path, image_size: int, description: dict) -> None:
    """Trace ``module`` at ``image_size`` and write it to ``path`` in ``fmt``, ``description`` stored inside."""
    writer = _write_onnx if fmt == "onnx" else _write_torchscript
    writer(module, path, image_size, description)


def run_export(request: ExportRequest, body_model: BodyModelConfig) -> ExportResult:
    """Write ``request.out`` and check it; on a failed check nothing is left under that name, and nothing is
    written outside the folder of ``request.out`` (:func:`_staging`)."""
    if not 1 <= request.num_crops <= MAX_CHECK_CROPS:
        raise UserFacingError(
            f"--check-crops must be from 1 to {MAX_CHECK_CROPS} (the check's crops are made in memory), "
            f"got {request.num_crops}"
        )
    if not 0 < request.tolerance < 1:
        raise UserFacingError(f"--tolerance must be between 0 and 1 (a relative difference), got {request.tolerance}")
    check_out(request.out, request.force)
    with _staging(request.out) as staging:
        model, description = _load(request, body_model)
        image_size = description["model_config"]["image_size"]
        names = description["outputs"]
        module = ExportModule(model, names).eval()
        partial = staging / request.out.name
        write_file(module, request.format, partial, image_size, description)
        crops = example_crops(request.num_crops, image_size, seed=1)
        eager, exported = _outputs(model, partial, request.format, crops, names)
        rows = compare(names, exported, eager, request.tolerance)
        result = ExportResult(request.out, request.format, description, rows, request.num_crops)
        if result.ok:
            os.replace(partial, request.out)
        return result


TORCH_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
"""Where torch keeps its compile caches. torch makes the folder (by default ``torchinductor_<user>`` in the temp
folder) when it first imports its compiler, which building a model on the meta device does; nothing is compiled."""


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A hidden folder beside ``out`` for the file being written and, unless the user chose a place for it, torch's
    cache folder; removed afterwards, whatever happens."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial-{uuid.uuid4().hex[:12]}")
    staging.mkdir()
    before = os.environ.get(TORCH_CACHE_ENV)
    if before is None:
        os.environ[TORCH_CACHE_ENV] = str(staging / "torch-cache")
    try:
        yield staging
    finally:
        if before is None:
            os.environ.pop(TORCH_CACHE_ENV, None)
        shutil.rmtree(staging, ignore_errors=True)


def _outputs(model: nn.Module, path: Path, fmt: Format, crops: torch.Tensor, names: list[str]):
    """(eager outputs, the written file's outputs) on ``crops``, run :data:`CHECK_BATCH` crops at a time."""
    run = exported_runner(path, fmt, names)
    eager: list[list[np.ndarray]] = [[] for _ in names]
    exported: list[list[np.ndarray]] = [[] for _ in names]
    for start in range(0, len(crops), CHECK_BATCH):
        batch = crops[start : start + CHECK_BATCH]
        with torch.no_grad():
            output = model(to_model_input(batch))
        for index, (name, value) in enumerate(zip(names, run(batch), strict=True)):
            eager[index].append(np.asarray(output[name].numpy()))
            exported[index].append(np.asarray(value))
    return [np.concatenate(parts) for parts in eager], [np.concatenate(parts) for parts in exported]


def summary_text(result: ExportResult) -> str:
    """The difference table and what was written (or why not)."""
    worst = max(result.rows, key=lambda row: row.max_rel if row.ok else float("inf"))
    lines = [
        f"{result.format} against eager PyTorch on {result.num_crops} crops "
        f"(relative difference: max |exported - eager| / (max |eager| + {EPS:g}) per output):",
        table(result.rows),
    ]
    if not result.ok:
        return "\n".join(lines)
    size_mb = result.path.stat().st_size / 1e6
    lines += [
        f"All {len(result.rows)} outputs agree (largest relative difference {worst.max_rel:.1e}, {worst.name}).",
        f"Wrote {result.path} ({result.format}, {size_mb:.1f} MB): {result.description['input']}; "
        f"body model: {result.description['body_model']}.",
    ]
    return "\n".join(lines)
