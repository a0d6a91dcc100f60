"""The change feed: the database's binlog read as committed row changes (app/feed/reader.py), shared
by subscribers, caches and sinks in each instance (app/feed/hub.py)."""
