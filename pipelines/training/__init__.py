"""Training: the streaming loader (``data``), the Ray Train loop, checkpoints and MLflow tracking."""
