"""The report's verdict: a plain paragraph computed from the metrics alone.

Fixed thresholds, stated here, decide the wording. It says plainly when the
selected set loses money after costs; positive wording only when the top
decile above the score floor made money after costs AND test AUC > 0.55,
and even then it asks for more trades or walk-forward confirmation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["AUC_CHANCE", "AUC_EDGE", "AUC_UNSTABLE", "FEW_TRADES", "verdict"]

AUC_EDGE: Final = 0.55  # below this a ranking is too close to chance to act on
AUC_CHANCE: Final = 0.52
AUC_UNSTABLE: Final = 0.05  # a validation/test AUC gap beyond this is flagged
FEW_TRADES: Final = 100  # a mean R over fewer trades is mostly noise


def _num(v: Any, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def _entry_verdict(doc: Mapping[str, Any]) -> list[str]:
    test = doc["metrics"]["test"]
    a = test.get("auc")
    out = []
    if a is None:
        out.append("Test AUC cannot be computed (the test block holds one class or no rows).")
    elif a > AUC_EDGE:
        out.append(f"Test AUC {a:.2f}: the score ranks better than chance.")
    elif a > AUC_CHANCE:
        out.append(f"Test AUC {a:.2f}: the score ranks barely better than chance.")
    else:
        out.append(f"Test AUC {a:.2f}: the score ranks no better than chance.")
    sel = doc["metrics"].get("selectivity_test", {}).get("all")
    if sel is None:
        return out
    base, chosen = sel["all"], sel["top_decile_above_floor"]
    floor = doc["metrics"].get("score_floor")
    r, n = chosen["mean_r"], chosen["n"]
    if n == 0 or r is None:
        out.append(
            f"No test proposal scored at or above the floor {floor}: the selected set is "
            "empty, so there is nothing to trade."
        )
    elif r > 0 and a is not None and a > AUC_EDGE:
        out.append(
            f"The top decile above the floor made {r:+.2f} R per trade after costs over {n} "
            f"trades (all proposals: {_num(base['mean_r'], '+.2f')} R)."
        )
        out.append(
            "That is too few trades to rely on; confirm on walk-forward folds before trading it."
            if n < FEW_TRADES
            else "On this evidence the selected set is worth paper trading; confirm it holds on "
            "walk-forward folds first."
        )
    elif r > 0:
        out.append(
            f"The top decile above the floor made {r:+.2f} R per trade after costs over {n} "
            "trades, but with a ranking this weak that is more likely luck than edge; do not "
            "trade it on this evidence."
        )
    else:
        out.append(
            f"The selected set (top decile above the floor) has a mean R after costs of "
            f"{r:+.2f} over {n} trades: on this data it loses money after costs; do not trade "
            "it on this evidence."
        )
    cyc = sel.get("top_decile_per_cycle")
    if cyc and cyc["n"]:
        loses = " (it loses money after costs)" if cyc["mean_r"] <= 0 else ""
        out.append(
            f"Ranked within each bar-close cycle, as serving does, the top decile's mean R is "
            f"{cyc['mean_r']:+.2f} over {cyc['n']} trades{loses}."
        )
    va = doc["metrics"]["validation"].get("auc")
    if a is not None and va is not None and abs(va - a) > AUC_UNSTABLE:
        out.append(
            f"Validation AUC {va:.2f} vs test {a:.2f}: the ranking is not stable across time "
            "blocks, so neither number is reliable alone."
        )
    e = test.get("ece")
    if e is not None:
        out.append(f"Test calibration error (ECE) is {e:.3f}.")
    return out


def _quantile_verdict(doc: Mapping[str, Any]) -> list[str]:
    test = doc["metrics"]["test"]
    p, c, cov = test.get("pinball"), test.get("pinball_best_constant"), test.get("coverage")
    alpha = float(test.get("alpha") or doc.get("alpha") or 0.5)
    if p is None or c is None:
        return ["The test block is empty: nothing can be said about this model."]
    out = []
    if c > 0 and p < c:
        out.append(
            f"Test pinball loss {p:.4f} vs {c:.4f} for the best constant (the test block's "
            f"own {alpha:g}-quantile, known only in hindsight): the model is "
            f"{1 - p / c:.1%} better than any constant."
        )
    else:
        out.append(
            f"Test pinball loss {p:.4f} is no better than the best constant's {c:.4f}: on this "
            "data the prediction carries no usable information; do not use it."
        )
    if cov is not None:
        on = abs(cov - alpha) <= 0.05
        out.append(
            f"Coverage {cov:.1%} against a target of {alpha:.0%}: "
            + ("on target." if on else "off target, so the quantile is biased.")
        )
    return out


def verdict(doc: Mapping[str, Any]) -> str:
    """A plain paragraph on what the test block shows, computed from the metrics."""
    parts = _entry_verdict(doc) if doc["objective"] == "binary" else _quantile_verdict(doc)
    return " ".join(parts)
