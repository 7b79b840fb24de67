"""Real MLflow processes on 127.0.0.1 for tests: ``mlflow server`` (tracking) and ``mlflow models serve``
(a model over REST), each started in its own process group, polled until healthy, stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _ServerProcess:
    """A server command whose log goes to ``root/server.log``, ready when ``GET health_path`` answers 200."""

    health_path = "/health"

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root, self.port = root, port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"}

    def start(self, timeout_s: float = 90.0):
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=log, env=self.environment(), start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command()[1]} exited: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}{self.health_path}", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.command()[1]} did not become healthy in {timeout_s} s: {self.log()[-2000:]}")

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


class MlflowServer(_ServerProcess):
    """``mlflow server`` with a sqlite (or given) backend and a local artifact root."""

    def __init__(self, root: Path, port: int | None = None, backend_uri: str = "") -> None:
        super().__init__(root, port)
        self.backend_uri = backend_uri or f"sqlite:///{root / 'mlflow.db'}"

    def environment(self) -> dict[str, str]:
        return super().environment() | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

    def command(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            self.backend_uri,
            "--artifacts-destination",
            str(self.root / "artifacts"),
            "--workers",
            "1",
        ]


class ModelServer(_ServerProcess):
    """``mlflow models serve -m MODEL_URI`` in this environment (no new virtualenv), one worker."""

    health_path = "/ping"

    def __init__(self, root: Path, model_uri: str, tracking_uri: str, env: dict[str, str] | None = None) -> None:
        super().__init__(root)
        self.model_uri, self.tracking_uri, self.extra_env = model_uri, tracking_uri, env or {}

    def environment(self) -> dict[str, str]:
        # MLflow runs `uvicorn` by name: this environment's bin folder first, as an activated venv would have it
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return super().environment() | {"MLFLOW_TRACKING_URI": self.tracking_uri, "PATH": path} | self.extra_env

    def command(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("mlflow")),
            "models",
            "serve",
            "-m",
            self.model_uri,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
