"""Getting the configured body model: the procedural stand-in on demand, real files as given."""

from __future__ import annotations

import multiprocessing
import shutil

import pytest

from pare_model.errors import AssetError
from pipelines.body_model_source import load_assets, prepare_assets
from pipelines.config.body_model import BodyModelConfig


def test_stand_in_is_generated_once_then_reused(tmp_path, capsys):
    config = BodyModelConfig(asset_dir=str(tmp_path / "bm"), seed=2)
    folder = prepare_assets(config)
    assert "Generating the procedural body model (seed 2)" in capsys.readouterr().out
    stamp = (folder / "SMPL_NEUTRAL.pkl").stat().st_mtime_ns
    assert prepare_assets(config) == folder
    assert (folder / "SMPL_NEUTRAL.pkl").stat().st_mtime_ns == stamp
    assert "Generating" not in capsys.readouterr().out
    assets = load_assets(config)
    assert assets.procedural and assets.metadata["seed"] == 2
    assert not list(tmp_path.glob(".bm.partial-*")), "the staging folder was left behind"

    with pytest.raises(AssetError, match="seed 2.*asks for seed 3"):
        prepare_assets(BodyModelConfig(asset_dir=str(folder), seed=3))
    with pytest.raises(AssetError, match="holds the procedural stand-in, not SMPL files"):
        prepare_assets(BodyModelConfig(source="files", asset_dir=str(folder)))
    (folder / "J_regressor_h36m.npy").unlink()
    with pytest.raises(AssetError, match="lacks.*J_regressor_h36m.npy.*delete the folder"):
        prepare_assets(config)


def test_real_files_are_never_overwritten(tmp_path, procedural_dir):
    user_folder = tmp_path / "smpl"
    shutil.copytree(procedural_dir, user_folder)
    (user_folder / "procedural.json").unlink()  # now it looks like a user's own files
    with pytest.raises(AssetError, match="not the procedural stand-in; refusing to write"):
        prepare_assets(BodyModelConfig(asset_dir=str(user_folder)))
    files = BodyModelConfig(source="files", asset_dir=str(user_folder))
    assert prepare_assets(files) == user_folder
    assert not load_assets(files).procedural
    with pytest.raises(AssetError, match="does not exist.*source=procedural"):
        prepare_assets(BodyModelConfig(source="files", asset_dir=str(tmp_path / "absent")))


def _prepare(folder: str) -> str:
    return str(prepare_assets(BodyModelConfig(asset_dir=folder, seed=1)))


def test_concurrent_workers_share_one_generation(tmp_path):
    """Two processes asking for the same missing stand-in at once both get a complete folder."""
    folder = str(tmp_path / "shared_bm")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_prepare, [folder, folder])
    assert results == [folder, folder]
    assert load_assets(BodyModelConfig(asset_dir=folder, seed=1)).procedural
    assert not list(tmp_path.glob(".shared_bm.partial-*"))
