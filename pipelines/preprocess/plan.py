"""Planning on the driver, before any cluster work: check every source, read its records, cut them into shards.

Everything a user can get wrong (a wrong path, a missing annotation file, an unparseable
source, a missing body model, clashing output folders) fails here with a message that names
it, before Ray starts. Records are streamed from each reader, validated, de-duplicated by
sample key and cut into shards: shard ``k`` gets planned records ``k*N .. (k+1)*N - 1``
(``N = samples_per_shard``), fixed before any sample is built, so a record rejected while
building makes its own shard smaller and never moves a record into another shard. Each shard
leaves the driver as soon as it is full (the job writes it as the builders' input), and inputs
that fail here go to a temporary rejects file with their reason: the driver keeps no record, so
its memory does not grow with the source (beyond the set of sample keys seen).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from tqdm import tqdm

from pare_model.errors import UserFacingError
from pipelines.config.preprocess import PreprocessConfig, SourceConfig
from pipelines.data.manifest import reject_line
from preprocessing.readers import Reader, build_reader, validated
from preprocessing.record import Rejected, SampleRecord


class RejectLog:
    """Rejected inputs as ``rejects.jsonl`` lines in a temporary file, counted by reason: none is held in memory."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8")
        self.by_reason: Counter[str] = Counter()

    def add(self, rejected: Rejected) -> None:
        self._file.write(reject_line(rejected.to_json()))
        self.by_reason[rejected.reason] += 1

    def lines(self) -> Iterator[str]:
        """The lines written so far, in order."""
        self._file.flush()
        self._file.seek(0)
        yield from self._file
        self._file.seek(0, 2)

    def close(self) -> None:
        self._file.close()


ShardSink = Callable[[int, list[SampleRecord]], None]
"""Takes each planned shard as soon as it is full: its index and its records."""


@dataclass
class SourcePlan:
    """One source's work: where it goes, what identifies it, and how many shards its records make."""

    name: str
    reader: Reader
    folder: str
    """Output folder relative to the output root: ``<dataset>/<split>``."""
    fingerprint: str
    config_hash: str
    shard_count: int = 0
    """Planned shards; shard ``k`` holds planned records ``k*N .. (k+1)*N - 1`` (before building, which may reject
    some of them)."""
    rejects: RejectLog = field(default_factory=RejectLog)
    inputs: int = 0
    genders: set[str] = field(default_factory=set)


def build_readers(config: PreprocessConfig) -> dict[str, Reader]:
    """The enabled sources' readers, each checked; output folders must not clash."""
    if not config.sources:
        raise UserFacingError(
            "no sources configured: add preprocess.sources.<name> with reader and root "
            "(see configs/preprocess_synthetic.yaml and docs/preprocessing.md)"
        )
    readers: dict[str, Reader] = {}
    folders: dict[str, str] = {}
    for name, source in config.sources.items():
        if not source.enabled:
            continue
        if not source.reader or not source.root:
            raise UserFacingError(f"preprocess.sources.{name} needs both reader and root (got {source})")
        reader = build_reader(source.reader, source.root, source.split, source.options, source.dataset or None)
        reader.check()
        folder = f"{reader.dataset}/{reader.split}"
        if folder in folders:
            raise UserFacingError(
                f"preprocess.sources.{name} and .{folders[folder]} both write {folder}; give one a different dataset name"
            )
        folders[folder] = name
        readers[name] = reader
    if not readers:
        raise UserFacingError("every source in preprocess.sources is disabled (enabled: false)")
    return readers


def config_hash(source: SourceConfig, config: PreprocessConfig, body_model_fingerprint: str) -> str:
    """sha256 of everything that changes a source's shards (not how the work is spread)."""
    identity = {
        "source": asdict(source),
        "samples_per_shard": config.samples_per_shard,
        "min_keypoints": config.min_keypoints,
        "crop": asdict(config.crop),
        "quality": asdict(config.quality),
        "body_model": body_model_fingerprint,
    }
    if config.images_outside_root:  # only when set, so that the folders made before the option stay up to date
        identity["images_outside_root"] = True
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def plan_records(
    plan: SourcePlan,
    samples_per_shard: int,
    min_keypoints: int,
    sink: ShardSink,
    show_progress: bool = True,
    images_outside_root: bool = False,
) -> None:
    """Stream the reader's records: validated, de-duplicated and cut into shards, each handed to ``sink`` as soon
    as it is full; rejects go to ``plan.rejects``. Memory holds one shard's records and the sample keys seen.
    Unless ``images_outside_root``, a record whose image lies outside the source root is rejected."""
    seen: set[str] = set()
    shard: list[SampleRecord] = []
    confine = None if images_outside_root else plan.reader.files
    items = validated(plan.reader.records(), min_keypoints, confine)
    for item in tqdm(items, desc=f"read {plan.folder}", unit="record", disable=not show_progress, leave=False):
        plan.inputs += 1
        if isinstance(item, Rejected):
            plan.rejects.add(item)
            continue
        if item.key in seen:
            plan.rejects.add(
                Rejected(
                    "duplicate_id",
                    f"sample key {item.key} seen before",
                    item.dataset,
                    item.split,
                    item.sample_id,
                    item.source,
                )
            )
            continue
        seen.add(item.key)
        if item.has_smpl:
            plan.genders.add(item.gender)
        shard.append(item)
        if len(shard) == samples_per_shard:
            sink(plan.shard_count, shard)
            plan.shard_count += 1
            shard = []
    if shard:
        sink(plan.shard_count, shard)
        plan.shard_count += 1
    if plan.inputs == 0:  # the source itself is the one input, rejected, so that counts still add up
        plan.inputs = 1
        reader = plan.reader
        plan.rejects.add(
            Rejected(
                "empty_source",
                f"reader {reader.name} found no samples under {reader.files.uri}",
                reader.dataset,
                reader.split,
                "",
            )
        )
