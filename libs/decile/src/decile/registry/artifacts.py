"""Artifact storage behind one interface: local disk (default) or a JetStream Object Store.

The registry stores only references (uri, sha256, size); bytes live here. A
store's ``get`` returns bytes as stored: :func:`fetch_verified` is what checks
them against the registered digest, so a corrupted or swapped file is refused
before anything loads it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from decile.config import Section
from decile.registry.errors import ArtifactCorrupt, ArtifactNotFound

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ArtifactRef:
    """Where an artifact is and what its bytes must hash to."""

    uri: str
    sha256: str
    size: int

    def __post_init__(self) -> None:
        if not _SHA256.match(self.sha256):
            raise ValueError(f"INVALID_SHA256: sha256={self.sha256!r} (64 lower-case hex)")
        if self.size < 0:
            raise ValueError(f"INVALID_SIZE: size={self.size}")

    @classmethod
    def of(cls, uri: str, data: bytes) -> ArtifactRef:
        """The reference for ``data`` stored at ``uri``."""
        return cls(uri, hashlib.sha256(data).hexdigest(), len(data))

    def to_json(self) -> dict[str, object]:
        return {"uri": self.uri, "sha256": self.sha256, "size": self.size}


@runtime_checkable
class ArtifactStore(Protocol):
    """Bytes by key; ``get`` also accepts the uri a ``put`` returned."""

    async def put(self, key: str, data: bytes) -> ArtifactRef: ...

    async def get(self, key_or_uri: str) -> bytes: ...

    async def exists(self, key: str) -> bool: ...


class ArtifactSettings(Section):
    """``DECILE_<SECTION>__BACKEND`` = local (a directory) or nats (Object Store bucket)."""

    backend: Literal["local", "nats"] = "local"
    root: Path = Path(".state/models")
    bucket: str = "decile-models"


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"INVALID_ARTIFACT_KEY: key={key!r} (relative, no '.', '..' or '//')")
    return key


class LocalArtifacts:
    """Files under ``root``; a put is atomic (temp file in the same directory + os.replace)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    def _path(self, key_or_uri: str) -> Path:
        if key_or_uri.startswith("file://"):
            return Path(unquote(urlsplit(key_or_uri).path))
        if "://" in key_or_uri:
            raise ValueError(f"UNSUPPORTED_URI: uri={key_or_uri} (local store reads file://)")
        return self.root / _check_key(key_or_uri)

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def put(self, key: str, data: bytes) -> ArtifactRef:
        path = self.root / _check_key(key)
        await asyncio.to_thread(self._write, path, data)
        return ArtifactRef.of(path.as_uri(), data)

    async def get(self, key_or_uri: str) -> bytes:
        path = self._path(key_or_uri)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise ArtifactNotFound(key_or_uri) from None

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)


async def fetch_verified(store: ArtifactStore, ref: ArtifactRef) -> bytes:
    """The artifact's bytes, or ``ArtifactCorrupt`` when sha256 or size differ."""
    data = await store.get(ref.uri)
    actual = hashlib.sha256(data).hexdigest()
    if actual != ref.sha256:
        raise ArtifactCorrupt(ref.uri, f"sha256={ref.sha256}", f"sha256={actual}")
    if len(data) != ref.size:
        raise ArtifactCorrupt(ref.uri, f"size={ref.size}", f"size={len(data)}")
    return data


async def open_artifacts(settings: ArtifactSettings, nc: NATS | None = None) -> ArtifactStore:
    """The configured store; the nats backend needs a connection and creates its bucket now."""
    if settings.backend == "local":
        return LocalArtifacts(settings.root)
    if nc is None:
        raise ValueError("ARTIFACT_BACKEND_NEEDS_NATS: backend=nats but no NATS connection given")
    from decile.registry.object_store import ObjectStoreArtifacts

    store = ObjectStoreArtifacts(nc.jetstream(), settings.bucket)
    await store.ensure()
    return store
