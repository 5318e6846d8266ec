"""Building requests: input rows -> checked, keyed request lines in shards (pure, but for prepare)."""
