"""The execution service's own series (the standard ones come from decile.metrics)."""

from decile.events import Event, Fill, Order, TradeClosed
from decile.metrics import counter, gauge, histogram
from decile.paper import Ledger

ORDERS = counter(
    "decile_execution_orders_total",
    "Orders published, by status (accepted, cancelled, expired)",
    ["status"],
)
FILLS = counter(
    "decile_execution_fills_total", "Fills published, by leg and liquidity", ["leg", "liquidity"]
)
CLOSED = counter(
    "decile_execution_trades_closed_total", "Closed trades published, by exit reason", ["reason"]
)
KILL_CANCELLED = counter(
    "decile_execution_kill_cancelled_total",
    "Approved decisions cancelled because a kill switch covered them, by scope",
    ["scope"],
)
SKIPPED = counter(
    "decile_execution_already_published_total",
    "Events found on the EXEC stream at start (published before a crash) and not sent again",
    [],
)
HANDLE_SECONDS = histogram(
    "decile_execution_handle_seconds",
    "One input applied and its events published (the snapshot is saved behind), by input",
    ["input"],
)
SAVES = counter("decile_execution_state_saves_total", "Snapshots upserted in PostgreSQL", [])
SAVE_ERRORS = counter(
    "decile_execution_state_save_errors_total",
    "Snapshot upserts that failed (retried; the streams hold the inputs since the last one)",
    [],
)
REPLAYED = counter(
    "decile_execution_replayed_inputs_total",
    "Inputs taken at start from the streams after the saved snapshot's positions, by source",
    ["source"],
)
EQUITY = gauge("decile_execution_equity", "Paper equity: cash + unrealised, quote currency", [])
CASH = gauge("decile_execution_cash", "Paper cash: start + realised results - fees", [])
REALISED = gauge("decile_execution_realised_pnl", "Sum of closed trades' pnl (after costs)", [])
UNREALISED = gauge(
    "decile_execution_unrealised_pnl", "Open positions marked at their last close (gross)", []
)
OPEN_ORDERS = gauge("decile_execution_open_orders", "Accepted orders not yet filled", [])
OPEN_POSITIONS = gauge("decile_execution_open_positions", "Filled entries not yet exited", [])
HALTED = gauge(
    "decile_execution_halted",
    "1 while the master or an automatic kill switch (or the unknown state) blocks new orders",
    [],
)


def count(events: list[Event]) -> None:
    for e in events:
        if isinstance(e, Order):
            ORDERS.labels(e.status).inc()
        elif isinstance(e, Fill):
            FILLS.labels(e.leg, e.liquidity).inc()
        elif isinstance(e, TradeClosed):
            CLOSED.labels(e.exit_reason).inc()


def ledger(led: Ledger) -> None:
    EQUITY.set(led.equity)
    CASH.set(led.cash)
    REALISED.set(led.realised_pnl)
    UNREALISED.set(led.unrealised_pnl)
    OPEN_ORDERS.set(led.open_orders)
    OPEN_POSITIONS.set(led.open_positions)
