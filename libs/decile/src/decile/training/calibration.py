"""Probability calibration of the entry booster: Platt scaling or isotonic regression.

Both map the margin ``logit(raw booster probability)`` to ``p_win`` and are
fitted on the validation block. Serving rebuilds them from
``metrics.json["calibration"]`` with :func:`calibration_from_dict` and applies
them to ``logit(onnx probability)``. Pure numpy (no sklearn, no LightGBM), so
the serving side can import this module cheaply, and deterministic: the same
validation rows give the same parameters to the bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "CALIBRATION_INPUT",
    "Calibration",
    "CalibrationMethod",
    "Isotonic",
    "Platt",
    "calibration_from_dict",
    "fit_calibration",
    "logit",
    "sigmoid",
]

F64 = npt.NDArray[np.float64]
CALIBRATION_INPUT: Final = "logit(onnx probability)"
ISOTONIC_CLIP: Final = 1e-6


def logit(p: npt.ArrayLike) -> F64:
    """``log(p / (1 - p))`` with ``p`` clipped to ``[1e-12, 1 - 1e-12]``."""
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    out: F64 = np.log(q / (1 - q))
    return out


def sigmoid(z: F64) -> F64:
    """The logistic function, overflow-safe (exp -> inf gives exactly 0)."""
    with np.errstate(over="ignore"):  # exp overflow -> inf -> exactly 0: the right limit
        out: F64 = 1.0 / (1.0 + np.exp(-z))
    return out


@dataclass(frozen=True, slots=True)
class Platt:
    """``p = 1 / (1 + exp(-(a * margin + b)))`` on the booster's raw margin."""

    a: float
    b: float

    def __call__(self, margin: npt.ArrayLike) -> F64:
        z = self.a * np.asarray(margin, dtype=np.float64) + self.b
        return sigmoid(z)

    @classmethod
    def fit(cls, margin: F64, y: F64, iters: int = 50, ridge: float = 1e-6) -> Platt:
        """Newton's method on the logistic log-likelihood (deterministic, no library).

        Steps are halved until the penalised log loss does not increase: a full
        Newton step from ``(1, 0)`` diverges when the margins are far from
        calibrated (e.g. three times too confident).
        """
        xm = np.stack([margin, np.ones_like(margin)], axis=1)
        w = np.array([1.0, 0.0])

        def loss(v: F64) -> float:
            z = xm @ v
            return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * ridge * (v @ v))

        current = loss(w)
        for _ in range(iters):
            p = sigmoid(xm @ w)
            g = xm.T @ (p - y) + ridge * w
            h = (xm * (p * (1 - p))[:, None]).T @ xm + ridge * np.eye(2)
            step = np.linalg.solve(h, g)
            t = 1.0
            while True:
                trial = w - t * step
                new = loss(trial)
                if new <= current or t < 1e-12:
                    break
                t *= 0.5
            w, current = trial, new
            if np.abs(t * step).max() < 1e-10:
                break
        return cls(float(w[0]), float(w[1]))

    def to_dict(self) -> dict[str, Any]:
        return {"method": "platt", "a": self.a, "b": self.b}


@dataclass(frozen=True, slots=True)
class Isotonic:
    """A non-decreasing step fit, stored as breakpoints ``x`` (margins) and ``y``.

    Applied with ``np.interp`` (linear between breakpoints, flat beyond the
    ends) and clipped to ``[1e-6, 1 - 1e-6]``: an empirical 0 or 1 from a
    small validation bin must not become a certainty at serving time.
    """

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __post_init__(self) -> None:
        xs = np.asarray(self.x, dtype=np.float64)
        if len(self.x) == 0 or len(self.x) != len(self.y):
            raise ValueError("isotonic breakpoints: x and y must be non-empty and equally long")
        if np.any(np.diff(xs) < 0) or np.any(np.diff(np.asarray(self.y)) < 0):
            raise ValueError("isotonic breakpoints must be non-decreasing in x and y")

    def __call__(self, margin: npt.ArrayLike) -> F64:
        m = np.asarray(margin, dtype=np.float64)
        p = np.interp(m, np.asarray(self.x), np.asarray(self.y))
        out: F64 = np.clip(p, ISOTONIC_CLIP, 1 - ISOTONIC_CLIP)
        return out

    @classmethod
    def fit(cls, margin: F64, y: F64) -> Isotonic:
        """Pool-adjacent-violators on ``y`` ordered by ``margin`` (equal margins pooled first)."""
        m = np.asarray(margin, dtype=np.float64)
        yv = np.asarray(y, dtype=np.float64)
        ok = np.isfinite(m) & np.isfinite(yv)
        m, yv = m[ok], yv[ok]
        if len(m) == 0:
            raise ValueError("isotonic calibration needs at least one finite row")
        ux, inv = np.unique(m, return_inverse=True)
        w = np.bincount(inv).astype(np.float64)
        mean = np.bincount(inv, weights=yv) / w
        fitted = _pav(mean, w)
        # Keep only the ends of each constant run: interp is then the same function.
        keep = np.ones(len(ux), dtype=np.bool_)
        if len(ux) > 2:
            same_prev = fitted[1:-1] == fitted[:-2]
            same_next = fitted[1:-1] == fitted[2:]
            keep[1:-1] = ~(same_prev & same_next)
        return cls(tuple(ux[keep].tolist()), tuple(fitted[keep].tolist()))

    def to_dict(self) -> dict[str, Any]:
        return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}


def _pav(y: F64, w: F64) -> F64:
    """Weighted least-squares non-decreasing fit (stack form of pool-adjacent-violators)."""
    means: list[float] = []
    weights: list[float] = []
    counts: list[int] = []
    for yi, wi in zip(y.tolist(), w.tolist(), strict=True):
        m, wt, c = yi, wi, 1
        while means and means[-1] >= m:
            pw = weights.pop()
            m = (means.pop() * pw + m * wt) / (pw + wt)
            wt += pw
            c += counts.pop()
        means.append(m)
        weights.append(wt)
        counts.append(c)
    return np.repeat(np.asarray(means, dtype=np.float64), counts)


Calibration: TypeAlias = Platt | Isotonic
CalibrationMethod: TypeAlias = Literal["platt", "isotonic"]


def fit_calibration(method: CalibrationMethod, margin: F64, y: F64) -> Calibration:
    """Fit ``method`` on validation ``margin`` (``logit(raw probability)``) against ``y``."""
    if method == "platt":
        return Platt.fit(margin, y)
    if method == "isotonic":
        return Isotonic.fit(margin, y)
    raise ValueError(f"unknown calibration method {method!r}")


def calibration_from_dict(d: Mapping[str, Any]) -> Calibration:
    """Rebuild a calibration from its ``to_dict()`` (or ``metrics.json["calibration"]``).

    Refuses a dict whose ``on`` names any input other than ``logit(onnx probability)``.
    """
    on = d.get("on", CALIBRATION_INPUT)
    if on != CALIBRATION_INPUT:
        raise ValueError(f"calibration applies to {on!r}, expected {CALIBRATION_INPUT!r}")
    method = d.get("method")
    if method == "platt":
        return Platt(float(d["a"]), float(d["b"]))
    if method == "isotonic":
        return Isotonic(tuple(float(v) for v in d["x"]), tuple(float(v) for v in d["y"]))
    raise ValueError(f"unknown calibration method {method!r}")
