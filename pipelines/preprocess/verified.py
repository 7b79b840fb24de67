"""Shards as last verified: what lets a rerun skip hashing shards that have not changed since.

A rerun finds a folder up to date when its manifest matches the source and config and its shards
match the manifest (:func:`~pipelines.data.manifest.shard_problems`). Hashing every shard again
reads the whole dataset (36 GB for a million samples). So when the job writes a folder it also
writes ``_verified.json``: the size and modification time of each shard it wrote, whose sha256 it
computed while writing. A rerun hashes only the shards whose size or modification time differ
from it (a shard written again, copied over or edited); ``pare shards validate`` still hashes all.
"""

from __future__ import annotations

import json

from pipelines.data.manifest import in_folder
from pipelines.io.storage import Storage

VERIFIED_FILE = "_verified.json"


def record_verified(storage: Storage, folder: str, names: list[str]) -> None:
    """Write the size and modification time of the shards ``names`` (written by this run) beside them."""
    stats = {name: storage.stat(in_folder(folder, name)) for name in names}
    shards = {name: list(stat) for name, stat in stats.items() if stat is not None and stat[1] is not None}
    storage.write_text(in_folder(folder, VERIFIED_FILE), json.dumps({"shards": shards}, sort_keys=True))


def verified_shards(storage: Storage, folder: str) -> dict[str, list]:
    """Shard name -> ``[size, mtime_ns]`` when last verified; empty when there is no readable record."""
    path = in_folder(folder, VERIFIED_FILE)
    try:
        shards = json.loads(storage.read_text(path)).get("shards", {}) if storage.exists(path) else {}
    except (OSError, ValueError, AttributeError):
        return {}
    return shards if isinstance(shards, dict) else {}
