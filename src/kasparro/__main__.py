"""``python -m kasparro``: the same as the ``kasparro`` command."""

from kasparro.cli import main

main()
