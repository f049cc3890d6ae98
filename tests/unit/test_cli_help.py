"""Every command of the three console scripts says what it does in `--help`."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
import typer
from typer.testing import CliRunner

from edge_node.cli import app as edge_app
from hub.cli import app as hub_app
from ops.cli import app as ops_app

APPS = {"oncofed-edge": edge_app, "oncofed-hub": hub_app, "oncofed-ops": ops_app}


def _commands(group: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(group, click.Group):
        for name, sub in group.commands.items():
            yield from _commands(sub, (*path, name))


def _all() -> list[tuple[str, tuple[str, ...]]]:
    found = []
    for script, app in APPS.items():
        root = typer.main.get_command(app)
        found += [(script, path) for path in _commands(root, ())]
    return found


@pytest.mark.parametrize(
    ("script", "path"), _all(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else v
)
def test_every_command_has_a_help_text(script: str, path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(APPS[script], [*path, "--help"])
    assert result.exit_code == 0, result.output
    root = typer.main.get_command(APPS[script])
    command: click.Command = root
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert (command.help or "").strip(), f"{script} {' '.join(path)} has no help text"
    assert "Usage" in result.output


def test_the_walk_found_the_contract_commands() -> None:
    paths = {(s, " ".join(p)) for s, p in _all()}
    for expected in [
        ("oncofed-ops", "local-federation"),
        ("oncofed-ops", "ca init"),
        ("oncofed-hub", "users add"),
        ("oncofed-edge", "tasks approve"),
        ("oncofed-edge", "dataset add"),
    ]:
        assert expected in paths
