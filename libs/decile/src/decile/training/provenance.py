"""Provenance for ``metrics.json``: which data, which code, which artifact.

A model is only reproducible if one can tell, later, exactly which rows and
which code produced it: :func:`dataset_fingerprint` (defined in :mod:`.dataset`,
re-exported here) hashes the dataset's content, not its memory layout;
:func:`code_commit` names the commit; :func:`artifact` pins the exported file.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Final

from decile.training.dataset import dataset_fingerprint

__all__ = ["COMMIT_ENV", "artifact", "code_commit", "dataset_fingerprint"]

COMMIT_ENV: Final = "DECILE_CODE_COMMIT"
_SHA: Final = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        res = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def code_commit() -> str:
    """``$DECILE_CODE_COMMIT`` if set, else ``git rev-parse HEAD`` of this package's
    checkout, else ``"unknown"``; never raises.

    The package file must be tracked by that checkout: an installed copy in a
    virtualenv that happens to sit inside some repository would otherwise
    report that repository's commit. Uncommitted edits are not detected.
    """
    env = os.environ.get(COMMIT_ENV, "").strip()
    if env:
        return env
    here = Path(__file__).resolve().parent
    if _git(["ls-files", "--error-unmatch", "--", "__init__.py"], here) is None:
        return "unknown"
    head = _git(["rev-parse", "HEAD"], here)
    return head if head and _SHA.match(head) else "unknown"


def artifact(data: bytes, file: str = "model.onnx") -> dict[str, Any]:
    """``{"file", "sha256", "size"}`` of the exported model bytes."""
    return {"file": file, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
