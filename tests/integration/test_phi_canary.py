"""The PHI canary test (issue 5, "Proof"): no identifier a hospital holds leaves it.

Two synthetic hospitals (`ops.synth`: B writes English, C Chinese, with a GBK
LIS file and many two-character names) plant known identifiers, listed in their
truth files. Each gets an edge of a real federation (`ops.federation.LocalFederation`:
a hub and the edge agents as separate processes, mutual TLS over loopback), is
synced into its analysis database (`oncofed-edge sync`; B's is on PostgreSQL, C's
on SQLite), and answers a count (approved by C's operator), a descriptive table, a
Kaplan-Meier and a Cox study on its CDM. Every EdgeHub message is
captured before TLS on both sides (`ONCOFED_WIRE_CAPTURE`, `protocol.capture`).

Once every process has stopped, the canaries (`tests/integration/phi_canaries.py`)
are looked for in every text, JSON or untyped column of every table of each
analysis database and of the hub's database; in every file the federation left
(logs, the captured stdout and stderr of every command, the raw database files,
settings), except the edges' state databases, the identified zone that stays in
the hospital by design; and in every captured message, as raw bytes and decoded.
A positive control first finds them in the hospitals' own source systems, so a
clean result means something.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf import message_factory
from google.protobuf.message import Message

from edge_node.policy import DEFAULT_POLICY_TOML
from edge_node.security.access import ENV_TOKEN_FILE
from ops.federation import LocalFederation, write_toml
from ops.local_federation import hub_settings_for_local_run
from ops.processes import child_env, python_module
from ops.synth.hospital import write_hospital
from ops.synth.variants import get_variant
from protocol import serde
from protocol.capture import REQUEST, RESPONSE, WIRE_CAPTURE_ENV, CapturedMessage, read_capture
from protocol.generated import oncofed_federation_pb2 as pb
from protocol.messages import ResultStatus, TaskResult
from shared_cdm.db import make_engine
from tests.integration.phi_canaries import (
    KINDS,
    PATIENT_NAME,
    PHONE,
    Canary,
    CanaryList,
    Hit,
    Scanner,
    hospital_canaries,
    source_surfaces,
)

pytestmark = pytest.mark.slow

# Site name = hospital variant. Two keep the run short (every command is a process
# that imports the stack); A, Chinese like C, adds no kind of text C lacks.
SITES = ("B", "C")
PG_SITE = "B"
APPROVING_SITE = "C"  # its policy leaves the count to the operator
PATIENTS = 80
SEED = 17
STUDY_TIMEOUT = 180.0
CDM_DATASET = {
    "index": {"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C"},
    "outcome": {"event": "death", "censor": "last_contact"},
    "covariates": {"age": {"field": "age"}, "sex": {"field": "sex"}},
    "derived": {"male": {"map": "sex", "values": {"male": 1, "female": 0}}},
}
STUDIES: dict[str, dict[str, Any]] = {
    "count": {"analysis": "count"},
    "describe": {"analysis": "describe", "variables": ["age", "sex"]},
    # Yearly bins: fewer rounds merging the bins that disclosure control refuses.
    "kaplan_meier": {
        "analysis": "kaplan_meier",
        "time": "time",
        "event": "event",
        "group": "sex",
        "time_grid_days": 365,
    },
    "cox": {"analysis": "cox", "time": "time", "event": "event", "covariates": ["age", "male"]},
}
MANUAL = "count"
STAGES = ("I", "II", "III", "IV")
POLL_INTERVAL_S = 0.5  # the edges' (default 2 s): each study round waits for a poll
EDGE_HUB = pb.DESCRIPTOR.services_by_name["EdgeHub"]
STUDY_METHODS = {f"/{EDGE_HUB.full_name}/{m}" for m in ("PullTasks", "SubmitResult")}
# column types that cannot hold text; every other column is read
NOT_TEXT = (sa.Integer, sa.Numeric, sa.Date, sa.DateTime, sa.Time, sa.Boolean, sa.Interval)
# the edges' state databases: the identified zone (quarantine, link index), not scanned
STATE_DB = ("edge.db", "edge.db-journal", "edge.db-wal", "edge.db-shm")
# A fair share of each kind of canary must be found in the source systems. Not all:
# relatives, outpatient numbers and some name spellings are only in some notes.
POSITIVE_CONTROL_SHARE = 0.4


@dataclass
class CanaryRun:
    hospitals: dict[str, Path]
    fed_root: Path
    analysis_urls: dict[str, str]
    hub_db_url: str
    capture: Path
    studies: dict[str, dict[str, Any]]
    seconds: dict[str, float] = field(default_factory=dict)


# -- running the federation --------------------------------------------------------------


def _flat_csv(path: Path) -> Path:
    """The flat dataset every LocalFederation edge serves; nothing of the hospital's."""
    rows = ["age,stage,time,status"]
    rows += [f"{40 + k},{STAGES[k % 4]},{30 * (k + 1)},{k % 2}" for k in range(20)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _policy(path: Path, site: str) -> Path:
    """The default policy; at the approving site the count waits for the operator."""
    text = DEFAULT_POLICY_TOML
    if site == APPROVING_SITE:
        text = text.replace(f'{MANUAL} = "auto"', f'{MANUAL} = "manual"')
        assert text != DEFAULT_POLICY_TOML, f"the default policy has no `{MANUAL} = ...` line"
    path.write_text(text, encoding="utf-8")
    return path


class EdgeCli:
    """`oncofed-edge` as the site's operator, keeping stdout and stderr in the logs."""

    def __init__(self, fed: LocalFederation) -> None:
        self.fed = fed
        self._lock = threading.Lock()
        self._runs = 0

    def __call__(self, site: str, *args: str) -> str:
        layout = self.fed.layout
        argv = python_module("edge_node.cli", *args, "--home", str(layout.edge_home(site)))
        env = child_env({ENV_TOKEN_FILE: str(layout.edge_token_file(site))})
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        with self._lock:
            self._runs += 1
            stem = layout.logs / f"cli-{self._runs:02d}-{site}-{args[0]}"
        stem.with_suffix(".stdout").write_text(done.stdout, encoding="utf-8")
        stem.with_suffix(".stderr").write_text(done.stderr, encoding="utf-8")
        if done.returncode != 0:
            pytest.fail(f"oncofed-edge {' '.join(args)} ({site}) failed: {done.stderr[-2000:]}")
        return done.stdout


def _awaiting_approval(fed: LocalFederation, site: str, study_id: str) -> list[str]:
    path = fed.layout.edge_home(site) / "edge.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        rows = db.execute(
            "SELECT task_id FROM edge_tasks WHERE study_id = ? AND decision = 'awaiting_approval'",
            (study_id,),
        ).fetchall()
    return [r[0] for r in rows]


