"""The shard folders: manifest, validation and statistics (``pare shards validate|stats``)."""
