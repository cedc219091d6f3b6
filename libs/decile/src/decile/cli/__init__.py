"""The ``decile`` command: one typer app, each concern's commands in its own module.

To add commands, write ``decile/cli/<concern>.py`` with a ``register(app)``
function and list the module in :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import typer

from decile.cli import fleet, ingest, models, train

app = typer.Typer(
    name="decile",
    help="Decile: run and inspect the fleet of NATS services on this machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

COMMAND_MODULES = (fleet, ingest, train, models)

for _module in COMMAND_MODULES:
    _module.register(app)


def main() -> None:
    """Console-script entry point (``decile = "decile.cli:main"``)."""
    app()