def _approve(fed: LocalFederation, cli: EdgeCli, site: str, study_id: str) -> None:
    """The site's operator approves the study's task once it has arrived there."""
    deadline = time.monotonic() + STUDY_TIMEOUT
    while not (tasks := _awaiting_approval(fed, site, study_id)):
        fed.check_alive([site])
        if time.monotonic() > deadline:
            pytest.fail(f"the {MANUAL} task never reached site {site}")
        time.sleep(0.3)
    for task_id in tasks:
        cli(site, "tasks", "approve", task_id)


def _run_studies(fed: LocalFederation, cli: EdgeCli) -> dict[str, dict[str, Any]]:
    ids = {}
    with fed.client() as hub:
        for name, spec in STUDIES.items():
            full = {**spec, "dataset": "cdm", "cdm_dataset": CDM_DATASET}
            ids[name] = str(hub.submit_study(full, sites=list(SITES), title=name)["id"])
    _approve(fed, cli, APPROVING_SITE, ids[MANUAL])
    with fed.client() as hub:
        return {
            name: hub.wait_for_study(
                study_id, timeout=STUDY_TIMEOUT, watch=lambda: fed.check_alive(SITES)
            )
            for name, study_id in ids.items()
        }


@pytest.fixture(scope="module")
def pg_analysis_url(pg_server_url: str) -> Iterator[str]:
    name = f"oncofed_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(pg_server_url).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, pg_analysis_url: str) -> CanaryRun:
    root = tmp_path_factory.mktemp("canary")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    hospitals = {site: root / f"hospital-{site}" for site in SITES}
    for site, folder in hospitals.items():
        write_hospital(folder, patients=PATIENTS, seed=SEED, variant=get_variant(site))
    seconds["generate"] = time.perf_counter() - started

    fed_root, capture = root / "federation", root / "wire.jsonl"
    hub_db_url = f"sqlite:///{fed_root / 'hub' / 'hub.db'}"
    analysis_urls = {s: f"sqlite:///{fed_root / 'edges' / s / 'analysis.db'}" for s in SITES}
    analysis_urls[PG_SITE] = pg_analysis_url
    with pytest.MonkeyPatch.context() as env:
        env.setenv(WIRE_CAPTURE_ENV, str(capture))  # the children inherit it
        with LocalFederation(fed_root, ready_timeout=180, grace=10) as fed:
            fed.init_ca()
            hub = fed.start_hub(db_url=hub_db_url, settings=hub_settings_for_local_run())
            flat = _flat_csv(root / "flat.csv")
            cli = EdgeCli(fed)

            def edge(site: str) -> None:
                """Set the site's edge up and running, then sync its hospital into it."""
                # `init` keeps an edge.toml written before it: a shorter poll, and
                # B's analysis database on PostgreSQL.
                home = fed.layout.edge_home(site)
                home.mkdir(parents=True)
                settings: dict[str, object] = {"site_name": site, "hub_address": hub.grpc_address}
                settings["poll_interval_s"] = POLL_INTERVAL_S
                if site == PG_SITE:
                    settings["analysis_db_url"] = pg_analysis_url
                write_toml(home / "edge.toml", settings)
                fed.add_edge(site, flat, policy=_policy(root / f"policy-{site}.toml", site))
                seconds[f"edge {site} up"] = time.perf_counter() - started
                mapping = hospitals[site] / "mapping.yaml"
                cli(site, "sync", "--mapping", str(mapping), "--quiet")
                seconds[f"edge {site} synced"] = time.perf_counter() - started

            with ThreadPoolExecutor(len(SITES)) as pool:
                list(pool.map(edge, SITES))
            fed.wait_for_sites(SITES, timeout=120)
            studies = _run_studies(fed, cli)
            seconds["studies done"] = time.perf_counter() - started
    seconds["stopped"] = time.perf_counter() - started
    print(f"\nPHI canary run, seconds since start: {seconds}")
    return CanaryRun(hospitals, fed_root, analysis_urls, hub_db_url, capture, studies, seconds)


