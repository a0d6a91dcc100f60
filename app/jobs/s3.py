"""Objects from S3-compatible storage, streamed (aiobotocore).

Endpoint, credentials and region come from the standard AWS environment (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION / AWS_DEFAULT_REGION, profiles). Only the
buckets in GATEWAY_S3_BUCKETS may be read: a job must not become a way to read whatever else the
gateway's credentials reach.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from app.core.echo import shown
from app.core.errors import InvalidSource, SourceNotAllowed, SourceNotFound, SourceUnavailable

log = logging.getLogger("gateway.jobs")
CHUNK_BYTES = 1024 * 1024
READ_AHEAD = 4  # chunks
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's naming rules
NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
CHANGED = {"PreconditionFailed", "412"}


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str | None


def parse_source(source: str, allowed: tuple[str, ...]) -> ObjectRef:
    """`s3://bucket/path/to/key` -> ObjectRef (400 when it is not one; 403 for a bucket not allowed).
    The key is taken literally, as the AWS CLI takes it (no percent-decoding; `?` and `#` are part
    of it): it is an object's name, not a URL path."""
    if not isinstance(source, str):
        raise InvalidSource("`source` must be a string: s3://bucket/path/file.csv")
    scheme, _, rest = source.partition("://")
    bucket, _, key = rest.partition("/")
    if scheme.lower() != "s3" or not BUCKET_NAME.fullmatch(bucket) or not key.strip("/"):
        raise InvalidSource("`source` must be s3://bucket/path/file.csv", {"source": shown(source)})
    if bucket not in allowed:
        raise SourceNotAllowed(
            f"bucket '{shown(bucket)}' is not one the gateway reads from (GATEWAY_S3_BUCKETS)",
            {"bucket": shown(bucket)},
        )
    return ObjectRef(bucket, key)


def _problem(exc: Exception, ref: ObjectRef) -> Exception:
    """A botocore failure -> the gateway's error."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in NOT_FOUND:
            return SourceNotFound(f"no object {ref.url}", {"source": ref.url})
        if code in CHANGED:
            return SourceUnavailable(f"{ref.url} changed since the job started: start a new job", {"source": ref.url})
        return SourceUnavailable(
            f"the object store refused to read {ref.url}: {code}", {"source": ref.url, "s3_code": code}
        )
    if isinstance(exc, (BotoCoreError, OSError)):
        return SourceUnavailable(
            f"the object store did not answer for {ref.url}: {type(exc).__name__}", {"source": ref.url}
        )
    return exc


class ObjectStore:
    """One S3 client per instance, made on first use (loading botocore's models takes a while)."""

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def _get_client(self) -> Any:
        if self._client is None:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session

            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
            self._client = await self._stack.enter_async_context(
                get_session().create_client(
                    "s3", region_name=region, config=AioConfig(connect_timeout=5, read_timeout=60)
                )
            )
        return self._client

    async def warm(self) -> None:
        """Make the client now (at start, when buckets are configured): the first job then does not
        wait for botocore to load its models (about 0.3 s and 36 MB, paid once)."""
        try:
            await self._get_client()
        except Exception as exc:  # the first job will say what is wrong
            log.warning("S3 client not ready: %s", exc)

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    async def head(self, ref: ObjectRef) -> ObjectInfo:
        try:
            client = await self._get_client()
            answer = await client.head_object(Bucket=ref.bucket, Key=ref.key)
        except Exception as exc:
            raise _problem(exc, ref) from exc
        return ObjectInfo(int(answer.get("ContentLength", 0)), answer.get("ETag"))

    async def read(self, ref: ObjectRef, etag: str | None) -> AsyncIterator[bytes]:
        """The object's bytes as they arrive; if it changed since `etag` was seen, an error. Up to
        READ_AHEAD chunks are read ahead by a task of their own, so the network is read while the
        import waits on the database, not only when it asks for more."""
        try:
            client = await self._get_client()
            options = {"IfMatch": etag} if etag else {}
            answer = await client.get_object(Bucket=ref.bucket, Key=ref.key, **options)
        except Exception as exc:
            raise _problem(exc, ref) from exc
        body = answer["Body"]
        ahead: asyncio.Queue[bytes | Exception] = asyncio.Queue(READ_AHEAD)

        async def pump() -> None:
            try:
                while chunk := await body.read(CHUNK_BYTES):
                    await ahead.put(chunk)
                await ahead.put(b"")
            except Exception as exc:
                await ahead.put(_problem(exc, ref))

        reader = asyncio.create_task(pump())
        try:
            while True:
                item = await ahead.get()
                if isinstance(item, Exception):
                    raise item
                if not item:
                    return
                yield item
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            body.close()
