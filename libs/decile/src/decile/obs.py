"""Logging: structlog, JSON lines when not on a TTY, a readable console otherwise.

``configure()`` runs once at start. Per-message facts are metrics, not log
lines: hot paths log one line per cycle, and FastStream's own per-message
broker logging is pushed down to DEBUG (see :func:`decile.bus.make_broker`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

_configured = False


class _Stderr:
    """Whatever ``sys.stderr`` is at write time.

    Loggers are cached on first use; a cached logger holding the stream object
    itself would keep writing to a stream that a test runner (or a CLI runner
    invoking several commands in one process) has since swapped and closed.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(service: str, level: str = "INFO", fmt: str = "auto") -> None:
    """Configure structlog and stdlib logging for one service process."""
    global _configured
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer]
        if use_json
        else [*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # stdlib loggers (FastStream, nats, asyncpg) go through the same renderer
    handler = logging.StreamHandler(_Stderr())  # type: ignore[arg-type]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer
        ], foreign_pre_chain=shared)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # FastStream logs per message and per pull-task lifecycle at INFO: not on our hot path
    if level != "DEBUG":
        logging.getLogger("faststream").setLevel(logging.WARNING)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    _configured = True


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Bind trace id, event id... for the handling of one message or cycle."""
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
