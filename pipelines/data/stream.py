"""The streaming loader: shard URLs -> mixed, shuffled, augmented examples -> torch batches.

Training streams never end. Each (rank, loader process) pair takes its own slice of every
dataset's shards when there are enough of them (split by node and by worker), and resamples
shards from that slice at random, so every rank can always produce the next batch and DDP ranks
never disagree on how many batches there are; the epoch length is a step count set by the
training loop. Datasets are mixed per sample by the stage's ratios. Shards are read with the
plain ``webdataset`` library (``tar_file_expander`` and ``group_by_keys``); a shard that cannot
be opened or read, and a sample that cannot be decoded, is skipped and counted (``skipped`` in
each batch), never fatal.

Validation streams read each sample once, in shard order, split across ranks.
"""

from __future__ import annotations

import io
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pare_model.errors import UserFacingError
from pipelines.config.train import LoaderConfig
from pipelines.data.reading import ShardContentError, read_shard
from pipelines.data.samples import SKIPPED, SampleTransform
from pipelines.io.storage import is_remote

log = logging.getLogger(__name__)


class ShardDataError(UserFacingError):
    """The shards give no usable sample: every restart would read the same broken files."""


def open_url(url: str):
    """A binary stream of a local path or any fsspec URI (s3://, gs://, ...)."""
    if is_remote(url):
        import fsspec

        return fsspec.open(url, "rb").open()
    return open(url.removeprefix("file://"), "rb")


def count_and_continue(error: Exception) -> bool:
    """webdataset handler: count a broken shard or member, warn, and go on."""
    SKIPPED["bad_shard"] += 1
    log.warning("skipping unreadable shard data: %s", error)
    return True


def _opened(urls: Iterator[str]) -> Iterator[dict]:
    """Each shard read whole into memory (shards are ~100 MB at most): one read instead of thousands; a shard over
    the size limit, or whose members would expand beyond it, is skipped (:func:`~pipelines.data.reading.read_shard`)."""
    for url in urls:
        try:
            with open_url(url) as stream:
                data = read_shard(stream, url)
        except (OSError, ShardContentError) as error:
            count_and_continue(error)
            continue
        yield {"url": url, "stream": io.BytesIO(data)}


def read_samples(urls: Iterator[str]) -> Iterator[dict]:
    """Raw samples (``__key__``, ``jpg``, ``labels.png``, ``json``) of the shards at ``urls``, in order."""
    files = wds.tariterators.tar_file_expander(_opened(urls), handler=count_and_continue)
    return wds.tariterators.group_by_keys(files, handler=count_and_continue)


def split(items: Sequence, index: int, count: int) -> list:
    """Every ``count``-th item from ``index`` when there are at least ``count`` items, else all of them."""
    return list(items[index::count]) if len(items) >= count else list(items)


def _counted(samples: Iterator[dict], produced: list[int]) -> Iterator[dict]:
    for sample in samples:
        produced[0] += 1
        yield sample


@dataclass(frozen=True)
class MixSource:
    """One dataset in a stage's mix: its shard URLs (with sample counts) and its ratio."""

    name: str
    urls: tuple[str, ...]
    weights: tuple[float, ...]
    ratio: float


def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


