from typing import Annotated

from pydantic import Field

from decile.config import Section, ServiceSettings


class FeatureSection(Section):
    """``DECILE_FEATURE__*``"""

    tf: str = "5m"  # the base timeframe whose cycles are featurised
    health_window: Annotated[int, Field(ge=10, le=100_000)] = 288  # cycles per health check
    max_null_rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    rebuild: bool = True  # replay the MD stream into state on start


class FeatureSettings(ServiceSettings):
    service: str = "feature"
    feature: FeatureSection = FeatureSection()
