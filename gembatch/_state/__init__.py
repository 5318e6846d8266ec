"""The run directory: typed records, legal state moves, the journal, the lock, migrations."""
