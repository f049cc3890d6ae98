"""A hub and edges as real processes talking gRPC with mutual TLS over loopback.

Every federation here is an `ops.federation.LocalFederation`, whose `with`
block stops every process it started, also when a test fails. The hub's
database is SQLite in one run of the module and PostgreSQL in the other.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from ops import ca
from ops.federation import LocalFederation
from ops.local_federation import hub_settings_for_local_run
from protocol.tls import CaFolder

pytestmark = pytest.mark.slow

T = TypeVar("T")
STUDY_TIMEOUT = 120.0
# Two-site studies: each site must accept results from as few as two sites.
TWO_SITE_POLICY = """\
min_cell_size = 5
min_sites = 2

[analyses]
count = "auto"
describe = "auto"
"""
MANUAL_COUNT_POLICY = TWO_SITE_POLICY.replace('count = "auto"', 'count = "manual"')
# What gRPC (BoringSSL) logs when a peer's certificate is not trusted: the side that
# checks says the handshake failed; the other side sees its connection fail.
HANDSHAKE_FAILED = re.compile(r"handshake failed", re.IGNORECASE)
CONNECTION_FAILED = re.compile(r"handshake failed|failed to connect", re.IGNORECASE)


def _site_table(seed: int, rows: int, elderly: int) -> pd.DataFrame:
    """`rows` patients of whom exactly `elderly` are 85 or older."""
    rng = np.random.default_rng(seed)
    age = np.concatenate([rng.integers(40, 85, rows - elderly), rng.integers(85, 95, elderly)])
    rng.shuffle(age)
    return pd.DataFrame(
        {
            "age": age,
            "stage": rng.choice(["I", "II", "III", "IV"], rows),
            "time": rng.integers(30, 1800, rows),
            "status": rng.integers(0, 2, rows),
        }
    )


def _wait_for(what: str, probe: Callable[[], T], timeout: float = 60.0) -> T:
    """The probe's first truthy answer."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def hub_db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# Tests of the hub's database run on both backends; tests of what the edges and TLS do
# run once, on SQLite, since the hub's backend plays no part in them.
BOTH_BACKENDS = pytest.mark.parametrize(
    "hub_db_kind", ["sqlite", "postgresql"], indirect=True, scope="module"
)
ONE_BACKEND = pytest.mark.parametrize("hub_db_kind", ["sqlite"], indirect=True, scope="module")


@pytest.fixture(scope="module")
def hub_db_url(
    hub_db_kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The module federation's hub database, on the backend of this run of the module."""
    if hub_db_kind == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('hubdb') / 'hub.db'}"
        return
    server = request.getfixturevalue("pg_server_url")
    name = f"oncofed_hub_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def fresh_hub_db_url(hub_db_kind: str, request: pytest.FixtureRequest) -> str:
    """An empty database of this run's backend, for a federation of a test's own."""
    return str(request.getfixturevalue("sqlite_url" if hub_db_kind == "sqlite" else "pg_url"))


class Federation:
    """A running LocalFederation plus the site tables the tests compare against."""

    def __init__(self, local: LocalFederation, db_url: str, tables: dict[str, pd.DataFrame]):
        self.local = local
        self.db_url = db_url
        self.tables = tables

    def csv(self, site: str) -> Path:
        return self.local.layout.root / "data" / f"{site}.csv"

    def policy(self, name: str) -> Path:
        return self.local.layout.root / "data" / f"{name}.toml"

    def hub_rows(self, query: str, **params: Any) -> list[sa.Row[Any]]:
        engine = sa.create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(query), params))
        finally:
            engine.dispose()

    def task_of(self, study_id: str, site: str) -> sa.Row[Any] | None:
        """The hub's row for SITE's task in the study (one round: at most one)."""
        rows = self.hub_rows(
            "SELECT id, status FROM tasks WHERE study_id = :s AND node_name = :n",
            s=study_id,
            n=site,
        )
        return rows[0] if rows else None

    def submit(self, spec: dict[str, Any], sites: list[str]) -> str:
        with self.local.client() as hub:
            return str(hub.submit_study(spec, sites=sites)["id"])

    def wait(self, study_id: str) -> dict[str, Any]:
        with self.local.client() as hub:
            return hub.wait_for_study(study_id, timeout=STUDY_TIMEOUT)