class TrainStream(IterableDataset):
    """Endless mixed training examples for one rank; give it to a DataLoader with batch_size.

    Args:
        sources: the datasets of the current stage (ratios need not sum to 1).
        config: the loader section; out_size: network input side.
        rank, world_size: this training worker and how many there are.
        seed: with rank, loader process and ``start_step`` it seeds shard order and augmentation,
            so a resumed run draws new data rather than replaying the first batches.
    """

    def __init__(
        self,
        sources: Sequence[MixSource],
        config: LoaderConfig,
        out_size: int,
        rank: int,
        world_size: int,
        seed: int,
        start_step: int = 0,
    ) -> None:
        super().__init__()
        total = sum(s.ratio for s in sources)
        self.sources = list(sources)
        self.probs = np.array([s.ratio / total for s in sources])
        self.config, self.out_size = config, out_size
        self.rank, self.world_size = rank, world_size
        self.seed, self.start_step = seed, start_step

    def _seed(self, worker: int) -> int:
        return int(np.random.SeedSequence([self.seed, self.rank, worker, self.start_step]).generate_state(1)[0])

    def _shard_urls(
        self, source: MixSource, rng: np.random.Generator, worker: int, workers: int, produced: list[int]
    ) -> Iterator[str]:
        pairs = split(
            split(list(zip(source.urls, source.weights, strict=True)), self.rank, self.world_size), worker, workers
        )
        urls = [u for u, _ in pairs]
        weights = np.array([w for _, w in pairs], dtype=np.float64)
        weights = weights / weights.sum() if weights.sum() > 0 else None
        barren = 0  # shards in a row that gave no sample
        while True:
            before = produced[0]
            yield urls[int(rng.choice(len(urls), p=weights))]
            barren = barren + 1 if produced[0] == before else 0
            if barren > 2 * len(urls) + 8:
                raise ShardDataError(
                    f"dataset {source.name!r}: the last {barren} shards read gave no usable sample "
                    f"(e.g. {urls[0]}); check them with `pare shards validate` and rebuild them with `pare preprocess`"
                )

    def __iter__(self) -> Iterator[dict]:
        worker, workers = _worker()
        seed = self._seed(worker)
        rng = np.random.default_rng(seed)
        transform = SampleTransform(self.config, self.out_size, seed, train=True)
        buffer = max(self.config.shuffle_buffer, 1)
        streams = []
        for source in self.sources:
            shard_rng = np.random.default_rng(rng.integers(2**63))
            produced = [0]
            samples = _counted(read_samples(self._shard_urls(source, shard_rng, worker, workers, produced)), produced)
            shuffle_rng = random.Random(int(shard_rng.integers(2**63)))
            shuffled = wds.filters._shuffle(samples, bufsize=buffer, initial=min(buffer, 100), rng=shuffle_rng)
            streams.append(iter(shuffled))
        while True:  # one source: no draw (the mixing draws use ``rng`` alone, so nothing else changes)
            raw = next(streams[int(rng.choice(len(streams), p=self.probs)) if len(streams) > 1 else 0])
            example = transform(raw)
            if example is not None:
                yield example


class ValidationStream(IterableDataset):
    """Each validation sample once, un-augmented, split over ranks and loader processes.

    With at least ``world_size`` x loader-process shards, shards are split; otherwise samples are
    split by index. ``max_samples`` keeps the first samples in shard order (0: all).
    """

    def __init__(
        self, urls: Sequence[str], config: LoaderConfig, out_size: int, rank: int, world_size: int, max_samples: int = 0
    ) -> None:
        super().__init__()
        self.urls = list(urls)
        self.config, self.out_size = config, out_size
        self.rank, self.world_size = rank, world_size
        self.max_samples = max_samples

    def __iter__(self) -> Iterator[dict]:
        worker, workers = _worker()
        parts = self.world_size * workers
        part = self.rank * workers + worker
        transform = SampleTransform(self.config, self.out_size, seed=0, train=False)
        if len(self.urls) >= parts and not self.max_samples:
            chosen, keep = self.urls[part::parts], (lambda index: True)
        else:
            chosen, keep = self.urls, (lambda index: index % parts == part)
        for index, raw in enumerate(read_samples(iter(chosen))):
            if self.max_samples and index >= self.max_samples:
                return
            if keep(index):
                example = transform(raw)
                if example is not None:
                    yield example


def one_thread_each(worker_id: int) -> None:
    """A loader process's start: one OpenCV thread and one torch thread. Loader processes are the parallelism;
    by default each would start a thread per CPU of the machine (48-64 processes of a GPU node, each with as
    many threads as the node has CPUs)."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def make_loader(
    dataset: IterableDataset,
    config: LoaderConfig,
    batch_size: int | None = None,
    drop_last: bool = True,
    device: torch.device | None = None,
    num_workers: int | None = None,
) -> DataLoader:
    """A torch DataLoader over a stream, with ``config.num_workers`` loader processes (or ``num_workers``), each
    with one OpenCV thread; its batches are :class:`~pipelines.data.batch.TrainingBatch` dicts. They are pinned
    (page-locked, so that the copy to the GPU overlaps the step) when the batches go to a CUDA ``device``, and
    only then: pinning opens a CUDA context, which a CPU worker on a GPU node must not."""
    workers = config.num_workers if num_workers is None else num_workers
    return DataLoader(
        dataset,
        batch_size=batch_size or config.batch_size,
        num_workers=workers,
        prefetch_factor=config.prefetch_factor if workers else None,
        persistent_workers=False,
        drop_last=drop_last,
        pin_memory=device is not None and device.type == "cuda",
        worker_init_fn=one_thread_each if workers else None,
        multiprocessing_context="forkserver" if workers else None,
    )
