"""``make bench``: every ``tests/bench/bench_*.py`` in its own process, then one summary.

Each benchmark writes ``bench-results/<name>.json`` and ``.md`` (see harness.py)
beside a reference measured in the same run; this runner concatenates the
tables into ``bench-results/SUMMARY.md``. A failing benchmark is reported and
makes the run exit non-zero, but the others still run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.bench.harness import RESULTS_DIR

HERE = Path(__file__).parent


def main() -> None:
    only = set(sys.argv[1:])
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    failed = []
    for name in names:
        if only and name not in only and name.removeprefix("bench_") not in only:
            continue
        print(f"\n== {name} ==", flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"tests.bench.{name}"])
        print(f"({name}: {time.monotonic() - start:.0f} s, exit {code})", flush=True)
        if code:
            failed.append(name)
    tables = [p.read_text() for p in sorted(RESULTS_DIR.glob("*.md")) if p.name != "SUMMARY.md"]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "SUMMARY.md").write_text("# Decile benchmarks\n\n" + "\n".join(tables))
    print(f"\nsummary: {RESULTS_DIR / 'SUMMARY.md'}")
    if failed:
        raise SystemExit(f"benchmarks failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
