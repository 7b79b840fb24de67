"""The steady build throughput: counted only while every worker runs, so start-up stagger does not dilute it."""

from __future__ import annotations

import pytest

from pipelines.preprocess.throughput import ChunkTiming, steady_throughput


def test_window_starts_with_the_last_worker_and_ends_with_the_first_to_finish():
    # Worker a starts at 0 and builds 10 records/s; worker b starts late (slow actor start) at 5.
    a = [ChunkTiming("a", t, t + 1.0, 10) for t in range(0, 12)]  # busy 0..12
    b = [ChunkTiming("b", t, t + 2.0, 20) for t in range(5, 13, 2)]  # busy 5..13
    rate, window = steady_throughput(a + b)
    assert window == pytest.approx(12 - 5)  # b's first start to a's last end
    assert rate == pytest.approx(20.0)  # 10/s each, both running
    whole = sum(c.records for c in a + b) / 13.0  # what the plain wall-clock rate would report
    assert whole < rate


def test_partial_chunks_are_prorated_and_empty_inputs_give_zero():
    rate, window = steady_throughput([ChunkTiming("a", 0.0, 4.0, 40), ChunkTiming("b", 1.0, 3.0, 10)])
    assert window == pytest.approx(2.0) and rate == pytest.approx((20 + 10) / 2.0)
    assert steady_throughput([]) == (0.0, 0.0)
    assert steady_throughput([ChunkTiming("a", 0.0, 1.0, 5), ChunkTiming("b", 2.0, 3.0, 5)]) == (0.0, 0.0)
