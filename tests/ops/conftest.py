"""tests/ops: deploy/ files against real tools (promtool, nats-server) and schemas.

The generators live in ``tools/ops`` (run as ``python -m tools.ops.generate``
from the repository root); the repository root goes on ``sys.path`` so the
tests import the same code.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
