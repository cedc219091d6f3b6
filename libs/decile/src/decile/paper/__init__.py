"""Paper trading: a broker that fills risk decisions against bars, with a ledger.

Pure (numpy and the event contracts, no I/O, no clock): the execution service
feeds it ``risk.approved`` decisions and ``md.bars`` cross-sections and
publishes the ``Order`` / ``Fill`` / ``TradeClosed`` events it returns.
:class:`Broker` is the seam a live exchange adapter will implement.
"""

from decile.paper.book import Ledger, Position, Ticket
from decile.paper.broker import PaperBroker, order_deadline_ms, submission_bar_ms
from decile.paper.config import PaperConfig
from decile.paper.protocol import Broker

__all__ = [
    "Broker",
    "Ledger",
    "PaperBroker",
    "PaperConfig",
    "Position",
    "Ticket",
    "order_deadline_ms",
    "submission_bar_ms",
]
