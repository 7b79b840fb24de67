"""What the console shows: our progress and results by default, the internals of Ray and the libraries with
``pare --verbose``.

The switch is an environment variable, so that it reaches subprocesses and the Ray workers the
driver starts.
"""

from __future__ import annotations

import os

VERBOSE_ENV = "PARE_VERBOSE"


def set_verbose(on: bool) -> None:
    if on:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.pop(VERBOSE_ENV, None)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


QUIET_LOGGERS = {
    "mlflow": "WARNING",  # "Creating initial MLflow database tables...", system-metrics start and stop
    "alembic": "WARNING",  # the tracking store's schema migrations
    "ray.data._internal.progress": "ERROR",  # "Progress bars disabled": we turn them off to show our own
    # "Retrying (Retry(total=1, ...)) after connection broken by ReadTimeoutError": a command's MLflow request retried
    # (pipelines.tracking_store.COMMAND_RETRIES); the last failure is reported as one line of ours
    "urllib3.connectionpool": "ERROR",
}


def quiet_libraries() -> None:
    """Keep the libraries' informational logging off the console unless ``--verbose``.

    Ray's C++ core also logs to the driver's stderr. Its one message of a normal run is an error-level
    note that Ray Data's and Ray Train's own actors keep constructor arguments in the object store
    (ray-project/ray#53727), which a user cannot act on, so below ``fatal`` it goes to Ray's log folder only.
    """
    import logging

    if verbose():
        return
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow sets its loggers' level from it at import
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    # mlflow.pyfunc.log_model loads the logged model back to check its input example, with a download bar
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
