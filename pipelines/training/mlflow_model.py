"""The trained network as an MLflow model (pyfunc): log it, register it, load it back for inference.

The logged model holds the network checkpoint (``model.pt``) only, and is logged as code
(:mod:`pipelines.training.mlflow_model_code`), not as a pickled object. The body model is not
logged (real SMPL files are licensed): the model loads it from the folder recorded at training
time (its model config), or from ``PARE_BODY_MODEL_DIR`` where that differs, e.g. on a serving machine.

``predict`` takes (B, S, S, 3) uint8 RGB person crops at the model's input size and returns
the pose (B, 24, 3, 3), shape (B, 10), camera (B, 3), 3D joints (B, 49, 3) and vertices. It runs
them ``max_batch`` at a time; served by ``mlflow models serve``, the model also puts the request
limits of :mod:`pipelines.training.serving_limits` in front of MLflow's scoring server.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import mlflow.pyfunc
import numpy as np

from pipelines.training.serving_limits import ServingLimits, install_in_scoring_server

OUTPUTS = {
    "pred_pose": (24, 3, 3),
    "pred_shape": (10,),
    "pred_cam": (3,),
    "pred_keypoints_3d": (49, 3),
    "pred_vertices": (6890, 3),
}
"""The outputs of ``predict`` and each one's shape after the batch dimension."""


def signature(image_size: int):
    """The model's MLflow signature: (B, S, S, 3) uint8 crops in, the named float32 outputs out."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    crops = Schema([TensorSpec(np.dtype(np.uint8), (-1, image_size, image_size, 3))])
    outputs = Schema([TensorSpec(np.dtype(np.float32), (-1, *shape), name) for name, shape in OUTPUTS.items()])
    return ModelSignature(inputs=crops, outputs=outputs)


class PareMlflowModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around a pare-pipeline model checkpoint."""

    def __init__(self) -> None:
        self.model = None
        self.limits = ServingLimits()

    def load_context(self, context) -> None:
        from pare_model.checkpoint.native import read_model_checkpoint
        from pare_model.model import build_model_from_assets

        self.limits = ServingLimits.from_environment()
        install_in_scoring_server(self.limits)
        checkpoint = read_model_checkpoint(context.artifacts["checkpoint"])
        recorded = (context.model_config or {}).get("body_model_dir", "")
        body_model_dir = os.environ.get("PARE_BODY_MODEL_DIR") or recorded
        self.model = build_model_from_assets(checkpoint.config, body_model_dir)
        self.model.load_network_state_dict(checkpoint.network)
        self.model.eval()

    def predict(self, context, model_input: np.ndarray, params=None) -> dict[str, np.ndarray]:
        import torch

        from pare_model.image_input import to_model_input

        crops = np.asarray(model_input, dtype=np.uint8)
        step = self.limits.max_batch
        parts: dict[str, list[np.ndarray]] = {name: [] for name in OUTPUTS}
        for start in range(0, max(len(crops), 1), step):
            with torch.no_grad():
                output = self.model(to_model_input(crops[start : start + step]))
            for name in OUTPUTS:
                parts[name].append(output[name].numpy())
        return {name: np.concatenate(values) for name, values in parts.items()}


@contextmanager
def _tracking_uri(uri: str):
    """MLflow's fluent API pointed at ``uri`` for a while; ``mlflow.set_tracking_uri`` also sets the
    MLFLOW_TRACKING_URI environment variable, which would outlive this call (and steer later runs)."""
    before_env = os.environ.get("MLFLOW_TRACKING_URI")
    before = mlflow.get_tracking_uri() if before_env else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        if before_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
            mlflow.tracking._tracking_service.utils._tracking_uri = None
        else:
            mlflow.set_tracking_uri(before)


def log_model(handle, checkpoint_file: Path, body_model_dir: str, registered_name: str) -> str:
    """Log ``checkpoint_file`` into the run as ``model`` and register it; returns 'name/version' or ''."""
    from mlflow.tracking import MlflowClient

    from pare_model.checkpoint.native import read_model_checkpoint

    image_size = read_model_checkpoint(checkpoint_file).config.image_size

    with _tracking_uri(handle.tracking_uri), mlflow.start_run(run_id=handle.run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("mlflow_model_code.py")),
            model_config={"body_model_dir": body_model_dir},
            signature=signature(image_size),
            input_example=np.zeros((1, image_size, image_size, 3), np.uint8),  # one blank crop
            artifacts={"checkpoint": str(checkpoint_file)},
            pip_requirements=["pare-pipeline"],
        )
        if not registered_name:
            return ""
        # inside the store's tracking URI: the registry finds the logged model of a models:/<id> source there
        client = MlflowClient(handle.tracking_uri)
        version = register(client, registered_name, info, handle.run_id)
    client.set_tag(handle.run_id, "pare.registered_model", f"{registered_name}/{version}")
    return f"{registered_name}/{version}"


def register(client, name: str, info, run_id: str) -> str:
    """A new version of the registered model ``name`` (made if new) for the logged model ``info``; its number.

    What ``mlflow.register_model`` does for a ``models:/<model_id>`` URI, through the client, which prints
    nothing: ``register_model`` writes "Successfully registered model ..." and "Created version ..." to stderr,
    in the middle of the command's own output."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    version = client.create_model_version(name, source=info.model_uri, run_id=run_id, model_id=info.model_id)
    return str(version.version)
