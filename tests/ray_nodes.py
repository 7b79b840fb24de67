"""Real Ray nodes on this machine for tests: a head (``ray start --head``) and nodes that join it.

Each node has its own temp dir (short, under /tmp: Ray's unix sockets live in it and are limited to
107 bytes) and its own ports (another Ray, e.g. the tests' session cluster, may hold the defaults),
and runs ``ray start --block`` in a process group of its own, so that the test can stop it, or kill
the whole node at once as a lost machine would go: the raylet, its agents and its workers.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.mlflow_server import free_port

BIN = Path(sys.executable).parent
NODE_PORTS = (
    "node-manager-port",
    "object-manager-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
    "metrics-export-port",
)
"""The ports every node opens; each gets a free one (the defaults may belong to another Ray on the machine)."""


def ray_environment() -> dict[str, str]:
    """The environment of the nodes and of the commands that join them: no token auth, no usage stats."""
    env = os.environ | {
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    env.pop("RAY_ADDRESS", None)
    return env


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, command line) of every live process readable in /proc (not zombies)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, ...
        if fields[0] != "Z":
            table[int(entry.name)] = (int(fields[1]), int(fields[2]), cmdline)
    return table


class RayNode:
    """One Ray node: ``ray start --block`` with its own temp dir, ports and CPUs."""

    def __init__(
        self,
        name: str,
        num_cpus: int,
        head_address: str = "",
        env: dict[str, str] | None = None,
        dashboard_port: int = 0,
    ) -> None:
        self.name, self.num_cpus, self.env = name, num_cpus, env or {}
        self.head_address = head_address  # empty: this node is the head
        self.dashboard_port = dashboard_port  # a head with Ray's dashboard (job submission) on this port; 0: none
        self.temp_dir = tempfile.mkdtemp(prefix=f"ray-{name}-", dir="/tmp")
        self.port = free_port() if not head_address else 0
        self.process: subprocess.Popen | None = None
        self.node_id = ""
        self.ip = ""  # as Ray reports it: 127.0.0.1 is replaced by the machine's address
        self.log = Path(self.temp_dir) / "ray-start.log"

    @property
    def address(self) -> str:
        """The GCS address drivers and other nodes join (the head's)."""
        return self.head_address or f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        dashboard = (
            ["--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}"]
            if self.dashboard_port
            else ["--include-dashboard=false"]
        )
        role = ["--head", f"--port={self.port}", *dashboard, f"--ray-client-server-port={free_port()}"]
        return [
            str(BIN / "ray"),
            "start",
            "--block",
            *(role if not self.head_address else [f"--address={self.head_address}"]),
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={self.num_cpus}",
            "--num-gpus=0",
            f"--temp-dir={self.temp_dir}",
            "--disable-usage-stats",
            *(f"--{name}={free_port()}" for name in NODE_PORTS),
        ]

    def start(self, timeout_s: float = 300.0, attempts: int = 3) -> RayNode:
        """Start the node and wait until Ray says it runs: its raylet registered with the GCS ("Ray runtime
        started."), its node id read from the raylet's command line.

        ``ray start`` gives a raylet 30 s (hard-coded in Ray) to register; on a busy machine that can pass, and
        the command exits with "timed out during startup". That start is retried, up to ``attempts`` in all.
        """
        deadline = time.monotonic() + timeout_s
        attempt = 1
        self._launch()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                text = self.log.read_text()
                if "timed out during startup" not in text or attempt == attempts:
                    raise RuntimeError(f"ray start ({self.name}) exited: {text[-3000:]}")
                self.kill()  # what the failed start left behind; Ray's own limit on a busy machine: start again
                attempt += 1
                self._launch()
                continue
            raylet = self._raylet()
            if raylet and "Ray runtime started." in self.log.read_text():
                self.node_id, self.ip = raylet["node_id"], raylet["node_ip_address"]
                return self
            time.sleep(0.5)
        self.kill()
        raise RuntimeError(f"node {self.name} did not start in {timeout_s} s: {self.log.read_text()[-3000:]}")

    def _launch(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), env=ray_environment() | self.env, stdout=log, stderr=log, start_new_session=True
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _raylet(self) -> dict[str, str]:
        """The ``--node_id`` and ``--node_ip_address`` of this node's raylet, once it runs; {}."""
        for _, _, cmdline in _processes().values():
            if "/raylet " in cmdline and f"--temp_dir={self.temp_dir} " in cmdline:
                flags = dict(
                    part[2:].split("=", 1) for part in cmdline.split() if part.startswith("--") and "=" in part
                )
                return {name: flags[name] for name in ("node_id", "node_ip_address")}
        return {}

    @property
    def node(self) -> dict[str, str]:
        """This node as the jobs record it (:func:`pipelines.io.cluster.current_node`)."""
        return {"id": self.node_id, "ip": self.ip}

    def pids(self) -> list[int]:
        """Every process of this node: the ``ray start`` process group, everything below it (the raylet
        starts the workers) and anything whose command line names the node's temp dir."""
        table = _processes()
        if self.process is None:
            return []
        ours = {
            pid for pid, (_, group, cmdline) in table.items() if group == self.process.pid or self.temp_dir in cmdline
        }
        grew = True
        while grew:
            below = {pid for pid, (parent, _, _) in table.items() if parent in ours} - ours
            ours |= below
            grew = bool(below)
        return sorted(ours)

    def kill(self) -> None:
        """SIGKILL every process of the node at once, as when its machine goes away."""
        for _ in range(3):  # a process may have forked while the first round was sent
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        if self.process is not None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass

    def stop(self) -> None:
        """Stop the node (its processes, killed), then remove its temp dir."""
        self.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


class LocalCluster:
    """A head and the nodes that joined it, all on this machine; :meth:`stop` ends every one of them."""

    def __init__(self) -> None:
        self.nodes: list[RayNode] = []

    @property
    def head(self) -> RayNode:
        return self.nodes[0]

    @property
    def address(self) -> str:
        return self.head.address

    def start_head(self, num_cpus: int) -> RayNode:
        """The head, whose GCS checks every node's health every second (Ray's default, 3 s, marks a lost node dead
        after about 15 s; this, after about 5 s)."""
        assert not self.nodes, "the cluster has a head already"
        self.nodes.append(RayNode("head", num_cpus, env={"RAY_health_check_period_ms": "1000"}))
        return self.head.start()

    def add_node(self, name: str, num_cpus: int) -> RayNode:
        node = RayNode(name, num_cpus, self.address)
        self.nodes.append(node)  # before it starts: stop() must find it even if starting fails
        return node.start()

    def stop(self) -> None:
        for node in reversed(self.nodes):  # the head last
            node.stop()
