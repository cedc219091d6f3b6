"""The risk service's own series (the standard ones come from decile.metrics)."""

from decile.metrics import counter, gauge, histogram

DECISIONS = counter(
    "decile_risk_decisions_total",
    "Risk decisions published, by outcome and the blocking gate and code ('' when approved)",
    ["outcome", "gate", "code"],
)
REPUBLISHED = counter(
    "decile_risk_republished_total",
    "Confirm decisions already audited: the stored decision was published again",
    [],
)
DECISION_SECONDS = histogram(
    "decile_risk_decision_seconds", "Confirm decision in -> audited and published", []
)
EQUITY = gauge("decile_risk_equity", "Mark-to-market equity in the account currency", [])
PEAK_EQUITY = gauge("decile_risk_peak_equity", "Equity high-water mark", [])
OPEN_POSITIONS = gauge("decile_risk_open_positions", "Open positions in the book", [])
SYMBOLS_TRACKED = gauge(
    "decile_risk_symbols_tracked", "Symbols with at least one bar seen (freshness known)", []
)
MODEL_AGE = gauge(
    "decile_risk_model_age_seconds",
    "Age of the production entry model as risk sees it (-1 while unknown)",
    [],
)
KILL_SWITCH = gauge(
    "decile_kill_switch",
    "1 while the kill switch scope/key is on, else 0 (scope master, symbol, strategy, auto).",
    ["scope", "key"],
)
DAILY_PNL = gauge(
    "decile_risk_daily_pnl",
    "Today's (UTC) realised plus open P&L in the account currency; negative is a loss.",
    [],
)
DAILY_LOSS_LIMIT = gauge(
    "decile_risk_daily_loss_limit",
    "The daily loss limit in the account currency, a positive number.",
    [],
)
WINRATE_ROLLING = gauge(
    "decile_winrate_rolling", "Win rate (0..1) of the last 500 closed trades.", ["family"]
)
WINRATE_EXPECTED = gauge(
    "decile_winrate_expected",
    "Mean p_win the model gave the same closed trades: its expected win rate (0..1).",
    ["family"],
)
WINRATE_TRADES = gauge(
    "decile_winrate_trades", "Closed trades in the rolling win-rate window (at most 500).",
    ["family"],
)
RETRAIN_REQUESTS = counter(
    "decile_risk_retrain_requests_total", "RetrainRequested published by the outcomes monitor",
    ["family", "code"],
)
