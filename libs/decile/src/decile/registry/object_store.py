"""Artifacts in a JetStream Object Store bucket, so every host of a cluster can fetch them.

Uris are ``nats-os://<bucket>/<key>``; the bucket is created on first use.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, DigestMismatchError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from decile.registry.artifacts import ArtifactRef, _check_key
from decile.registry.errors import ArtifactCorrupt, ArtifactNotFound

SCHEME = "nats-os://"


class ObjectStoreArtifacts:
    """An :class:`~decile.registry.artifacts.ArtifactStore` over one Object Store bucket."""

    def __init__(self, js: JetStreamContext, bucket: str = "decile-models") -> None:
        self.js = js
        self.bucket = bucket
        self._stores: dict[str, ObjectStore] = {}

    async def _store(self, bucket: str, create: bool) -> ObjectStore:
        if bucket not in self._stores:
            try:
                self._stores[bucket] = await self.js.object_store(bucket)
            except BucketNotFoundError:
                if not create:
                    raise
                self._stores[bucket] = await self.js.create_object_store(bucket)
        return self._stores[bucket]

    async def ensure(self) -> None:
        """Create the bucket if it does not exist (idempotent)."""
        await self._store(self.bucket, create=True)

    def _locate(self, key_or_uri: str) -> tuple[str, str]:
        if key_or_uri.startswith(SCHEME):
            bucket, _, key = key_or_uri[len(SCHEME) :].partition("/")
            return bucket, _check_key(key)
        if "://" in key_or_uri:
            raise ValueError(f"UNSUPPORTED_URI: uri={key_or_uri} (object store reads {SCHEME})")
        return self.bucket, _check_key(key_or_uri)

    async def put(self, key: str, data: bytes) -> ArtifactRef:
        store = await self._store(self.bucket, create=True)
        await store.put(_check_key(key), data)
        return ArtifactRef.of(f"{SCHEME}{self.bucket}/{key}", data)

    async def get(self, key_or_uri: str) -> bytes:
        bucket, key = self._locate(key_or_uri)
        try:
            store = await self._store(bucket, create=bucket == self.bucket)
            result = await store.get(key)
        except (BucketNotFoundError, ObjectNotFoundError):
            raise ArtifactNotFound(key_or_uri) from None
        except DigestMismatchError:  # the server's own digest check failed
            raise ArtifactCorrupt(key_or_uri, "object store digest", "mismatch") from None
        return bytes(result.data or b"")

    async def exists(self, key: str) -> bool:
        bucket, name = self._locate(key)
        try:
            store = await self._store(bucket, create=bucket == self.bucket)
            await store.get_info(name)
        except (BucketNotFoundError, ObjectNotFoundError):
            return False
        return True
