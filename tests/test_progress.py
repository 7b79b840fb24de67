"""The training progress file and the driver's view of it: every user line shown once, also across a worker
restart, and the bar at the last step."""

from __future__ import annotations

import io
import json

from pipelines.training.progress import PROGRESS_FILE, ProgressWatcher, ProgressWriter, clear_progress, read_progress


class FakeBar:
    """Records what the watcher shows (tqdm's interface as the watcher uses it)."""

    def __init__(self) -> None:
        self.n, self.lines, self.postfix = 0, [], {}

    def write(self, line: str) -> None:
        self.lines.append(line)

    def set_postfix(self, postfix: dict, refresh: bool = False) -> None:
        self.postfix = postfix

    def update(self, steps: int) -> None:
        self.n += steps


def test_the_writer_throttles_but_never_holds_back_a_message(tmp_path):
    writer = ProgressWriter(str(tmp_path), max_steps=100, min_interval_s=3600)
    writer.update(1, {"train/loss": 2.5, "train/samples_per_s": 40.0}, [], force=True)
    writer.update(2, {"train/loss": 2.0}, [])  # within the interval, nothing new: not written
    assert read_progress(str(tmp_path))["step"] == 1
    writer.update(3, {}, ["step 3: val/pa_mpjpe 90.0"])  # a new message is written at once
    progress = read_progress(str(tmp_path))
    assert progress["step"] == 3 and progress["loss"] == 2.0 and progress["samples_per_s"] == 40.0
    assert progress["messages"] == ["step 3: val/pa_mpjpe 90.0"] and progress["first_message"] == 0


def test_the_watcher_shows_each_line_once_across_a_restarted_worker(tmp_path):
    uri = str(tmp_path)
    first = ProgressWriter(uri, max_steps=10, min_interval_s=0)
    first.update(4, {"train/loss": 1.0}, ["a", "b"])
    watcher, bar = ProgressWatcher(uri, 10), FakeBar()
    watcher._show(bar, read_progress(uri))
    restarted = ProgressWriter(uri, max_steps=10, min_interval_s=0)  # a new process: its own message list
    restarted.update(6, {}, ["resuming at step 4 (restart 1)"])
    watcher._show(bar, read_progress(uri))
    watcher._show(bar, read_progress(uri))  # polled again: nothing new to print
    assert bar.lines == ["a", "b", "resuming at step 4 (restart 1)"]
    assert bar.n == 6 and bar.postfix == {"loss": "1"}


def test_a_damaged_or_missing_file_is_no_progress_not_an_error(tmp_path):
    assert read_progress(str(tmp_path)) is None
    (tmp_path / PROGRESS_FILE).write_text("{half a json")
    assert read_progress(str(tmp_path)) is None
    clear_progress(str(tmp_path))
    assert not (tmp_path / PROGRESS_FILE).exists()


def test_the_watcher_thread_draws_the_bar_to_the_last_step(tmp_path, monkeypatch):
    uri = str(tmp_path)
    (tmp_path / PROGRESS_FILE).write_text(
        json.dumps({"step": 8, "max_steps": 8, "first_message": 0, "messages": ["step 8: val/pa_mpjpe 80.0"]})
    )
    err, out = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr("sys.stdout", out)
    with ProgressWatcher(uri, 8, poll_s=0.05):
        pass
    assert "train: 100%" in err.getvalue() and "8/8" in err.getvalue()
    assert "step 8: val/pa_mpjpe 80.0" in out.getvalue()
