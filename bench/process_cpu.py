"""Where a command's CPU time goes: every process it starts, grouped by kind (Linux only).

    .venv/bin/python bench/process_cpu.py -- bash .ci/run     # the whole CI run
    .venv/bin/python bench/process_cpu.py -- make test
    .venv/bin/python bench/process_cpu.py --busy 2 -- bash .ci/run   # with both cores kept busy elsewhere

Samples /proc twice a second and keeps each process's user + system time at its last sighting, for
the processes started after the command (Ray's workers are started by a raylet, not by the command,
so they are found by start time, not by parentage). A process that lives less than half a second
can be missed. Prints the wall time, how busy the cores were, and a table by kind of process. The
figures in docs/benchmarks.md ("The test suite") come from it.

``--busy N`` runs N processes that spin at normal priority beside the command, as outside load (is the suite's
verdict independent of how busy the machine is?); they are stopped when the command ends and are not counted.

``--tree`` counts only the command's own descendants, for a machine where other work starts processes too; a
process whose parent exited before it was first seen, such as the daemons of ``ray start``, is then left out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

KINDS = (
    ("Ray worker processes (tasks and actors)", ("default_worker.py", "ray::")),
    (
        "Ray system processes (GCS, raylet, agents, dashboard)",
        ("gcs_server", "raylet", "ray/dashboard", "ray/_private"),
    ),
    # xdist starts its test processes with -c reading stdin; a bare "pytest" would also match the arguments of
    # commands the tests start in pytest's temporary folders (/tmp/pytest-of-...)
    ("pytest processes", ("-m pytest", "bin/pytest", "execnet", "sys.stdin.readline")),
    ("pare commands", ("bin/pare ", "pipelines.cli")),
    ("pip", ("pip install",)),
    ("lint (ruff, mypy)", ("ruff", "mypy")),
    ("servers (MLflow, S3, PostgreSQL)", ("mlflow", "uvicorn", "moto", "postgres")),
)
TICK = os.sysconf("SC_CLK_TCK")
UNNAMED_RAY_WORKER = "ray::IDLE"
"""The title of a Ray worker process that no actor or task holds (yet)."""


def program(cmdline: bytes) -> str:
    """The first arguments of a /proc command line (interpreter, script or module, subcommand), which say what
    the process is; what follows (paths, options) is left out so that it cannot be mistaken for a kind."""
    return " ".join(arg.decode(errors="replace") for arg in cmdline.rstrip(b"\0").split(b"\0")[:4])


RAY_SYSTEM_TITLES = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")
"""Ray's per-node agents retitle themselves like workers (``ray::<name>``) once started; they are system processes."""


def kind(cmdline: str) -> str:
    if cmdline.startswith(RAY_SYSTEM_TITLES):
        return KINDS[1][0]
    for name, marks in KINDS:
        if any(mark in cmdline for mark in marks):
            return name
    return "other"


def sample(
    since_ticks: int, seen: dict[str, list], stop: threading.Event, skip: frozenset[str], parents: dict[str, str]
) -> None:
    """pid:start -> [cpu seconds, command line], for processes started at or after ``since_ticks`` (not this one,
    nor those in ``skip``); ``parents`` gets pid -> parent pid of each."""
    skip = skip | {str(os.getpid())}
    while not stop.is_set():
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or entry.name in skip:
                continue
            try:
                sample_process(entry, since_ticks, seen, parents)
            except (OSError, ValueError, IndexError):
                continue
        stop.wait(0.5)


