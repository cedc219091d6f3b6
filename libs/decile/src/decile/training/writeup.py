"""``report.md`` beside ``model.onnx``: what was trained, on what, and what it shows.

The text is rendered from ``metrics.json``'s content alone (so it can be
re-rendered later); only the PNGs need the test block's arrays. The verdict
paragraph comes from :mod:`.verdict`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from decile.training import plots, report
from decile.training.verdict import verdict

__all__ = [
    "TestBlock",
    "render_markdown",
    "report_file_names",
    "verdict",
    "write_report",
]

F64 = npt.NDArray[np.float64]
TOP_FEATURES: Final = 15
_SELECTIONS: Final = (
    ("all", "all proposals"),
    ("top_decile", "top decile"),
    ("top_decile_above_floor", "top decile above floor"),
    ("top_decile_per_cycle", "top decile per cycle"),
)


@dataclass(frozen=True, eq=False)
class TestBlock:
    """The test block's model output and outcomes, for the plots."""

    score: F64  # calibrated p_win (entry) or the predicted quantile
    target: F64  # win (entry) or the family's target
    realised_r: F64
    ts: npt.NDArray[np.int64]


def report_file_names(binary: bool, has_test: bool) -> list[str]:
    """The files :func:`write_report` writes, in order (known before writing)."""
    if not has_test:
        return ["report.md"]
    pngs = (
        ["calibration.png", "deciles.png", "cumulative_r.png"]
        if binary
        else ["quantile_deciles.png"]
    )
    return ["report.md", *pngs]


def _num(v: Any, fmt: str = ".4f") -> str:
    return "n/a" if v is None else format(v, fmt)


def _date(ms: Any) -> str:
    if ms is None:
        return "n/a"
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _window(w: Sequence[int] | None) -> str:
    return "n/a" if not w else f"{_date(w[0])} to {_date(w[1])}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def _data_section(doc: Mapping[str, Any]) -> list[str]:
    sp = doc["split"]
    emb = doc.get("label_config", {}).get("horizon")
    rows = [
        ["family", f"{doc['family']} ({doc['objective']}, target `{doc['target']}`)"],
        ["schema version", f"`{doc['schema_version']}`"],
        ["timeframe", str(doc["tf"])],
        ["training window", _window(doc.get("training_window_ms"))],
        ["validation starts", _date(sp["val_start_ms"])],
        ["validation window", _window(doc.get("validation_window_ms"))],
        ["test starts", _date(sp["test_start_ms"])],
        ["test window", _window(doc.get("test_window_ms"))],
        ["embargo", f"{sp['embargo_ms'] // 60_000} min (label horizon {emb} bars)"],
        ["data fingerprint", f"`{doc.get('data_fingerprint', 'n/a')}`"],
        ["code commit", f"`{doc.get('code_commit', 'n/a')}`"],
        ["model sha256", f"`{doc.get('model_sha256', 'n/a')}`"],
    ]
    out = ["## Data and split", "", *_table(["", ""], rows)]
    counts = doc.get("dataset_counts", {})
    keys = ["proposals", "warmup", "duplicates", "unlabelled", "rows"]
    out += ["Dataset counts:", "", *_table(keys, [[str(counts.get(k, "n/a")) for k in keys]])]
    split_keys = ["train_rows", "validation_rows", "test_rows", "embargo_dropped"]
    out += ["Split rows:", "", *_table(split_keys, [[str(sp[k]) for k in split_keys]])]
    return out


def _metrics_section(doc: Mapping[str, Any]) -> list[str]:
    va, te = doc["metrics"]["validation"], doc["metrics"]["test"]
    if doc["objective"] == "binary":
        keys = ["rows", "base_rate", "auc", "pr_auc", "log_loss", "ece", "mean_p_win"]
    else:
        keys = ["rows", "alpha", "pinball", "pinball_best_constant", "coverage"]

    def cell(m: Mapping[str, Any], k: str) -> str:
        v = m.get(k)
        return str(v) if k == "rows" else _num(v)

    rows = [[k, cell(va, k), cell(te, k)] for k in keys]
    out = ["## Metrics", "", *_table(["metric", "validation", "test"], rows)]
    if doc["objective"] != "binary":
        out += [
            "`pinball_best_constant` is the loss of the block's own alpha-quantile as a "
            "constant: a hindsight bar the model must beat; `coverage` is the share of rows "
            "at or below the prediction (target: alpha).",
            "",
        ]
    return out


def _selectivity_section(doc: Mapping[str, Any]) -> list[str]:
    sel = doc["metrics"].get("selectivity_test")
    if not sel:
        return []
    rows = []
    for group, table in sel.items():
        for key, label in _SELECTIONS:
            if key in table:
                r = table[key]
                rows.append(
                    [
                        group,
                        label,
                        str(r["n"]),
                        _num(r["win_rate"], ".3f"),
                        _num(r["mean_r"], "+.3f"),
                    ]
                )
    return [
        "## Selectivity (test block, realised R after costs)",
        "",
        f"Score floor: {doc['metrics'].get('score_floor')}. Deciles are taken over the whole "
        "test block, except *per cycle*: the top ceil(10%) within each bar time (at least one "
        "row per cycle, so small cycles keep far more than 10%).",
        "",
        *_table(["group", "selection", "n", "win rate", "mean R"], rows),
    ]


