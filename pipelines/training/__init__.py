"""Training: the Ray Train loop, checkpoints and MLflow tracking; it reads shards through :mod:`pipelines.data`."""