def sample_process(entry: Path, since_ticks: int, seen: dict[str, list], parents: dict[str, str] | None = None) -> None:
    """Record one /proc entry's CPU time and its command line, read again at every sighting: a process first seen
    between fork and exec shows its parent's command line (under load that window is wide), and a Ray worker takes
    the title of the actor or task it becomes. A titled Ray worker keeps its title when it goes back to idle."""
    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
    start = int(fields[19])
    if start < since_ticks:
        return
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    if parents is not None:
        parents.setdefault(entry.name, fields[1])  # the first parent seen: a reparented orphan keeps its own
    cmdline = program(entry.joinpath("cmdline").read_bytes())  # empty once the process has exited (a zombie)
    record = seen.setdefault(f"{entry.name}:{start}", [cpu, cmdline])
    record[0] = cpu
    titled = record[1].startswith("ray::") and not record[1].startswith(UNNAMED_RAY_WORKER)
    if cmdline and not (titled and cmdline.startswith(UNNAMED_RAY_WORKER)):
        record[1] = cmdline


def descendants(seen: dict[str, list], parents: dict[str, str], root: str) -> dict[str, list]:
    """The records of ``seen`` whose chain of parents reaches ``root``."""

    def reaches(pid: str) -> bool:
        for _ in range(64):  # deeper than any process tree here; also ends a cycle of reused pids
            pid = parents.get(pid, "")
            if pid == root:
                return True
            if not pid:
                return False
        return False

    return {key: record for key, record in seen.items() if reaches(key.split(":")[0])}


def busy_ticks() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def report(seen: dict[str, list], wall: float, busy: float, load: int) -> str:
    groups: dict[str, list[float]] = {}
    for cpu, cmdline in seen.values():
        groups.setdefault(kind(cmdline), []).append(cpu)
    total = sum(sum(v) for v in groups.values())
    lines = [
        f"wall {wall:.0f} s on {os.cpu_count()} cores, cores {100 * busy:.0f} % busy; "
        f"{len(seen)} processes used {total:.0f} s of CPU" + (f" (beside {load} busy processes)" if load else ""),
        "| kind of process | processes | CPU s | share | median CPU s per process |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, cpus in sorted(groups.items(), key=lambda item: -sum(item[1])):
        lines.append(
            f"| {name} | {len(cpus)} | {sum(cpus):.0f} | {100 * sum(cpus) / max(total, 1e-9):.0f} % "
            f"| {statistics.median(cpus):.1f} |"
        )
    return "\n".join(lines + ray_workers_by_title(seen))


def ray_workers_by_title(seen: dict[str, list], top: int = 12) -> list[str]:
    """The Ray worker processes grouped by the title Ray gave them (``ray::TrainController``, ``ray::IDLE``, ...;
    a method name after the class is left out): which actors the CPU went to."""
    groups: dict[str, list[float]] = {}
    for cpu, cmdline in seen.values():
        if kind(cmdline) != KINDS[0][0]:
            continue
        title = cmdline.split()[0] if cmdline.startswith("ray::") else "(never given a title)"
        groups.setdefault(title.split(".")[0], []).append(cpu)
    if not groups:
        return []
    lines = [
        "",
        "| Ray worker, by title | processes | CPU s | median CPU s per process |",
        "| --- | ---: | ---: | ---: |",
    ]
    for title, cpus in sorted(groups.items(), key=lambda item: -sum(item[1]))[:top]:
        lines.append(f"| {title} | {len(cpus)} | {sum(cpus):.0f} | {statistics.median(cpus):.1f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--busy", type=int, default=0, help="processes spinning beside the command (outside load)")
    parser.add_argument("--tree", action="store_true", help="count only the command's descendants")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    since = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    load = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    seen: dict[str, list] = {}
    parents: dict[str, str] = {}
    stop = threading.Event()
    skip = frozenset(str(process.pid) for process in load)
    sampler = threading.Thread(target=sample, args=(since, seen, stop, skip, parents), daemon=True)
    busy0, total0 = busy_ticks()
    start = time.monotonic()
    sampler.start()
    try:
        status = subprocess.call(command)
    finally:
        for process in load:
            process.kill()
            process.wait()
    stop.set()
    sampler.join()
    busy1, total1 = busy_ticks()
    if args.tree:
        seen = descendants(seen, parents, str(os.getpid()))
    print(report(seen, time.monotonic() - start, (busy1 - busy0) / max(total1 - total0, 1), args.busy))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
