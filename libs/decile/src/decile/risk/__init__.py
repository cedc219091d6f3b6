"""Pre-trade risk: pure gates, sizing and order geometry (no I/O, no clock).

Public API::

    RiskConfig                               # frozen limits, every default documented
    BookState, Position, KillState           # read-only facade of the book
    CandidateContext.from_confirm(confirm, now)
    GATES, Gate, Block                       # ordered checks, cheapest first
    evaluate(ctx, book, config) -> Verdict   # first block wins, else a sized OrderIntent
    decision_event(confirm, verdict) -> RiskDecision

The risk service owns the live book and the clock; it builds a ``BookState``
and a ``CandidateContext`` per confirmed signal, calls :func:`evaluate` and
publishes :func:`decision_event`.
"""

from decile.risk.book import BookState, KillState, Position
from decile.risk.config import RiskConfig
from decile.risk.context import CandidateContext, bar_seconds
from decile.risk.edge import Edge, edge
from decile.risk.engine import Verdict, decision_event, evaluate, snapshot
from decile.risk.gates import BY_NAME, GATES, Block, Gate
from decile.risk.intent import Bracket, Entry, bracket, entry, order_intent
from decile.risk.sizing import Sizing, size
from decile.risk.tail import Tail, cvar, tail

__all__ = [
    "BY_NAME",
    "GATES",
    "Block",
    "BookState",
    "Bracket",
    "CandidateContext",
    "Edge",
    "Entry",
    "Gate",
    "KillState",
    "Position",
    "RiskConfig",
    "Sizing",
    "Tail",
    "Verdict",
    "bar_seconds",
    "bracket",
    "cvar",
    "decision_event",
    "edge",
    "entry",
    "evaluate",
    "order_intent",
    "size",
    "snapshot",
    "tail",
]