def _task_status(fed: Federation, study_id: str, site: str) -> str | None:
    task = fed.task_of(study_id, site)
    return None if task is None else str(task.status)


def _task_in(fed: Federation, study_id: str, site: str, status: str) -> sa.Row[Any] | None:
    task = fed.task_of(study_id, site)
    return task if task is not None and task.status == status else None


def _start(root: Path, db_url: str, tables: dict[str, pd.DataFrame]) -> Federation:
    (root / "data").mkdir(parents=True)
    for site, frame in tables.items():
        frame.to_csv(root / "data" / f"{site}.csv", index=False)
    (root / "data" / "two-site.toml").write_text(TWO_SITE_POLICY, encoding="utf-8")
    (root / "data" / "manual.toml").write_text(MANUAL_COUNT_POLICY, encoding="utf-8")
    local = LocalFederation(root, ready_timeout=90, grace=10)
    local.__enter__()
    try:
        local.init_ca()
        local.start_hub(auto_approve=True, db_url=db_url, settings=hub_settings_for_local_run())
    except BaseException:
        local.__exit__(None, None, None)
        raise
    return Federation(local, db_url, tables)


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory, hub_db_url: str) -> Iterator[Federation]:
    """Hub plus edges A and B (two-site policy); C (count = manual) joins on demand."""
    tables = {
        "A": _site_table(1, 60, elderly=3),
        "B": _site_table(2, 45, elderly=9),
        "C": _site_table(3, 30, elderly=6),
    }
    fed = _start(tmp_path_factory.mktemp("federation"), hub_db_url, tables)
    try:
        fed.local.add_edges({s: fed.csv(s) for s in ("A", "B")}, policy=fed.policy("two-site"))
        fed.local.wait_for_sites(["A", "B"], timeout=60)
        yield fed
    finally:
        fed.local.__exit__(None, None, None)


@BOTH_BACKENDS
def test_count_equals_pandas_on_the_two_tables(federation: Federation) -> None:
    spec = {"analysis": "count", "where": {"field": "stage", "op": "in", "value": ["III", "IV"]}}
    study = federation.wait(federation.submit(spec, ["A", "B"]))
    assert study["status"] == "completed", study.get("error")
    envelope = study["result"]
    expected = {s: int(t["stage"].isin(["III", "IV"]).sum()) for s, t in federation.tables.items()}
    assert envelope["analysis"] == "count"
    assert envelope["result"]["count"] == expected["A"] + expected["B"]
    assert envelope["n"] == expected["A"] + expected["B"]
    assert {s["name"]: (s["n"], s["status"]) for s in envelope["sites"]} == {
        "A": (expected["A"], "ok"),
        "B": (expected["B"], "ok"),
    }


@BOTH_BACKENDS
def test_count_below_min_cell_size_comes_back_suppressed(federation: Federation) -> None:
    spec = {"analysis": "count", "where": {"field": "age", "op": ">=", "value": 85}}
    study = federation.wait(federation.submit(spec, ["A", "B"]))
    assert study["status"] == "completed", study.get("error")
    envelope = study["result"]
    sites = {s["name"]: s for s in envelope["sites"]}
    assert sites["A"]["n"] == "suppressed"  # 3 < 5: a marker, never the number
    assert sites["B"]["n"] == 9
    assert envelope["result"]["by_site"] == {"A": "suppressed", "B": 9}
    assert envelope["result"]["count"] == 9
    assert any("A" in note and "suppress" in note for note in envelope["disclosure"])
    assert "3" not in str(envelope["result"]["by_site"]["A"])


