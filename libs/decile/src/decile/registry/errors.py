"""Registry refusals: each carries a stable ``code`` that callers and logs match on.

The message always starts with the code (``AUC_BELOW_FLOOR: metric=test.auc, ...``)
so a CLI can print it as is and an operator can grep for it.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class: ``code`` is stable, the rest of the message is for people."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


class ModelNotFound(RegistryError):
    """No version matches the reference (uuid, ``family@1.2.0``, ``family@production``)."""

    def __init__(self, ref: object, code: str = "MODEL_NOT_FOUND") -> None:
        super().__init__(code, f"ref={ref}")
        self.ref = ref


class PromotionRefused(RegistryError):
    """A promotion the gate or the status order does not allow; nothing was changed."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        metric: str | None = None,
        value: object = None,
        limit: object = None,
    ) -> None:
        super().__init__(code, detail)
        self.metric = metric
        self.value = value
        self.limit = limit


class RollbackRefused(RegistryError):
    """A rollback with nothing to roll back to (or from); nothing was changed."""


class TrainingInProgress(RegistryError):
    """Another trainer holds the family's training lock."""

    def __init__(self, family: str) -> None:
        super().__init__("TRAINING_IN_PROGRESS", f"family={family} is being trained elsewhere")
        self.family = family


class ConcurrentUpdate(RegistryError):
    """A serializable transaction kept conflicting after every retry."""


class ArtifactNotFound(RegistryError):
    """No artifact under that key or uri."""

    def __init__(self, key_or_uri: str) -> None:
        super().__init__("ARTIFACT_NOT_FOUND", f"uri={key_or_uri}")
        self.uri = key_or_uri


class ArtifactCorrupt(RegistryError):
    """Fetched bytes differ from the registered sha256 or size: never load them."""

    def __init__(self, uri: str, expected: str, actual: str) -> None:
        super().__init__("ARTIFACT_CORRUPT", f"uri={uri}, expected={expected}, actual={actual}")
        self.uri = uri
        self.expected = expected
        self.actual = actual
