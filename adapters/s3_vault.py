"""The S3 vault: sealed keys as objects in an S3-compatible bucket (Cloudflare R2, MinIO, AWS S3)
through ``aioboto3``. It implements ``adapters.vault.BlobVault``.

aioboto3 is asynchronous and the engine's core is synchronous, so the vault owns one event loop
in a background thread and runs each call there, in the caller's context; callers in any thread
simply block on it.
Exclusive creation uses a conditional put (``If-None-Match: *``), which R2, MinIO and S3 honour.

Errors: ``VaultError`` for any storage failure (with the S3 error code).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from contextlib import AsyncExitStack
from typing import Any, TypeVar

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from adapters.vault import VaultError, VaultUnavailable, check_ref

T = TypeVar("T")
PREFIX = "bitloot/"  # every object of the vault is under it
_MISSING = {"NoSuchKey", "404", "NotFound"}
_TAKEN = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
_BUSY = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "500", "503"}


class S3Vault:
    """Blobs as objects under ``bitloot/`` in one bucket."""

    def __init__(
        self, *, endpoint: str, bucket: str, access_key_id: str, secret_access_key: str
    ) -> None:
        self._bucket = bucket
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="s3-vault", daemon=True)
        self._thread.start()
        self._stack = AsyncExitStack()
        config = Config(
            signature_version="s3v4",
            retries={"max_attempts": 3, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        import aioboto3  # noqa: PLC0415 - a quarter of a second to import: only with S3 in use

        session = aioboto3.Session()
        client_context = session.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name="auto",  # R2 ignores the region but the SDK needs one
            config=config,
        )
        self._client: Any = self._run(self._stack.enter_async_context(client_context))

    def put(self, ref: str, blob: bytes) -> None:
        """Store ``blob`` under ``ref``, replacing what was there."""
        self._call("put_object", Key=self._key(ref), Body=blob)

    def put_if_absent(self, ref: str, blob: bytes) -> bool:
        """Store ``blob`` unless ``ref`` exists (conditional put)."""
        try:
            self._call("put_object", Key=self._key(ref), Body=blob, IfNoneMatch="*")
        except _Taken:
            return False
        return True

    def get(self, ref: str) -> bytes | None:
        """The blob under ``ref``, or None."""
        try:
            return self._run(self._read(self._key(ref)))
        except _Missing:
            return None

    def delete(self, ref: str) -> None:
        """Remove ``ref`` if present."""
        self._call("delete_object", Key=self._key(ref))

    def ping(self) -> None:
        """Check the bucket answers."""
        self._call("head_bucket")

    def refs(self) -> Iterator[str]:
        """Every reference stored under ``bitloot/``, a page of the listing at a time."""
        token: dict[str, str] = {}
        while True:
            page = self._call("list_objects_v2", Prefix=PREFIX, **token)
            for item in page.get("Contents", []):
                yield str(item["Key"]).removeprefix(PREFIX)
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (local S3 servers; R2 buckets are made
        in the dashboard)."""
        try:
            self._call("head_bucket")
        except VaultError:
            # A region-less endpoint ("auto") must name its location for the bucket.
            location = {"LocationConstraint": "auto"}
            self._call("create_bucket", CreateBucketConfiguration=location)

    def close(self) -> None:
        """Close the client and stop the loop."""
        self._run(self._stack.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def _key(self, ref: str) -> str:
        return f"{PREFIX}{check_ref(ref)}"

    async def _read(self, key: str) -> bytes:
        answer = await self._guard(self._client.get_object(Bucket=self._bucket, Key=key))
        async with answer["Body"] as body:
            data: bytes = await body.read()
        return data

    def _call(self, operation: str, **params: Any) -> Any:
        call = getattr(self._client, operation)(Bucket=self._bucket, **params)
        return self._run(self._guard(call))

    async def _guard(self, call: Coroutine[Any, Any, T]) -> T:
        try:
            return await call
        except ClientError as failure:
            code = str(failure.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise _Missing(code) from failure
            if code in _TAKEN:
                raise _Taken(code) from failure
            if code in _BUSY:
                raise VaultUnavailable(f"S3 error {code}") from failure
            raise VaultError(f"S3 error {code}") from failure
        except BotoCoreError as failure:
            raise VaultUnavailable(f"S3 unreachable: {type(failure).__name__}") from failure

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run on the vault's loop, in the caller's context (its trace goes with the call)."""
        outcome: Future[T] = Future()
        caller = contextvars.copy_context()

        def start() -> None:
            task = self._loop.create_task(coroutine, context=caller)
            task.add_done_callback(lambda done: _settle(outcome, done))

        self._loop.call_soon_threadsafe(start)
        return outcome.result(timeout=60)


def _settle(outcome: Future[T], task: asyncio.Task[T]) -> None:
    if task.cancelled():
        outcome.cancel()
    elif (failure := task.exception()) is not None:
        outcome.set_exception(failure)
    else:
        outcome.set_result(task.result())


class _Missing(VaultError):
    """The object does not exist."""


class _Taken(VaultError):
    """A conditional put found the object already there."""
