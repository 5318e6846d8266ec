"""Building requests: rows -> checked, keyed request lines in shards (pure, but prepare)."""