# -- canaries and scanning -----------------------------------------------------------------


@pytest.fixture(scope="module")
def canary_lists(run: CanaryRun) -> dict[str, CanaryList]:
    folders = run.hospitals
    return {
        site: hospital_canaries(folder, site, [f for s, f in folders.items() if s != site])
        for site, folder in folders.items()
    }


@pytest.fixture(scope="module")
def scanner(canary_lists: dict[str, CanaryList]) -> Scanner:
    """One scanner for every hospital's canaries: B's identifiers at site C leak too."""
    return Scanner(c for listed in canary_lists.values() for c in listed.canaries)


def _leaks(hits: Iterable[Hit], limit: int = 20) -> str:
    lines = sorted({str(h) for h in hits})
    return f"{len(lines)} leaks:\n" + "\n".join(lines[:limit])


def scan_database(scanner: Scanner, url: str, label: str) -> tuple[list[Hit], Counter[str]]:
    """Every value of every column that can hold text, of every table."""
    hits: list[Hit] = []
    seen: Counter[str] = Counter()
    engine = make_engine(url)
    try:
        inspector = sa.inspect(engine)
        with engine.connect() as conn:
            for table_name in inspector.get_table_names():
                table = sa.Table(table_name, sa.MetaData(), autoload_with=conn)
                columns = [c for c in table.c if not isinstance(c.type, NOT_TEXT)]
                seen["tables"] += 1
                seen["columns"] += len(columns)
                if not columns:
                    continue
                for row in conn.execute(sa.select(*columns)):
                    seen["rows"] += 1
                    for column, value in zip(columns, row, strict=True):
                        if value is not None:
                            seen["values"] += 1
                            where = f"{label} {table_name}.{column.name}"
                            hits += scanner.value(value, where)
    finally:
        engine.dispose()
    return hits, seen


def _texts(value: Any) -> Iterator[str]:
    """Every string and bytes field of a protobuf message, at any depth, maps included."""
    if isinstance(value, Message):
        for _, inner in value.ListFields():
            yield from _texts(inner)
    elif isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif hasattr(value, "items"):
        for key, inner in value.items():
            yield from _texts(key)
            yield from _texts(inner)
    elif isinstance(value, Iterable):
        for inner in value:
            yield from _texts(inner)


