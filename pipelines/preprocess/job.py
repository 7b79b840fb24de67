"""``pare preprocess``: readers -> Ray Data build stage writing the shards -> manifest, per dataset/split.

1. Plan on the driver (:mod:`.plan`): every mistake a user can make fails here, before Ray.
   A folder whose manifest matches the source fingerprint and config hash, and whose shards
   verify (:mod:`.verified`), is up to date and skipped. The records are streamed from the
   readers (large annotation files through their columnar conversions, kept in
   ``_annotation_cache`` beside local outputs) and cut into shards of ``samples_per_shard``
   planned records each; each full shard not built yet is written to ``_work`` as its
   builder's input, so the driver holds no records.
2. Build (:mod:`.work`): Ray actors build each shard's samples and write the shard itself,
   once; shards already written by an earlier, interrupted run are skipped.
3. Finish: the shards' summaries are read one at a time into ``rejects.jsonl`` and the
   manifest's totals; then ``_verified.json``, ``manifest.json`` (written last: its presence
   means done), and the work files are removed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from pare_model.errors import UserFacingError
from pipelines.config.preprocess import PreprocessConfig
from pipelines.data.manifest import (
    MANIFEST_FILE,
    REJECTS_FILE,
    FitQualityTally,
    build_manifest,
    manifest_text,
    reject_line,
    shard_name,
    shard_problems,
)
from pipelines.data.reading import ManifestError, check_manifest
from pipelines.io.cluster import actors_for_work, cluster_cpus
from pipelines.io.storage import Storage
from pipelines.preprocess.plan import SourcePlan, build_readers, config_hash, plan_records
from pipelines.preprocess.throughput import ChunkTiming, steady_throughput
from pipelines.preprocess.verified import record_verified, verified_shards
from pipelines.preprocess.work import (
    INPUT_SUFFIX,
    WORK_DIR,
    ShardBuilder,
    input_digest,
    read_summary,
    shard_done,
    write_input,
)
from preprocessing.record import SampleRecord
from preprocessing.record_codec import encode_records


@dataclass
class FolderResult:
    """What happened to one dataset/split folder."""

    folder: str
    status: str  # "built" or "up to date"
    inputs: int
    samples: int
    rejected: int
    shards: int


@dataclass
class PreprocessReport:
    """What the job did: per folder, and seconds per stage (plan, build, finish)."""

    output: str
    folders: list[FolderResult] = field(default_factory=list)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    shards_planned: int = 0
    """Shards planned for the folders that were built (one unit of work each)."""
    shards_reused: int = 0
    """Of those, shards that an earlier, interrupted run had already written."""
    bytes_written: int = 0
    """Bytes of the shards this run wrote (each sample is written once, into its shard)."""
    shards_by_node: dict[str, int] = field(default_factory=dict)
    """Shards this run wrote, by the Ray node that built them (:func:`~pipelines.io.cluster.node_label`)."""


ANNOTATION_CACHE = "_annotation_cache"
"""Folder under a local output root that holds the readers' columnar conversions of annotation files."""


