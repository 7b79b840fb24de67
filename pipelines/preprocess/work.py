"""The build stage: a Ray actor per CPU turns each planned shard's records into the shard itself.

The driver writes each planned shard's records to ``_work/shard-<k>.records.json.gzip`` while it
plans (:func:`write_input`); a builder reads them from there, so that no record is held by the
driver or travels through Ray's object store, and builders on any node of the cluster reach them
through the output storage. Samples are written once, straight into ``shard-<k>.tar`` (an atomic write: the name appears
only when the tar is complete). Then ``_work/shard-<k>.json`` records what the shard holds, its
rejects, its size and sha256, the digest of its input, and the Ray node that built it. The JSON is written last, so a shard
counts as done only when both are there; a rerun skips shards whose JSON has the same input
digest and whose tar has the recorded size, and the order of work never changes the result. A
shard whose every record is rejected writes no tar.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field

from pipelines.data.manifest import shard_name
from pipelines.io.cluster import current_node, node_label
from pipelines.io.storage import AtomicFile, Storage
from preprocessing.record import Rejected, SampleRecord
from preprocessing.record_codec import decode_records

WORK_DIR = "_work"
INPUT_SUFFIX = ".records.json.gzip"
"""Not ``.gz``: pyarrow's file systems would (de)compress a ``.gz`` name themselves, on some stores only."""


def summary_name(index: int) -> str:
    """The work file that marks shard ``index`` done: ``_work/shard-<index>.json``."""
    return f"{WORK_DIR}/{shard_name(index).removesuffix('.tar')}.json"


def input_name(index: int) -> str:
    """The work file that holds shard ``index``'s planned records: ``_work/shard-<index>.records.json.gzip``."""
    return f"{WORK_DIR}/{shard_name(index).removesuffix('.tar')}{INPUT_SUFFIX}"


def write_input(storage: Storage, folder: str, index: int, encoded_records: str) -> None:
    """Write shard ``index``'s records (:func:`~preprocessing.record_codec.encode_records` text), gzipped."""
    storage.write_bytes(f"{folder}/{input_name(index)}", gzip.compress(encoded_records.encode(), 1, mtime=0))


def read_input(storage: Storage, folder: str, index: int) -> str:
    return gzip.decompress(storage.read_bytes(f"{folder}/{input_name(index)}")).decode()


def input_digest(encoded_records: str, config_hash: str) -> str:
    """Identifies a shard's input: its records (as :func:`~preprocessing.record_codec.encode_records` text)
    and everything else that shapes its samples."""
    return hashlib.sha256(config_hash.encode() + b"\0" + encoded_records.encode()).hexdigest()


def read_summary(storage: Storage, folder: str, index: int) -> dict | None:
    """Shard ``index``'s summary, or None when it is missing or unreadable."""
    path = f"{folder}/{summary_name(index)}"
    if not storage.exists(path):
        return None
    try:
        return json.loads(storage.read_text(path))
    except (OSError, ValueError):
        return None


def shard_done(storage: Storage, folder: str, index: int, digest: str) -> bool:
    """Whether shard ``index`` of ``folder`` was written from the same input: its summary matches ``digest``
    and its tar is there with the recorded size (none when every record was rejected)."""
    summary = read_summary(storage, folder, index)
    if summary is None or summary.get("input_digest") != digest:
        return False
    if not summary.get("samples"):
        return True
    path = f"{folder}/{shard_name(index)}"
    return storage.exists(path) and storage.size(path) == summary.get("bytes")


def _configure_worker() -> None:
    """One thread per worker (parallelism comes from the actors) and a shared numba cache."""
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "pare-numba-cache"))
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


class _Digesting:
    """A writable file object that passes bytes on to ``out`` and keeps their sha256."""

    def __init__(self, out: AtomicFile):
        self.out, self.sha256 = out, hashlib.sha256()

    def write(self, data) -> int:
        self.sha256.update(data)
        return self.out.write(data)

    def tell(self) -> int:
        return self.out.tell()


@dataclass
class ShardContents:
    """What building a shard's records gave: per sample its key and quality, and the rejects."""

    samples: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)


class ShardBuilder:
    """Ray Data callable class: builds one planned shard per row and writes it, then its summary."""

    def __init__(self, output: str, body_model_dir: str, part_map: str | None, crop, quality, batch_size: int):
        _configure_worker()
        from preprocessing.bodies import BodyModels
        from preprocessing.samples.build import SampleBuilder

        self.storage = Storage(output)
        self.builder = SampleBuilder(BodyModels(body_model_dir, part_map), crop, quality)
        self.batch_size = batch_size
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.node = current_node()

    def _write(self, records: list[SampleRecord], out: _Digesting) -> ShardContents:
        """Build ``records`` in batches of ``batch_size`` (the body model runs batched) and stream each
        accepted sample into the tar in ``out``, in record order."""
        from preprocessing.samples.encode import add_members, open_tar

        contents = ShardContents()
        with open_tar(out) as tar:
            for start in range(0, len(records), self.batch_size):
                for result in self.builder.build(records[start : start + self.batch_size]):
                    if isinstance(result, Rejected):
                        contents.rejects.append(result.to_json())
                        continue
                    add_members(tar, result.members)
                    quality = result.quality.to_json()
                    contents.samples.append({"key": result.key, "quality": quality, "has_smpl": result.has_smpl})
        return contents

    def __call__(self, row: dict) -> dict:
        started = time.time()
        folder, index = row["folder"], int(row["shard"])
        records: list[SampleRecord] = decode_records(read_input(self.storage, folder, index))
        with self.storage.open_atomic(f"{folder}/{shard_name(index)}") as file:
            out = _Digesting(file)
            contents = self._write(records, out)
            if not contents.samples:
                file.discard()  # every record rejected: no shard
        summary = {
            "shard": index,
            "input_digest": row["digest"],
            "records": len(records),
            "samples": contents.samples,
            "rejects": contents.rejects,
            "bytes": out.tell() if contents.samples else 0,
            "sha256": out.sha256.hexdigest() if contents.samples else "",
            "node": self.node,  # where it was built: the only field that depends on the run, not on the input
        }
        self.storage.write_text(f"{folder}/{summary_name(index)}", json.dumps(summary, sort_keys=True))
        # Timing goes back in the row, not into the summary, which depends on the input alone (but for the node).
        return {
            "folder": folder,
            "shard": index,
            "samples": len(contents.samples),
            "rejects": len(contents.rejects),
            "records": len(records),
            "bytes": summary["bytes"],
            "worker": self.worker,
            "node": node_label(self.node),
            "started": started,
            "finished": time.time(),
        }
