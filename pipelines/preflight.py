"""Checks the drivers run before starting Ray workers or actors.

Anything that would fail the same way in every worker, and again on every restart, is checked
once here on the driver, so the user gets one line in seconds instead of a Ray traceback after
minutes of retries. ``pare train`` and ``pare evaluate`` / ``occlusion-analysis`` / ``attention``
call these; a new check of shard folders (sizes, checksums against the manifest) belongs in
:func:`check_shard_folders`, which both use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pare_model.errors import UserFacingError
from pipelines.io.storage import is_remote


def check_body_model(asset_dir: str | Path) -> None:
    """The body model loads (every file present and well formed); raises the loader's :class:`AssetError`."""
    from pare_model.body_model import load_body_model_assets

    load_body_model_assets(asset_dir)


def check_shard_folders(folders: Sequence, key: str) -> None:
    """Every shard file of local ``folders`` (:class:`~pipelines.data.shard_folders.ShardFolder`) exists.

    ``key`` is the setting that named the folders, for the message. Remote folders are left to the
    readers (a listing per folder would cost more than it saves).
    """
    for folder in folders:
        for url in folder.urls:
            if is_remote(url):
                continue
            path = Path(url.removeprefix("file://"))
            if not path.is_file():
                raise UserFacingError(
                    f"{key}: shard {path} listed in {folder.uri}/manifest.json is missing; rebuild the folder with "
                    "`pare preprocess` (check it with `pare shards validate`)"
                )


def check_output_folder(path: str | Path, key: str) -> None:
    """``path`` can be the output folder: absent (it will be made) or a folder, not a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserFacingError(f"{key} {path} is a file, not a folder; choose a folder for the results")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserFacingError(f"{key} {path}: {parent} is a file, so the folder cannot be made there")
            break
