"""Refuse an environment holding a package the lock does not pin (image builds).

``uv pip install -c requirements.lock`` constrains the packages the lock names
but lets any other one float to its newest release. The image builder runs
this right after installing: every installed distribution must be pinned in
``requirements.lock`` at the installed version (the project's own packages,
``-e`` lines there, excepted). Standard library only: it runs inside the
service's fresh venv.

Run: ``/opt/venv/bin/python tools/ops/lock_check.py requirements.lock``.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: Path) -> dict[str, set[str]]:
    """Package -> versions the lock pins (several when markers split a package)."""
    out: dict[str, set[str]] = {}
    for line in lock.read_text().splitlines():
        if m := PIN.match(line.strip()):
            out.setdefault(canonical(m.group(1)), set()).add(m.group(2))
    return out


def unpinned(lock: Path) -> list[str]:
    pinned = pins(lock)
    bad = []
    for dist in metadata.distributions():
        name, version = canonical(dist.metadata["Name"]), dist.version
        if name == "decile" or name.startswith("decile-") or name in ("pip", "setuptools"):
            continue
        if version not in pinned.get(name, set()):
            want = ", ".join(sorted(pinned.get(name, set()))) or "not in the lock"
            bad.append(f"{name}=={version} ({want})")
    return sorted(bad)


def main(argv: list[str]) -> int:
    bad = unpinned(Path(argv[0] if argv else "requirements.lock"))
    for line in bad:
        print(f"unpinned: {line}", file=sys.stderr)
    if bad:
        print("requirements.lock does not pin these: run `make lock`", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
