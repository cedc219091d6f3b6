"""``decile train --family confirm --from-db`` on a scratch PostgreSQL, via the recorder tables.

The history is synthetic but shaped like production and written with the
recorder's own writers (:func:`decile.store.events.write_events`,
:func:`decile.store.bars.write_bars`): continuous 5m bars for four symbols and,
every few bars, a candidate whose chain runs as the fleet runs it:
CandidateSignal -> ConfirmDecision -> RiskDecision -> TradeClosed. Some
candidates are vetoed or rejected (no trade), some inverted (a trade on the
other side, which is not the candidate's outcome).

The outcome is planted: the trade wins when the window bar (the 5m bar after
the candidate's close) moved in the candidate's favour (``px_vs_entry_atr``)
and the 1h trend in ``context`` agrees (``htf_bias_atr``), plus noise. The CLI
runs as a subprocess, as an operator runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
from typer.testing import CliRunner

from decile import ids
from decile.cli import app
from decile.confirm import ConfirmConfig
from decile.events import (
    BarBatch,
    CandidateSignal,
    ConfirmDecision,
    Event,
    OrderIntent,
    Rejection,
    RiskDecision,
    TradeClosed,
)
from decile.reasons import ReasonCode
from decile.registry import LocalArtifacts, Registry
from decile.store import migrate
from decile.store.bars import write_bars
from decile.store.events import write_events
from decile.subjects import Subjects
from decile.testing.models import promote_to, register_dir, train_tiny_confirm

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT")
PRICES = (62_000.0, 3_400.0, 120.0, 0.6)
T0 = datetime(2024, 3, 1, tzinfo=UTC)
BAR = timedelta(minutes=5)
N_BARS = 4800  # about 17 days of 5m bars per symbol
EVERY = 3  # a candidate every 3 bars per symbol, staggered across symbols
FIRST = 40  # after the 30-bar baseline
SUBJECTS = Subjects()


@dataclass
class History:
    batches: list[BarBatch] = field(default_factory=list)
    events: list[tuple[Event, str]] = field(default_factory=list)
    candidates: int = 0
    traded: int = 0
    inverted: int = 0


def _bars(rng: np.random.Generator) -> np.ndarray:
    """(bars, symbols, OHLCV): a random walk of 0.2% per bar, consistent highs and lows."""
    close = np.asarray(PRICES) * np.exp(np.cumsum(rng.normal(0, 0.002, (N_BARS, 4)), axis=0))
    open_ = np.vstack([np.asarray(PRICES)[None, :], close[:-1]])
    wick = 1 + np.abs(rng.normal(0, 0.0008, (2, N_BARS, 4)))
    high, low = np.maximum(open_, close) * wick[0], np.minimum(open_, close) / wick[1]
    return np.stack([open_, high, low, close, rng.lognormal(3, 0.4, (N_BARS, 4))], axis=2)


def _trade(rd: RiskDecision, side: str, won: bool, entry: float, atr: float) -> TradeClosed:
    """The close of ``rd``'s trade: +1.5 R at the target or -1 R at the stop, less fees."""
    sign = 1.0 if side == "long" else -1.0
    r = (1.5 if won else -1.0) - 0.05
    exit_price = entry + sign * (2.25 if won else -1.5) * atr
    opened = rd.confirm.decided_at
    closed = opened + 3 * BAR
    return rd.follow(
        TradeClosed, "closed", decision_id=rd.id, symbol=rd.symbol, side=side,
        quantity=10.0 / (1.5 * atr), entry_price=entry, exit_price=exit_price,
        entry_time=opened, exit_time=closed,
        exit_reason="take_profit" if won else "stop", pnl=10.0 * r, fees=0.5, realised_r=r,
        mae_r=-0.4, mfe_r=0.6, hold_bars=3, p_win=rd.confirm.candidate.p_win,
        strategy=rd.confirm.candidate.strategy,
        model_versions=dict(rd.confirm.candidate.model_versions), ts_event=closed,
        producer="execution",
    )


