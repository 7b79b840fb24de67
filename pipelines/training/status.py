"""The run's status file, ``<storage_path>/<run_name>/pare_status.json``: how the workers' loop ended.

Rank 0 writes it when the loop finishes or stops on purpose (a non-finite loss); the driver
reads it after Ray Train returns, to tell a clean finish from a deliberate stop.
"""

from __future__ import annotations

import json
import posixpath

from pipelines.io.storage import Storage

STATUS_FILE = "pare_status.json"


def status_uri(storage_path: str, run_name: str) -> str:
    return posixpath.join(storage_path.rstrip("/"), run_name)


def write_status(uri: str, status: dict) -> None:
    Storage(uri).write_text(STATUS_FILE, json.dumps(status, indent=2) + "\n")


def read_status(uri: str) -> dict | None:
    storage = Storage(uri)
    if not storage.exists(STATUS_FILE):
        return None
    return json.loads(storage.read_text(STATUS_FILE))


def clear_status(uri: str) -> None:
    Storage(uri).delete_file(STATUS_FILE)
