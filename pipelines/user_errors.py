"""Telling a user's error from a bug, through Ray's wrappers, and printing it as one line.

A :class:`~pare_model.errors.UserFacingError` raised in a Ray task or actor method reaches the
driver as a ``RayTaskError`` (its ``cause`` is the original), and one raised in a Ray Train
worker as a ``TrainingFailedError`` (Train v2: ``worker_failures``; v1: the chained
``RayTaskError``). :func:`user_error_of` finds the original message in any of them. An
``OSError`` that names a file (missing, a folder, no permission) is a user error too: the
command was pointed at that path.
"""

from __future__ import annotations

import sys

from pare_model.errors import UserFacingError

MAX_CHARS = 2000
"""A one-line message longer than this is cut (a listing of hundreds of runs helps nobody)."""

_PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def one_line(message: str) -> str:
    """``message`` on one line: its non-empty lines joined with '; ', cut at :data:`MAX_CHARS`."""
    text = "; ".join(line.strip() for line in str(message).splitlines() if line.strip())
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 3] + "..."


def _causes(error: BaseException) -> list[BaseException]:
    """The exceptions ``error`` wraps: Ray's ``cause``, Ray Train v2's ``worker_failures``, then Python's chain."""
    found = []
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        found.append(cause)
    failures = getattr(error, "worker_failures", None)
    if isinstance(failures, dict):
        found += [value for value in failures.values() if isinstance(value, BaseException)]
    found += [e for e in (error.__cause__, error.__context__) if e is not None]
    return found


def _is_ray_wrapper(error: BaseException) -> bool:
    if "ray" not in sys.modules:  # nothing imported Ray, so no Ray error can exist (and a config error stays fast)
        return False
    try:
        from ray.exceptions import RayError
    except ImportError:  # pragma: no cover - ray is a dependency
        return False
    return isinstance(error, RayError)


def user_error_of(error: BaseException, _depth: int = 0) -> str | None:
    """The one-line message of the user error ``error`` is or wraps; None when it is a bug."""
    if _depth > 8:
        return None
    if not _is_ray_wrapper(error):
        if isinstance(error, UserFacingError):
            return one_line(str(error))
        if isinstance(error, _PATH_ERRORS) and error.filename is not None:
            return one_line(f"{error.strerror or error}: {error.filename}")
    if _is_ray_wrapper(error) or type(error).__name__ == "TrainingFailedError":
        for cause in _causes(error):
            message = user_error_of(cause, _depth + 1)
            if message is not None:
                return message
    return None
