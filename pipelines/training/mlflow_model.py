"""The trained network as an MLflow model (pyfunc): log it, register it, load it back for inference.

The logged model holds the network checkpoint (``model.pt``) only. The body model is not
logged (real SMPL files are licensed): the model loads it from the folder recorded at training
time, or from ``PARE_BODY_MODEL_DIR`` where that differs, e.g. on a serving machine.

``predict`` takes (B, S, S, 3) uint8 RGB person crops at the model's input size and returns
the pose (B, 24, 3, 3), shape (B, 10), camera (B, 3), 3D joints (B, 49, 3) and vertices.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import mlflow.pyfunc
import numpy as np

OUTPUTS = ("pred_pose", "pred_shape", "pred_cam", "pred_keypoints_3d", "pred_vertices")


class PareMlflowModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around a pare-pipeline model checkpoint."""

    def __init__(self, body_model_dir: str = "") -> None:
        self.body_model_dir = body_model_dir
        self.model = None

    def load_context(self, context) -> None:
        from pare_model.checkpoint.native import read_model_checkpoint
        from pare_model.model import build_model_from_assets

        checkpoint = read_model_checkpoint(context.artifacts["checkpoint"])
        body_model_dir = os.environ.get("PARE_BODY_MODEL_DIR") or self.body_model_dir
        self.model = build_model_from_assets(checkpoint.config, body_model_dir)
        self.model.load_network_state_dict(checkpoint.network)
        self.model.eval()

    def predict(self, context, model_input, params=None) -> dict[str, np.ndarray]:
        import torch

        from pare_model.image_input import to_model_input

        crops = np.asarray(model_input, dtype=np.uint8)
        with torch.no_grad():
            output = self.model(to_model_input(crops))
        return {name: output[name].numpy() for name in OUTPUTS}


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

    with _tracking_uri(handle.tracking_uri), mlflow.start_run(run_id=handle.run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=PareMlflowModel(body_model_dir),
            artifacts={"checkpoint": str(checkpoint_file)},
            pip_requirements=["pare-pipeline"],
        )
        if not registered_name:
            return ""
        version = mlflow.register_model(info.model_uri, registered_name)
    MlflowClient(handle.tracking_uri).set_tag(
        handle.run_id, "pare.registered_model", f"{registered_name}/{version.version}"
    )
    return f"{registered_name}/{version.version}"
