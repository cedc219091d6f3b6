from typing import Annotated, Literal

from pydantic import Field

from decile.config import Section, ServiceSettings


class IngestSection(Section):
    """``DECILE_INGEST__*``. Defaults replay the bundled real sample as fast as possible."""

    source: Literal["replay", "generator", "live"] = "replay"
    path: str | None = None  # file or directory; None = bundled demo sample
    tf: Literal["1m", "5m", "15m", "1h"] = "5m"  # base timeframe of the source
    higher: tuple[Literal["15m", "1h", "4h", "1d"], ...] = ("15m", "1h", "4h")
    speed: Annotated[float, Field(ge=0)] = 0.0  # 0 = as fast as possible, else x real time
    start: str | None = None  # ISO time or ms; inclusive
    end: str | None = None  # exclusive
    symbols: tuple[str, ...] | None = None
    grace_s: Annotated[float, Field(ge=0, le=3600)] = 10.0  # live watermark after bar close
    generator_symbols: Annotated[int, Field(ge=1, le=20_000)] = 50
    generator_bars: Annotated[int, Field(ge=1)] | None = None  # None = endless
    seed: int = 7
    live_symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT")
    ws_url: str = "wss://stream.binance.com:9443"
    rest_url: str = "https://api.binance.com"
    max_inflight: Annotated[int, Field(ge=1, le=100_000)] = 512  # unacked publishes
    # replay in step with the fleet: a cycle is published once every durable consumer
    # (but the recorder's) handled everything before it, as with live bars minutes apart;
    # a replay then decides exactly as live trading would have (decile.settle)
    lockstep: bool = False


class IngestSettings(ServiceSettings):
    service: str = "ingest"
    ingest: IngestSection = IngestSection()