def _importance_section(doc: Mapping[str, Any]) -> list[str]:
    imp = doc.get("importance")
    if not imp:
        return []
    gain = list(imp.get("gain", {}).items())[:TOP_FEATURES]
    shap = list(imp.get("shap", {}).items())[:TOP_FEATURES]
    rows = []
    for i in range(max(len(gain), len(shap))):
        g = gain[i] if i < len(gain) else ("", None)
        s = shap[i] if i < len(shap) else ("", None)
        rows.append([str(i + 1), f"`{g[0]}`", _num(g[1], ".3f"), f"`{s[0]}`", _num(s[1], ".3f")])
    return [
        f"## Feature importance (top {TOP_FEATURES})",
        "",
        "Gain: share of total split gain in training. SHAP: share of mean |contribution| on "
        "up to 2,000 evenly spaced test rows.",
        "",
        *_table(["rank", "gain feature", "gain", "SHAP feature", "SHAP"], rows),
    ]


def _parity_section(doc: Mapping[str, Any]) -> list[str]:
    p = doc["parity"]
    rows = [
        ["rows", str(p["rows"])],
        ["max abs diff", _num(p["max_abs_diff"], ".2e")],
        [
            "fraction within tolerance",
            f"{_num(p['fraction_within_tol'], '.6f')} (tolerance {p['tolerance']})",
        ],
        ["same top decile", str(p["same_top_decile"])],
        ["rows swapped at a tied cut", str(p.get("top_decile_rows_swapped_at_tied_cut", 0))],
    ]
    return ["## ONNX parity (test block)", "", *_table(["", ""], rows)]


def _tuning_section(doc: Mapping[str, Any]) -> list[str]:
    t = doc.get("tuning")
    if not t:
        return []
    params = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in t.get("best_params", {}).items()
    )
    return [
        "## Tuning",
        "",
        f"{t.get('trials')} Optuna trials on the validation block only ({t.get('objective')}); "
        f"best {_num(t.get('best_value'))} with {params}. That value was selected on validation "
        "and is optimistic; the test block, never seen by the search, is the honest measure.",
        "",
    ]


def _walk_forward_section(doc: Mapping[str, Any]) -> list[str]:
    folds = doc.get("walk_forward")
    if not folds:
        return []
    rows = []
    for i, f in enumerate(folds, 1):
        sp, t = f.get("split", {}), f.get("test", {})
        metric = _num(t.get("auc"), ".3f") if "auc" in t else _num(t.get("pinball"))
        rows.append([str(i), _date(sp.get("test_start_ms")), str(t.get("rows", 0)), metric])
    label = "test AUC" if "auc" in folds[0].get("test", {}) else "test pinball"
    return [
        "## Walk-forward",
        "",
        "One model per expanding fold, each tested on the block after its own training "
        "window. One good fold among chance-level ones is luck, not a model.",
        "",
        *_table(["fold", "test from", "rows", label], rows),
    ]


def _paired_section(doc: Mapping[str, Any]) -> list[str]:
    p = doc.get("paired")
    if not p:
        return ["## Against production", "", "No production version when this was trained.", ""]
    head = f"Production {p.get('production_version')} on the same {p.get('rows', 0):,} test rows"
    if not p.get("comparable"):
        return ["## Against production", "", f"{head}: not comparable ({p.get('reason')}).", ""]
    rows = [
        [k, _num(p["candidate"].get(k)), _num(p["production"].get(k))] for k in p["candidate"]
    ]
    return ["## Against production", "", head + ":", "", *_table(["", "this", "production"], rows)]


_CAPTIONS: Final = {
    "calibration.png": "Reliability on the test block",
    "deciles.png": "Win rate and mean R after costs by score decile",
    "cumulative_r.png": "Cumulative R after costs: selected set vs all proposals",
    "quantile_deciles.png": "Mean predicted vs mean actual by prediction decile",
}


def render_markdown(doc: Mapping[str, Any]) -> str:
    """``report.md``'s text from ``metrics.json``'s content."""
    pngs = [f for f in doc.get("report_files", []) if f.endswith(".png")]
    lines = [
        f"# Decile model report: {doc['family']}",
        "",
        f"**Verdict.** {verdict(doc)}",
        "",
        *_data_section(doc),
        *_metrics_section(doc),
        *_selectivity_section(doc),
    ]
    if pngs:
        lines += ["## Plots", ""]
        lines += [f"![{_CAPTIONS.get(f, f)}]({f})\n" for f in pngs]
    lines += [
        *_paired_section(doc),
        *_walk_forward_section(doc),
        *_importance_section(doc),
        *_parity_section(doc),
        *_tuning_section(doc),
    ]
    return "\n".join(lines).rstrip() + "\n"


def write_report(out_dir: Path, doc: Mapping[str, Any], block: TestBlock) -> list[str]:
    """Write the PNGs named in ``doc["report_files"]`` and ``report.md``; returns the names."""
    names = list(doc.get("report_files", []))
    floor = float(doc["metrics"].get("score_floor") or 0.5)
    alpha = float(doc.get("alpha") or 0.5)
    for name in names:
        path = out_dir / name
        if name == "calibration.png":
            plots.calibration_plot(path, block.target, block.score)
        elif name == "deciles.png":
            plots.deciles_plot(path, block.score, block.target, block.realised_r)
        elif name == "cumulative_r.png":
            selected = report.top_decile_above_floor(block.score, floor)
            per_cycle = report.top_decile_per_cycle(block.score, block.ts)
            plots.cumulative_r_plot(path, block.ts, block.realised_r, selected, per_cycle)
        elif name == "quantile_deciles.png":
            plots.quantile_deciles_plot(path, block.score, block.target, alpha)
    (out_dir / "report.md").write_text(render_markdown(doc), encoding="utf-8")
    return names
