"""What the confirm model learns from: recorded candidates, their trades' R, their window bars.

Everything is read from the recorder's PostgreSQL tables, nothing is
re-simulated: an outcome is what production did. The chain, as stored:
``TradeClosed.decision_id`` is a ``RiskDecision`` id, whose body carries
``confirm.candidate``; so each closed trade links back to one candidate id.

Only a trade on the candidate's own side is its outcome. An inverted
decision traded the other side, with its own stop and costs: its R says
nothing about whether the candidate's side would have reached ``theta``.
The trade was entered at the decision (after the window), which is the R
:func:`decile.confirm.build_confirm_dataset` wants.

The higher-timeframe input of the ``htf_bias_atr`` flow feature is the
candidate's ``context["h1_trend_20"]``, filled by inference; a candidate
recorded without it leaves the feature at its neutral value, as in serving.

Reading a stored body is tolerant of additive change: fields this code's
:class:`CandidateSignal` does not know (added by a newer producer) are dropped
before validation, and a body that still does not validate is counted as
``unreadable``, never a crash.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import asyncpg
import numpy as np
from pydantic import ValidationError

from decile.confirm.config import ConfirmConfig
from decile.confirm.flow import HTF_TREND_FEATURE
from decile.confirm.window import from_ms
from decile.events.signals import CandidateSignal
from decile.market.bars import Bars
from decile.market.timeframes import parse, to_ms

__all__ = [
    "Recorded",
    "TradeRow",
    "link_outcomes",
    "parse_candidate",
    "read_recorded",
    "read_window_bars",
    "window_spans",
]

_CANDIDATES_SQL: Final = """
SELECT body::text AS body FROM events
 WHERE type = 'CandidateSignal' AND body->>'tf' = $1
   AND ($2::timestamptz IS NULL OR ts_event >= $2)
   AND ($3::timestamptz IS NULL OR ts_event < $3)
   AND ($4::text[] IS NULL OR symbol = ANY($4))
 ORDER BY ts_event, id"""

# LEFT JOIN: a trade whose decision was never recorded is counted, not silently lost.
_TRADES_SQL: Final = """
SELECT rd.body->'confirm'->'candidate'->>'id' AS candidate_id,
       rd.body->'confirm'->'candidate'->>'side' AS candidate_side,
       tc.body->>'side' AS trade_side,
       tc.body->>'realised_r' AS realised_r
  FROM events tc
  LEFT JOIN events rd ON rd.type = 'RiskDecision' AND rd.id::text = tc.body->>'decision_id'
 WHERE tc.type = 'TradeClosed'
 ORDER BY tc.ts_event, tc.id"""

# DISTINCT: the spans of two close candidates on one symbol overlap.
_WINDOW_BARS_SQL: Final = """
SELECT DISTINCT b.symbol, (extract(epoch FROM b.ts) * 1000)::int8 AS ms,
       b.open, b.high, b.low, b.close, b.volume
  FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS w(symbol, lo, hi)
  JOIN bars b ON b.symbol = w.symbol AND b.tf = $1 AND b.ts >= w.lo AND b.ts < w.hi
 ORDER BY ms, b.symbol"""


@dataclass(frozen=True, slots=True)
class TradeRow:
    """One closed trade as the join reads it; ``candidate_id`` None when its decision is missing."""

    candidate_id: str | None
    candidate_side: str | None
    trade_side: str | None
    realised_r: str | None


@dataclass(frozen=True, slots=True)
class Recorded:
    """Candidates in event order, outcomes and higher-timeframe trend by candidate id.

    ``counts``: ``stored_candidates`` (rows read), ``unreadable`` (bodies that
    do not validate), ``with_context`` (carried the trend), and the trade
    counts of :func:`link_outcomes`.
    """

    candidates: tuple[CandidateSignal, ...]
    outcomes: dict[str, float]
    htf_trend_pct: dict[str, float]
    counts: dict[str, int] = field(default_factory=dict)


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        return None
    try:
        f = float(v)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def parse_candidate(body: Mapping[str, Any]) -> tuple[CandidateSignal, float | None]:
    """A stored ``CandidateSignal`` body: the event and its ``context`` 1h trend (None: absent).

    Raises ``ValidationError`` for a body this code cannot read.
    """
    known = {k: v for k, v in body.items() if k in CandidateSignal.model_fields}
    c = CandidateSignal.model_validate(known)
    return c, c.context.get(HTF_TREND_FEATURE)


def link_outcomes(rows: Iterable[TradeRow]) -> tuple[dict[str, float], dict[str, int]]:
    """Realised R by candidate id from closed trades, first trade per candidate.

    Counts: ``trades``, ``unlinked`` (no recorded decision or candidate),
    ``other_side`` (an inverted decision), ``unreadable_r``, ``duplicates``
    (a second trade of one candidate), ``outcomes`` (kept).
    """
    out: dict[str, float] = {}
    counts = dict.fromkeys(
        ("trades", "unlinked", "other_side", "unreadable_r", "duplicates"), 0
    )
    for row in rows:
        counts["trades"] += 1
        r = _finite(row.realised_r)
        if row.candidate_id is None:
            counts["unlinked"] += 1
        elif row.trade_side != row.candidate_side:
            counts["other_side"] += 1
        elif r is None:
            counts["unreadable_r"] += 1
        elif row.candidate_id in out:
            counts["duplicates"] += 1
        else:
            out[row.candidate_id] = r
    counts["outcomes"] = len(out)
    return out, counts


def window_spans(
    candidates: Iterable[CandidateSignal], config: ConfirmConfig
) -> list[tuple[str, int, int]]:
    """``(symbol, lo_ms, hi_ms)`` of ``config.window_tf`` bars each candidate's window needs.

    The same margins :func:`decile.confirm.build_confirm_dataset` cuts with:
    the baseline before the candidate's close, the window after it.
    """
    tf_ms = config.window_tf.ms
    spans = []
    for c in candidates:
        close_ms = to_ms(c.bar_time) + parse(c.tf).ms
        lo = close_ms - (config.baseline_bars + 1) * tf_ms
        spans.append((c.symbol, lo, close_ms + (config.window_bars + 1) * tf_ms))
    return spans


async def read_recorded(
    conn: asyncpg.Connection,
    *,
    tf: str,
    start: datetime | None = None,
    end: datetime | None = None,
    symbols: Sequence[str] | None = None,
) -> Recorded:
    """Candidates of timeframe ``tf`` whose event time is in ``[start, end)``, and outcomes."""
    rows = await conn.fetch(
        _CANDIDATES_SQL, tf, start, end, list(symbols) if symbols is not None else None
    )
    candidates: list[CandidateSignal] = []
    htf: dict[str, float] = {}
    unreadable = 0
    for row in rows:
        try:
            c, trend = parse_candidate(json.loads(row["body"]))
        except (ValidationError, ValueError):
            unreadable += 1
            continue
        candidates.append(c)
        if trend is not None:
            htf[c.id] = trend
    trades = [TradeRow(*r) for r in await conn.fetch(_TRADES_SQL)]
    outcomes, counts = link_outcomes(trades)
    return Recorded(
        candidates=tuple(candidates),
        outcomes=outcomes,
        htf_trend_pct=htf,
        counts={
            "stored_candidates": len(rows),
            "unreadable": unreadable,
            "with_context": len(htf),
            **counts,
        },
    )


async def read_window_bars(
    conn: asyncpg.Connection, tf: str, spans: Sequence[tuple[str, int, int]]
) -> Bars:
    """The ``tf`` bars inside ``spans`` (each bar once), through the bars primary key."""
    if not spans:
        return Bars.empty()
    symbols, lo, hi = zip(*spans, strict=True)
    rows = await conn.fetch(
        _WINDOW_BARS_SQL, tf, list(symbols), [from_ms(t) for t in lo], [from_ms(t) for t in hi]
    )
    if not rows:
        return Bars.empty()
    ts = np.fromiter((r["ms"] for r in rows), dtype=np.int64, count=len(rows))
    values = np.array([tuple(r)[2:] for r in rows], dtype=np.float64)
    return Bars.from_arrays(np.asarray([r["symbol"] for r in rows]), ts, *values.T)
