"""The pack stage: cut the built samples, in record order, into shards of a fixed size.

Shard ``k`` holds accepted samples ``k*N .. (k+1)*N - 1`` in the order of the planned records
(the last shard holds the rest), whatever order the chunks were built in. A shard that already
exists with exactly the bytes it would get is left alone, so a rerun after a crash rewrites
only what is missing or broken.
"""

from __future__ import annotations

import hashlib
import json

from pipelines.data.manifest import shard_name
from pipelines.io.storage import Storage
from pipelines.preprocess.work import part_name


def shard_specs(folder: str, summaries: list[dict], samples_per_shard: int) -> list[dict]:
    """One spec per shard: its name and, per part it draws from, the keys it takes."""
    accepted = [(summary["chunk"], sample["key"]) for summary in summaries for sample in summary["samples"]]
    specs = []
    for index, start in enumerate(range(0, len(accepted), samples_per_shard)):
        parts: dict[int, list[str]] = {}
        for chunk, key in accepted[start : start + samples_per_shard]:
            parts.setdefault(chunk, []).append(key)
        # parts travel as JSON text: Ray Data stores plain columns as Arrow, nested lists would fall back to pickle
        specs.append({"folder": folder, "name": shard_name(index), "parts": json.dumps(list(parts.items()))})
    return specs


class ShardWriter:
    """Ray Data callable class: writes one shard per row from the part files."""

    def __init__(self, output: str):
        self.storage = Storage(output)

    def __call__(self, spec: dict) -> dict:
        from preprocessing.samples.encode import member_key, read_tar_members, tar_bytes

        folder, members = spec["folder"], []
        parts = json.loads(spec["parts"])
        for chunk, keys in parts:
            wanted = set(keys)
            part = self.storage.read_bytes(f"{folder}/{part_name(int(chunk))}.tar")
            members.extend((name, data) for name, data in read_tar_members(part) if member_key(name) in wanted)
        data = tar_bytes(members)
        digest = hashlib.sha256(data).hexdigest()
        path = f"{folder}/{spec['name']}"
        existing_ok = (
            self.storage.exists(path)
            and self.storage.size(path) == len(data)
            and hashlib.sha256(self.storage.read_bytes(path)).hexdigest() == digest
        )
        if not existing_ok:
            self.storage.write_bytes(path, data)
        keys = [key for _, part_keys in parts for key in part_keys]
        return {
            "folder": folder,
            "name": spec["name"],
            "samples": len(keys),
            "bytes": len(data),
            "sha256": digest,
            "first_key": keys[0],
            "last_key": keys[-1],
            "skipped": existing_ok,
        }
