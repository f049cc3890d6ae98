"""Every edge command that reads data checks the acting user's role, audits the
decision and refuses with one line and a non-zero exit; the file-to-file commands
and `init` need no token. One small synthetic hospital, synced once through the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner, Result

from edge_node import cli as edge_cli
from edge_node.security.access import (
    COMMAND_ROLES,
    OPEN_COMMANDS,
    acting_token,
    read_token_file,
)
from edge_node.security.audit import AuditLog
from edge_node.security.users import Role
from edge_node.settings import load_settings
from edge_node.store.database import open_state_db
from edge_node.store.models import TaskDecision
from edge_node.store.tasks import TaskStore
from ops.synth.hospital import write_hospital
from ops.synth.mappings import mapping_text
from ops.synth.variants import get_variant
from protocol.messages import TaskAssignment
from shared_cdm.errors import InvalidInput

runner = CliRunner()
PSEUDONYM = "0123456789abcdef0123456789abcdef"
USERS = {"carl": Role.CLINICIAN, "hana": Role.HONEST_BROKER}


@dataclass
class Site:
    home: Path
    tokens: dict[str, str]
    token_file: Path

    def run(self, *args: str, token: str | None = None) -> Result:
        env = {"ONCOFED_EDGE_TOKEN": token} if token else None
        return runner.invoke(edge_cli.app, [*args, "--home", str(self.home)], env=env)

    def audit(self, action: str) -> list[tuple[str, str]]:
        engine = open_state_db(load_settings(self.home).state_db_url)
        try:
            return [
                (e.actor, str(e.details.get("outcome")))
                for e in AuditLog(engine).entries(action=action)
            ]
        finally:
            engine.dispose()


def _commands(group: click.Group, prefix: str = "") -> Iterator[str]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """An edge (SQLite) with a 6-patient hospital, its first operator bootstrapped by
    `init --operator`, a clinician and an honest broker added by the operator."""
    root = tmp_path_factory.mktemp("roles")
    hospital = root / "hospital"
    write_hospital(hospital, patients=6, seed=11, variant=get_variant("A"))
    with pytest.MonkeyPatch.context() as env:
        for name in [k for k in os.environ if k.startswith("ONCOFED_EDGE_")]:
            env.delenv(name)
        home, token_file = root / "edge", root / "olga.token"
        init = runner.invoke(
            edge_cli.app,
            [
                "init",
                "--site",
                "site-a",
                "--hub",
                "127.0.0.1:50051",
                "--operator",
                "olga",
                "--token-file",
                str(token_file),
                "--home",
                str(home),
            ],
        )
        assert init.exit_code == 0, init.output
        assert "olga.token" in init.output and "oet_" not in init.output
        # the shipped mapping's paths are relative to the hospital folder
        (hospital / "mapping.yaml").write_text(mapping_text("A"), encoding="utf-8")
        with (home / "edge.toml").open("a", encoding="utf-8") as config:
            config.write(f"mapping_file = {json.dumps(str(hospital / 'mapping.yaml'))}\n")
        site = Site(home, {"olga": read_token_file(token_file)}, token_file)
        for name, role in USERS.items():
            added = site.run("users", "add", name, "--role", role, token=site.tokens["olga"])
            assert added.exit_code == 0, added.output
            site.tokens[name] = added.stdout.strip()
        engine = open_state_db(load_settings(home).state_db_url)
        store = TaskStore(engine)
        for task_id in ("t-1", "t-2"):
            task = TaskAssignment(
                task_id, "study-9", 0, "cox", "default", {}, "bob", datetime.now(UTC)
            )
            store.add_if_new(task, TaskDecision.AWAITING_APPROVAL)
        engine.dispose()
        csv = root / "ages.csv"
        csv.write_text("age\n" + "\n".join(str(40 + i) for i in range(20)) + "\n", "utf-8")
        (root / "out").mkdir()
        yield site


def _args(command: str, site: Site) -> list[str]:
    root = site.home.parent
    extra: dict[str, list[str]] = {
        "sync": ["--quiet"],
        "mapping suggest": ["--source", "emr"],
        "export-omop": [str(root / "out")],
        "dataset add": ["ages", str(root / "ages.csv")],
        "dataset remove": ["ages"],
        "tasks approve": ["t-1"],
        "tasks reject": ["t-2", "--reason", "no"],
        "users add": ["eve", "--role", "clinician"],
        "users disable": ["carl"],
        "reidentify": [PSEUDONYM],
        "predict": ["study-1"],
    }
    return [*command.split(), *extra.get(command, [])]


def test_every_command_is_gated_or_open_for_a_reason() -> None:
    commands = set(_commands(typer.main.get_command(edge_cli.app)))  # type: ignore[arg-type]
    assert not set(COMMAND_ROLES) & set(OPEN_COMMANDS)
    unclassified = commands - set(COMMAND_ROLES) - set(OPEN_COMMANDS)
    assert not unclassified, f"commands with no rule in COMMAND_ROLES: {sorted(unclassified)}"
    assert set(COMMAND_ROLES) <= commands
    assert COMMAND_ROLES["reidentify"] == {Role.HONEST_BROKER}
    for command in ("sync", "mapping suggest", "quarantine list", "export-omop", "run"):
        assert COMMAND_ROLES[command] == {Role.SITE_OPERATOR}, command


def _outsider(command: str) -> str:
    """A user holding none of the roles `command` needs."""
    needed = COMMAND_ROLES[command]
    return next(n for n, r in {"olga": Role.SITE_OPERATOR, **USERS}.items() if r not in needed)


@pytest.mark.parametrize("command", sorted(COMMAND_ROLES))
def test_refused_without_a_token_with_a_bad_one_and_without_the_role(
    command: str, site: Site
) -> None:
    action = command.replace(" ", ".")
    before = len(site.audit(action))
    outsider = _outsider(command)
    attempts = [
        (None, "no token"),
        ("oet_not-a-token", "not valid"),
        (site.tokens[outsider], "role"),
    ]
    for token, why in attempts:
        refused = site.run(*_args(command, site), token=token)
        assert refused.exit_code == 5, (command, token, refused.output)
        lines = refused.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), refused.output
        assert why in lines[0]
        assert "Traceback" not in refused.output
    entries = site.audit(action)[before:]
    assert [outcome for _, outcome in entries] == ["refused"] * 3
    assert [actor for actor, _ in entries][1:] == ["unknown-token", outsider]


def test_refused_commands_change_nothing(site: Site) -> None:
    carl = site.tokens["carl"]
    added = site.run("dataset", "add", "ages", str(site.home.parent / "ages.csv"), token=carl)
    assert added.exit_code == 5
    listed = site.run("dataset", "list", token=carl)
    assert listed.exit_code == 0, listed.output
    assert "ages" not in listed.stdout
    assert site.run("tasks", "approve", "t-1", token=carl).exit_code == 5
    tasks = site.run("tasks", "list", token=carl).stdout
    assert "t-1\tstudy-9\tcox\tawaiting_approval" in tasks


@contextmanager
def _agent_that_starts_and_stops(_settings: Any) -> Iterator[Any]:
    class Agent:
        def run(self, _stop: Any, on_ready: Any) -> None:
            on_ready(None)

    yield Agent()


def test_each_command_works_for_its_role(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    olga, carl = site.tokens["olga"], site.tokens["carl"]
    steps: list[tuple[str, str, int]] = [
        ("sync", olga, 0),
        ("mapping suggest", olga, 0),
        ("quarantine list", olga, 0),
        ("export-omop", olga, 0),
        ("dataset add", olga, 0),
        ("dataset list", carl, 0),
        ("dataset list", olga, 0),
        ("dataset remove", olga, 0),
        ("tasks list", carl, 0),
        ("tasks approve", olga, 0),
        ("tasks reject", olga, 0),
        ("ledger list", carl, 0),
        ("ledger budget", carl, 0),
        ("policy show", carl, 0),
        ("audit verify", olga, 0),
    ]
    outputs: dict[str, str] = {}
    for command, token, code in steps:
        done = site.run(*_args(command, site), token=token)
        assert done.exit_code == code, (command, done.output)
        outputs[command] = done.stdout
    assert "sync run 1: finished" in outputs["sync"]
    assert "target: patient" in outputs["mapping suggest"]
    assert (site.home.parent / "out" / "person.csv").exists()
    assert "ages\tflat\t20 rows" in outputs["dataset list"]
    assert "min_cell_size" in outputs["policy show"]
    analysis = sa.create_engine(load_settings(site.home).analysis_db_url)
    with analysis.connect() as conn:
        pseudonym = conn.execute(sa.text("SELECT min(person_source_value) FROM person")).scalar()
    analysis.dispose()
    found = site.run("reidentify", str(pseudonym), token=site.tokens["hana"])
    assert found.exit_code == 0, found.output
    assert found.stdout.startswith("P0")
    assert site.audit("reidentify")[-1] == ("hana", "granted")

    monkeypatch.setattr(edge_cli, "edge_agent", _agent_that_starts_and_stops)
    started = site.run("run", token=olga)
    assert started.exit_code == 0, started.output
    assert "edge site-a ready" in started.stdout

    for command, token, _ in steps:
        who = next(n for n, t in site.tokens.items() if t == token)
        assert (who, "granted") in site.audit(command.replace(" ", ".")), command
    assert site.audit("run")[-1] == ("olga", "granted")


def test_a_token_file_acts_like_the_token(site: Site, tmp_path: Path) -> None:
    by_file = runner.invoke(
        edge_cli.app,
        ["policy", "show", "--token-file", str(site.token_file), "--home", str(site.home)],
    )
    assert by_file.exit_code == 0, by_file.output
    by_env = runner.invoke(
        edge_cli.app,
        ["tasks", "list", "--home", str(site.home)],
        env={"ONCOFED_EDGE_TOKEN_FILE": str(site.token_file)},
    )
    assert by_env.exit_code == 0, by_env.output
    shared = tmp_path / "shared.token"
    shared.write_text(site.tokens["olga"] + "\n")
    shared.chmod(0o644)
    loose = site.run("policy", "show", "--token-file", str(shared))
    assert loose.exit_code == 3
    assert "chmod 600" in loose.output
    # the command line wins over the environment: the clinician's file, the broker's env
    carl = tmp_path / "carl.token"
    carl.write_text(site.tokens["carl"])
    carl.chmod(0o600)
    mixed = site.run("ledger", "budget", "--token-file", str(carl), token=site.tokens["hana"])
    assert mixed.exit_code == 0, mixed.output


def test_acting_token_order_and_bad_token_files(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text("oet_file\n")
    path.chmod(0o600)
    assert acting_token("oet_given", path) == "oet_given"  # no command line: token first
    assert acting_token(None, path) == "oet_file"
    assert acting_token(None, None) is None
    for content, mode in [("", 0o600), ("two words", 0o600), ("oet_x", 0o640)]:
        path.write_text(content)
        path.chmod(mode)
        with pytest.raises(InvalidInput):
            read_token_file(path)
    with pytest.raises(InvalidInput, match="does not exist"):
        read_token_file(tmp_path / "absent")


def test_init_bootstraps_only_the_first_operator(site: Site, tmp_path: Path) -> None:
    assert site.token_file.stat().st_mode & 0o777 == 0o600
    again = runner.invoke(
        edge_cli.app,
        [
            "init",
            "--site",
            "site-a",
            "--hub",
            "127.0.0.1:50051",
            "--operator",
            "mallory",
            "--token-file",
            str(tmp_path / "mallory.token"),
            "--home",
            str(site.home),
        ],
    )
    assert again.exit_code == 6, again.output
    assert "already has a site operator" in again.output
    assert not (tmp_path / "mallory.token").exists()

    fresh = tmp_path / "fresh"
    printed = runner.invoke(
        edge_cli.app,
        ["init", "--site", "s2", "--hub", "h:1", "--operator", "ivan", "--home", str(fresh)],
        env={"ONCOFED_EDGE_TOKEN_FILE": None},
    )
    assert printed.exit_code == 0, printed.output
    token = printed.stdout.strip()
    assert token.startswith("oet_")
    listed = runner.invoke(
        edge_cli.app, ["users", "list", "--home", str(fresh)], env={"ONCOFED_EDGE_TOKEN": token}
    )
    assert "ivan\tsite_operator\t" in listed.stdout

    taken = tmp_path / "taken.token"
    taken.write_text("something")
    third = runner.invoke(
        edge_cli.app,
        [
            "init",
            "--site",
            "s3",
            "--hub",
            "h:1",
            "--operator",
            "x",
            "--token-file",
            str(taken),
            "--home",
            str(tmp_path / "third"),
        ],
    )
    assert third.exit_code == 6
    assert "refusing to overwrite" in third.output
    assert taken.read_text() == "something"
    # no operator was added: commands say how to bootstrap, and it still works
    empty = runner.invoke(edge_cli.app, ["tasks", "list", "--home", str(tmp_path / "third")])
    assert empty.exit_code == 5
    assert "no site operator yet" in empty.output
    ok = runner.invoke(
        edge_cli.app,
        ["users", "add", "x", "--role", "site_operator", "--home", str(tmp_path / "third")],
    )
    assert ok.exit_code == 0, ok.output


def test_file_to_file_commands_need_no_token(site: Site, tmp_path: Path) -> None:
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"id": "1", "lang": "en", "text": "Seen by Dr Smith on 2020-03-04."}\n')
    out = tmp_path / "out.jsonl"
    done = runner.invoke(edge_cli.app, ["deid-text", "--in", str(notes), "--out", str(out)], env={})
    assert done.exit_code == 0, done.output
    assert "Smith" not in out.read_text()


def test_sync_refuses_a_bad_scrub_worker_count_before_reading_anything(site: Site) -> None:
    olga = site.tokens["olga"]
    bad = site.run("sync", "--quiet", "--scrub-workers", "two", token=olga)
    assert bad.exit_code != 0
    assert "ONCOFED_SCRUB_WORKERS must be a whole number" in bad.output
    assert "Traceback" not in bad.output
    good = site.run("sync", "--quiet", "--scrub-workers", "1", token=olga)
    assert good.exit_code == 0, good.output
    assert ": finished" in good.stdout
