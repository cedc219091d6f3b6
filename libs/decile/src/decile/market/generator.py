"""Seeded synthetic market: many symbols, realistic enough to exercise the whole fleet.

Why synthetic at all: the benchmarks need 1,200 symbols and the real data
has 110, and demos need an endless live-like feed. The model is chosen so
features and filters see the stylised facts they are built for:

* regimes: a Markov chain over calm / normal / stress states, each with its
  own drift, volatility and volume multiplier; durations scale with the
  timeframe (``expected_hours``), so a 1h run has the same regime life in hours;
* volatility clustering: GARCH(1,1) variance for the market factor and for
  every symbol's idiosyncratic part, with fat-tailed (Student-t, df 5)
  innovations scaled to unit variance;
* cross-correlation: ``r_i = drift + beta_i * market + idio_i``, ``beta_i``
  log-normal around 1;
* volume: log-normal per symbol (notional scale differs by orders of
  magnitude, like a real universe), higher when ``|return|`` is large and in
  stress, in base-asset units (notional / price);
* OHLC consistent by construction: open = previous close, wicks extend
  beyond ``max(open, close)`` and ``min(open, close)``.

One cycle for all symbols is one vectorised numpy step; the same seed and
config always give the same bars, bar for bar, whether generated in one call
or cycle by cycle.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from decile.market.bars import Bars
from decile.market.timeframes import BASE, Timeframe, parse

__all__ = [
    "DEFAULT_START_MS",
    "GeneratorConfig",
    "MarketGenerator",
    "cycles",
    "generate",
    "symbol_names",
]

F64 = npt.NDArray[np.float64]

DEFAULT_START_MS: Final = 1_704_067_200_000  # 2024-01-01T00:00:00Z
_T_DF: Final = 5.0
_T_SCALE: Final = float(np.sqrt((_T_DF - 2.0) / _T_DF))  # Student-t(5) to unit variance
_DAY_S: Final = 86_400


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """Parameters of the synthetic market; defaults give a 2021-crypto-like universe.

    Volatilities are daily (scaled to the bar by ``sqrt(tf / 1 day)``), drifts
    daily, durations in hours, so changing ``tf`` keeps the same market.

    Defaults: 1,200 symbols quoted in USDT, 5m bars from 2024-01-01 UTC,
    seed 0; regimes calm / normal / stress with drift +0.3% / 0 / -0.5% a
    day, volatility x0.7 / x1 / x2, volume x0.8 / x1 / x1.8, expected to last
    48 / 24 / 6 hours; market and idiosyncratic daily volatility 3% each;
    GARCH alpha 0.06, beta 0.92; beta log-normal (median 1, sigma 0.3);
    median notional 200,000 USDT per 5 minutes, spread 1.2 in log; volume up
    by ``exp(0.35 |z|)`` with the return's size; wicks 0.6 bar sigma.
    """

    n_symbols: int = 1_200
    tf: Timeframe = BASE
    seed: int = 0
    start_ms: int = DEFAULT_START_MS
    quote: str = "USDT"
    regime_drift: tuple[float, ...] = (0.003, 0.0, -0.005)
    regime_vol: tuple[float, ...] = (0.7, 1.0, 2.0)
    regime_volume: tuple[float, ...] = (0.8, 1.0, 1.8)
    expected_hours: tuple[float, ...] = (48.0, 24.0, 6.0)
    market_vol: float = 0.03
    idio_vol: float = 0.03
    garch_alpha: float = 0.06
    garch_beta: float = 0.92
    beta_sigma: float = 0.3
    notional_5m: float = 200_000.0
    notional_sigma: float = 1.2
    volume_gamma: float = 0.35
    volume_noise: float = 0.4
    wick: float = 0.6

    def __post_init__(self) -> None:
        object.__setattr__(self, "tf", parse(self.tf))
        k = len(self.regime_drift)
        if not (len(self.regime_vol) == len(self.regime_volume) == len(self.expected_hours) == k):
            raise ValueError("one drift, vol, volume and duration per regime")
        if self.n_symbols < 1:
            raise ValueError("n_symbols must be >= 1")
        if self.start_ms % self.tf.ms:
            raise ValueError(f"start_ms {self.start_ms} is not a {self.tf} bar boundary")
        if not 0 <= self.garch_alpha + self.garch_beta < 1:
            raise ValueError("garch_alpha + garch_beta must be in [0, 1) for a finite variance")


def symbol_names(n: int, quote: str = "USDT") -> tuple[str, ...]:
    """``SYN0001/USDT`` ... zero-padded so name order is number order (sorted universe)."""
    width = max(4, len(str(n)))
    return tuple(f"SYN{i:0{width}d}/{quote}" for i in range(1, n + 1))


class MarketGenerator:
    """A live-like feed: :meth:`step` returns the next cross-section of every symbol."""

    def __init__(self, config: GeneratorConfig | None = None, **overrides: Any) -> None:
        cfg = replace(config or GeneratorConfig(), **overrides)
        self.config = cfg
        self.symbols = symbol_names(cfg.n_symbols, cfg.quote)
        self._rng = np.random.default_rng(cfg.seed)
        rng, n = self._rng, cfg.n_symbols
        bar = cfg.tf.seconds / _DAY_S
        self._drift = np.asarray(cfg.regime_drift) * bar
        self._vol_mult = np.asarray(cfg.regime_vol, dtype=np.float64)
        self._vol_log = np.log(np.asarray(cfg.regime_volume, dtype=np.float64))
        self._transition = _transition(np.asarray(cfg.expected_hours), cfg.tf)
        self._cum_transition = np.cumsum(self._transition, axis=1)
        self.beta: F64 = np.exp(rng.normal(0.0, cfg.beta_sigma, n))
        self._var_m = cfg.market_vol**2 * bar  # unconditional per-bar variances
        self._var_i = cfg.idio_vol**2 * bar
        self._h_m = self._var_m
        self._h_i: F64 = np.full(n, self._var_i)
        self._log_close: F64 = rng.uniform(np.log(0.01), np.log(50_000.0), n)
        notional = cfg.notional_5m * cfg.tf.seconds / 300
        self._log_notional: F64 = rng.normal(np.log(notional), cfg.notional_sigma, n)
        self.regime = int(rng.integers(len(self._drift)))
        self.ts = cfg.start_ms
        self._code = np.arange(n, dtype=np.int32)

    def step_arrays(self) -> tuple[int, F64, F64, F64, F64, F64]:
        """``(ts, open, high, low, close, volume)`` of the next bar of every symbol."""
        cfg, rng, n = self.config, self._rng, self.config.n_symbols
        k = self.regime
        z_m = rng.standard_t(_T_DF) * _T_SCALE
        z_i = rng.standard_t(_T_DF, n) * _T_SCALE
        wick_up, wick_dn = np.abs(rng.standard_normal((2, n)))
        noise = rng.standard_normal(n)
        u = rng.random()

        eps_m = np.sqrt(self._h_m) * z_m
        eps_i = np.sqrt(self._h_i) * z_i
        mult = self._vol_mult[k]
        ret = self._drift[k] + mult * (self.beta * eps_m + eps_i)

        log_open = self._log_close
        log_close = log_open + ret
        sigma = mult * np.sqrt(self.beta**2 * self._h_m + self._h_i)
        log_high = np.maximum(log_open, log_close) + cfg.wick * sigma * wick_up
        log_low = np.minimum(log_open, log_close) - cfg.wick * sigma * wick_dn
        size = np.abs(ret) / np.maximum(sigma, 1e-12)  # |return| in bar sigmas
        log_notional = (
            self._log_notional
            + self._vol_log[k]
            + cfg.volume_gamma * size
            + cfg.volume_noise * noise
        )
        o, c = np.exp(log_open), np.exp(log_close)
        h = np.maximum(np.exp(log_high), np.maximum(o, c))  # exp rounding must not break OHLC
        lo = np.minimum(np.exp(log_low), np.minimum(o, c))
        volume = np.exp(log_notional) / c

        a, b = cfg.garch_alpha, cfg.garch_beta
        self._h_m = self._var_m * (1 - a - b) + a * eps_m**2 + b * self._h_m
        self._h_i = self._var_i * (1 - a - b) + a * eps_i**2 + b * self._h_i
        self._log_close = log_close
        self.regime = int(np.searchsorted(self._cum_transition[k], u, side="right"))
        self.regime = min(self.regime, len(self._drift) - 1)
        ts = self.ts
        self.ts += cfg.tf.ms
        return ts, o, h, lo, c, volume

    def step(self) -> Bars:
        """The next cross-section, one bar per symbol, sorted by symbol."""
        ts, o, h, lo, c, v = self.step_arrays()
        return Bars(self.symbols, self._code, np.full(len(o), ts, np.int64), o, h, lo, c, v)

    def __iter__(self) -> Iterator[tuple[int, Bars]]:
        """Endless ``(ts, cross-section)`` pairs."""
        while True:
            cycle = self.step()
            yield int(cycle.ts[0]), cycle


def _transition(expected_hours: F64, tf: Timeframe) -> F64:
    """Markov matrix: stay with ``1 - bar / duration``, leave evenly to the other regimes."""
    k = len(expected_hours)
    leave = np.clip(tf.seconds / (expected_hours * 3_600.0), 0.0, 1.0)
    if k == 1:
        return np.ones((1, 1))
    p = np.repeat((leave / (k - 1))[:, None], k, axis=1)
    np.fill_diagonal(p, 1.0 - leave)
    return p


def generate(
    n_symbols: int = 1_200,
    n_bars: int = 288,
    tf: str | Timeframe = BASE,
    seed: int = 0,
    start_ms: int = DEFAULT_START_MS,
    **params: Any,
) -> Bars:
    """``n_bars`` cycles of ``n_symbols`` synthetic bars, sorted ``(ts, symbol)``.

    Identical to concatenating :func:`cycles` with the same arguments.
    ``params`` override other :class:`GeneratorConfig` fields.
    """
    gen = MarketGenerator(
        GeneratorConfig(n_symbols=n_symbols, tf=parse(tf), seed=seed, start_ms=start_ms, **params)
    )
    cols = np.empty((5, n_bars, n_symbols), dtype=np.float64)
    for t in range(n_bars):
        _, *values = gen.step_arrays()
        cols[:, t, :] = values
    ts = np.repeat(start_ms + np.arange(n_bars, dtype=np.int64) * gen.config.tf.ms, n_symbols)
    code = np.tile(np.arange(n_symbols, dtype=np.int32), n_bars)
    return Bars(gen.symbols, code, ts, *(cols[i].reshape(-1) for i in range(5)))


def cycles(
    n_symbols: int = 1_200,
    n_bars: int | None = None,
    tf: str | Timeframe = BASE,
    seed: int = 0,
    start_ms: int = DEFAULT_START_MS,
    **params: Any,
) -> Iterator[tuple[int, Bars]]:
    """``(ts, cross-section)`` pairs, endless when ``n_bars`` is None."""
    gen = MarketGenerator(
        GeneratorConfig(n_symbols=n_symbols, tf=parse(tf), seed=seed, start_ms=start_ms, **params)
    )
    steps = range(n_bars) if n_bars is not None else itertools.count()
    for _ in steps:
        cycle = gen.step()
        yield int(cycle.ts[0]), cycle
