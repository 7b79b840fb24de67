"""The registered model served over REST by a real ``mlflow models serve`` process: its answers equal in-process
predictions, and bad input gets a 4xx with a message naming what is wrong, before the network runs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from tests.mlflow_server import ModelServer


def _post(uri: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(f"{uri}/invocations", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture(scope="module")
def served(trained_run, procedural_dir, tmp_path_factory):
    """(server, in-process pyfunc model) for the `pare` model registered by the session's training run."""
    import mlflow.pyfunc
    from mlflow.tracking import MlflowClient

    from pipelines.training.mlflow_model import _tracking_uri

    storage, _ = trained_run
    tracking = f"sqlite:///{storage / 'mlflow.db'}"
    version = max(int(v.version) for v in MlflowClient(tracking).search_model_versions("name='pare'"))
    uri = f"models:/pare/{version}"
    server = ModelServer(
        tmp_path_factory.mktemp("serve"), uri, tracking, env={"PARE_BODY_MODEL_DIR": str(procedural_dir)}
    ).start(timeout_s=240)
    with _tracking_uri(tracking):
        model = mlflow.pyfunc.load_model(uri)
    yield server, model
    server.stop()


def test_served_predictions_equal_in_process_ones(served):
    server, model = served
    crops = np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    status, answer = _post(server.uri, json.dumps({"inputs": crops.tolist()}).encode())
    assert status == 200, answer
    expected = model.predict(crops)
    predictions = answer["predictions"]
    assert set(predictions) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(np.asarray(predictions[name], np.float32), value, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("inputs", "named"),
    [
        (np.zeros((1, 64, 64, 3), np.uint8).tolist(), "shape"),  # a crop of the wrong size
        (np.zeros((1, 128, 128), np.uint8).tolist(), "shape"),  # grey, no channel axis
        (np.full((1, 128, 128, 3), 300).tolist(), "uint8"),  # not bytes
        (np.full((1, 128, 128, 3), -1).tolist(), "uint8"),
        ("not an image", ""),
    ],
    ids=["wrong-size", "no-channels", "above-255", "negative", "text"],
)
def test_bad_input_is_a_4xx_that_names_the_problem(served, inputs, named):
    server, _ = served
    status, answer = _post(server.uri, json.dumps({"inputs": inputs}).encode())
    assert 400 <= status < 500, (status, str(answer)[:500])
    message = answer.get("message", "")
    assert named.lower() in message.lower(), message[:500]
    assert "Traceback" not in message and "torch" not in message, message[:500]


def test_in_process_floats_are_refused_by_the_signature(served):
    """JSON has no dtypes: MLflow casts JSON numbers to uint8 (0.5 becomes 0, docs/serving.md). In Python the dtype
    is known, and an array of floats is refused before the network runs."""
    _, model = served
    with pytest.raises(Exception, match="(?i)uint8|dtype|type"):
        model.predict(np.full((1, 128, 128, 3), 0.5))


def test_a_body_that_is_not_json_is_a_4xx(served):
    server, _ = served
    status, answer = _post(server.uri, b"\x89PNG not json")
    assert 400 <= status < 500, answer
