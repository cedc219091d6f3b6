from typing import Annotated

from pydantic import Field

from decile.config import Section, ServiceSettings


class RecorderSection(Section):
    """``DECILE_RECORDER__*``"""

    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 256  # messages per pull and per COPY


class RecorderSettings(ServiceSettings):
    service: str = "recorder"
    recorder: RecorderSection = RecorderSection()
