"""pipelines/tracking_store.py: how long a command waits on MLflow, how often it retries, and how it fails."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from pipelines.config.train import TrackingConfig
from pipelines.tracking_store import COMMAND_RETRIES, TrackingStoreError, failing_clearly, prepare_tracking
from pipelines.training.tracking import RunLogger, open_run


class HungServer:
    """A TCP server on 127.0.0.1 that accepts connections and never answers: a server stuck under load."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.uri = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        for connection in [*self.connections, self.listener]:
            connection.close()


@pytest.fixture
def mlflow_env(monkeypatch):
    """The MLflow request settings the code under test writes, restored afterwards."""
    for name in (
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
    ):
        monkeypatch.setenv(name, "unset")


def test_a_server_that_never_answers_fails_the_run_set_up_after_its_retries_with_one_clear_line(tmp_path, mlflow_env):
    server = HungServer()
    try:
        assert prepare_tracking(server.uri, 1) == server.uri  # the probe passes: the server accepts connections
        tracking = TrackingConfig(tracking_uri=server.uri)
        with pytest.raises(TrackingStoreError) as raised:
            with failing_clearly(server.uri, 1, "setting up the run 'r'"):
                open_run(tracking, "r", str(tmp_path))
    finally:
        server.close()
    message = str(raised.value)
    assert "\n" not in message and server.uri in message and "setting up the run 'r'" in message, message
    assert f"after {1 + COMMAND_RETRIES} tries of up to 1 s each" in message, message
    assert "raise tracking.timeout_s" in message and "sqlite:///" in message, message
    assert len(server.connections) == 2 + COMMAND_RETRIES  # the probe, the request, each retry on a new connection


def test_commands_retry_and_training_rank_0_does_not(tmp_path, mlflow_env):
    prepare_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", 3)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == str(COMMAND_RETRIES)
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"
    RunLogger(f"sqlite:///{tmp_path / 'mlflow.db'}", "no-run", 3, system_metrics=False)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"  # its logging must not hold the step loop


def test_the_run_loggers_notices_reach_whoever_is_attached_those_said_before_first(tmp_path, mlflow_env, capsys):
    """Rank 0's "unreachable" notice goes to the trainer's line for the user (shown by the driver), not only to
    the worker's log, where a user of `pare train` would never see it."""
    server = HungServer()
    try:
        logger = RunLogger(server.uri, "0" * 32, 1, system_metrics=False)
        logger.tag("k", "v")  # times out: the notice is held until a trainer attaches
        said: list[str] = []
        logger.attach(said.append)
        logger.RETRY_AFTER_S = 0.0
        logger.tag("k", "v")  # still unreachable: said once, not again
    finally:
        server.close()
    assert len(said) == 1 and said[0].startswith(f"MLflow at {server.uri} is unreachable"), said
    assert "training continues" in said[0] and said[0] in capsys.readouterr().out  # also in the worker's log


def test_a_local_store_that_fails_at_set_up_is_one_line_without_talk_of_timeouts(tmp_path, mlflow_env):
    store = tmp_path / "mlflow.db"
    store.write_text("not a database")
    uri = f"sqlite:///{store}"
    with pytest.raises(TrackingStoreError) as raised:
        with failing_clearly(uri, 1, "setting up the run 'r'"):
            open_run(TrackingConfig(tracking_uri=uri), "r", str(tmp_path))
    message = str(raised.value)
    assert "\n" not in message and uri in message and "check the store" in message, message
    assert "tries" not in message and "timeout" not in message, message
