"""The sealed re-identification map through the commands an operator runs: `init`
writes the vault key, `sync` refuses without one, `quarantine list` opens the
sealed reasons and rows with it and fails loudly with another key, and altered or
swapped ciphertexts are caught (SQLite, a small synthetic hospital)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from edge_node import cli as edge_cli
from edge_node.security.access import ENV_TOKEN_FILE
from edge_node.security.vault import ENV_KEY, KEY_FILE
from edge_node.settings import load_settings
from ops.synth.hospital import write_hospital
from ops.synth.mappings import mapping_text
from ops.synth.variants import get_variant

runner = CliRunner()


@dataclass
class Edge:
    home: Path
    token_file: Path
    hospital: Path

    def run(self, *args: str, vault_key: str | None = None) -> Result:
        env = {ENV_TOKEN_FILE: str(self.token_file)}
        if vault_key is not None:
            env[ENV_KEY] = vault_key
        return runner.invoke(edge_cli.app, [*args, "--home", str(self.home)], env=env)

    @property
    def state_url(self) -> str:
        return load_settings(self.home).state_db_url


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge]:
    """A fresh home set up by `init --operator`, no vault key in the environment."""
    hospital = tmp_path / "hospital"
    write_hospital(hospital, patients=12, seed=5, variant=get_variant("A"))
    (hospital / "mapping.yaml").write_text(mapping_text("A"), encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        for name in [k for k in os.environ if k.startswith("ONCOFED_EDGE_")]:
            env.delenv(name)  # conftest's vault key too: `init` must write one
        home, token_file = tmp_path / "edge", tmp_path / "olga.token"
        init = runner.invoke(
            edge_cli.app,
            [
                *("init", "--site", "site-a", "--hub", "127.0.0.1:50051", "--operator", "olga"),
                *("--token-file", str(token_file), "--home", str(home)),
            ],
        )
        assert init.exit_code == 0, init.output
        assert f"wrote vault key {home / KEY_FILE}" in init.output
        with (home / "edge.toml").open("a", encoding="utf-8") as config:
            config.write(f"mapping_file = {json.dumps(str(hospital / 'mapping.yaml'))}\n")
        yield Edge(home, token_file, hospital)


def _quarantine_rows(edge: Edge) -> list[dict[str, object]]:
    engine = sa.create_engine(edge.state_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM pipeline_quarantine ORDER BY id"))
            return [dict(r) for r in rows.mappings()]
    finally:
        engine.dispose()


def _set(edge: Edge, row_id: object, **values: object) -> None:
    engine = sa.create_engine(edge.state_url)
    try:
        with engine.begin() as conn:
            sets = ", ".join(f"{k} = :{k}" for k in values)
            conn.execute(
                sa.text(f"UPDATE pipeline_quarantine SET {sets} WHERE id = :id"),
                {**values, "id": row_id},
            )
    finally:
        engine.dispose()


def test_init_writes_the_vault_key_and_sync_refuses_without_one(edge: Edge) -> None:
    key = edge.home / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    key.rename(edge.home / "elsewhere.key")  # the operator moved it away
    refused = edge.run("sync", "--quiet")
    assert refused.exit_code != 0
    assert "no vault key" in refused.output and "oncofed-edge init" in refused.output
    assert "Traceback" not in refused.output
    engine = sa.create_engine(edge.state_url)
    try:
        with engine.connect() as conn:  # nothing was read
            assert conn.execute(sa.text("SELECT count(*) FROM pipeline_runs")).scalar() == 0
    finally:
        engine.dispose()


def test_quarantine_list_opens_sealed_reasons_and_fails_loudly_otherwise(edge: Edge) -> None:
    synced = edge.run("sync", "--quiet")
    assert synced.exit_code in (0, 3), synced.output
    stored = _quarantine_rows(edge)
    assert stored, "the synthetic hospital has rows to quarantine"
    listed = edge.run("quarantine", "list", "--limit", "1000")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert len(lines) == len(stored)
    for line, row in zip(lines, stored, strict=True):
        source, table, key, code, reason = line.split("\t")
        assert (source, table, code) == (row["source"], row["source_table"], row["code"])
        assert key != row["row_key"] and reason != row["reason"]  # opened, not the stored text
        assert reason and key
    # the summary needs no key: code and field stay in clear
    summary = edge.run("quarantine", "list", "--summary", vault_key="22" * 32)
    assert summary.exit_code == 0, summary.output

    wrong = edge.run("quarantine", "list", vault_key="33" * 32)
    assert wrong.exit_code != 0
    assert "another vault key" in wrong.output and "Traceback" not in wrong.output
    assert lines[0].split("\t")[4] not in wrong.output


def test_altered_or_swapped_quarantine_ciphertexts_are_detected(edge: Edge) -> None:
    edge.run("sync", "--quiet")
    stored = _quarantine_rows(edge)
    assert len(stored) >= 2
    first, second = stored[0], stored[1]
    _set(edge, first["id"], reason=second["reason"])  # another row's reason
    swapped = edge.run("quarantine", "list")
    assert swapped.exit_code != 0
    assert "integrity check" in swapped.output and "Traceback" not in swapped.output
    _set(edge, first["id"], reason=first["reason"])
    assert edge.run("quarantine", "list").exit_code == 0  # restored
    record = str(first["record"]).replace('"sealed": "', '"sealed": "A', 1)
    _set(edge, first["id"], record=record)
    altered = edge.run("quarantine", "list")
    assert altered.exit_code != 0 and "Traceback" not in altered.output
