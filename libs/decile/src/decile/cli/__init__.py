"""The ``decile`` command: one typer app, each concern's commands in its own module.

To add commands, write ``decile/cli/<concern>.py`` with a ``register(app)``
function and list the module in :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import os

import typer

from decile import obs
from decile.cli import fleet, ingest, kill, models, train

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

app = typer.Typer(
    name="decile",
    help="Decile: run and inspect the fleet of NATS services on this machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

COMMAND_MODULES = (fleet, ingest, train, models, kill)


@app.callback()
def _logging() -> None:
    """Library logs go to stderr (stdout stays clean for --json), warnings and up by default."""
    level = os.environ.get("DECILE_OBS__LOG_LEVEL", "WARNING").upper()
    obs.configure("decile", level if level in LEVELS else "WARNING", "console")



for _module in COMMAND_MODULES:
    _module.register(app)


def main() -> None:
    """Console-script entry point (``decile = "decile.cli:main"``)."""
    app()
