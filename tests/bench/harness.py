"""Shared bench harness: percentiles, ratios to a reference, and the results files.

Benchmarks are plain scripts (``make bench``), never pytest tests (STYLE.md,
habit 13): a duration depends on the machine, so a benchmark reports a ratio
to a reference timed in the same run instead of asserting a figure. Each one
writes ``bench-results/<bench>.json`` (machine-readable, with the machine it
ran on) and ``bench-results/<bench>.md`` (the table), and prints the table.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(os.environ.get("DECILE_BENCH_DIR", "bench-results"))


@dataclass(frozen=True)
class Column:
    """One table column: ``key`` in :attr:`Row.values`, its header and number format."""

    key: str
    label: str
    fmt: str = "{:,.2f}"

    def show(self, value: float | str | None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "—"
        return value if isinstance(value, str) else self.fmt.format(value)


@dataclass
class Row:
    """One measured thing; ``reference`` marks the row ratios are taken against."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)
    reference: bool = False


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no samples, so gaps show as gaps."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def latency_summary(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds from nanosecond samples."""
    ms = [s / 1e6 for s in samples_ns]
    return {
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else math.nan,
        "samples": len(ms),
    }


def add_ratio(rows: Sequence[Row], key: str, out: str) -> None:
    """``values[out] = values[key] / reference's values[key]`` for every row."""
    refs = [r for r in rows if r.reference]
    if len(refs) != 1:
        raise ValueError(f"exactly one reference row needed, got {len(refs)}")
    base = refs[0].values.get(key)
    for row in rows:
        value = row.values.get(key)
        ok = isinstance(value, int | float) and isinstance(base, int | float) and base
        row.values[out] = value / base if ok else math.nan  # type: ignore[operator]


def markdown(title: str, rows: Sequence[Row], columns: Sequence[Column],
             notes: Sequence[str] = ()) -> str:
    header = ["path", *(c.label for c in columns)]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * len(columns)) + "|"]
    for row in rows:
        name = f"{row.name} (reference)" if row.reference else row.name
        cells = [name, *(c.show(row.values.get(c.key)) for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; NaN where /proc is missing.

    Dividing the CPU a relay used by the messages it handled separates "busy"
    from "waiting on round trips", which a rate alone cannot tell apart.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine(packages: Sequence[str] = ()) -> dict[str, Any]:
    """What the figures were measured on; figures from different machines don't compare."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "packages": versions,
    }


def report(bench: str, title: str, rows: Sequence[Row], columns: Sequence[Column], *,
           notes: Sequence[str] = (), meta: dict[str, Any] | None = None,
           out_dir: Path = RESULTS_DIR) -> str:
    """Write ``<bench>.json`` and ``<bench>.md`` under ``out_dir``, print and return the table."""
    table = markdown(title, rows, columns, notes)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "bench": bench,
        "title": title,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "meta": meta or {},
        "columns": [asdict(c) for c in columns],
        "rows": [asdict(r) for r in rows],
        "notes": list(notes),
    }
    (out_dir / f"{bench}.json").write_text(
        json.dumps(_nan_to_none(doc), indent=2, default=str, allow_nan=False) + "\n"
    )
    (out_dir / f"{bench}.md").write_text(table)
    print(table, flush=True)
    return table


def _nan_to_none(doc: Any) -> Any:
    """JSON has no NaN: a missing figure is null."""
    if isinstance(doc, float) and math.isnan(doc):
        return None
    if isinstance(doc, dict):
        return {k: _nan_to_none(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [_nan_to_none(v) for v in doc]
    return doc
