"""Rows that arrive as streams: WebSocket messages (app/api/streams.py) and broker messages (the
ingest process, ingest.py), each applied exactly once through applier.py."""