def _approved(conf: ConfirmDecision, entry: float, atr: float) -> RiskDecision:
    sign = 1.0 if conf.side == "long" else -1.0
    intent = OrderIntent(
        symbol=conf.candidate.symbol, side=conf.side, quantity=10.0 / (1.5 * atr),
        entry_type="market", entry_price=entry, stop_price=entry - sign * 1.5 * atr,
        take_profit=entry + sign * 2.25 * atr, expires_at=conf.decided_at + 2 * BAR,
        risk_amount=10.0,
    )
    return conf.follow(
        RiskDecision, "risk", confirm=conf, outcome="approved", intent=intent,
        checked=("master_kill", "net_ev"), ts_event=conf.decided_at, producer="risk",
    )


def market(seed: int = 11, *, trades: bool = True) -> History:
    """Four symbols of 5m bars and about 1,200 candidates; with ``trades`` their chains.

    Fates: 20% vetoed by confirm, 5% rejected by risk, 5% inverted (traded on
    the other side), 70% traded on their side. Without ``trades`` every
    candidate is vetoed: candidates and bars, no outcome.
    """
    rng = np.random.default_rng(seed)
    ohlcv = _bars(rng)
    h = History()
    for i in range(N_BARS):
        h.batches.append(BarBatch(
            tf="5m", bar_time=T0 + i * BAR, symbols=SYMBOLS, values=ohlcv[i], expected=4,
            source="test", producer="ingest",
        ))
    for s, sym in enumerate(SYMBOLS):
        for k in range(FIRST + 2 * s, N_BARS - 10, EVERY):
            entry = float(ohlcv[k, s, 3])
            atr_pct = float(rng.uniform(0.2, 0.9))
            atr = entry * atr_pct / 100
            side = "long" if rng.random() < 0.5 else "short"
            sign = 1.0 if side == "long" else -1.0
            trend = float(rng.normal(0, 0.3))  # h1_trend_20, % of price
            moved = sign * (float(ohlcv[k + 1, s, 3]) - entry) / atr
            won = moved + 0.5 * np.clip(sign * trend / atr_pct, -10, 10) + rng.normal(0, 0.4) > 0
            close = T0 + (k + 1) * BAR
            cand = CandidateSignal(
                id=ids.stable_id(int(close.timestamp() * 1000), sym, k), symbol=sym, tf="5m",
                bar_time=T0 + k * BAR, strategy="breakout", side=side, entry_price=entry,
                atr=atr, p_win=0.6, sl_katr=1.5, rr_target=1.5, offset_katr=0.0, score=0.8,
                rank=1, cycle_size=4, cycle_threshold=0.7, score_floor=0.6,
                model_versions={"entry": "1.0.0"}, feature_schema="f1-test",
                context={"h1_trend_20": trend}, ts_event=close, producer="inference",
            )
            h.candidates += 1
            h.events.append((cand, SUBJECTS.ml_candidate(sym)))
            fate = rng.random() if trades else 0.0
            decided = close + BAR  # the window's one bar has closed
            verdict = "veto" if fate < 0.2 else "invert" if fate < 0.25 else "approve"
            traded_side = side if verdict != "invert" else ("short" if side == "long" else "long")
            conf = cand.follow(
                ConfirmDecision, "decided", candidate=cand, decision=verdict, side=traded_side,
                p_confirm=0.5, window_bars=1, decided_at=decided, ts_event=decided,
                producer="confirm",
                reason=Rejection(gate="confirm_model", code=ReasonCode.CONFIRM_LOW_PROBABILITY)
                if verdict == "veto" else None,
            )
            subject = SUBJECTS.ml_vetoed if verdict == "veto" else SUBJECTS.ml_confirmed
            h.events.append((conf, subject(sym)))
            if verdict == "veto":
                continue
            exec_px = float(ohlcv[k + 1, s, 3])
            if fate >= 0.95:  # risk said no: no trade
                rejected = conf.follow(
                    RiskDecision, "risk", confirm=conf, outcome="rejected",
                    rejection=Rejection(gate="daily_loss", code=ReasonCode.DAILY_LOSS_LIMIT),
                    ts_event=decided, producer="risk",
                )
                h.events.append((rejected, SUBJECTS.risk_rejected(sym)))
                continue
            rd = _approved(conf, exec_px, atr)
            trade = _trade(rd, traded_side, bool(won), exec_px, atr)
            h.events += [(rd, SUBJECTS.risk_approved(sym)), (trade, SUBJECTS.exec_closed(sym))]
            h.traded += verdict == "approve"
            h.inverted += verdict == "invert"
    return h


