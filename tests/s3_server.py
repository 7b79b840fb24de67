"""A real S3 API server for tests: moto's ThreadedMotoServer on 127.0.0.1, and the ways the tests reach it.

The ``s3_env`` fixture (tests/conftest.py) starts one per test module and yields the ``AWS_*`` variables
that point any S3 client at it (pyarrow, boto3, s3fs all read ``AWS_ENDPOINT_URL``). A ``pare`` command
run with :func:`run_pare` starts its own local Ray, whose workers inherit those variables the way a
cluster's nodes get theirs from their environment.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess

from tests.test_cli import PARE, ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoS3:
    """moto's S3 server in a thread of this process, on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self) -> MotoS3:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not one line per request in a failure's report
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()


def s3fs_for(env: dict[str, str]):
    """An s3fs filesystem on the server of ``env`` (the tests' own view of the buckets)."""
    import s3fs

    return s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"], endpoint_url=env["AWS_ENDPOINT_URL"]
    )


def run_pare(*args: str, env: dict[str, str], timeout: float = 500) -> subprocess.CompletedProcess:
    """``pare ARGS`` in the repository root with ``env`` added: its own local Ray, no usage stats, no token auth."""
    full_env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", **env)
    return subprocess.run([PARE, *args], cwd=ROOT, capture_output=True, text=True, env=full_env, timeout=timeout)
