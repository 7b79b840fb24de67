"""Throughput of the build stage while every worker is busy: the figure that scales with workers.

A build's wall time also holds actor start-up, which Ray staggers across workers, and a tail
where the last chunks finish one by one. Neither grows with the data, so the speed-up of more
workers is measured over the window in which all of them are running: from the last worker's
first chunk start to the first worker's last chunk end. Chunks overlapping the window count
with the fraction of their time inside it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class ChunkTiming:
    """One unit of work done (a shard): which worker, when (wall-clock seconds) and how many records it held."""

    worker: str
    started: float
    finished: float
    records: int


def steady_throughput(chunks: list[ChunkTiming]) -> tuple[float, float]:
    """(records/s while all workers ran, that window's seconds); (0, 0) when the window is empty."""
    by_worker: dict[str, list[ChunkTiming]] = defaultdict(list)
    for chunk in chunks:
        by_worker[chunk.worker].append(chunk)
    if not by_worker:
        return 0.0, 0.0
    begin = max(min(c.started for c in items) for items in by_worker.values())
    end = min(max(c.finished for c in items) for items in by_worker.values())
    if end <= begin:
        return 0.0, 0.0
    done = 0.0
    for chunk in chunks:
        overlap = min(chunk.finished, end) - max(chunk.started, begin)
        if overlap > 0:
            done += chunk.records * overlap / max(chunk.finished - chunk.started, 1e-9)
    return done / (end - begin), end - begin