def folder_fingerprint(folder: Path) -> str:
    """sha256 over the names and bytes of the files in a body model folder."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _existing_manifest(storage: Storage, folder: str) -> dict | None:
    path = f"{folder}/{MANIFEST_FILE}"
    if not storage.exists(path):
        return None
    try:
        manifest = json.loads(storage.read_text(path))
        check_manifest(manifest, path)
    except (ValueError, ManifestError):  # damaged: the folder is rebuilt
        return None
    return manifest


def _is_up_to_date(storage: Storage, plan: SourcePlan, overwrite: bool) -> bool:
    """True when the folder already holds this source's shards; raises when it holds another's."""
    manifest = _existing_manifest(storage, plan.folder)
    if manifest is None:
        return False
    same = manifest.get("config_hash") == plan.config_hash and manifest.get("source", {}).get("fingerprint") == (
        plan.fingerprint
    )
    if same:
        return not shard_problems(storage, plan.folder, manifest, trusted=verified_shards(storage, plan.folder))
    if not overwrite:
        raise UserFacingError(
            f"{storage.path(plan.folder)} holds shards made from a different source or config "
            f"(config hash {manifest.get('config_hash', '?')[:12]} vs {plan.config_hash[:12]}). "
            "Write to another preprocess.output, or set preprocess.overwrite=true to replace them."
        )
    return False


class ShardInputs:
    """Takes the planner's shards: writes each one not built yet as a builder's input and lists it as work."""

    def __init__(self, storage: Storage, plan: SourcePlan):
        self.storage, self.plan = storage, plan
        self.items: list[dict] = []
        """One row per planned shard not yet written; its records wait in the output storage (no pickles)."""

    def __call__(self, index: int, records: list[SampleRecord]) -> None:
        plan = self.plan
        encoded = encode_records(records)
        digest = input_digest(encoded, plan.config_hash)
        if not shard_done(self.storage, plan.folder, index, digest):
            write_input(self.storage, plan.folder, index, encoded)
            self.items.append({"folder": plan.folder, "shard": index, "digest": digest, "size": len(records)})


def _plans(config, readers: dict, storage: Storage, body_fingerprint: str, show_progress: bool):
    """Plans of the sources to build (their shards' inputs written), the work items, and the folders up to date."""
    pre = config.preprocess
    plans, items, done = [], [], []
    for name, reader in readers.items():
        plan = SourcePlan(
            name=name,
            reader=reader,
            folder=f"{reader.dataset}/{reader.split}",
            fingerprint=reader.fingerprint(),
            config_hash=config_hash(pre.sources[name], pre, body_fingerprint),
        )
        if _is_up_to_date(storage, plan, pre.overwrite):
            manifest = _existing_manifest(storage, plan.folder)
            totals = manifest["totals"]
            done.append(
                FolderResult(
                    plan.folder, "up to date", totals["inputs"], totals["samples"], totals["rejected"], totals["shards"]
                )
            )
            continue
        inputs = ShardInputs(storage, plan)
        plan_records(plan, pre.samples_per_shard, pre.min_keypoints, inputs, show_progress, pre.images_outside_root)
        plans.append(plan)
        items += inputs.items
    return plans, items, done


def annotation_cache(storage: Storage) -> Path:
    """Where readers keep their columnar conversions of large annotation files: beside the outputs when they
    are local, else in the local source cache (``PARE_SOURCE_CACHE``)."""
    from preprocessing.readers.files import local_cache_root

    if storage.fs.type_name == "local":
        return Path(storage.root) / ANNOTATION_CACHE
    return local_cache_root() / ANNOTATION_CACHE.lstrip("_")


def _check_genders(body_dir: Path, part_map: str | None, plans: list[SourcePlan]) -> None:
    """Load every body model the records need, so that a missing gendered model fails before Ray."""
    from pare_model.body_model import load_body_model

    for gender in sorted(set().union(*(plan.genders for plan in plans))):
        load_body_model(body_dir, gender, part_map)


def builder_count(pre: PreprocessConfig, cpus: int, items: list[dict]) -> int:
    """How many shard builders to start: ``num_workers`` if set, else one per CPU and per ``records_per_worker``
    records to build; never more than there are shards to build."""
    if pre.num_workers:
        return min(pre.num_workers, len(items))
    records = sum(item["size"] for item in items)
    return actors_for_work(records, pre.records_per_worker, min(cpus, len(items)))


def _build(
    config,
    storage: Storage,
    body_dir: Path,
    plans: list[SourcePlan],
    items: list[dict],
    show_progress: bool,
    report: PreprocessReport,
) -> set[tuple[str, int]]:
    """Build and write every shard not written yet; counts go into ``report``.

    Adds to its ``stage_seconds``: ``build_busy``, the workers' seconds spent on shards, and
    ``build_steady``, the window in which every worker was busy; ``steady_records_per_s`` is the
    build's throughput in that window (:mod:`pipelines.preprocess.throughput`). Returns the
    (folder, shard index) of every shard written.
    """
    import ray

    pre, stages = config.preprocess, report.stage_seconds
    report.shards_planned = total = sum(plan.shard_count for plan in plans)
    report.shards_reused = total - len(items)
    if not items:
        return set()
    workers = builder_count(pre, cluster_cpus(), items)
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map(
        ShardBuilder,
        fn_constructor_kwargs={
            "output": storage.uri,
            "body_model_dir": str(body_dir.resolve()),
            "part_map": config.body_model.part_map or None,
            "crop": pre.crop,
            "quality": pre.quality,
            "batch_size": pre.chunk_size,
        },
        # A second shard queued per actor, so that no actor idles while Ray Data dispatches its next one;
        # more would leave actors idle at the end while others still hold queued shards.
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=2),
        num_cpus=1,
        # Ray Data restarts a builder lost with its node (or killed) wherever a CPU is free and retries its shards
        # there (its actor pools' defaults: max_restarts and max_task_retries -1); tests/test_two_nodes.py checks it.
    )
    timings: list[ChunkTiming] = []
    written: set[tuple[str, int]] = set()
    with tqdm(total=total, initial=report.shards_reused, desc="build", unit="shard", disable=not show_progress) as bar:
        for row in dataset.iter_rows():
            bar.update(1)
            bar.set_postfix(samples=row["samples"], rejects=row["rejects"], refresh=False)
            timings.append(ChunkTiming(row["worker"], row["started"], row["finished"], row["records"]))
            report.bytes_written += int(row["bytes"])
            report.shards_by_node[row["node"]] = report.shards_by_node.get(row["node"], 0) + 1
            written.add((row["folder"], int(row["shard"])))
    stages["build_busy"] = sum(t.finished - t.started for t in timings)
    stages["steady_records_per_s"], stages["build_steady"] = steady_throughput(timings)
    return written


