"""Connecting to Ray: a local cluster by default, or a running one by address."""

from __future__ import annotations

import os


def init_ray(address: str = "") -> None:
    """Start or join Ray unless this process is already connected.

    ``address`` empty starts a local cluster on this machine; ``auto`` joins the cluster this
    machine belongs to; ``ray://host:10001`` connects a client to a remote head.
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address=address or None, log_to_driver=True, include_dashboard=False if not address else None)


def cluster_cpus() -> int:
    """CPUs of the connected cluster (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def quiet_ray_data() -> None:
    """Turn Ray Data's own progress bars off: the job shows one bar per stage instead."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