def decoded_text(message: CapturedMessage) -> str:
    """The message parsed as its EdgeHub type; a status is its text."""
    if message.direction not in (REQUEST, RESPONSE):
        return message.data.decode("utf-8", "replace")
    method = EDGE_HUB.methods_by_name[message.method.rsplit("/", 1)[1]]
    kind = method.input_type if message.direction == REQUEST else method.output_type
    parsed = message_factory.GetMessageClass(kind).FromString(message.data)
    return "\n".join(_texts(parsed))


# -- the tests -----------------------------------------------------------------------------


def test_every_study_ran_to_completion_at_every_site(run: CanaryRun) -> None:
    for name, study in run.studies.items():
        assert study["status"] == "completed", (name, study.get("error"))
        envelope = study["result"]
        statuses = {s["name"]: s["status"] for s in envelope["sites"]}
        assert statuses == dict.fromkeys(SITES, "ok"), (name, envelope.get("disclosure"))
        assert isinstance(envelope["n"], int) and envelope["n"] >= len(SITES) * 20, name


def test_canaries_cover_every_kind_of_identifier(canary_lists: dict[str, CanaryList]) -> None:
    for site, listed in canary_lists.items():
        counts = listed.counts()
        print(f"\nhospital {site}: canaries {dict(counts)}; skipped {dict(listed.skipped)}")
        # every patient's resident ID, at least one phone, address and name each
        assert counts["resident_id"] >= PATIENTS
        assert min(counts[k] for k in ("patient_name", "phone", "address")) >= PATIENTS
        assert counts["record_number"] >= 3 * PATIENTS
        assert counts["staff_name"] >= 30
        # what the rules leave out is a small part of what there is
        assert sum(listed.skipped.values()) <= 0.05 * len(listed.canaries), listed.skipped


def test_positive_control_finds_the_canaries_in_the_source_systems(
    run: CanaryRun, canary_lists: dict[str, CanaryList], scanner: Scanner
) -> None:
    """The same scanner, on the hospitals' EMR cells, EMR file and LIS/PACS files."""
    for site, folder in run.hospitals.items():
        found: set[Canary] = set()
        how: Counter[str] = Counter()
        for where, data in source_surfaces(folder):
            hits = (
                scanner.raw(data, where) if isinstance(data, bytes) else scanner.text(data, where)
            )
            found.update(h.canary for h in hits)
            how.update(h.how for h in hits)
        mine = canary_lists[site].canaries
        total = Counter(c.kind for c in mine)
        got = Counter(c.kind for c in mine if c in found)
        print(f"\nhospital {site} sources: found {dict(got)} of {dict(total)}; hits {dict(how)}")
        for kind in KINDS:
            assert got[kind] >= POSITIVE_CONTROL_SHARE * total[kind], (site, kind, got, total)
        assert {"text", "digits", "utf-8 bytes", "gb18030 bytes"} <= set(how), how


def test_no_canary_in_the_analysis_databases(run: CanaryRun, scanner: Scanner) -> None:
    hits: list[Hit] = []
    for site, url in run.analysis_urls.items():
        found, seen = scan_database(scanner, url, f"site {site} analysis database")
        engine = make_engine(url)
        with engine.connect() as conn:
            notes = conn.execute(sa.text("SELECT count(*) FROM note WHERE note_text <> ''"))
            seen["notes with text"] = notes.scalar_one()
        engine.dispose()
        print(f"\nsite {site} analysis database ({url.split(':')[0]}): {dict(seen)}")
        # the CDM was loaded: persons, visits, measurements, notes all there to scan
        assert seen["tables"] >= 10 and seen["values"] > 1000, seen
        hits += found
    assert not hits, _leaks(hits)


def test_no_canary_in_the_hub_database_or_its_results(run: CanaryRun, scanner: Scanner) -> None:
    hits, seen = scan_database(scanner, run.hub_db_url, "hub database")
    print(f"\nhub database: {dict(seen)}")
    assert seen["values"] > 100, seen
    for name, study in run.studies.items():
        hits += scanner.value(study, f"study {name} as the hub reports it")
    assert not hits, _leaks(hits)


