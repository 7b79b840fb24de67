"""Connecting to Ray: a local cluster by default, or a running one by address."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def init_ray(address: str = "") -> None:
    """Start or join Ray unless this process is already connected.

    ``address`` empty starts a local cluster on this machine; ``auto`` joins the cluster this
    machine belongs to; ``ray://host:10001`` connects a client to a remote head.

    By default the workers' output stays in Ray's log folder, whose path is printed once, and Ray's
    own messages below warnings are not shown; what Ray reports about its cluster (a lost node, a task
    retried) goes to a file there too, announced by one line (:func:`_keep_ray_messages`);
    ``pare --verbose`` streams all of it to the console. The ``PARE_MAX_*`` input limits set in this
    process's environment are handed to the workers (:mod:`pare_model.input_limits`).
    """
    import ray

    from pare_model.input_limits import limits_environment
    from pipelines.console import verbose

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    loud = verbose()
    # Quiet: Ray's Python-side notices below errors (e.g. that the local cluster uses token authentication) stay
    # in its logs; its errors and our own messages still show.
    with contextlib.nullcontext(None) if loud else stderr_captured() as captured:
        context = ray.init(
            address=address or None,
            log_to_driver=loud,
            include_dashboard=False if not address else None,
            logging_level=logging.INFO if loud else logging.ERROR,
            # the input limits raised for this command hold in its workers too
            runtime_env={"env_vars": limits} if (limits := limits_environment()) else None,
        )
    if not loud:
        folder = ray_log_folder(context)
        if captured is not None and captured.text:
            _keep_startup_output(captured.text, folder)
        _keep_ray_messages(folder)
        print(f"Ray workers' logs: {folder} (pare --verbose shows them here)", flush=True)


STARTUP_LOG = "pare-driver-startup.log"
"""What Ray's C++ core wrote to the driver's stderr while it connected, kept in Ray's log folder."""
_CORE_INFO = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,.]+ I \d+ \d+\] ")
"""A line of Ray's C++ core at INFO severity: ``[2026-12-02 18:43:17,455 I 32740 32740] logging.cc:303: ...``."""


RAY_MESSAGES_LOG = "pare-ray-messages-{job_id}.log"
"""What Ray reported to the driver of job ``job_id`` about its cluster while the command ran, kept in Ray's log
folder (of the head, which every command joining the cluster shares: one file per command)."""
_NODE_DEAD = re.compile(r"node id: ([0-9a-f]+) and address: (\S+) .*has been marked dead")
"""Ray's message for a lost node: "The node with node id: 63c8... and address: 10.0.0.6 and node name: ... has been
marked dead because the detector has missed too many heartbeats from it." """


