"""The lockstep wait: a consumer listing caught mid-change means "not yet", never a crash."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from decile.settle import wait_settled
from decile.subjects import Subjects


class Server:
    """Stream and consumer infos as a JetStream server answers them; the first consumer
    listing fails the way nats-py does on a consumer described by null fields."""

    def __init__(self) -> None:
        self.listings = 0

    async def stream_info(self, name: str) -> Any:
        return SimpleNamespace(state=SimpleNamespace(last_seq=7))

    async def consumers_info(self, name: str) -> list[Any]:
        self.listings += 1
        if self.listings == 1:
            raise AttributeError("'NoneType' object has no attribute 'get'")
        idle = SimpleNamespace(config=SimpleNamespace(durable_name="risk-confirmed"),
                               num_pending=0, num_ack_pending=0)
        return [idle]


async def test_a_half_described_consumer_is_asked_again() -> None:
    server = Server()
    await wait_settled(server, Subjects("t"), streams=("MD",), poll_s=0.0,  # type: ignore[arg-type]
                       timeout_s=5.0)
    assert server.listings == 3  # failed, then two idle polls in a row