async def _record(dsn: str, history: History) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.apply(conn)
        await write_bars(conn, history.batches)
        await write_events(conn, history.events)
    finally:
        await conn.close()


def record(dsn: str, history: History) -> None:
    asyncio.run(_record(dsn, history))


@pytest.fixture
def env(pg_dsn: str, tmp_path: Path) -> dict[str, str]:
    return {
        "DECILE_POSTGRES__DSN": pg_dsn,
        "DECILE_ARTIFACTS__ROOT": str(tmp_path / "models"),
        "DECILE_ACTOR": "test",
        "DECILE_CODE_COMMIT": "test",
    }


def decile(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "decile.cli", *args], env={**os.environ, **env},
        capture_output=True, text=True, timeout=600, check=False,
    )


def train(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    res = decile(env, "train", "--json", *args)
    assert res.returncode in (0, 1), res.stderr[-3000:]
    doc: dict[str, Any] = json.loads(res.stdout)
    return res.returncode, doc


def registry_call(dsn: str, work: Any) -> Any:
    async def main() -> Any:
        async with Registry.connect(dsn) as reg:
            return await work(reg)

    return asyncio.run(main())


def test_confirm_trains_on_recorded_outcomes_and_registers_a_staging_version(
    env: dict[str, str], pg_dsn: str
) -> None:
    history = market()
    record(pg_dsn, history)
    code, doc = train(env, "--family", "confirm", "--from-db")
    assert code == 0, doc
    [result] = doc["families"]
    assert (result["family"], result["version"], result["status"]) == (
        "confirm", "1.0.0", "staging")
    version = registry_call(pg_dsn, lambda r: r.get(result["id"]))
    assert set(version.artifacts) == {"model.onnx", "metrics.json"}
    stored = Path(version.artifacts["metrics.json"].uri.removeprefix("file://"))
    assert json.loads(stored.read_text())["model_sha256"] == version.sha256
    m = version.metrics
    assert m["flow_params"] == ConfirmConfig.fleet().flow_params()
    # every traded candidate is a row (its window bar is in the table); nothing else is
    assert m["source"]["stored_candidates"] == history.candidates
    assert m["source"]["with_context"] == history.candidates
    assert m["source"]["other_side"] == history.inverted > 0
    assert m["dataset_counts"]["rows"] == history.traded == m["source"]["outcomes"]
    assert m["dataset_counts"]["no_outcome"] == history.candidates - history.traded
    # the planted relationship is learnt, through both the window bar and the 1h context
    assert m["metrics"]["test"]["auc"] > 0.75
    assert m["model"]["coef"]["px_vs_entry_atr"] > 0
    assert m["model"]["coef"]["htf_bias_atr"] > 0
    # it clears the normal gate: staging -> shadow -> production
    for status in ("shadow", "production"):
        promoted = decile(env, "models", "promote", result["id"])
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
        assert registry_call(pg_dsn, lambda r: r.get(result["id"])).status == status
    # the next version is compared with it on the same test rows, so it can follow it
    code, doc = train(env, "--family", "confirm", "--from-db")
    assert code == 0, doc
    second = registry_call(pg_dsn, lambda r: r.get(doc["families"][0]["id"]))
    paired = second.metrics["paired"]
    assert (paired["production_id"], paired["comparable"]) == (result["id"], True)
    assert paired["candidate"]["auc"] == paired["production"]["auc"]  # same rows, same model
    assert second.parent_id == version.id


def test_confirm_rows_are_split_by_decision_time_with_an_embargo(
    env: dict[str, str], pg_dsn: str
) -> None:
    record(pg_dsn, market(seed=12))
    code, doc = train(env, "--family", "confirm", "--from-db")
    assert code == 0, doc
    m = registry_call(pg_dsn, lambda r: r.get(doc["families"][0]["id"])).metrics
    split, emb = m["split"], m["split"]["embargo_ms"]
    train_w, val_w, test_w = (m[k] for k in (
        "training_window_ms", "validation_window_ms", "test_window_ms"))
    assert emb >= 6 * 300_000  # at least the longest a trade stays open
    assert train_w[0] <= train_w[1] < val_w[0] <= val_w[1] < test_w[0] <= test_w[1]
    # no training trade can still be open when validation starts, nor a validation one at test
    assert train_w[1] + emb < split["val_start_ms"] <= val_w[0]
    assert val_w[1] + emb < split["test_start_ms"] <= test_w[0]
    assert split["embargo_dropped"] > 0
    counts = (split["train_rows"], split["validation_rows"], split["test_rows"])
    assert sum(counts) + split["embargo_dropped"] == m["dataset_counts"]["rows"]


def test_no_outcomes_is_a_recorded_failure_and_production_stays(
    env: dict[str, str], pg_dsn: str, tmp_path: Path
) -> None:
    record(pg_dsn, market(trades=False))

    async def seed_production(reg: Registry) -> Any:
        store = LocalArtifacts(Path(env["DECILE_ARTIFACTS__ROOT"]))
        v = await register_dir(reg, store, "confirm", train_tiny_confirm(tmp_path / "tiny"))
        return await promote_to(reg, v.id, "production")

    production = registry_call(pg_dsn, seed_production)
    code, doc = train(env, "--family", "confirm", "--from-db")
    assert code == 1
    [result] = doc["families"]
    assert (result["failure"]["stage"], result["failure"]["code"]) == ("dataset", "NO_OUTCOMES")
    assert "none has a closed trade" in result["failure"]["message"]
    attempts = registry_call(pg_dsn, lambda r: r.failures("confirm"))
    assert [(a.stage, a.code) for a in attempts] == [("dataset", "NO_OUTCOMES")]
    assert attempts[0].partial_metrics["source"]["trades"] == 0
    assert registry_call(pg_dsn, lambda r: r.production("confirm")).id == production.id
    assert [v.id for v in registry_call(pg_dsn, lambda r: r.list())] == [production.id]


def test_too_few_rows_is_a_recorded_failure(env: dict[str, str], pg_dsn: str) -> None:
    history = market()
    record(pg_dsn, history)
    code, doc = train(env, "--family", "confirm", "--from-db", "--min-rows", "100000")
    assert code == 1
    failure = doc["families"][0]["failure"]
    assert (failure["stage"], failure["code"]) == ("dataset", "TOO_FEW_ROWS")
    [attempt] = registry_call(pg_dsn, lambda r: r.failures("confirm"))
    assert attempt.partial_metrics["dataset_counts"]["rows"] == history.traded
    assert registry_call(pg_dsn, lambda r: r.list()) == []


def test_all_from_db_is_the_four_lightgbm_families_and_confirm_trains_only_when_asked(
    env: dict[str, str], pg_dsn: str
) -> None:
    record(pg_dsn, market())
    code, doc = train(env, "--family", "all", "--from-db", "--min-rows", "100000000")
    assert code == 1  # too few rows for the asked floor: each family a recorded refusal
    assert [f["family"] for f in doc["families"]] == ["entry", "risk", "rr", "offset"]
    assert {f["failure"]["code"] for f in doc["families"]} == {"TOO_FEW_ROWS"}
    assert doc["bars"] == N_BARS * len(SYMBOLS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--data", "bars.parquet"), "--data is not for confirm"),
        ((), "add --from-db"),
        (("--from-db", "--tune", "5"), "LightGBM families"),
        (("--from-db", "--atr-edges", "0.6,0.2"), "strictly increasing"),
    ],
)
def test_confirm_options_that_do_not_apply_are_usage_errors(
    args: tuple[str, ...], message: str, env: dict[str, str]
) -> None:
    result = CliRunner().invoke(app, ["train", "--family", "confirm", *args], env=env)
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())


def test_the_confirm_services_flow_variables_are_the_trainers_defaults(
    env: dict[str, str],
) -> None:
    """DECILE_CONFIRM__* as the service reads them (JSON list included) set the trainer's flow."""
    bad = {**env, "DECILE_CONFIRM__ATR_EDGES": "[0.6, 0.2]"}
    result = CliRunner().invoke(app, ["train", "--family", "confirm", "--from-db"], env=bad)
    assert result.exit_code == 2
    assert "strictly increasing" in " ".join(result.output.replace("│", " ").split())
