"""Connecting to Ray: a local cluster by default, or a running one by address."""

from __future__ import annotations

import logging
import os


def init_ray(address: str = "") -> None:
    """Start or join Ray unless this process is already connected.

    ``address`` empty starts a local cluster on this machine; ``auto`` joins the cluster this
    machine belongs to; ``ray://host:10001`` connects a client to a remote head.

    By default the workers' output stays in Ray's log folder, whose path is printed once, and Ray's
    own messages below warnings are not shown; ``pare --verbose`` streams both to the console.
    """
    import ray

    from pipelines.console import verbose

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    loud = verbose()
    # Quiet: Ray's Python-side notices below errors (e.g. that the local cluster uses token authentication) stay
    # in its logs; its errors and our own messages still show.
    context = ray.init(
        address=address or None,
        log_to_driver=loud,
        include_dashboard=False if not address else None,
        logging_level=logging.INFO if loud else logging.ERROR,
    )
    if not loud:
        print(f"Ray workers' logs: {ray_log_folder(context)} (pare --verbose shows them here)", flush=True)


def ray_log_folder(context) -> str:
    """Where this session's Ray processes write their logs (on this machine; on a cluster, on each node)."""
    session = context.get("session_dir") if context is not None else None
    return os.path.join(session, "logs") if session else "the logs folder of Ray's session (its temp dir)"


def cluster_cpus() -> int:
    """CPUs of the connected cluster (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def quiet_ray_data() -> None:
    """Turn Ray Data's own progress bars off: the job shows one bar per stage instead. Unless ``pare --verbose``,
    its informational lines ("Dataset ... execution finished in 11 s") go to its log file only, not the console."""
    from ray.data import DataContext

    from pipelines.console import verbose

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # its notice that they are off
    if not verbose():
        for handler in logging.getLogger("ray.data").handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.WARNING)  # the console handler; the session log file keeps everything