def _manifest_shard(summary: dict) -> dict:
    """A shard's manifest entry, under its planned name."""
    return {
        "name": shard_name(summary["shard"]),
        "samples": len(summary["samples"]),
        "bytes": summary["bytes"],
        "sha256": summary["sha256"],
        "first_key": summary["samples"][0]["key"],
        "last_key": summary["samples"][-1]["key"],
    }


@dataclass
class FolderTally:
    """What the shards' summaries add up to: the manifest's shard entries, rejects by reason, fit quality."""

    shards: list[dict] = field(default_factory=list)
    rejects: Counter = field(default_factory=Counter)
    quality: FitQualityTally = field(default_factory=FitQualityTally)


def _write_rejects(storage: Storage, plan: SourcePlan) -> FolderTally:
    """Write ``rejects.jsonl`` (the planner's rejects, then each shard's in shard order) while reading every
    planned shard's summary once, in shard order; returns their tally. Memory holds one summary at a time."""
    tally = FolderTally(rejects=Counter(plan.rejects.by_reason))
    with storage.open_atomic(f"{plan.folder}/{REJECTS_FILE}") as out:
        for line in plan.rejects.lines():
            out.write(line.encode())
        for index in range(plan.shard_count):
            summary = read_summary(storage, plan.folder, index)
            if summary is None:
                raise RuntimeError(f"{storage.path(plan.folder)}: shard {index} has no summary after the build")
            for reject in summary["rejects"]:
                out.write(reject_line(reject).encode())
                tally.rejects[reject["reason"]] += 1
            tally.quality.add(summary["samples"])
            if summary["samples"]:  # a shard left empty is not listed
                tally.shards.append(_manifest_shard(summary))
    return tally


