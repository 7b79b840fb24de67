"""The shard folders ``pare preprocess`` writes, and reading them back: shared by preprocessing (which
writes the manifest), training, evaluation and ``pare shards``.

- :mod:`.manifest`: ``manifest.json``, the format of a shard folder and its checks;
- :mod:`.reading`: the folders under a root, a folder's manifest, its samples decoded one by one;
- :mod:`.shard_folders`: the shard folders a config names, resolved to URLs, sample counts and
  manifest digests (read once on the driver);
- :mod:`.stream`: the streaming loader (training streams that never end, validation streams that
  read every sample once) and the torch ``DataLoader`` around it;
- :mod:`.samples`: one raw shard sample -> one example (decode, then the augmentation of
  :mod:`preprocessing.augment` when training);
- :mod:`.batch`: :class:`~.batch.TrainingBatch`, the typed keys of a collated batch of those examples.
"""
