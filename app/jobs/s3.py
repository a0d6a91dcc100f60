"""Objects from S3-compatible storage, streamed (aiobotocore).

Endpoint, credentials and region come from the standard AWS environment (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION / AWS_DEFAULT_REGION, profiles). Only the
buckets in GATEWAY_S3_BUCKETS may be read: a job must not become a way to read whatever else the
gateway's credentials reach.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from app.core.errors import InvalidSource, SourceNotAllowed, SourceNotFound, SourceUnavailable

CHUNK_BYTES = 1024 * 1024
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
    """`s3://bucket/path/to/key` -> ObjectRef (400 when it is not one; 403 for a bucket not allowed)."""
    if not isinstance(source, str):
        raise InvalidSource("`source` must be a string: s3://bucket/path/file.csv")
    parts = urlsplit(source)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
        raise InvalidSource("`source` must be s3://bucket/path/file.csv", {"source": source[:200]})
    if parts.query or parts.fragment:
        raise InvalidSource("an s3:// source has no query or fragment", {"source": source[:200]})
    bucket, key = parts.netloc, unquote(parts.path.lstrip("/"))
    if bucket not in allowed:
        raise SourceNotAllowed(
            f"bucket '{bucket[:100]}' is not one the gateway reads from (GATEWAY_S3_BUCKETS)", {"bucket": bucket[:100]}
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
        return SourceUnavailable(f"the object store refused to read {ref.url}: {code}", {"source": ref.url, "s3_code": code})
    if isinstance(exc, (BotoCoreError, OSError)):
        return SourceUnavailable(f"the object store did not answer for {ref.url}: {type(exc).__name__}", {"source": ref.url})
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
            self._client = await self._stack.enter_async_context(get_session().create_client(
                "s3", region_name=region, config=AioConfig(connect_timeout=5, read_timeout=60)
            ))
        return self._client

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
        """The object's bytes as they arrive; if it changed since `etag` was seen, an error."""
        try:
            client = await self._get_client()
            options = {"IfMatch": etag} if etag else {}
            answer = await client.get_object(Bucket=ref.bucket, Key=ref.key, **options)
        except Exception as exc:
            raise _problem(exc, ref) from exc
        body = answer["Body"]
        try:
            async with body:
                while True:
                    try:
                        chunk = await body.read(CHUNK_BYTES)
                    except Exception as exc:
                        raise _problem(exc, ref) from exc
                    if not chunk:
                        return
                    yield chunk
        finally:
            body.close()
