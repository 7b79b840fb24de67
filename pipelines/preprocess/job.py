"""``pare preprocess``: readers -> Ray Data build stage -> pack stage -> manifest, per dataset/split.

1. Plan on the driver (:mod:`.plan`): every mistake a user can make fails here, before Ray.
   A folder whose manifest matches the source fingerprint and config hash, and whose shards
   verify, is up to date and skipped.
2. Build (:mod:`.work`): Ray actors turn chunks of records into part files; chunks whose part
   is already there from an earlier, interrupted run are skipped.
3. Pack (:mod:`.pack`): the parts are cut into shards of ``samples_per_shard`` samples.
4. Finish: ``rejects.jsonl``, then ``manifest.json`` (written last: its presence means done),
   then the work files are removed.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from pare_model.errors import UserFacingError
from pipelines.data.manifest import (
    MANIFEST_FILE,
    REJECTS_FILE,
    build_manifest,
    manifest_text,
    rejects_text,
    shard_problems,
)
from pipelines.io.storage import Storage
from pipelines.preprocess.plan import SourcePlan, build_readers, config_hash, plan_records
from pipelines.preprocess.throughput import ChunkTiming, steady_throughput
from pipelines.preprocess.work import WORK_DIR, ChunkBuilder, chunk_digest, part_done, part_name
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
    """What the job did: per folder, and seconds per stage (plan, build, pack, finish)."""

    output: str
    folders: list[FolderResult] = field(default_factory=list)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    chunks: int = 0
    """Chunks of records planned for the folders that were built."""
    chunks_reused: int = 0
    """Of those, chunks whose part files an earlier, interrupted run had already written."""


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
        return json.loads(storage.read_text(path))
    except ValueError:
        return None


def _is_up_to_date(storage: Storage, plan: SourcePlan, overwrite: bool) -> bool:
    """True when the folder already holds this source's shards; raises when it holds another's."""
    manifest = _existing_manifest(storage, plan.folder)
    if manifest is None:
        return False
    same = manifest.get("config_hash") == plan.config_hash and manifest.get("source", {}).get("fingerprint") == (
        plan.fingerprint
    )
    if same:
        return not shard_problems(storage, plan.folder, manifest)
    if not overwrite:
        raise UserFacingError(
            f"{storage.path(plan.folder)} holds shards made from a different source or config "
            f"(config hash {manifest.get('config_hash', '?')[:12]} vs {plan.config_hash[:12]}). "
            "Write to another preprocess.output, or set preprocess.overwrite=true to replace them."
        )
    return False


def _plans(config, storage: Storage, body_fingerprint: str, show_progress: bool):
    pre = config.preprocess
    readers = build_readers(pre)
    plans, done = [], []
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
        plan_records(plan, pre.chunk_size, pre.min_keypoints, show_progress)
        plans.append(plan)
    return plans, done


def _check_genders(body_dir: Path, part_map: str | None, plans: list[SourcePlan]) -> None:
    """Load every body model the records need, so that a missing gendered model fails before Ray."""
    from pare_model.body_model import load_body_model

    for gender in sorted(set().union(*(plan.genders for plan in plans))):
        load_body_model(body_dir, gender, part_map)


def _build(
    config, storage: Storage, body_dir: Path, plans: list[SourcePlan], show_progress: bool, stages: dict[str, float]
) -> tuple[int, int]:
    """Build every chunk that has no part yet; returns (chunks, chunks reused from an earlier run).

    Adds to ``stages``: ``build_busy``, the workers' seconds spent on chunks, and
    ``build_steady``, the window in which every worker was busy; ``steady_records_per_s`` is the
    build's throughput in that window (:mod:`pipelines.preprocess.throughput`).
    """
    import ray

    from pipelines.io.cluster import cluster_cpus

    pre = config.preprocess
    items = []
    for plan in plans:
        for chunk, records in enumerate(plan.chunks):
            encoded = encode_records(records)
            digest = chunk_digest(encoded, plan.config_hash)
            if not part_done(storage, plan.folder, chunk, digest):
                items.append({"folder": plan.folder, "chunk": chunk, "records": encoded, "digest": digest})
    total = sum(len(plan.chunks) for plan in plans)
    if not items:
        return total, total
    workers = min(pre.num_workers or cluster_cpus(), len(items))
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map(
        ChunkBuilder,
        fn_constructor_kwargs={
            "output": storage.uri,
            "body_model_dir": str(body_dir.resolve()),
            "part_map": config.body_model.part_map or None,
            "crop": pre.crop,
            "quality": pre.quality,
        },
        # Chunks queued per actor: with Ray Data's default an actor idles while the next chunk is dispatched.
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=4),
        num_cpus=1,
    )
    timings: list[ChunkTiming] = []
    with tqdm(total=total, initial=total - len(items), desc="build", unit="chunk", disable=not show_progress) as bar:
        for row in dataset.iter_rows():
            bar.update(1)
            bar.set_postfix(samples=row["samples"], rejects=row["rejects"], refresh=False)
            timings.append(ChunkTiming(row["worker"], row["started"], row["finished"], row["records"]))
    stages["build_busy"] = sum(t.finished - t.started for t in timings)
    stages["steady_records_per_s"], stages["build_steady"] = steady_throughput(timings)
    return total, total - len(items)


def _summaries(storage: Storage, plan: SourcePlan) -> list[dict]:
    return [json.loads(storage.read_text(f"{plan.folder}/{part_name(c)}.json")) for c in range(len(plan.chunks))]


def _pack(config, storage: Storage, plans: list[SourcePlan], summaries: dict, show_progress: bool) -> dict:
    import ray

    from pipelines.io.cluster import cluster_cpus
    from pipelines.preprocess.pack import ShardWriter, shard_specs

    specs = [
        spec
        for plan in plans
        for spec in shard_specs(plan.folder, summaries[plan.folder], config.preprocess.samples_per_shard)
    ]
    shards: dict[str, list[dict]] = {plan.folder: [] for plan in plans}
    if not specs:
        return shards
    workers = min(config.preprocess.num_workers or cluster_cpus(), len(specs))
    dataset = ray.data.from_items(specs, override_num_blocks=len(specs)).map(
        ShardWriter,
        fn_constructor_kwargs={"output": storage.uri},
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    with tqdm(total=len(specs), desc="pack", unit="shard", disable=not show_progress) as bar:
        for row in dataset.iter_rows():
            shards[row["folder"]].append(
                {k: row[k] for k in ("name", "samples", "bytes", "sha256", "first_key", "last_key")}
            )
            bar.update(1)
    for folder_shards in shards.values():
        folder_shards.sort(key=lambda shard: shard["name"])
    return shards


def _finish(config, storage: Storage, plan: SourcePlan, summaries: list[dict], shards: list[dict]) -> FolderResult:
    pre = config.preprocess
    rejects = [r.to_json() for r in plan.rejects] + [r for s in summaries for r in s["rejects"]]
    samples = [sample for s in summaries for sample in s["samples"]]
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
        shards=shards,
        inputs=plan.inputs,
        rejects=rejects,
        samples=samples,
    )
    listed = {shard["name"] for shard in shards}
    for name in storage.list(plan.folder):  # shards of an earlier, larger run
        if name.startswith("shard-") and name not in listed:
            storage.delete_file(f"{plan.folder}/{name}")
    storage.write_text(f"{plan.folder}/{REJECTS_FILE}", rejects_text(rejects))
    storage.write_text(f"{plan.folder}/{MANIFEST_FILE}", manifest_text(manifest))
    if not pre.keep_work:
        storage.delete_dir(f"{plan.folder}/{WORK_DIR}")
    totals = manifest["totals"]
    return FolderResult(plan.folder, "built", totals["inputs"], totals["samples"], totals["rejected"], totals["shards"])


def _sample_format(crop) -> dict:
    from preprocessing.samples.encode import MEMBER_SUFFIXES, SAMPLE_FORMAT, SAMPLE_FORMAT_VERSION

    return {
        "format": SAMPLE_FORMAT,
        "version": SAMPLE_FORMAT_VERSION,
        "members": list(MEMBER_SUFFIXES),
        "crop_resolution": crop.resolution,
        "network_resolution": crop.network_resolution,
        "loose_factor": round(crop.loose_factor, 6),
        "labels": "uint8 PNG, 0 background, 1..24 body part (SMPL part index + 1)",
    }


def run_preprocess(config, show_progress: bool = True) -> PreprocessReport:
    """Run the whole job for ``config.preprocess``; returns what happened per folder."""
    from pipelines.body_model_source import prepare_assets
    from pipelines.io.cluster import init_ray, quiet_ray_data

    start = time.perf_counter()
    pre = config.preprocess
    storage = Storage(pre.output)
    body_dir = prepare_assets(config.body_model)
    storage.check_writable()
    plans, done = _plans(config, storage, folder_fingerprint(body_dir), show_progress)
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
        report.chunks, report.chunks_reused = _build(config, storage, body_dir, plans, show_progress, stages)
        stages["build"] = time.perf_counter() - mark
        mark = time.perf_counter()
        summaries = {plan.folder: _summaries(storage, plan) for plan in plans}
        shards = _pack(config, storage, plans, summaries, show_progress)
        stages["pack"] = time.perf_counter() - mark
        mark = time.perf_counter()
        for plan in plans:
            report.folders.append(_finish(config, storage, plan, summaries[plan.folder], shards[plan.folder]))
        stages["finish"] = time.perf_counter() - mark
    report.seconds = time.perf_counter() - start
    return report
