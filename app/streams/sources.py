"""GATEWAY_INGEST_SOURCES: the broker streams the ingest process reads (pure).

Sources are URLs, separated by commas or whitespace:

    kafka://HOST:PORT[,HOST:PORT...]/TOPIC?table=T&group=G
    amqp://USER:PASSWORD@HOST:PORT/VHOST?queue=Q&table=T          (amqps:// too)
    nats://HOST:PORT?stream=S&subject=SUBJECT&table=T[&durable=D][&ack_wait=30]

Every source takes `table` (required), `mode` (insert or upsert, default insert), `batch` (messages
a transaction takes at most; default GATEWAY_STREAM_GROUP_ROWS) and `name`: the namespace its
positions and dead letters are recorded under (default kafka:GROUP:TOPIC, amqp:QUEUE,
nats:STREAM:DURABLE). Two sources must not share a name; the name must stay the same across
restarts (it is where a source finds its place again).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, cast
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit, urlunsplit

Kind = Literal["kafka", "amqp", "nats"]
Mode = Literal["insert", "upsert"]
_SPLIT = re.compile(r"[,\s]+(?=(?:kafka|amqps?|nats)://)")
_KNOWN = {
    "kafka": {"table", "mode", "batch", "name", "group", "reset"},
    "amqp": {"table", "mode", "batch", "name", "queue", "prefetch"},
    "nats": {"table", "mode", "batch", "name", "stream", "subject", "durable", "ack_wait"},
}


@dataclass(frozen=True)
class SourceConfig:
    kind: Kind
    name: str
    table: str
    mode: Mode
    batch: int | None
    address: str  # what the client library connects to (credentials included: never logged)
    shown: str  # the address without credentials, for logs and /health/ready
    options: dict[str, str] = field(default_factory=dict)


def parse_sources(text: str) -> list[SourceConfig]:
    """Every source in `text`; ValueError naming the first one that is wrong."""
    sources = [parse_source(part.strip()) for part in _SPLIT.split(text.strip()) if part.strip()]
    names = [s.name for s in sources]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"two sources record their positions as {twice[0]!r}: give them different `name`s")
    return sources


def parse_source(url: str) -> SourceConfig:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    kind = cast(Kind, "amqp" if scheme in ("amqp", "amqps") else scheme)  # checked next
    if kind not in _KNOWN:
        raise ValueError(f"source {_shown(parts)!r}: the scheme must be kafka, amqp, amqps or nats")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - _KNOWN[kind])
    if unknown:
        raise ValueError(f"source {_shown(parts)!r}: unknown option(s) {', '.join(unknown)}")
    table = query.get("table", "")
    if not table:
        raise ValueError(f"source {_shown(parts)!r}: `table` is required")
    mode = cast(Mode, query.get("mode", "insert"))  # checked next
    if mode not in ("insert", "upsert"):
        raise ValueError(f"source {_shown(parts)!r}: mode must be insert or upsert")
    batch = _positive(query.get("batch"), "batch", parts)
    options = {k: v for k, v in query.items() if k not in ("table", "mode", "batch", "name")}
    address = urlunsplit(parts._replace(query=""))
    if kind == "kafka":
        topic = unquote(parts.path.strip("/"))
        if not topic or "/" in topic:
            raise ValueError(f"source {_shown(parts)!r}: name one topic as the path: kafka://host:9092/TOPIC")
        if not options.get("group"):
            raise ValueError(f"source {_shown(parts)!r}: `group` (the consumer group) is required")
        options["topic"], address = topic, parts.netloc
        default = f"kafka:{options['group']}:{topic}"
    elif kind == "amqp":
        if not options.get("queue"):
            raise ValueError(f"source {_shown(parts)!r}: `queue` is required")
        _positive(options.get("prefetch"), "prefetch", parts)
        default = f"amqp:{options['queue']}"
    else:
        if not options.get("stream") or not options.get("subject"):
            raise ValueError(f"source {_shown(parts)!r}: `stream` and `subject` are required")
        options.setdefault("durable", "gateway")
        _positive(options.get("ack_wait"), "ack_wait", parts)
        address = urlunsplit(parts._replace(query="", path=""))
        default = f"nats:{options['stream']}:{options['durable']}"
    name = query.get("name") or default
    if len(name) > 191:
        raise ValueError(f"source {_shown(parts)!r}: the name is longer than 191 characters")
    return SourceConfig(kind, name, table, mode, batch, address, _shown(parts), options)


def _positive(value: str | None, what: str, parts: SplitResult) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"source {_shown(parts)!r}: {what} must be a positive integer")
    return int(value)


def _shown(parts: SplitResult) -> str:
    """The URL without its password or query."""
    host = parts.netloc.rsplit("@", 1)[-1]
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{parts.path}"
