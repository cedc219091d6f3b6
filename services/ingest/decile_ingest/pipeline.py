"""Ingest domain: source bars in, events out. No I/O, no clock.

quality check -> cross-section assembly -> higher-timeframe resampling ->
``BarBatch`` / ``QuarantinedBar`` events. Event ids are stable: a cycle's id
derives from (tf, bar time, shard) and a quarantined bar's from its key, so a
replayed or repeated cycle is dropped by the server's ``Nats-Msg-Id`` dedup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from decile import ids
from decile.events import OHLCV, BarBatch, Event, QuarantinedBar
from decile.market import quality
from decile.market.bars import Bars
from decile.market.resample import Resampler
from decile.market.timeframes import Timeframe, parse
from decile.reasons import ReasonCode
from decile.subjects import SYMBOL_RE
from decile_ingest.assembler import Assembler, Cycle

SHARD = 0


def _json_safe(v: object) -> object:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # NaN/inf are the evidence; JSON (and our events) refuse them as numbers
    return v


def dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def bar_batch(tf: Timeframe, ts: int, bars: Bars, missing: tuple[str, ...], expected: int,
              source: str) -> BarBatch:
    return BarBatch(
        id=ids.stable_id(ts, "md.bars", tf.value, ts, SHARD),
        producer="ingest",
        tf=tf.value,
        bar_time=dt(ts),
        shard=SHARD,
        expected=expected,
        missing=missing,
        symbols=bars.row_names(),
        values=bars.ohlcv(),
        source=source,
    )


@dataclass
class Outcome:
    """What one chunk of source bars produced."""

    events: list[Event] = field(default_factory=list)
    quarantined: dict[str, int] = field(default_factory=dict)
    gap_bars: int = 0
    cycles: list[tuple[Timeframe, BarBatch]] = field(default_factory=list)


class Ingestor:
    """Stateful but pure: feed chunks with the clock the source provides."""

    def __init__(self, tf: str, higher: tuple[str, ...], grace_ms: int, source: str) -> None:
        self.tf = parse(tf)
        self.source = source
        self.state = quality.QualityState.initial(self.tf)
        self.assembler = Assembler(self.tf.ms, grace_ms)
        self.resampler = Resampler(self.tf, higher) if higher else None
        self._checked: set[str] = set()

    def feed(self, bars: Bars, now_ms: int) -> Outcome:
        out = Outcome()
        bars = self._valid_symbols(bars, out)
        result = quality.check(bars, self.state, now_ms)
        self.state = result.state
        out.gap_bars = result.gaps.total
        for rec in result.rejected.records():
            code = ReasonCode(rec["reason"].value)
            out.quarantined[code.value] = out.quarantined.get(code.value, 0) + 1
            out.events.append(self._quarantine(rec, code))
        late = self.assembler.add(result.accepted)
        self._refuse(late, ReasonCode.LATE, out)
        self._emit(self.assembler.due(now_ms), out)
        return out

    def _valid_symbols(self, bars: Bars, out: Outcome) -> Bars:
        """Rows whose symbol cannot be a subject token are quarantined, not crashed on."""
        bad = [s for s in bars.symbols if s not in self._checked and not SYMBOL_RE.match(s)]
        self._checked.update(s for s in bars.symbols if s not in bad)
        if not bad:
            return bars
        mask = np.isin(bars.symbol, bad)
        self._refuse(bars.take(mask), ReasonCode.INVALID_SYMBOL, out)
        return bars.take(~mask)

    def _refuse(self, bars: Bars, code: ReasonCode, out: Outcome) -> None:
        """Quarantine whole bars for a reason the quality check does not know about."""
        if not len(bars):
            return
        names, cols = bars.symbol.tolist(), {f: getattr(bars, f).tolist() for f in OHLCV}
        for i, ts in enumerate(bars.ts.tolist()):
            rec = {"symbol": names[i], "ts": ts, "values": {f: cols[f][i] for f in OHLCV}}
            out.events.append(self._quarantine(rec, code))
        out.quarantined[code.value] = out.quarantined.get(code.value, 0) + len(bars)

    def flush(self) -> Outcome:
        out = Outcome()
        self._emit(self.assembler.flush(), out)
        return out

    def _emit(self, cycles: list[Cycle], out: Outcome) -> None:
        for c in cycles:
            batch = bar_batch(self.tf, c.ts, c.bars, c.missing, c.expected, self.source)
            out.events.append(batch)
            out.cycles.append((self.tf, batch))
            if self.resampler is None:
                continue
            for htf, hbars in self.resampler.update(c.bars, ts=c.ts):
                if not len(hbars):
                    continue
                hts = int(hbars.ts[0])
                hb = bar_batch(htf, hts, hbars, (), len(hbars), self.source)
                out.events.append(hb)
                out.cycles.append((htf, hb))

    def _quarantine(self, rec: dict[str, object], code: ReasonCode) -> QuarantinedBar:
        ts = int(rec["ts"])  # type: ignore[call-overload]
        symbol = str(rec["symbol"])
        values = {k: _json_safe(v) for k, v in dict(rec["values"]).items()}  # type: ignore[call-overload]
        return QuarantinedBar(
            id=ids.stable_id(max(ts, 0), "md.quarantine", symbol, self.tf.value, ts, code.value),
            producer="ingest",
            code=code,
            symbol=symbol,
            tf=self.tf.value,
            bar_time=dt(ts),
            source=self.source,
            values=values,  # type: ignore[arg-type]
            detail=f"{code.value} for {symbol} at {dt(ts).isoformat()}",
        )
