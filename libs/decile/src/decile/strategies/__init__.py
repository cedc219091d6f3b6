"""Rule-based trade proposals: transparent, vectorised, the same offline and online.

Public API::

    STRATEGIES, STRATEGY_IDS, Strategy
    propose(matrix, names) -> Proposals     # (row, strategy code, side) for every rule
"""

from decile.strategies.rules import STRATEGIES, STRATEGY_IDS, Proposals, Strategy, propose

__all__ = ["STRATEGIES", "STRATEGY_IDS", "Proposals", "Strategy", "propose"]
