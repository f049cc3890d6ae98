"""What every `oncofed-edge` command module shares: a typed error becomes one line
and its exit code, and the edge's settings are read that way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer

from edge_node.errors import exit_code_for
from edge_node.settings import EdgeSettings, load_settings
from shared_cdm.errors import OncoFedError

T = TypeVar("T")


def run_command(action: Callable[[], T]) -> T:
    """Run a command body; a typed error becomes a one-line message and its exit code."""
    try:
        return action()
    except OncoFedError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(exit_code_for(exc)) from exc


def settings_or_exit(home: Path) -> EdgeSettings:
    return run_command(lambda: load_settings(home))
