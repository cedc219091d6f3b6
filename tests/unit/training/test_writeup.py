"""The verdict paragraph on hand-made metrics: honest wording from the numbers alone."""

from typing import Any

from decile.training.writeup import render_markdown, report_file_names, verdict


def _sel(n: int, mean_r: float | None) -> dict[str, Any]:
    return {"n": n, "win_rate": None if mean_r is None else 0.5, "mean_r": mean_r}


def _entry(auc: float, top_r: float | None, top_n: int = 500, val_auc: float | None = None) -> dict:  # type: ignore[type-arg]
    return {
        "family": "entry",
        "objective": "binary",
        "alpha": None,
        "metrics": {
            "validation": {"auc": auc if val_auc is None else val_auc},
            "test": {"auc": auc, "ece": 0.01},
            "score_floor": 0.5,
            "selectivity_test": {
                "all": {
                    "all": _sel(5000, -0.3),
                    "top_decile": _sel(500, -0.1),
                    "top_decile_above_floor": _sel(top_n, top_r),
                    "top_decile_per_cycle": _sel(900, -0.2),
                }
            },
        },
    }


def test_a_losing_selected_set_is_called_a_loss_even_with_a_good_auc() -> None:
    v = verdict(_entry(0.58, -0.2))
    assert "Test AUC 0.58: the score ranks better than chance." in v
    assert "loses money after costs; do not trade it on this evidence" in v
    assert "worth" not in v


def test_positive_wording_needs_both_positive_r_and_auc_above_055() -> None:
    good = verdict(_entry(0.60, 0.15))
    assert "made +0.15 R per trade after costs over 500 trades" in good
    assert "worth paper trading" in good
    weak = verdict(_entry(0.53, 0.15))
    assert "barely better than chance" in weak
    assert "more likely luck than edge; do not trade it" in weak
    assert "worth" not in weak
    few = verdict(_entry(0.60, 0.15, top_n=20))
    assert "too few trades to rely on" in few
    assert "worth" not in few


def test_an_empty_selection_and_unstable_auc_are_said_plainly() -> None:
    v = verdict(_entry(0.50, None, top_n=0, val_auc=0.62))
    assert "no better than chance" in v
    assert "nothing to trade" in v
    assert "not stable across time blocks" in v
    assert "-0.20 over 900 trades (it loses money after costs)" in v


def test_a_quantile_head_that_cannot_beat_a_constant_is_told_so() -> None:
    doc: dict[str, Any] = {
        "objective": "quantile",
        "alpha": 0.7,
        "metrics": {
            "test": {"alpha": 0.7, "pinball": 0.40, "pinball_best_constant": 0.39, "coverage": 0.9}
        },
    }
    v = verdict(doc)
    assert "no better than the best constant" in v
    assert "off target" in v
    doc["metrics"]["test"].update(pinball=0.30, coverage=0.71)
    v = verdict(doc)
    assert "23.1% better than any constant" in v
    assert "on target" in v


def test_report_files_are_known_before_writing() -> None:
    assert report_file_names(True, False) == ["report.md"]
    assert report_file_names(False, True) == ["report.md", "quantile_deciles.png"]


def test_markdown_renders_from_a_minimal_document_without_plots() -> None:
    doc = _entry(0.58, -0.2) | {
        "target": "win",
        "schema_version": "s",
        "tf": "5m",
        "split": {
            "val_start_ms": 0,
            "test_start_ms": 86_400_000,
            "embargo_ms": 1_800_000,
            "train_rows": 1,
            "validation_rows": 1,
            "test_rows": 1,
            "embargo_dropped": 0,
        },
        "parity": {
            "rows": 1,
            "max_abs_diff": 0.0,
            "fraction_within_tol": 1.0,
            "tolerance": 1e-5,
            "same_top_decile": True,
        },
        "report_files": ["report.md"],
        "tuning": {
            "trials": 4,
            "objective": "validation log_loss of calibrated p_win",
            "best_value": 0.68,
            "best_params": {"num_leaves": 31, "learning_rate": 0.0313051537},
        },
    }
    md = render_markdown(doc)
    assert md.startswith("# Decile model report: entry\n")
    assert "1970-01-02 00:00 UTC" in md
    assert "## Plots" not in md
    assert "4 Optuna trials on the validation block only" in md
    assert "num_leaves=31, learning_rate=0.03131" in md
