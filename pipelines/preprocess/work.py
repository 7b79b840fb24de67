"""The build stage: a Ray actor per CPU turns chunks of records into part files.

Each chunk becomes ``_work/part-<chunk>.tar`` (its samples, in record order) and
``_work/part-<chunk>.json`` (what is in the tar, the chunk's rejects, the digest of its input).
The JSON is written last, so a part counts as done only when both are complete; a rerun skips
chunks whose part JSON has the same input digest, and the order of work never changes the
result.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time

from pipelines.io.storage import Storage
from preprocessing.record import Rejected, SampleRecord
from preprocessing.record_codec import decode_records

WORK_DIR = "_work"


def part_name(chunk: int) -> str:
    return f"{WORK_DIR}/part-{chunk:06d}"


def chunk_digest(encoded_records: str, config_hash: str) -> str:
    """Identifies a chunk's input: its records (as :func:`~preprocessing.record_codec.encode_records` text)
    and everything else that shapes its samples."""
    return hashlib.sha256(config_hash.encode() + b"\0" + encoded_records.encode()).hexdigest()


def part_done(storage: Storage, folder: str, chunk: int, digest: str) -> bool:
    """Whether chunk ``chunk`` of ``folder`` was built from the same input (part JSON present and matching)."""
    marker = f"{folder}/{part_name(chunk)}.json"
    if not storage.exists(marker):
        return False
    try:
        summary = json.loads(storage.read_text(marker))
    except (OSError, ValueError):
        return False
    return summary.get("input_digest") == digest and storage.exists(f"{folder}/{part_name(chunk)}.tar")


def _configure_worker() -> None:
    """One thread per worker (parallelism comes from the actors) and a shared numba cache."""
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "pare-numba-cache"))
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


class ChunkBuilder:
    """Ray Data callable class: builds one chunk per row and writes its part files."""

    def __init__(self, output: str, body_model_dir: str, part_map: str | None, crop, quality):
        _configure_worker()
        from preprocessing.bodies import BodyModels
        from preprocessing.samples import SampleBuilder

        self.storage = Storage(output)
        self.builder = SampleBuilder(BodyModels(body_model_dir, part_map), crop, quality)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, row: dict) -> dict:
        from preprocessing.samples.encode import tar_bytes

        started = time.time()
        folder, chunk = row["folder"], int(row["chunk"])
        records: list[SampleRecord] = decode_records(row["records"])
        results = self.builder.build(records)
        members, samples, rejects = [], [], []
        for result in results:
            if isinstance(result, Rejected):
                rejects.append(result.to_json())
                continue
            members.extend(result.members)
            samples.append({"key": result.key, "quality": result.quality.to_json(), "has_smpl": result.has_smpl})
        data = tar_bytes(members)
        name = part_name(chunk)
        self.storage.write_bytes(f"{folder}/{name}.tar", data)
        summary = {
            "chunk": chunk,
            "input_digest": row["digest"],
            "records": len(records),
            "samples": samples,
            "rejects": rejects,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "worker": self.worker,
        }
        self.storage.write_text(f"{folder}/{name}.json", json.dumps(summary, sort_keys=True))
        # Timing goes back in the row, not into the part file, whose bytes must not depend on the run.
        finished = time.time()
        return {
            "folder": folder,
            "chunk": chunk,
            "samples": len(samples),
            "rejects": len(rejects),
            "records": len(records),
            "worker": self.worker,
            "started": started,
            "finished": finished,
        }
