"""One decision: run the gates in order, stop at the first block, else size the order.

:func:`evaluate` is pure and returns a :class:`Verdict`; :func:`decision_event`
turns it into the ``RiskDecision`` the service publishes. The decision id derives
from the confirm decision's, so a redelivered confirm yields the same decision id
and the server's dedup drops the copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from decile.events.base import Rejection, Scalar
from decile.events.risk import OrderIntent, RiskDecision
from decile.events.signals import ConfirmDecision
from decile.reasons import ReasonCode
from decile.risk.book import BookState
from decile.risk.config import RiskConfig
from decile.risk.context import CandidateContext
from decile.risk.gates import GATES, Block, Gate
from decile.risk.intent import entry, order_intent
from decile.risk.sizing import Sizing, size

# A cap that leaves no quantity is refused under the gate whose limit it is.
_CAP_CODES = {
    "symbol_exposure": ReasonCode.SYMBOL_EXPOSURE,
    "cluster_exposure": ReasonCode.CLUSTER_EXPOSURE,
    "cvar_budget": ReasonCode.CVAR_BUDGET,
    "risk_per_trade": ReasonCode.DRAWDOWN_LIMIT,  # no equity left to risk
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of :func:`evaluate`: an intent or the first rejection, and what was
    checked (gate names in order, the blocking one last)."""

    decided_at: datetime
    checked: tuple[str, ...]
    rejection: Rejection | None = None
    intent: OrderIntent | None = None
    sizing: Sizing | None = None
    snapshot: Mapping[str, Scalar] = field(default_factory=dict)

    @property
    def outcome(self) -> Literal["approved", "rejected"]:
        return "approved" if self.intent is not None else "rejected"


def evaluate(
    ctx: CandidateContext,
    book: BookState,
    config: RiskConfig,
    gates: Sequence[Gate] = GATES,
) -> Verdict:
    checked: list[str] = []
    for gate in gates:
        checked.append(gate.name)
        rejection = gate.check(ctx, book, config)
        if rejection is not None:  # Denied
            return Verdict(ctx.now, tuple(checked), rejection=rejection, snapshot=snapshot(book))
    planned = entry(ctx)
    sizing = size(ctx, book, config, planned.price)
    facts = {**snapshot(book), "binding": sizing.binding, "target_quantity": sizing.target_quantity}
    if sizing.quantity <= 0:  # Denied: a cap left nothing to trade
        block = Block(
            _CAP_CODES[sizing.binding],
            {"limit": sizing.caps.get(sizing.binding, 0.0), "value": sizing.target_quantity},
        )
        rejection = block.rejection(sizing.binding)
        return Verdict(ctx.now, tuple(checked), rejection=rejection, sizing=sizing, snapshot=facts)
    intent = order_intent(ctx, planned, sizing.quantity, config)
    return Verdict(ctx.now, tuple(checked), intent=intent, sizing=sizing, snapshot=facts)


def snapshot(book: BookState) -> dict[str, Scalar]:
    """The book figures a decision was made on, for the audit trail on the event."""
    return {
        "equity": book.equity,
        "start_of_day_equity": book.start_of_day_equity,
        "peak_equity": book.peak_equity,
        "open_positions": len(book.positions),
        "halted": book.kill.halted,
        "model_age_s": book.model_age_s,
    }


def decision_event(
    confirm: ConfirmDecision, verdict: Verdict, *, producer: str = "risk"
) -> RiskDecision:
    """The ``RiskDecision`` for ``verdict``: id derived from the confirm decision's."""
    return confirm.follow(
        RiskDecision,
        confirm=confirm,
        outcome=verdict.outcome,
        intent=verdict.intent,
        rejection=verdict.rejection,
        checked=verdict.checked,
        snapshot=dict(verdict.snapshot),
        ts_event=verdict.decided_at,
        producer=producer,
    )
