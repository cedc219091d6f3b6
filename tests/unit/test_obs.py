"""Logging: JSON lines carrying the service and the bound trace and event ids."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import structlog

from decile import obs


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """obs.configure() is process-wide: put structlog and the root logger back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    faststream_level = logging.getLogger("faststream").level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("faststream").setLevel(faststream_level)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    err = capsys.readouterr().err
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_json_lines_carry_the_service_level_time_and_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    obs.configure("risk", level="INFO", fmt="json")
    obs.get_logger("decile.test").info("cycle done", symbols=1200, rejected=3)
    [line] = _lines(capsys)
    assert line["event"] == "cycle done"
    assert line["service"] == "risk"
    assert line["level"] == "info"
    assert line["symbols"] == 1200
    assert line["rejected"] == 3
    assert datetime.fromisoformat(line["timestamp"]).utcoffset() is not None


def test_bound_trace_and_event_ids_appear_on_every_line_inside_the_block_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    obs.configure("confirm", fmt="json")
    log = obs.get_logger()
    trace_id, event_id = "0af7651916cd43dd8448eb211c80319c", "018e0f3a-7c2b-7d4e-8a9b-0c1d2e3f4a5b"
    with obs.bound(trace_id=trace_id, event_id=event_id):
        log.info("decided", decision="approve")
        log.warning("slow", ms=12)
    log.info("after")
    first, second, after = _lines(capsys)
    for line in (first, second):
        assert line["trace_id"] == trace_id
        assert line["event_id"] == event_id
        assert line["service"] == "confirm"
    assert first["decision"] == "approve"
    assert second["level"] == "warning"
    assert "trace_id" not in after
    assert "event_id" not in after
    assert after["service"] == "confirm"


def test_nested_bindings_restore_the_outer_values(capsys: pytest.CaptureFixture[str]) -> None:
    obs.configure("risk", fmt="json")
    log = obs.get_logger()
    with obs.bound(trace_id="a" * 32):
        with obs.bound(trace_id="b" * 32, event_id="e1"):
            log.info("inner")
        log.info("outer")
    inner, outer = _lines(capsys)
    assert inner["trace_id"] == "b" * 32
    assert outer["trace_id"] == "a" * 32
    assert "event_id" not in outer


def test_bindings_are_undone_when_the_block_raises(capsys: pytest.CaptureFixture[str]) -> None:
    obs.configure("risk", fmt="json")
    with pytest.raises(RuntimeError), obs.bound(trace_id="c" * 32):
        raise RuntimeError("handler failed")
    obs.get_logger().info("next")
    [line] = _lines(capsys)
    assert "trace_id" not in line


def test_lines_below_the_level_are_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    obs.configure("ingest", level="WARNING", fmt="json")
    log = obs.get_logger()
    log.debug("hidden")
    log.info("hidden too")
    log.error("shown")
    assert [line["event"] for line in _lines(capsys)] == ["shown"]


def test_auto_format_is_json_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    obs.configure("feature", fmt="auto")  # stderr is captured here: not a TTY
    obs.get_logger().info("hello")
    [line] = _lines(capsys)
    assert line["service"] == "feature"


def test_exceptions_are_rendered_into_the_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    obs.configure("risk", fmt="json")
    try:
        raise ValueError("bad bar")
    except ValueError:
        obs.get_logger().exception("handler failed")
    [line] = _lines(capsys)
    assert line["level"] == "error"
    assert "ValueError: bad bar" in line["exception"]


def test_stdlib_loggers_share_the_json_format_and_the_bound_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    obs.configure("execution", fmt="json")
    with obs.bound(trace_id="d" * 32):
        logging.getLogger("nats.client").warning("reconnecting")
    [line] = _lines(capsys)
    assert line["event"] == "reconnecting"
    assert line["service"] == "execution"
    assert line["trace_id"] == "d" * 32
    assert line["level"] == "warning"


def test_faststream_is_quieted_unless_debugging() -> None:
    obs.configure("risk", level="INFO", fmt="json")
    assert logging.getLogger("faststream").level == logging.WARNING


def test_capture_logs_sees_bound_ids_as_plain_dicts() -> None:
    obs.configure("risk", fmt="json")
    with (
        structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars]
        ) as logs,
        obs.bound(trace_id="e" * 32, event_id="ev-1"),
    ):
        obs.get_logger().info("rejected", gate="daily_loss")
    assert logs == [
        {
            "event": "rejected",
            "gate": "daily_loss",
            "log_level": "info",
            "service": "risk",
            "trace_id": "e" * 32,
            "event_id": "ev-1",
        }
    ]
