"""Regenerate every generated file under deploy/, or check that none is stale.

    python -m tools.ops.generate           # write
    python -m tools.ops.generate --check   # exit 1 naming the stale files

Sources: decile.fleet.FLEET, tools/ops/catalog.py (NATS permissions, scaling),
deploy/k8s/values.yaml and the generator modules themselves.
"""

from __future__ import annotations

import sys

from tools.ops import gen_grafana, gen_nats, gen_prometheus, render_k8s


def main(argv: list[str]) -> int:
    codes = [m.main(argv) for m in (gen_nats, gen_prometheus, gen_grafana, render_k8s)]
    return max(codes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
