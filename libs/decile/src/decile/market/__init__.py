"""Pure market-data layer: bars, timeframes, file loaders, quality gate, resampling, generator.

No broker, database or clock here: services pass ``now_ms`` and state in and
publish what comes out. See each module's docstring for the invariants.
"""

from decile.market.bars import Bars
from decile.market.generator import GeneratorConfig, MarketGenerator, generate
from decile.market.loaders import (
    LoadError,
    LoadErrorCode,
    demo_data_path,
    iter_cycles,
    load,
    load_demo,
    read_bars,
)
from decile.market.quality import QualityReason, QualityResult, QualityState, check
from decile.market.resample import Resampler, resample
from decile.market.timeframes import BASE, HIGHER, Timeframe, align

__all__ = [
    "BASE",
    "HIGHER",
    "Bars",
    "GeneratorConfig",
    "LoadError",
    "LoadErrorCode",
    "MarketGenerator",
    "QualityReason",
    "QualityResult",
    "QualityState",
    "Resampler",
    "Timeframe",
    "align",
    "check",
    "demo_data_path",
    "generate",
    "iter_cycles",
    "load",
    "load_demo",
    "read_bars",
    "resample",
]
