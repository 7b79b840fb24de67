"""``pare shards validate|stats``: check a shard folder against its manifest, and count and picture
its samples. The manifest format and the readers are in :mod:`pipelines.data`."""
