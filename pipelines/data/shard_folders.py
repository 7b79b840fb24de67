"""Which shards training reads: shard folders resolved to URLs, sizes and manifest digests.

Every folder must hold a ``manifest.json`` from ``pare preprocess``; a folder given as a parent
(e.g. ``outputs/shards``) expands to every dataset/split folder under it. The manifests are
read once on the driver; workers get plain URLs.
"""

from __future__ import annotations

from dataclasses import dataclass

from pare_model.errors import UserFacingError
from pipelines.config.train import DataConfig
from pipelines.data.manifest import manifest_digest
from pipelines.data.reading import find_folders, read_manifest, shard_url
from pipelines.io.storage import Storage


@dataclass(frozen=True)
class ShardFolder:
    """One dataset/split folder: its shard URLs (with sample counts) and its manifest."""

    uri: str
    urls: tuple[str, ...]
    samples: tuple[int, ...]
    manifest: dict

    @property
    def digest(self) -> str:
        return manifest_digest(self.manifest)

    @property
    def total(self) -> int:
        return sum(self.samples)


def resolve_folders(location: str) -> list[ShardFolder]:
    """The shard folders at or under ``location`` (a folder or URI)."""
    storage = Storage(location)
    folders = []
    for relative in find_folders(storage):
        manifest = read_manifest(storage, relative)
        shards = manifest.get("shards", [])
        folders.append(
            ShardFolder(
                uri=storage.path(relative) if "://" not in storage.uri else f"{storage.uri.rstrip('/')}/{relative}",
                urls=tuple(_url(storage, relative, s["name"]) for s in shards),
                samples=tuple(int(s["samples"]) for s in shards),
                manifest=manifest,
            )
        )
    return folders


def _url(storage: Storage, folder: str, name: str) -> str:
    if "://" in storage.uri:
        base = storage.uri.rstrip("/")
        return f"{base}/{folder}/{name}" if folder else f"{base}/{name}"
    return shard_url(storage, folder, name)


@dataclass(frozen=True)
class TrainingShards:
    """Resolved shard folders: per training dataset, and for validation."""

    datasets: dict[str, list[ShardFolder]]
    validation: list[ShardFolder]

    def all_folders(self) -> list[tuple[str, ShardFolder]]:
        named = [(name, f) for name, folders in self.datasets.items() for f in folders]
        return named + [("validation", f) for f in self.validation]


def resolve_training_shards(config: DataConfig) -> TrainingShards:
    """Read every manifest named by the data config; errors name the key and the fix."""
    if not config.datasets:
        raise UserFacingError(
            "data.datasets is empty: name at least one training dataset, e.g. "
            "data.datasets.coco.shards=[outputs/shards/coco-eft/train] (folders written by `pare preprocess`)"
        )
    datasets = {}
    for name, dataset in config.datasets.items():
        if not dataset.shards:
            raise UserFacingError(f"data.datasets.{name}.shards is empty: list the shard folders of this dataset")
        folders = [folder for location in dataset.shards for folder in _resolve(location, f"data.datasets.{name}")]
        empty = [f.uri for f in folders if f.total == 0]
        if len(empty) == len(folders):
            raise UserFacingError(f"data.datasets.{name}: its shard folders hold no samples ({', '.join(empty)})")
        datasets[name] = [f for f in folders if f.total > 0]
    for stage_name, stage in config.stages.items():
        unknown = sorted(set(stage.mix) - set(datasets))
        if unknown or not stage.mix:
            raise UserFacingError(
                f"data.stages.{stage_name}.mix names {unknown or 'no dataset'}; "
                f"it must map some of data.datasets ({', '.join(sorted(datasets))}) to ratios"
            )
    validation = [folder for location in config.validation for folder in _resolve(location, "data.validation")]
    return TrainingShards(datasets, validation)


def _resolve(location: str, key: str) -> list[ShardFolder]:
    try:
        return resolve_folders(location)
    except UserFacingError as error:
        raise UserFacingError(f"{key}: {error}") from None