@ONE_BACKEND
@pytest.mark.parametrize("trusts", ["consortium", "rogue"])
def test_edge_with_a_certificate_from_another_ca_is_refused(
    federation: Federation, tmp_path: Path, trusts: str
) -> None:
    """Trusting the consortium CA, only the hub's check of its certificate stops it."""
    hub_process = federation.local.hub_process
    assert hub_process is not None
    refusals_before = len(HANDSHAKE_FAILED.findall(hub_process.log_text()))
    rogue = CaFolder(tmp_path / "rogue-ca")
    ca.init_ca(rogue.path)
    trust = federation.local.ca if trusts == "consortium" else rogue
    name = f"impostor-{trusts}"
    impostor = federation.local.add_edge(
        name, federation.csv("A"), ca=rogue, trust=trust, wait_ready=False
    )
    # Trusting the rogue CA, the impostor itself rejects the hub's certificate.
    expected = CONNECTION_FAILED if trusts == "consortium" else HANDSHAKE_FAILED
    try:
        _wait_for(
            f"{name} to log a failed TLS connection",
            lambda: expected.search(impostor.log_text()),
            timeout=60,
        )
        time.sleep(2)  # a few more attempts: none may get through
        with federation.local.client() as hub:
            names = {n["name"] for n in hub.nodes()}
        assert name not in names
        assert {"A", "B"} <= names
        assert not re.search(rf"^edge {name} ready", impostor.log_text(), re.MULTILINE)
        if trusts == "consortium":  # the hub checked the certificate and said no
            # gRPC logs the refusal from its own thread: on a loaded machine the line
            # can come after the impostor has already logged its failed connection
            _wait_for(
                "the hub to log the refused handshake",
                lambda: len(HANDSHAKE_FAILED.findall(hub_process.log_text())) > refusals_before,
                timeout=30,
            )
    finally:
        impostor.stop(grace=5)


@ONE_BACKEND
def test_edge_killed_while_a_task_waits_delivers_exactly_one_result(
    federation: Federation,
) -> None:
    local = federation.local
    local.add_edge("C", federation.csv("C"), policy=federation.policy("manual"))
    study_id = federation.submit({"analysis": "count"}, ["A", "C"])

    task = _wait_for("C's task", lambda: _task_in(federation, study_id, "C", "delivered"))
    _wait_for("the task at C", lambda: task.id in local.edge_command("C", "tasks", "list"))

    local.edges["C"].kill()  # SIGKILL while the task waits for the operator
    local.restart_edge("C")
    local.edge_command("C", "tasks", "approve", task.id)

    study = federation.wait(study_id)
    assert study["status"] == "completed", study.get("error")
    sites = {s["name"]: s for s in study["result"]["sites"]}
    assert (sites["C"]["n"], sites["C"]["status"]) == (len(federation.tables["C"]), "ok")
    expected = len(federation.tables["A"]) + len(federation.tables["C"])
    assert study["result"]["result"]["count"] == expected

    rows = federation.hub_rows(
        "SELECT status FROM tasks WHERE study_id = :s AND node_name = 'C'", s=study_id
    )
    assert [r.status for r in rows] == ["ok"]
    accepted = federation.hub_rows(
        "SELECT id FROM audit_log WHERE action = 'result.accepted' AND object_id = :t", t=task.id
    )
    assert len(accepted) == 1


@pytest.fixture
def restartable(tmp_path: Path, fresh_hub_db_url: str) -> Iterator[Federation]:
    """A federation of its own, since its hub gets killed."""
    tables = {"A": _site_table(4, 40, elderly=2), "C": _site_table(5, 25, elderly=5)}
    fed = _start(tmp_path / "fed", fresh_hub_db_url, tables)
    try:
        yield fed
    finally:
        fed.local.__exit__(None, None, None)


@BOTH_BACKENDS
def test_hub_killed_with_a_running_study_finishes_it_after_restart(
    restartable: Federation,
) -> None:
    local = restartable.local
    local.add_edge("A", restartable.csv("A"), policy=restartable.policy("two-site"))
    local.add_edge("C", restartable.csv("C"), policy=restartable.policy("manual"))
    local.wait_for_sites(["A", "C"], timeout=60)
    study_id = restartable.submit({"analysis": "count"}, ["A", "C"])
    # A answers on its own; C waits for its operator: the study is half done.
    _wait_for("A's result", lambda: _task_status(restartable, study_id, "A") == "ok")
    task = _wait_for("C's task", lambda: _task_in(restartable, study_id, "C", "delivered"))
    before = local.hub
    assert before is not None

    after = local.restart_hub(hard=True)  # SIGKILL, then serve again on the same home
    assert (after.grpc_port, after.http_port) == (before.grpc_port, before.http_port)
    with local.client() as hub:
        assert hub.study(study_id)["status"] == "running"
    local.edge_command("C", "tasks", "approve", task.id)

    study = restartable.wait(study_id)
    assert study["status"] == "completed", study.get("error")
    expected = {s: len(t) for s, t in restartable.tables.items()}
    assert {s["name"]: s["n"] for s in study["result"]["sites"]} == expected
    assert study["result"]["result"]["count"] == sum(expected.values())
