"""The training data path inside each Ray Train worker: shards -> mixed, augmented, batched tensors."""
