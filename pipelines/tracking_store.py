"""Every command that talks to MLflow goes through here first: short timeouts, then a cheap probe.

MLflow's HTTP client retries 7 times with exponential backoff and waits 120 s per request by
default, so an unreachable server used to hold a command for minutes without a word. Commands now
retry twice (:data:`COMMAND_RETRIES`), training's rank 0 not at all.
:func:`prepare_tracking` sets MLflow's request settings (``MLFLOW_HTTP_REQUEST_TIMEOUT``,
``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``) before the first
call, then checks the store:

- a server (``http(s)://``, ``postgresql://``, ``mysql://``, ``mssql://``): one TCP connection
  to its host and port, so a wrong address fails in seconds with one message naming the URI;
- a local store (``sqlite:///file.db``, ``file:`` or a plain folder): for a command that only
  reads (``pare compare``), the file or folder must exist; MLflow would otherwise create an
  empty store (and its folders) and report an empty experiment list.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

from pare_model.errors import UserFacingError

DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}
PROBE_TIMEOUT_S = 5.0
"""Longest wait for the TCP probe; a server that needs longer to accept a connection is unusable anyway."""


class TrackingStoreError(UserFacingError):
    """The MLflow tracking store cannot be reached or does not exist."""


COMMAND_RETRIES = 2
"""A command's (the driver's) MLflow request is tried up to this many more times (at once, then about 2 s later:
urllib3's backoff with factor 1 plus MLflow's jitter) before it fails: a server that is slow for a moment
(measured: a ``log-batch`` to a local ``mlflow server`` took over 2 s with both cores busy) must not end a run that
has not started. A dead server is still named in seconds by the probe."""


def quiet_mlflow_env(timeout_s: float, retries: int = COMMAND_RETRIES) -> None:
    """Short timeouts and few retries, so an unreachable server costs seconds, not minutes. Training's rank 0 asks
    for no retries (its logging must not hold the step loop; :class:`~pipelines.training.tracking.RunLogger` tries
    again later on its own)."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1" if retries else "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, int(timeout_s)))
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def local_store_path(uri: str) -> Path | None:
    """The file or folder of a local store (``sqlite:///x.db``, ``file:///dir``, ``dir``); None for a server."""
    if uri.startswith("sqlite:"):
        return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    if uri.startswith("file:"):
        return Path(urlsplit(uri).path)
    return Path(uri) if "://" not in uri and uri != "databricks" and not uri.startswith("databricks") else None


def _probe_server(uri: str, timeout_s: float, fix: str) -> None:
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+")[0]  # postgresql+psycopg2 -> postgresql
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as error:
        raise TrackingStoreError(f"MLflow tracking URI {uri} has a bad port ({error}); {fix}") from None
    try:
        with socket.create_connection((parts.hostname, port), timeout=min(timeout_s, PROBE_TIMEOUT_S)):
            pass
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else (error.strerror or type(error).__name__)
        raise TrackingStoreError(
            f"the MLflow tracking server {uri} cannot be reached ({reason}); start it, or {fix}"
        ) from None


def prepare_tracking(
    uri: str, timeout_s: float, *, read_only: bool = False, setting: str = "tracking.tracking_uri"
) -> str:
    """Apply the short timeouts, then check the store at ``uri`` (see the module docstring); returns ``uri``.

    ``setting`` names what the user changes to fix it (a config key or a flag), for the message.
    """
    quiet_mlflow_env(timeout_s)
    fix = f"set {setting} to a running server or a local store such as sqlite:///outputs/mlflow.db"
    path = local_store_path(uri)
    if path is None:
        _probe_server(uri, timeout_s, fix)
        return uri
    if uri.startswith("sqlite:") and path.is_dir():
        raise TrackingStoreError(f"MLflow store {path} (from {setting} {uri}) is a folder, not a database file")
    if read_only and not path.exists():
        raise TrackingStoreError(
            f"MLflow store {path} (from {setting} {uri}) does not exist; pass the store your runs were logged to "
            "(pare train's default: sqlite:///<train.storage_path>/mlflow.db)"
        )
    return uri


MLFLOW_TABLES = ("experiments", "runs", "metrics", "params", "tags", "alembic_version")
"""Tables every MLflow sqlite store has; a database without them is someone else's (MLflow would add its tables)."""


def read_only_uri(uri: str, setting: str = "tracking.tracking_uri") -> str:
    """A URI that reads the existing local store at ``uri`` without writing to it, after checking it is an MLflow
    store; a server's URI as it is.

    MLflow opens a sqlite file read-write, adds its tables to a database that lacks them and may add a default
    experiment; it creates a file store's ``.trash`` folder. A reading command opens an sqlite store through a
    read-only SQLite URI, and refuses a database or folder that MLflow did not write."""
    path = local_store_path(uri)
    if path is None:
        return uri
    if not uri.startswith("sqlite:"):
        if not (path / ".trash").is_dir():
            raise TrackingStoreError(
                f"{path} (from {setting} {uri}) is not an MLflow file store (it has no .trash folder, which MLflow "
                "makes in every store); pass the store your runs were logged to"
            )
        return uri
    missing = [table for table in MLFLOW_TABLES if table not in _sqlite_tables(path, uri)]
    if missing:
        raise TrackingStoreError(
            f"{path} (from {setting} {uri}) is an SQLite database but not an MLflow store: it has no "
            f"{', '.join(missing)} table; it was left as it is (MLflow would have added its tables to it). Pass the "
            "store your runs were logged to (pare train's default: sqlite:///<train.storage_path>/mlflow.db)"
        )
    # SQLAlchemy unquotes the database part once and SQLite's URI parser once more: quoted twice
    return f"sqlite:///file:{quote(quote(str(path.resolve())))}?mode=ro&uri=true"


def _sqlite_tables(path: Path, uri: str) -> set[str]:
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)) as db:
            return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise TrackingStoreError(
            f"cannot read the MLflow store {uri}: {path} is not an SQLite database ({error})"
        ) from None


def first_line(error: BaseException) -> str:
    """An error's message for a one-line report: its first line (SQLAlchemy's run over several), or its type."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def failing_clearly(uri: str, timeout_s: float, doing: str, setting: str = "tracking.tracking_uri") -> Iterator[None]:
    """MLflow requests a command cannot go on without (``doing``: what they are for): one that still fails after
    its retries ends the command with one line naming the server, the error and the fixes, not a traceback."""
    import requests
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (MlflowException, SQLAlchemyError, requests.RequestException, OSError) as error:
        failed = f"MLflow at {uri} failed while {doing} ({type(error).__name__}: {first_line(error)[:300]})"
        if local_store_path(uri) is not None:  # no HTTP, so no timeout or retries to speak of
            raise TrackingStoreError(f"{failed}; check the store, or set {setting} to another one") from None
        raise TrackingStoreError(
            f"{failed}, after {1 + COMMAND_RETRIES} tries of up to {max(1, int(timeout_s))} s each; if the server is "
            f"busy, raise tracking.timeout_s; if it is down, start it, or set {setting} to a local store such as "
            "sqlite:///outputs/mlflow.db"
        ) from None