def test_no_canary_in_any_log_or_file_the_federation_left(run: CanaryRun, scanner: Scanner) -> None:
    """Logs, captured stdout/stderr of every command, raw databases, settings: all but
    the edges' state databases, which are the identified zone."""
    hits: list[Hit] = []
    scanned: Counter[str] = Counter()
    for path in sorted(p for p in run.fed_root.rglob("*") if p.is_file()):
        if path.name in STATE_DB and path.parent.parent.name == "edges":
            scanned["state databases left out"] += 1
            continue
        data = path.read_bytes()
        scanned["files"] += 1
        scanned["bytes"] += len(data)
        scanned["log files"] += path.suffix in (".log", ".stdout", ".stderr")
        hits += scanner.raw(data, str(path.relative_to(run.fed_root)))
    print(f"\nfiles: {dict(scanned)}")
    # the hub's and every edge's log, and each sync's and approval's stdout and stderr
    logs = {p.name for p in (run.fed_root / "logs").iterdir()}
    assert {"hub.log", *(f"edge-{s}.log" for s in SITES)} <= logs, logs
    assert sum(name.endswith("-sync.stderr") for name in logs) == len(SITES), logs
    assert any(name.endswith(f"{APPROVING_SITE}-tasks.stderr") for name in logs), logs
    assert scanned["state databases left out"] >= len(SITES), scanned
    assert not hits, _leaks(hits)


def test_no_canary_crossed_the_edge_hub_channel(run: CanaryRun, scanner: Scanner) -> None:
    messages = read_capture(run.capture)
    hits: list[Hit] = []
    decoded: dict[str, list[str]] = {}
    for k, message in enumerate(messages):
        where = f"wire #{k} {message.side} {message.method} {message.direction}"
        hits += scanner.raw(message.data, where)
        text = decoded_text(message)
        decoded.setdefault(message.side, []).append(text)
        hits += scanner.text(text, where, how="decoded")
    sides = Counter(m.side for m in messages)
    methods = Counter(m.method.rsplit("/", 1)[1] for m in messages)
    print(
        f"\nwire: {len(messages)} messages, {sum(len(m.data) for m in messages)} bytes; "
        f"sides {dict(sides)}; methods {dict(methods)}"
    )
    # the capture saw the federation's traffic, on both sides, study by study
    assert set(sides) == {"hub", *(f"edge {s}" for s in SITES)}, sides
    assert {m.method for m in messages} >= STUDY_METHODS
    assert {"Register", "PullTasks", "SubmitResult"} <= set(methods), methods
    for name, study in run.studies.items():
        for side, texts in decoded.items():
            assert any(study["id"] in t for t in texts), (name, side)
    assert not hits, _leaks(hits)


def test_a_planted_leak_would_be_found_by_each_scan(
    run: CanaryRun, canary_lists: dict[str, CanaryList], scanner: Scanner, tmp_path: Path
) -> None:
    """The scans above, on copies of what the run left with one identifier planted:
    a clean result above is not a blind one."""
    name = next(c for c in canary_lists["C"].canaries if c.kind == PATIENT_NAME)
    phone = next(c for c in canary_lists["B"].canaries if c.kind == PHONE and c.text.isdigit())
    written = f"{phone.text[:3]}-{phone.text[3:7]}-{phone.text[7:]}"
    planted = {name.text, phone.text}

    sqlite_site = next(s for s, url in run.analysis_urls.items() if url.startswith("sqlite"))
    copy = shutil.copyfile(run.fed_root / "edges" / sqlite_site / "analysis.db", tmp_path / "a.db")
    with sqlite3.connect(copy) as db:
        db.execute(
            "UPDATE note SET note_text = note_text || ? "
            "WHERE note_id = (SELECT min(note_id) FROM note)",
            (f" 家属{name.text}，电话{written}",),
        )
    hits, _ = scan_database(scanner, f"sqlite:///{copy}", "planted")
    assert {h.canary.text for h in hits} == planted

    log = (run.fed_root / "logs" / "hub.log").read_bytes() + f"{name.text} {written}\n".encode()
    assert {h.canary.text for h in scanner.raw(log, "planted log")} == planted

    # A payload is JSON with \uXXXX escapes: only the decoded message shows the name.
    result = TaskResult("t", ResultStatus.OK, {"level": name.text, "contact": written})
    data = serde.result_to_proto(result).SerializeToString()
    message = CapturedMessage("edge C", f"/{EDGE_HUB.full_name}/SubmitResult", REQUEST, data)
    assert name.text.encode() not in data
    assert {h.canary.text for h in scanner.text(decoded_text(message), "planted")} == planted