def _finish(config, storage: Storage, plan: SourcePlan, written: set[tuple[str, int]]) -> FolderResult:
    """Assemble the manifest from the shards' summaries and write it last; remove stale shards and work files."""
    pre = config.preprocess
    tally = _write_rejects(storage, plan)
    reader = plan.reader
    manifest = build_manifest(
        dataset=reader.dataset,
        split=reader.split,
        reader=reader.name,
        source={
            "root": reader.files.uri,
            "annotation_files": reader.annotation_files(),
            "fingerprint": plan.fingerprint,
            "options": pre.sources[plan.name].options,
        },
        config_hash=plan.config_hash,
        samples_per_shard=pre.samples_per_shard,
        sample_format=_sample_format(pre.crop),
        shards=tally.shards,
        inputs=plan.inputs,
        rejects_by_reason=tally.rejects,
        fit_quality=tally.quality.summary(),
    )
    listed = {shard["name"] for shard in tally.shards}
    for name in storage.list(plan.folder):  # shards of an earlier run, and temporary files of killed writers
        if name.startswith("shard-") and name not in listed:
            storage.delete_file(f"{plan.folder}/{name}")
    fresh = [shard_name(index) for folder, index in sorted(written) if folder == plan.folder]
    record_verified(storage, plan.folder, [name for name in fresh if name in listed])
    storage.write_text(f"{plan.folder}/{MANIFEST_FILE}", manifest_text(manifest))
    _remove_work(storage, plan.folder, pre.keep_work)
    plan.rejects.close()
    totals = manifest["totals"]
    return FolderResult(plan.folder, "built", totals["inputs"], totals["samples"], totals["rejected"], totals["shards"])


def _remove_work(storage: Storage, folder: str, keep_summaries: bool) -> None:
    """Remove the work files; ``keep_summaries`` keeps the shards' summaries (the records were only input)."""
    work = f"{folder}/{WORK_DIR}"
    if not keep_summaries:
        storage.delete_dir(work)
        return
    for name in storage.list(work):
        if name.endswith(INPUT_SUFFIX):
            storage.delete_file(f"{work}/{name}")


def _sample_format(crop) -> dict:
    from preprocessing.samples.encode import MEMBER_SUFFIXES, SAMPLE_FORMAT, SAMPLE_FORMAT_VERSION

    return {
        "format": SAMPLE_FORMAT,
        "version": SAMPLE_FORMAT_VERSION,
        "members": list(MEMBER_SUFFIXES),
        "crop_resolution": crop.resolution,
        "label_resolution": crop.label_resolution,
        "network_resolution": crop.network_resolution,
        "loose_factor": round(crop.loose_factor, 6),
        "labels": "uint8 PNG, 0 background, 1..24 body part (SMPL part index + 1)",
    }


def run_preprocess(config, show_progress: bool = True) -> PreprocessReport:
    """Run the whole job for ``config.preprocess``; returns what happened per folder."""
    from pipelines.io.cluster import init_ray, quiet_ray_data

    start = time.perf_counter()
    pre = config.preprocess
    storage = Storage(pre.output)
    readers = build_readers(pre)  # a wrong source root or option fails here, before the body model (and torch)
    from pipelines.body_model_source import prepare_assets

    body_dir = prepare_assets(config.body_model)
    storage.check_writable()
    for reader in readers.values():
        reader.cache_root = annotation_cache(storage)
    plans, items, done = _plans(config, readers, storage, folder_fingerprint(body_dir), show_progress)
    report = PreprocessReport(storage.uri, list(done))
    stages = report.stage_seconds
    stages["plan"] = time.perf_counter() - start
    if plans:
        _check_genders(body_dir, config.body_model.part_map or None, plans)
        for plan in plans:  # a half-rebuilt folder must not look complete
            storage.delete_file(f"{plan.folder}/{MANIFEST_FILE}")
        mark = time.perf_counter()
        init_ray(pre.ray_address)
        quiet_ray_data()
        stages["ray_init"] = time.perf_counter() - mark
        mark = time.perf_counter()
        written = _build(config, storage, body_dir, plans, items, show_progress, report)
        stages["build"] = time.perf_counter() - mark
        mark = time.perf_counter()
        for plan in plans:
            report.folders.append(_finish(config, storage, plan, written))
        stages["finish"] = time.perf_counter() - mark
    report.seconds = time.perf_counter() - start
    return report
