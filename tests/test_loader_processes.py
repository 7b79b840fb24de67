"""The loader's processes: one OpenCV and one torch thread each, and batches pinned only for a CUDA device.

Loader processes are the parallelism: a GPU node runs 6-8 per GPU, 48-64 in all, and each would otherwise start
as many OpenCV and torch threads as the node has CPUs. Pinned (page-locked) batches let the copy to a GPU overlap
the step, but pinning opens a CUDA context, which a CPU worker on a GPU node must not.
"""

from __future__ import annotations

import os

import cv2
import pytest
import torch
from torch.utils.data import IterableDataset

from pipelines.config.train import LoaderConfig
from pipelines.data.stream import make_loader


class ThreadCounts(IterableDataset):
    """Yields, from each loader process, the threads OpenCV and torch would use there."""

    def __iter__(self):
        yield {"opencv": cv2.getNumThreads(), "torch": torch.get_num_threads()}


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one CPU: one thread is the default anyway")
def test_each_loader_process_uses_one_opencv_thread_and_one_torch_thread():
    assert cv2.getNumThreads() > 1  # this process keeps its own setting
    batches = list(make_loader(ThreadCounts(), LoaderConfig(batch_size=1, num_workers=2), drop_last=False))
    assert len(batches) == 2
    for batch in batches:
        assert batch["opencv"].tolist() == [1] and batch["torch"].tolist() == [1], batch


def test_batches_are_pinned_only_for_a_cuda_device():
    config = LoaderConfig(batch_size=1, num_workers=0)
    assert not make_loader(ThreadCounts(), config).pin_memory
    assert not make_loader(ThreadCounts(), config, device=torch.device("cpu")).pin_memory
    assert make_loader(ThreadCounts(), config, device=torch.device("cuda")).pin_memory
