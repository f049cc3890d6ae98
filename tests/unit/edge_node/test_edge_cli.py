"""`oncofed-edge` commands through typer's runner (the agent's `run` is tested with real
processes in tests/integration)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from edge_node.bootstrap import build_runner, edge_stores
from edge_node.cli import app
from edge_node.policy import load_policy
from edge_node.settings import load_settings
from edge_node.store.database import open_state_db
from edge_node.store.models import TaskDecision
from edge_node.store.tasks import TaskStore
from protocol.messages import ResultStatus, TaskAssignment

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ONCOFED_EDGE_STATE_DB_URL", db_url)
    monkeypatch.setenv("ONCOFED_EDGE_ANALYSIS_DB_URL", db_url)
    monkeypatch.delenv("ONCOFED_EDGE_TOKEN", raising=False)
    monkeypatch.delenv("ONCOFED_EDGE_TOKEN_FILE", raising=False)
    home = tmp_path / "edge"
    token_file = tmp_path / "operator.token"
    result = runner.invoke(
        app,
        [
            "init",
            "--home",
            str(home),
            "--site",
            "site-a",
            "--hub",
            "127.0.0.1:50051",
            "--operator",
            "olga",
            "--token-file",
            str(token_file),
        ],
    )
    assert result.exit_code == 0, result.output
    # every later command acts as the site operator `init` bootstrapped
    monkeypatch.setenv("ONCOFED_EDGE_TOKEN_FILE", str(token_file))
    return home


def test_init_writes_settings_and_policy_and_keeps_them(home: Path, tmp_path: Path) -> None:
    config = tomllib.loads((home / "edge.toml").read_text("utf-8"))
    assert config == {"site_name": "site-a", "hub_address": "127.0.0.1:50051"}
    assert 'count = "auto"' in (home / "policy.toml").read_text("utf-8")
    (home / "policy.toml").write_text("min_cell_size = 11\n", "utf-8")
    again = runner.invoke(app, ["init", "--home", str(home), "--site", "site-a", "--hub", "h:1"])
    assert again.exit_code == 0, again.output
    assert (home / "policy.toml").read_text("utf-8") == "min_cell_size = 11\n"
    assert (
        tomllib.loads((home / "edge.toml").read_text("utf-8"))["hub_address"] == "127.0.0.1:50051"
    )
    other = runner.invoke(app, ["init", "--home", str(home), "--site", "site-b", "--hub", "h:1"])
    assert other.exit_code == 6
    assert "site-a" in other.output


def test_init_with_a_tls_dir_points_the_settings_there(tmp_path: Path) -> None:
    home = tmp_path / "edge"
    result = runner.invoke(
        app,
        [
            "init",
            "--home",
            str(home),
            "--site",
            "s1",
            "--hub",
            "hub:50051",
            "--tls-dir",
            str(tmp_path / "ca"),
        ],
    )
    assert result.exit_code == 0, result.output
    settings = load_settings(home)
    assert settings.tls_cert == (tmp_path / "ca" / "s1.crt").resolve()
    assert settings.tls_ca_cert == (tmp_path / "ca" / "ca.crt").resolve()
    assert (home / "edge.db").exists() and (home / "analysis.db").exists()


def test_init_refuses_a_bad_hub_address(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["init", "--home", str(tmp_path), "--site", "s1", "--hub", "nohost"]
    )
    assert result.exit_code == 3
    assert "HOST:PORT" in result.output


def test_dataset_add_list_remove(home: Path, tmp_path: Path) -> None:
    csv = tmp_path / "lung.csv"
    csv.write_bytes("id,ph.ecog,性别\n1,0,男\n2,1,女\n".encode("gbk"))
    added = runner.invoke(app, ["dataset", "add", "default", str(csv), "--home", str(home)])
    assert added.exit_code == 0, added.output
    assert added.stdout.startswith("default\t2 rows\t3 columns")
    listed = runner.invoke(app, ["dataset", "list", "--home", str(home)])
    assert "default\tflat\t2 rows" in listed.stdout
    assert "id, ph.ecog, 性别" in listed.stdout
    removed = runner.invoke(app, ["dataset", "remove", "default", "--home", str(home)])
    assert removed.exit_code == 0
    # What remains is the CDM database, which `init` created (empty) and registered.
    rest = runner.invoke(app, ["dataset", "list", "--home", str(home)]).stdout.splitlines()
    assert [line.split("\t")[:3] for line in rest] == [["cdm", "cdm", "0 rows"]]
    missing = runner.invoke(app, ["dataset", "remove", "default", "--home", str(home)])
    assert missing.exit_code == 4


def test_malformed_csv_exits_with_the_invalid_input_code(home: Path, tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("a,b\n1,2,3\n", "utf-8")
    result = runner.invoke(app, ["dataset", "add", "bad", str(csv), "--home", str(home)])
    assert result.exit_code == 3
    assert "line 2 has 3 fields" in result.output


def test_tasks_list_approve_reject(home: Path) -> None:
    engine = open_state_db(load_settings(home).state_db_url)
    store = TaskStore(engine)
    for task_id in ("t-1", "t-2"):
        task = TaskAssignment(task_id, "study-9", 0, "cox", "default", {}, "bob", datetime.now(UTC))
        store.add_if_new(task, TaskDecision.AWAITING_APPROVAL)
    engine.dispose()
    listed = runner.invoke(app, ["tasks", "list", "--home", str(home)])
    lines = listed.stdout.splitlines()
    assert lines[0].split("\t")[:5] == ["task_id", "study", "analysis", "status", "received"]
    assert lines[1].split("\t")[:4] == ["t-1", "study-9", "cox", "awaiting_approval"]
    assert runner.invoke(app, ["tasks", "approve", "t-1", "--home", str(home)]).exit_code == 0
    rejected = runner.invoke(app, ["tasks", "reject", "t-2", "--reason", "no", "--home", str(home)])
    assert rejected.exit_code == 0
    again = runner.invoke(app, ["tasks", "approve", "t-2", "--home", str(home)])
    assert again.exit_code == 6
    assert "rejected" in again.output
    statuses = [
        line.split("\t")[3]
        for line in runner.invoke(app, ["tasks", "list", "--home", str(home)]).stdout.splitlines()[
            1:
        ]
    ]
    assert statuses == ["approved", "rejected"]
    assert runner.invoke(app, ["tasks", "approve", "t-404", "--home", str(home)]).exit_code == 4


def test_policy_show_and_a_broken_policy(home: Path) -> None:
    shown = runner.invoke(app, ["policy", "show", "--home", str(home)])
    assert "min_cell_size = 5" in shown.stdout
    assert "  count = auto" in shown.stdout
    (home / "policy.toml").write_text('[analyses]\ncox = "yes"\n', "utf-8")
    broken = runner.invoke(app, ["policy", "show", "--home", str(home)])
    assert broken.exit_code == 3
    assert "analyses.cox" in broken.output


def test_commands_without_init_say_so(tmp_path: Path) -> None:
    result = runner.invoke(app, ["tasks", "list", "--home", str(tmp_path / "nothing")])
    assert result.exit_code == 3
    assert "oncofed-edge init" in result.output


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix}{name} ")
    return found


def test_every_command_and_option_has_help() -> None:
    commands = _commands(typer.main.get_command(app))  # type: ignore[arg-type]
    names = {name for name, _ in commands}
    assert {"init", "run", "dataset add", "tasks reject", "policy show"} <= names
    for name, command in commands:
        assert command.help, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert getattr(param, "help", None), f"{name} {param.name}"


def test_ledger_list_and_budget(home: Path, tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("age\n" + "\n".join(str(40 + i) for i in range(30)) + "\n", "utf-8")
    assert (
        runner.invoke(app, ["dataset", "add", "default", str(csv), "--home", str(home)]).exit_code
        == 0
    )
    settings = load_settings(home)
    spec = {"analysis": "count", "dp": {"epsilon": 0.5}}
    task = TaskAssignment(
        "t-dp", "study-1", 0, "count", "default", spec, "alice", datetime.now(UTC)
    )
    with edge_stores(settings) as stores:
        result = build_runner(stores, load_policy(settings.policy_file)).run(task)
    assert result.status is ResultStatus.OK, result.message
    listed = runner.invoke(app, ["ledger", "list", "--home", str(home)]).stdout.splitlines()
    assert listed[0].split("\t")[:4] == ["released", "requester", "study", "task"]
    fields = listed[1].split("\t")
    assert fields[1:5] == ["alice", "study-1", "t-dp", "count"]
    assert fields[6].startswith("n=") and fields[7] == "0.5"
    mine = runner.invoke(app, ["ledger", "list", "--requester", "bob", "--home", str(home)])
    assert len(mine.stdout.splitlines()) == 1  # the header only
    budget = runner.invoke(app, ["ledger", "budget", "--home", str(home)]).stdout.splitlines()
    assert "alice\t0.5 of 3" in budget and "total\t0.5 of 10" in budget
