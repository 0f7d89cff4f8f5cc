"""What every ``hub`` command prints when it fails or warns: one line on stderr, exit 2 for usage and settings, 1
for what the world did (hub/cli.py)."""

from __future__ import annotations

import typer

USAGE = 2
RUNTIME = 1


def fail(message: str, code: int = USAGE) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def warn(message: str) -> None:
    typer.secho(f"warning: {message}", err=True, fg=typer.colors.YELLOW)


def plugin_list(value: str | None) -> list[str] | None:
    """``--plugins a,b``: the names, or None for every installed plugin."""
    return None if value is None else [name.strip() for name in value.split(",") if name.strip()]
