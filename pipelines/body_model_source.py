"""Provide the configured body model: real SMPL files, or the procedural stand-in made on demand.

The stand-in is written to a temporary sibling folder and renamed into place, so that many
processes asking for it at once (Ray workers on a shared filesystem) never see half a folder:
one rename wins and the others use its result.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Literal

from pare_model.body_model import BodyModel, load_body_model_assets
from pare_model.body_model.assets import PROCEDURAL_MANIFEST, BodyModelAssets
from pare_model.errors import AssetError
from pipelines.config.body_model import BodyModelConfig


def _manifest(folder: Path) -> dict | None:
    path = folder / PROCEDURAL_MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise AssetError(f"{path} is damaged ({error}); delete {folder} to regenerate it") from error


def _check_procedural(folder: Path, manifest: dict, seed: int) -> None:
    from pare_model.body_model.procedural.generator import GENERATOR_VERSION

    if manifest.get("seed") != seed or manifest.get("generator_version") != GENERATOR_VERSION:
        raise AssetError(
            f"{folder} holds the procedural body model of seed {manifest.get('seed')} (generator "
            f"v{manifest.get('generator_version')}), but the config asks for seed {seed} (v{GENERATOR_VERSION}). "
            "Point body_model.asset_dir at another folder, or delete this one to regenerate it."
        )
    missing = [name for name in manifest.get("files", {}) if not (folder / name).is_file()]
    if missing:
        raise AssetError(f"{folder} lacks {missing} of its procedural manifest; delete the folder to regenerate it")


def generate_procedural_folder(folder: Path, seed: int, fmt: Literal["pkl", "npz"] = "pkl") -> Path:
    """Write the stand-in for ``seed`` into ``folder`` atomically; returns ``folder``."""
    from pare_model.body_model.procedural.files import write_asset_folder
    from pare_model.body_model.procedural.generator import generate

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.partial-{uuid.uuid4().hex}"
    try:
        write_asset_folder(generate(seed), staging, fmt)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        try:
            os.rename(staging, folder)
        except OSError:
            if _manifest(folder) is None:  # lost the race to something that is not our output
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def prepare_assets(config: BodyModelConfig) -> Path:
    """The asset folder to load, generating the procedural stand-in first if needed."""
    folder = Path(config.asset_dir)
    if config.source == "files":
        if not folder.is_dir():
            raise AssetError(
                f"body_model.asset_dir {folder} does not exist. Put the SMPL files there, or use the "
                "procedural stand-in with body_model.source=procedural."
            )
        if _manifest(folder) is not None:
            raise AssetError(
                f"{folder} holds the procedural stand-in, not SMPL files, but body_model.source=files. "
                "Set body_model.source=procedural to use it, or point asset_dir at your SMPL files."
            )
        return folder
    manifest = _manifest(folder)
    if manifest is None:
        if folder.is_dir() and any(folder.iterdir()):
            raise AssetError(
                f"{folder} already holds files that are not the procedural stand-in; refusing to write "
                "into it. Use body_model.source=files to load them, or choose another asset_dir."
            )
        print(f"Generating the procedural body model (seed {config.seed}) in {folder} ...", flush=True)
        generate_procedural_folder(folder, config.seed)
        manifest = _manifest(folder)
        if manifest is None:  # written just now: only another process removing it in between gets here
            raise AssetError(f"{folder} lost its {PROCEDURAL_MANIFEST} while it was being generated; run again")
    _check_procedural(folder, manifest, config.seed)
    return folder


def load_assets(config: BodyModelConfig) -> BodyModelAssets:
    """Prepare and read the configured assets."""
    return load_body_model_assets(prepare_assets(config), config.gender, config.part_map or None)


def load_configured_body_model(config: BodyModelConfig) -> BodyModel:
    """The configured body model as a torch module."""
    return BodyModel.from_assets(load_assets(config))
