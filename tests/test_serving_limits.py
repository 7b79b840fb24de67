"""Request limits of the served model, against a real ``mlflow models serve`` on 127.0.0.1.

The server serves a small model (debug backbone, 64-pixel crops) registered here through the same
:func:`~pipelines.training.mlflow_model.log_model` training uses, with the limits set low through their
environment variables so that each refusal takes a small request: 3 crops and 1 MB. What each case did
before the limits (a 315 MB non-JSON body came back whole in a 400, 1024 crops held 7.4 GB until a 504,
200,000 nested brackets were a 500) is in docs/serving.md.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from tests.mlflow_server import ModelServer

IMAGE_SIZE = 64
MAX_BATCH = 3
MAX_REQUEST_MB = 1.0
SMALL = 4096
"""Bytes an answer to a refused request may take: a message, never the request."""


def _post(uri: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    request = urllib.request.Request(f"{uri}/invocations", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _crops(count: int) -> bytes:
    crops = np.random.default_rng(count).integers(0, 256, (count, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    return json.dumps({"inputs": crops.tolist()}).encode()


@pytest.fixture(scope="module")
def server(procedural_dir, tmp_path_factory):
    """``mlflow models serve`` of a registered debug model, with PARE_SERVING_MAX_BATCH=3 and ..._MAX_REQUEST_MB=1."""
    from types import SimpleNamespace

    from mlflow.tracking import MlflowClient

    from pare_model.checkpoint import build_model_from_assets, save_model_checkpoint
    from pare_model.model_config import ModelConfig
    from pipelines.training.mlflow_model import log_model

    root = tmp_path_factory.mktemp("serve-limits")
    tracking = f"sqlite:///{root / 'mlflow.db'}"
    config = ModelConfig(backbone="debug", image_size=IMAGE_SIZE)
    torch.manual_seed(0)
    network = build_model_from_assets(config, procedural_dir).network_state_dict()
    checkpoint = save_model_checkpoint(root / "model.pt", network, config)
    client = MlflowClient(tracking)
    experiment = client.create_experiment("serve", artifact_location=(root / "mlartifacts").as_uri())
    run = client.create_run(experiment)
    registered = log_model(SimpleNamespace(tracking_uri=tracking, run_id=run.info.run_id), checkpoint, "", "pare")
    limits = {"PARE_SERVING_MAX_BATCH": str(MAX_BATCH), "PARE_SERVING_MAX_REQUEST_MB": str(MAX_REQUEST_MB)}
    env = {"PARE_BODY_MODEL_DIR": str(procedural_dir)} | limits
    served = ModelServer(root / "server", f"models:/{registered}", tracking, env=env).start(timeout_s=240)
    yield served
    served.stop()


def _message(body: bytes) -> str:
    return json.loads(body)["message"]


def test_a_body_over_the_size_limit_is_a_413_that_does_not_echo_it(server):
    body = b"x" * int(1.5 * MAX_REQUEST_MB * 1e6)  # not JSON either: MLflow's 400 used to hold all of it
    status, answer = _post(server.uri, body)
    assert status == 413 and len(answer) < SMALL, (status, len(answer))
    assert "PARE_SERVING_MAX_REQUEST_MB=1" in _message(answer)


def test_a_body_that_is_not_json_is_a_400_that_does_not_echo_it(server):
    body = b"\x89PNG " + b"\x00not json" * 20_000
    status, answer = _post(server.uri, body)
    assert status == 400 and len(answer) < SMALL, (status, len(answer))
    assert "not UTF-8" in _message(answer) or "not valid JSON" in _message(answer)
    status, answer = _post(server.uri, b'{"inputs": [[1, 2], ' + b"7" * 1000)  # cut short
    assert status == 400 and len(answer) < SMALL and "not valid JSON" in _message(answer), (status, answer[:300])


def test_pathological_json_is_a_400(server):
    status, answer = _post(server.uri, b'{"inputs": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    assert status == 400 and "too deeply" in _message(answer), (status, answer[:300])
    status, answer = _post(server.uri, b'{"inputs": [' + b"7" * 100_000 + b"]}")  # past Python's 4300-digit limit
    assert status == 400 and "not JSON this server decodes" in _message(answer), (status, answer[:300])


def test_more_crops_than_the_batch_limit_is_a_413_before_the_model_runs(server):
    status, answer = _post(server.uri, _crops(MAX_BATCH + 1))
    assert status == 413 and "PARE_SERVING_MAX_BATCH=3" in _message(answer), (status, answer[:300])


def test_a_request_within_the_limits_is_answered(server):
    status, answer = _post(server.uri, _crops(MAX_BATCH))
    assert status == 200, answer[:500]
    predictions = json.loads(answer)["predictions"]
    assert np.asarray(predictions["pred_pose"]).shape == (MAX_BATCH, 24, 3, 3)
    with urllib.request.urlopen(f"{server.uri}/ping", timeout=30) as response:
        assert response.status == 200  # the server is still up after every refusal


def test_limits_come_from_the_environment_and_refuse_nonsense(monkeypatch):
    from pipelines.training.serving_limits import MAX_BATCH_ENV, MAX_REQUEST_MB_ENV, ServingLimits

    monkeypatch.delenv(MAX_BATCH_ENV, raising=False)
    monkeypatch.delenv(MAX_REQUEST_MB_ENV, raising=False)
    assert ServingLimits.from_environment() == ServingLimits()
    monkeypatch.setenv(MAX_BATCH_ENV, "5")
    monkeypatch.setenv(MAX_REQUEST_MB_ENV, "0.5")
    assert ServingLimits.from_environment() == ServingLimits(max_batch=5, max_request_mb=0.5)
    for name, value in ((MAX_BATCH_ENV, "-1"), (MAX_BATCH_ENV, "2.5"), (MAX_REQUEST_MB_ENV, "nan")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=name):
            ServingLimits.from_environment()
        monkeypatch.setenv(name, "1")


def test_in_process_predictions_run_a_batch_at_a_time_and_equal_one_pass(procedural_dir):
    from pare_model.checkpoint import build_model_from_assets
    from pare_model.model_config import ModelConfig
    from pipelines.training.mlflow_model import PareMlflowModel
    from pipelines.training.serving_limits import ServingLimits

    torch.manual_seed(0)
    model = PareMlflowModel()
    model.model = build_model_from_assets(ModelConfig(backbone="debug", image_size=IMAGE_SIZE), procedural_dir).eval()
    crops = np.random.default_rng(1).integers(0, 256, (5, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    whole = model.predict(None, crops)
    model.limits = ServingLimits(max_batch=2)
    for name, value in model.predict(None, crops).items():
        np.testing.assert_allclose(value, whole[name], rtol=1e-5, atol=1e-5, err_msg=name)
