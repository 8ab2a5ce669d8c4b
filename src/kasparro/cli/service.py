"""``kasparro serve``, ``kasparro api`` and ``kasparro scheduler``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the service commands to the main app."""
