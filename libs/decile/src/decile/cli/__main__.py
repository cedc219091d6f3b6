"""``python -m decile.cli``: the same as the ``decile`` command."""

from decile.cli import main

main()
