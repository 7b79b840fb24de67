"""bench/process_cpu.py: the processes a command starts, their CPU time grouped by kind, and its exit status."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUSY = "import sys, time\nstart = time.process_time()\nwhile time.process_time() - start < 1.0: pass\nsys.exit(3)"


def test_a_busy_child_is_counted_under_its_kind_and_its_status_passes_through():
    # the child's command line names mypy, so it counts as lint; it burns 1 s of CPU and exits 3
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "process_cpu.py"), "--", sys.executable, "-c", BUSY, "mypy"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert re.search(r"^wall \d+ s on \d+ cores, cores \d+ % busy; \d+ processes used \d+ s of CPU$", done.stdout, re.M)
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| lint (ruff, mypy) |")]
    processes, cpu = (cell.strip() for cell in row.split("|")[2:4])
    assert processes == "1" and int(cpu) >= 1, row


def test_busy_processes_load_the_cores_beside_the_command_and_are_not_counted():
    """--busy 1: a spinning process beside the command (a 2-s sleep), stopped after it, left out of the table.

    --tree: only the sleep counts, not the processes the other tests start meanwhile (in the suite, one of
    them counted 1 s while its neighbour started its own)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "process_cpu.py"), "--busy", "1", "--tree", "--", "sleep", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    line = done.stdout.splitlines()[0]
    assert re.search(r" 1 processes used 0 s of CPU \(beside 1 busy processes\)$", line), line
    busy = int(re.search(r"cores (\d+) % busy", line)[1])
    assert busy >= 100 // (os.cpu_count() or 1) // 2, line  # the spinning process kept (about) one core busy
    assert "while True" not in done.stdout


def test_a_command_is_counted_by_its_program_not_by_a_path_among_its_arguments():
    """A command the tests start with a path in pytest's temporary folder is that command, not a pytest process."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "process_cpu.py"),
            "--",
            *(sys.executable, "-c", BUSY, "mypy", "/tmp/pytest-of-root/pytest-3/config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert "| lint (ruff, mypy) | 1 |" in done.stdout, done.stdout
    assert "| pytest processes |" not in done.stdout, done.stdout


def test_ray_workers_are_grouped_by_the_actor_they_became():
    """The second table: Ray worker processes by title, a method name left out, other processes not counted."""
    process_cpu = _load_process_cpu()
    seen = {
        "1:1": [20.0, "ray::RayTrainWorker.run_train_fn"],
        "2:1": [10.0, "ray::RayTrainWorker"],
        "3:1": [7.0, "ray::TrainController.run"],
        "4:1": [1.0, "python default_worker.py --node-ip-address"],
        "5:1": [50.0, "python -m pytest -n 2"],
        "6:1": [3.0, "ray::DashboardAgent --node-ip-address=127.0.0.1"],  # an agent, retitled: a system process
    }
    lines = process_cpu.ray_workers_by_title(seen)
    assert lines[3:] == [
        "| ray::RayTrainWorker | 2 | 30 | 15.0 |",
        "| ray::TrainController | 1 | 7 | 7.0 |",
        "| (never given a title) | 1 | 1 | 1.0 |",
    ], lines
    assert process_cpu.ray_workers_by_title({"5:1": [50.0, "python -m pytest -n 2"]}) == []


def test_a_process_first_seen_before_its_exec_is_counted_as_the_program_it_became():
    """A process sampled between fork and exec shows its parent's command line; after exec it is what it ran.
    (Under load that window is wide: a lint child once counted as "other" in the loaded suite run.)"""
    process_cpu = _load_process_cpu()
    # its command line names the lint tool only after the exec (the name is joined from two halves before it)
    exec_later = "\n".join(
        (
            "import os, sys, time",
            "time.sleep(1.0)",
            f"os.execv(sys.executable, [sys.executable, '-c', {BUSY!r}, 'my' + 'py'])",
        )
    )
    child = subprocess.Popen([sys.executable, "-c", exec_later])
    entry = Path("/proc") / str(child.pid)
    seen: dict[str, list] = {}
    process_cpu.sample_process(entry, 0, seen)  # before the exec: a Python sleeping, "other"
    ((cpu, before),) = seen.values()
    assert process_cpu.kind(before) == "other", before
    while not process_cpu.kind(seen[next(iter(seen))][1]).startswith("lint"):
        assert child.poll() is None, "the child exited before it was seen after its exec"
        time.sleep(0.1)
        process_cpu.sample_process(entry, 0, seen)
    assert child.wait(timeout=60) == 3


def test_a_ray_worker_keeps_the_title_it_had_when_it_goes_back_to_idle(tmp_path):
    """Read from a /proc-like entry: the title follows the worker from idle to an actor, and stays when it idles."""
    process_cpu = _load_process_cpu()
    entry = tmp_path / "4242"
    entry.mkdir()
    seen: dict[str, list] = {}

    def sighting(cpu_ticks: int, title: bytes) -> list:
        fields = ["S", *["0"] * 10, str(cpu_ticks), "0", *["0"] * 6, "500", "0"]  # utime at 11, start at 19
        (entry / "stat").write_text(f"4242 (ray::IDLE) {' '.join(fields)}")
        (entry / "cmdline").write_bytes(title + b"\0")
        process_cpu.sample_process(entry, 0, seen)
        return seen["4242:500"]

    tick = process_cpu.TICK
    assert sighting(tick, b"ray::IDLE") == [1.0, "ray::IDLE"]
    assert sighting(3 * tick, b"ray::TrainController.run") == [3.0, "ray::TrainController.run"]
    assert sighting(4 * tick, b"ray::IDLE") == [4.0, "ray::TrainController.run"]
    assert sighting(5 * tick, b"") == [5.0, "ray::TrainController.run"]  # exited: no command line any more
    assert process_cpu.sample_process(entry, 501, {}) is None  # started before the command: not counted


def _load_process_cpu():
    import importlib.util

    spec = importlib.util.spec_from_file_location("process_cpu", ROOT / "bench" / "process_cpu.py")
    process_cpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(process_cpu)
    return process_cpu


def test_tree_keeps_the_command_s_descendants_only():
    """--tree: children and grandchildren of the root count; a stranger's process and an orphan do not."""
    process_cpu = _load_process_cpu()
    seen = {f"{pid}:1": [1.0, "x"] for pid in ("10", "11", "12", "20", "30")}
    parents = {"10": "1000", "11": "10", "12": "11", "20": "2000", "30": "1"}
    assert sorted(process_cpu.descendants(seen, parents, "1000")) == ["10:1", "11:1", "12:1"]