class RayMessages:
    """Takes what Ray pushes to the driver (its lines prefixed ``(raylet)``: a raylet that died with its last log
    lines, a task retried, a node marked dead) and writes it to ``path``; the console gets one line when a node is
    lost, and one line the first time anything else comes, saying where it went."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lost: set[str] = set()  # node ids already announced
        self.announced = False  # the first other message

    def __call__(self, data: dict, ignore_prefix: bool = False) -> None:
        text = "\n".join(str(line) for line in data.get("lines", []))
        try:
            with open(self.path, "a") as log:
                log.write(text.rstrip("\n") + "\n")
        except OSError:
            pass
        lost = _NODE_DEAD.findall(text)
        for node_id, ip in lost:
            if node_id not in self.lost:
                self.lost.add(node_id)
                label = node_label({"id": node_id, "ip": ip})
                print(
                    f"Ray lost node {label}; what ran there is retried elsewhere (Ray's messages: {self.path})",
                    flush=True,
                )
        if not lost and not self.announced:
            self.announced = True
            print(f"Ray reported a problem in its cluster; its messages are in {self.path}", flush=True)


def _keep_ray_messages(folder: str) -> None:
    """Route the messages Ray's driver thread prints about the cluster to :class:`RayMessages`.

    Ray prints them with ``ray._private.worker.print_to_stdstream`` from a thread of the driver (with
    ``log_to_driver=False`` nothing else calls it), a private function of the pinned Ray version: if it is not
    there, Ray's own printing stays (tests/test_two_nodes.py checks the console when a node is lost).
    """
    import ray._private.worker as ray_worker

    if not hasattr(ray_worker, "print_to_stdstream"):
        return
    import ray

    where = folder if os.path.isdir(folder) else tempfile.gettempdir()
    name = RAY_MESSAGES_LOG.format(job_id=ray.get_runtime_context().get_job_id())
    ray_worker.print_to_stdstream = RayMessages(os.path.join(where, name))


def _keep_startup_output(text: str, folder: str) -> None:
    """Ray's start-up output goes to its log folder; any line but the core's informational ones also to stderr."""
    if os.path.isdir(folder):
        Path(folder, STARTUP_LOG).write_text(text)
    shown = [line for line in text.splitlines() if line.strip() and not _CORE_INFO.match(line)]
    if shown:
        print("\n".join(shown), file=sys.stderr, flush=True)


@dataclass
class Captured:
    text: str = ""


@contextlib.contextmanager
def stderr_captured() -> Iterator[Captured]:
    """Holds what this process (its C++ libraries too) writes to file descriptor 2 while the block runs.

    Ray's core logs an informational line to the driver's stderr as it starts, before its log files exist
    ("Set ray log level from environment variable ..."). The block's output is returned in the yielded
    :class:`Captured`; if the block raises, it is written back to stderr first, so that nothing is lost.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    captured = Captured()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        except BaseException:
            _restore(saved, sink, captured)
            sys.stderr.write(captured.text)
            raise
        _restore(saved, sink, captured)


def _restore(saved: int, sink, captured: Captured) -> None:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    sink.seek(0)
    captured.text = sink.read().decode(errors="replace")


def ray_log_folder(context) -> str:
    """Where this session's Ray processes write their logs (on this machine; on a cluster, on each node)."""
    session = context.get("session_dir") if context is not None else None
    return os.path.join(session, "logs") if session else "the logs folder of Ray's session (its temp dir)"


def cluster_cpus() -> int:
    """CPUs of the connected cluster (at least 1)."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def actors_for_work(work: int, work_per_actor: int, most: int) -> int:
    """How many Ray actors a job of ``work`` units (records, samples) is worth: one per ``work_per_actor`` units,
    at least 1 and at most ``most``. An actor's start-up (a process that imports torch and loads a model) costs
    about as much as its ``work_per_actor`` units do, so a small job starts fewer actors than it may."""
    return max(1, min(most, -(-work // work_per_actor)))


def current_node() -> dict[str, str]:
    """The Ray node this worker runs on: ``{"id": its node id (hex), "ip": its address}``.

    Jobs record it where work ran (a shard's summary, the training run's tags), so that a user can tell the
    nodes apart after one was lost; ``ray list nodes`` and the Ray dashboard show the same ids.
    """
    import ray

    return {"id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address()}


def node_label(node: dict[str, str]) -> str:
    """``10.0.0.5 (node 1a2b3c4d)``: a node's address and the first digits of its id (nodes may share an address)."""
    return f"{node['ip']} (node {node['id'][:8]})"


def quiet_ray_data() -> None:
    """Turn Ray Data's own progress bars off: the job shows one bar per stage instead.

    Unless ``--verbose``, its informational lines ("Dataset ... execution finished in 8.85 seconds") leave the
    console and go only to ``ray-data.log`` in Ray's log folder, whose path the job prints; warnings stay.
    """
    from ray.data import DataContext

    from pipelines.console import verbose

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # its notice that they are off
    if not verbose():
        for handler in logging.getLogger("ray.data").handlers:  # Ray Data's own config: a file and a console
            if handler.name == "console":
                handler.setLevel(logging.WARNING)
