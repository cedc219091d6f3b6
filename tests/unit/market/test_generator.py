import numpy as np
import numpy.typing as npt
import pytest

from decile.market.bars import Bars
from decile.market.generator import (
    DEFAULT_START_MS,
    GeneratorConfig,
    MarketGenerator,
    cycles,
    generate,
    symbol_names,
)
from decile.market.quality import QualityState, check
from decile.market.timeframes import Timeframe

N_SYM = 1_200
N_BARS = 600


@pytest.fixture(scope="module")
def market() -> Bars:
    return generate(N_SYM, N_BARS, seed=11)


def grid(bars: Bars, field: str) -> npt.NDArray[np.float64]:
    """A (bar, symbol) matrix: generated bars come in (ts, symbol) order, one per symbol."""
    return np.asarray(getattr(bars, field), dtype=np.float64).reshape(-1, len(bars.symbols))


def log_returns(bars: Bars) -> npt.NDArray[np.float64]:
    return np.asarray(np.log(grid(bars, "close") / grid(bars, "open")))


def mean_corr(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    """Average over symbols (columns) of the correlation of a[:, i] with b[:, i]."""
    a = (a - a.mean(0)) / a.std(0)
    b = (b - b.mean(0)) / b.std(0)
    return float((a * b).mean(0).mean())


def test_the_same_seed_gives_identical_bars_and_another_seed_does_not() -> None:
    a = generate(50, 100, seed=3)
    assert a.equals(generate(50, 100, seed=3))
    assert not a.equals(generate(50, 100, seed=4))


def test_one_call_and_cycle_by_cycle_generation_give_the_same_bars() -> None:
    whole = generate(40, 120, seed=9)
    stepped = Bars.concat([c for _, c in cycles(40, 120, seed=9)])
    assert stepped.equals(whole)


def test_symbols_are_named_like_usdt_pairs_and_sorted(market: Bars) -> None:
    assert market.symbols[:2] == ("SYN0001/USDT", "SYN0002/USDT")
    assert market.symbols[-1] == "SYN1200/USDT"
    assert len(market) == N_SYM * N_BARS
    assert symbol_names(12_000)[0] == "SYN00001/USDT"


def test_bars_are_in_event_order_on_the_timeframe_grid_from_the_start_time(market: Bars) -> None:
    assert market.is_sorted()
    assert market.ts[0] == DEFAULT_START_MS
    assert np.all(np.unique(np.diff(np.unique(market.ts))) == 300_000)
    hourly = generate(5, 10, tf="1h", start_ms=0)
    assert np.unique(hourly.ts).tolist() == [k * 3_600_000 for k in range(10)]


def test_every_generated_bar_passes_the_quality_check(market: Bars) -> None:
    result = check(market, QualityState.initial("5m"), now_ms=int(market.ts.max()) + 300_000)
    assert len(result.rejected) == 0
    assert result.gaps.total == 0


def test_open_is_the_previous_close(market: Bars) -> None:
    assert np.array_equal(grid(market, "open")[1:], grid(market, "close")[:-1])


def test_returns_move_with_a_common_market_factor(market: Bars) -> None:
    r = log_returns(market)
    factor = np.repeat(r.mean(1, keepdims=True), r.shape[1], axis=1)
    assert mean_corr(r, factor) > 0.4


def test_volatility_clusters_while_returns_stay_unpredictable(market: Bars) -> None:
    r = log_returns(market)
    assert mean_corr(np.abs(r[1:]), np.abs(r[:-1])) > 0.05
    assert abs(mean_corr(r[1:], r[:-1])) < 0.03


def test_returns_have_fat_tails(market: Bars) -> None:
    r = log_returns(market)
    z = (r - r.mean(0)) / r.std(0)
    assert float((z**4).mean()) > 4.0  # a normal distribution gives 3


def test_volume_rises_with_the_size_of_the_move(market: Bars) -> None:
    r = log_returns(market)
    assert mean_corr(np.log(grid(market, "volume")), np.abs(r)) > 0.2


def test_the_regime_chain_visits_every_regime_and_stays_a_while() -> None:
    gen = MarketGenerator(n_symbols=2, seed=1)
    regimes = []
    for _ in range(20_000):
        gen.step_arrays()
        regimes.append(gen.regime)
    visits = np.bincount(regimes, minlength=3)
    switches = int(np.count_nonzero(np.diff(regimes)))
    assert np.all(visits > 0)
    assert 5 < switches < 20_000 / 24  # regimes last hours, not bars


def test_a_start_time_off_the_timeframe_grid_is_refused() -> None:
    with pytest.raises(ValueError, match="not a 5m bar boundary"):
        GeneratorConfig(start_ms=DEFAULT_START_MS + 1)


def test_an_explosive_garch_is_refused() -> None:
    with pytest.raises(ValueError, match="garch"):
        GeneratorConfig(garch_alpha=0.2, garch_beta=0.85)


def test_the_timeframe_is_configurable() -> None:
    gen = MarketGenerator(n_symbols=3, tf="4h")
    assert gen.config.tf is Timeframe.H4
    first, second = gen.step(), gen.step()
    assert int(second.ts[0] - first.ts[0]) == 4 * 3_600_000
