"""Reading shards, shared by training and evaluation: shards -> mixed, augmented, batched tensors.

- :mod:`.shard_folders`: the shard folders a config names, resolved to URLs, sample counts and
  manifest digests (read once on the driver);
- :mod:`.stream`: the streaming loader (training streams that never end, validation streams that
  read every sample once) and the torch ``DataLoader`` around it;
- :mod:`.samples`: one raw shard sample -> one example (decode, then the augmentation of
  :mod:`preprocessing.augment` when training).
"""
