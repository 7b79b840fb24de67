"""Training progress for the user on the driver: one bar (steps, rate, loss, ETA) and one line per validation.

Rank 0 writes ``<storage_path>/<run_name>/pare_progress.json`` now and then (:class:`ProgressWriter`);
the driver polls it while Ray Train runs (:class:`ProgressWatcher`). A file in the run's storage
works the same on one machine, a shared filesystem or S3, and it needs none of the workers' logs
on the console, which stay in Ray's log folder unless ``--verbose``.
"""

from __future__ import annotations

import json
import threading
import time

from pipelines.io.storage import Storage

PROGRESS_FILE = "pare_progress.json"

SHOWN_MESSAGES = 200
"""The user's lines kept in the file (the driver shows each once, by its index)."""


class ProgressWriter:
    """Rank 0's side: the latest step, loss and rate, and this worker's messages (the last ``SHOWN_MESSAGES``),
    numbered after those of the workers before it, so the driver shows each line once across restarts."""

    def __init__(self, uri: str, max_steps: int, min_interval_s: float | None = None) -> None:
        self.storage, self.max_steps = Storage(uri), max_steps
        self.min_interval_s = min_interval_s if min_interval_s is not None else (1.0 if "://" not in uri else 10.0)
        self.last_write = 0.0
        self.messages_written = 0
        earlier = read_progress(uri) or {}  # a restarted worker numbers its lines after those already shown
        self.offset = earlier.get("first_message", 0) + len(earlier.get("messages", []))
        self.shown = {k: earlier[k] for k in ("loss", "samples_per_s") if k in earlier}  # until its first window

    def update(self, step: int, metrics: dict, messages: list[str], force: bool = False) -> None:
        for key, name in (("train/loss", "loss"), ("train/samples_per_s", "samples_per_s")):
            if key in metrics:
                self.shown[name] = metrics[key]
        new_messages = len(messages) > self.messages_written
        now = time.monotonic()
        if not (force or new_messages or now - self.last_write >= self.min_interval_s):
            return
        first = max(len(messages) - SHOWN_MESSAGES, 0)
        payload = {
            "step": step,
            "max_steps": self.max_steps,
            **self.shown,
            "first_message": self.offset + first,
            "messages": messages[first:],
        }
        try:
            self.storage.write_text(PROGRESS_FILE, json.dumps(payload))
        except OSError:
            return  # progress is for show: a storage hiccup must not stop training
        self.last_write, self.messages_written = now, len(messages)


def read_progress(uri: str) -> dict | None:
    storage = Storage(uri)
    try:
        return json.loads(storage.read_text(PROGRESS_FILE)) if storage.exists(PROGRESS_FILE) else None
    except (OSError, ValueError):
        return None  # being replaced, or a remote store that did not answer: try again at the next poll


def clear_progress(uri: str) -> None:
    Storage(uri).delete_file(PROGRESS_FILE)


class ProgressWatcher:
    """The driver's side: a thread that shows the progress file as a tqdm bar and prints the messages."""

    def __init__(self, uri: str, max_steps: int, poll_s: float = 1.0, enabled: bool = True) -> None:
        self.uri, self.max_steps, self.poll_s, self.enabled = uri, max_steps, poll_s, enabled
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.printed = 0

    def __enter__(self) -> ProgressWatcher:
        if self.enabled:
            self.thread = threading.Thread(target=self._watch, name="pare-progress", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def _watch(self) -> None:
        bar = None
        try:
            while True:
                stopping = self.stop_event.wait(self.poll_s)
                progress = read_progress(self.uri)
                if progress:
                    bar = bar or self._bar(progress["step"])  # a resumed run's bar starts at its step
                    self._show(bar, progress)
                if stopping:
                    return
        finally:
            if bar is not None:
                bar.close()

    def _bar(self, initial: int):
        from tqdm import tqdm

        return tqdm(total=self.max_steps, initial=initial, desc="train", unit="step", dynamic_ncols=True)

    def _show(self, bar, progress: dict) -> None:
        first, messages = progress.get("first_message", 0), progress.get("messages", [])
        for index in range(max(self.printed, first), first + len(messages)):
            bar.write(messages[index - first])
        self.printed = max(self.printed, first + len(messages))
        postfix = {}
        if "loss" in progress:
            postfix["loss"] = f"{progress['loss']:.3g}"
        if "samples_per_s" in progress:
            postfix["samples/s"] = f"{progress['samples_per_s']:.0f}"
        bar.set_postfix(postfix, refresh=False)
        bar.update(max(progress["step"] - bar.n, 0))
