"""`oncofed-edge sync` end to end on a generated hospital (variant A, 400 patients).

Real processes where it matters: the reference run, the runs killed with SIGKILL and
the CLI commands are `oncofed-edge` subprocesses. Runs that only need to finish a job
(after a kill, an incremental step) call `run_sync` in this process, which is what the
CLI calls too. Every home that is compared with the reference uses the reference's
site secret (`pipeline.key`) and the same mapping, so person ids, visit ids and row
pseudonyms must match exactly: "the same CDM" means the same rows, keys included,
in every CDM table (value_provenance too).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.pool import NullPool

from edge_node.cdm import upgrade_cdm
from edge_node.pipeline.deid import Pseudonymizer, SiteSecret
from edge_node.pipeline.omop_export import OMOP_TABLES
from edge_node.pipeline.sealed import REID_AAD, IdentifierGuard, aad, open_quarantine, open_with
from edge_node.pipeline.structuring import NLP
from edge_node.pipeline.sync import SyncReport, _Interrupted, run_sync
from edge_node.policy import load_policy
from edge_node.security.access import ENV_TOKEN_FILE, bootstrap_operator
from edge_node.security.vault import ENV_KEY as VAULT_ENV_KEY
from edge_node.security.vault import require_vault
from edge_node.settings import load_settings
from edge_node.store.database import upgrade_state_db
from ops.processes import child_env
from ops.synth.hospital import write_hospital
from ops.synth.mappings import mapping_text
from ops.synth.variants import get_variant
from shared_cdm.errors import Conflict
from shared_cdm.models import Base
from shared_cdm.vocab import Vocabulary, load_default
from tests.integration.edge_node.vaultkey import VAULT_KEY

pytestmark = pytest.mark.slow

EDGE = Path(sys.executable).with_name("oncofed-edge")
# rich prints the whole table, not "sour…"; the vault key is the one conftest sets
ENV = child_env({"COLUMNS": "240", VAULT_ENV_KEY: VAULT_KEY})
CLI_TIMEOUT = 300.0
SITE, HUB = "site-a", "127.0.0.1:50051"
VARIANT, PATIENTS, SEED = "A", 400, 7
KILL_SEED, KILLS = 20240611, 2  # one anywhere, one inside the run: CI time
LIS = ("lis", "lab_results")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

Dump = dict[str, list[tuple[Any, ...]]]


# -- processes -----------------------------------------------------------------


def operator_env(home: Path) -> dict[str, str]:
    """ENV with the token of HOME's site operator, bootstrapped (as `init --operator`
    does) into a 0600 file in HOME the first time."""
    token_file = home / "operator.token"
    if not token_file.exists():
        bootstrap_operator(load_settings(home), "test-operator", token_file)
    return {**ENV, ENV_TOKEN_FILE: str(token_file)}


def _env_for(args: tuple[str | Path, ...]) -> dict[str, str]:
    # Every command but the ones that bootstrap the first operator acts as the operator.
    words = [str(a) for a in args]
    if "--home" not in words or words[0] == "init" or words[:2] == ["users", "add"]:
        return ENV
    return operator_env(Path(words[words.index("--home") + 1]))


def edge(*args: str | Path, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EDGE), *map(str, args)],
        env=_env_for(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_edge(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(EDGE), *map(str, args)],
        env=_env_for(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=CLI_TIMEOUT)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def tail(result: subprocess.CompletedProcess[str]) -> str:
    out, err = result.stdout[-3000:], result.stderr[-3000:]
    return f"exit {result.returncode}\nstdout: {out}\nstderr: {err}"


# -- homes ---------------------------------------------------------------------


def write_mapping(home: Path, hospital: Path, *, lis_encoding: str = "auto") -> Path:
    """The shipped mapping of variant A with the sources at `hospital`."""
    data = yaml.safe_load(mapping_text(VARIANT))
    data["sources"]["emr"]["url"] = f"sqlite:///{hospital / 'emr.db'}"
    data["sources"]["lis"]["path"] = str(hospital / "lis" / "lab_results.csv")
    data["sources"]["lis"]["encoding"] = lis_encoding
    data["sources"]["pacs"]["path"] = str(hospital / "pacs" / "studies.csv")
    path = home / "mapping.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def new_home(
    root: Path,
    name: str,
    hospital: Path,
    *,
    secret_from: Path,
    urls: tuple[str, str] | None = None,
    lis_encoding: str = "auto",
) -> Path:
    """An edge home as `init` would write it, with the site secret (`pipeline.key`,
    mode 0600) and policy of `secret_from` and the mapping of the sources at
    `hospital`; `urls` = (state, analysis) databases, default SQLite files in it."""
    home = root / name
    home.mkdir(parents=True)
    lines = [f"site_name = {json.dumps(SITE)}", f"hub_address = {json.dumps(HUB)}"]
    if urls is not None:
        lines += [
            f"state_db_url = {json.dumps(urls[0])}",
            f"analysis_db_url = {json.dumps(urls[1])}",
        ]
    (home / "edge.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_mapping(home, hospital, lis_encoding=lis_encoding)
    key = home / "pipeline.key"
    shutil.copyfile(secret_from / "pipeline.key", key)
    key.chmod(0o600)
    shutil.copyfile(secret_from / "policy.toml", home / "policy.toml")
    return home


def sync_here(home: Path, vocab: Vocabulary, **kwargs: Any) -> SyncReport:
    """`run_sync` as `oncofed-edge sync --home HOME` calls it, in this process."""
    settings = load_settings(home)
    return run_sync(
        home=settings.home,
        state_db_url=settings.state_db_url,
        analysis_db_url=settings.analysis_db_url,
        mapping_file=settings.mapping_file,
        deid_policy=load_policy(settings.policy_file).deidentification,
        vocab=vocab,
        **kwargs,
    )


def urls_of(home: Path) -> tuple[str, str]:
    settings = load_settings(home)
    return settings.state_db_url, settings.analysis_db_url


def assert_complete(report: SyncReport) -> None:
    assert report.status == "finished"
    errors = {k: c.error for k, c in report.counts.items() if c.error}
    assert not errors, errors
    assert report.balanced, report.summary()


def copy_hospital(hospital: Path, dest: Path) -> Path:
    shutil.copytree(hospital, dest, ignore=shutil.ignore_patterns("lab_sheets", "truth"))
    return dest


# -- databases -----------------------------------------------------------------


def _plain(value: Any) -> Any:
    """One value the same on SQLite and PostgreSQL."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def epoch(value: str | dt.datetime) -> float:
    """A UTC timestamp as stored (text on SQLite, a datetime on PostgreSQL)."""
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def query(url: str, sql: str, **params: Any) -> list[sa.Row[Any]]:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        engine.dispose()


def dump_cdm(url: str) -> Dump:
    """Every row of every CDM table, sorted."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return {
                name: sorted(
                    (tuple(_plain(v) for v in row) for row in conn.execute(sa.select(table))),
                    key=repr,
                )
                for name, table in sorted(Base.metadata.tables.items())
            }
    finally:
        engine.dispose()


def column(dump: Dump, table: str, name: str) -> set[Any]:
    """The values of one column of a dumped table."""
    at = list(Base.metadata.tables[table].columns.keys()).index(name)
    return {row[at] for row in dump[table]}


def cdm_difference(actual: Dump, expected: Dump) -> list[str]:
    problems = []
    for name, rows in expected.items():
        if actual[name] != rows:
            extra = Counter(actual[name]) - Counter(rows)
            missing = Counter(rows) - Counter(actual[name])
            problems.append(
                f"{name}: {len(actual[name])} rows, expected {len(rows)}; "
                f"{sum(missing.values())} missing, e.g. {list(missing)[:2]}; "
                f"{sum(extra.values())} unexpected, e.g. {list(extra)[:2]}"
            )
    return problems


def assert_same_cdm(actual: Dump, expected: Dump, what: str) -> None:
    problems = cdm_difference(actual, expected)
    assert not problems, f"{what}: the CDM is not the reference's:\n" + "\n".join(problems)


def quarantine(state_url: str) -> dict[tuple[str, str, str], tuple[str, str]]:
    """(source, table, row key) -> (code, reason), opened with the vault key."""
    vault = require_vault(Path("."))  # conftest's key
    rows = [
        open_quarantine(vault, dict(r._mapping))
        for r in query(state_url, "SELECT * FROM pipeline_quarantine")
    ]
    return {(r["source"], r["source_table"], r["row_key"]): (r["code"], r["reason"]) for r in rows}


def run_statuses(state_url: str) -> list[str]:
    return [r.status for r in query(state_url, "SELECT status FROM pipeline_runs ORDER BY run_id")]


def last_summary(state_url: str) -> dict[str, Any]:
    rows = query(state_url, "SELECT summary FROM pipeline_runs ORDER BY run_id DESC")
    summary = rows[0].summary
    return json.loads(summary) if isinstance(summary, str) else summary


def cancer_status(state_url: str) -> dict[str, bool]:
    """Patient id -> whether the pipeline counts them as a cancer patient (the IDs
    opened from the sealed re-identification map)."""
    vault = require_vault(Path("."))  # conftest's key
    rows = query(
        state_url,
        "SELECT r.patient_hash, r.person_key, r.sealed_id, s.is_cancer FROM pipeline_reid_map r "
        "JOIN pipeline_persons s ON s.person_key = r.person_key",
    )
    return {
        open_with(
            vault, r.sealed_id, aad(REID_AAD, r.person_key, r.patient_hash), what="entry"
        ): bool(r.is_cancer)
        for r in rows
    }


# -- the sources ---------------------------------------------------------------

LIS_HEADER = [
    "sample_id",
    "pat_id",
    "adm_id",
    "item_code",
    "item_name",
    "result",
    "unit",
    "ref_range",
    "report_time",
]


def lis_rows(hospital: Path, encoding: str = "utf-8") -> list[dict[str, str]]:
    with (hospital / "lis" / "lab_results.csv").open(encoding=encoding, newline="") as fh:
        return list(csv.DictReader(fh))


def append_lis(hospital: Path, rows: list[list[str]]) -> None:
    path = hospital / "lis" / "lab_results.csv"
    assert path.read_bytes().endswith(b"\n")
    with path.open("a", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def emr(hospital: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(hospital / "emr.db")
    try:
        rows = db.execute(sql, params).fetchall()
        db.commit()
        return rows
    finally:
        db.close()


def stays(hospital: Path, pid: str) -> list[tuple[str, dt.date, dt.date]]:
    """A patient's admissions with their dates in order (admission id, admit, discharge)."""
    rows = emr(
        hospital,
        "SELECT adm_id, admit_date, discharge_date FROM admission WHERE pat_id = ? "
        "AND discharge_date >= admit_date ORDER BY admit_date",
        pid,
    )
    return [(a, dt.date.fromisoformat(b), dt.date.fromisoformat(c)) for a, b, c in rows]


def free_lab_day(hospital: Path, pid: str) -> tuple[str, dt.date]:
    """An admission of `pid` and a day of it with no lab result in any source, so a
    new result there is a new fact (nothing to merge it with)."""
    lis = {(r["adm_id"], r["report_time"]) for r in lis_rows(hospital)}
    exam = set(emr(hospital, "SELECT adm_id, report_date FROM exam_result"))
    for adm, admit, discharge in stays(hospital, pid):
        day = admit
        while day <= discharge:
            if (adm, day.isoformat()) not in lis and (adm, day.isoformat()) not in exam:
                return adm, day
            day += dt.timedelta(days=1)
    raise AssertionError(f"patient {pid} has no day without labs")


def new_lab(sample_id: str, pid: str, adm: str, day: dt.date) -> list[str]:
    return [sample_id, pid, adm, "TM013", "葡萄糖", "5.6", "mmol/L", "3.9-6.1", day.isoformat()]


def person_id(home: Path, state_url: str, pid: str) -> int:
    """The CDM person_id of the hospital's patient `pid`."""
    secret = SiteSecret.load_or_create(SiteSecret.path_in(home))
    link = IdentifierGuard(secret, require_vault(home)).patient(pid)  # the index's key
    (key,) = query(
        state_url, "SELECT person_key FROM pipeline_patients WHERE patient_id = :p", p=link
    )
    return Pseudonymizer(secret).surrogate_id("person", key.person_key)


def row_pseudonym(home: Path, source: str, table: str, key: str) -> str:
    secret = SiteSecret.load_or_create(SiteSecret.path_in(home))
    return Pseudonymizer(secret).pseudonym("row", f"{source}/{table}/{key}")


# -- fixtures ------------------------------------------------------------------


@dataclass
class Reference:
    hospital: Path
    home: Path
    seconds: float  # the uninterrupted `oncofed-edge sync`, process start to exit
    window: tuple[float, float]  # when its pipeline run started and finished, in that time
    stdout: str
    dump: Dump
    state_url: str
    summary: dict[str, Any]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return load_default()


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory, vocab: Vocabulary) -> Path:
    """The generated hospital; read only (tests that change sources copy it)."""
    folder = tmp_path_factory.mktemp("hospital")
    write_hospital(folder, patients=PATIENTS, seed=SEED, variant=get_variant(VARIANT), vocab=vocab)
    return folder


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, hospital: Path) -> Reference:
    """`oncofed-edge init` + an uninterrupted `oncofed-edge sync --quiet` (H1)."""
    home = tmp_path_factory.mktemp("reference") / "H1"
    done = edge("init", "--site", SITE, "--hub", HUB, "--home", home)
    assert done.returncode == 0, tail(done)
    write_mapping(home, hospital)
    started, clock = time.monotonic(), time.time()
    done = edge("sync", "--home", home, "--quiet")
    seconds = time.monotonic() - started
    assert done.returncode == 0, tail(done)
    state_url, analysis_url = urls_of(home)
    (run,) = query(state_url, "SELECT started_at, finished_at FROM pipeline_runs")
    window = (epoch(run.started_at) - clock, epoch(run.finished_at) - clock)
    assert 0 < window[0] < window[1] < seconds, (window, seconds)
    return Reference(
        hospital,
        home,
        seconds,
        window,
        done.stdout,
        dump_cdm(analysis_url),
        state_url,
        last_summary(state_url),
    )


def synced_copy(reference: Reference, root: Path) -> tuple[Path, Path]:
    """(sources, home): a copy of the hospital and of the reference home's databases,
    secret and policy, the mapping pointing at the copy: as if that copy had been
    synced once (the watermarks name tables and files, not folders)."""
    src = copy_hospital(reference.hospital, root / "hospital")
    home = root / "home"
    home.mkdir()
    for name in ("edge.toml", "policy.toml", "edge.db", "analysis.db"):
        shutil.copyfile(reference.home / name, home / name)
    shutil.copy2(reference.home / "pipeline.key", home / "pipeline.key")
    if (reference.home / "operator.token").exists():  # the copied edge.db knows its operator
        shutil.copy2(reference.home / "operator.token", home / "operator.token")
    write_mapping(home, src)
    return src, home


@pytest.fixture(scope="module")
def new_pg_db(pg_server_url: str) -> Iterator[Callable[[], str]]:
    """Makes empty PostgreSQL databases; drops them all after the module."""
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    made: list[str] = []

    def make() -> str:
        name = f"oncofed_t_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        url = sa.engine.make_url(pg_server_url).set(database=name)
        return url.render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def backend_urls(request: pytest.FixtureRequest, backend: str) -> tuple[str, str] | None:
    if backend == "sqlite":
        return None
    make: Callable[[], str] = request.getfixturevalue("new_pg_db")
    return make(), make()


# -- 1. killed and re-run ------------------------------------------------------


def kill_times(reference: Reference) -> list[tuple[bool, float]]:
    """KILLS moments from a seeded RNG as (after the run started?, seconds): the first
    anywhere in the reference's duration (imports, run or exit), the others one in
    each part of the reference's run time, counted from when the killed process's
    own run starts, so a slow start on a busy machine does not move them."""
    rng = random.Random(KILL_SEED)
    start, end = reference.window
    width = (end - start) / (KILLS - 1)
    return [(False, rng.uniform(0.2, reference.seconds))] + [
        (True, rng.uniform(i * width, (i + 1) * width)) for i in range(KILLS - 1)
    ]


def wait_for_run(state_url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> bool:
    """Until the process has a pipeline run under way (True) or has ended (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if "running" in run_statuses(state_url):
            return True
        time.sleep(0.05)
    return False


def init_databases(home: Path) -> None:
    """The state and analysis databases migrated, as `oncofed-edge init` leaves them."""
    state_url, analysis_url = urls_of(home)
    upgrade_state_db(state_url)
    upgrade_cdm(analysis_url)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sync_killed_at_random_moments_then_rerun_gives_the_reference_cdm(
    backend: str,
    reference: Reference,
    vocab: Vocabulary,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    killed_mid_run = []
    for i, (in_run, at) in enumerate(kill_times(reference)):
        home = new_home(
            tmp_path,
            f"H2-{i}",
            reference.hospital,
            secret_from=reference.home,
            urls=backend_urls(request, backend),
        )
        init_databases(home)
        state_url, analysis_url = urls_of(home)
        with (home / "killed.log").open("w") as log:
            started = time.monotonic()
            proc = subprocess.Popen(
                [str(EDGE), "sync", "--home", str(home), "--quiet"],
                env=operator_env(home),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            if in_run and wait_for_run(state_url, proc):
                started = time.monotonic()
            try:
                proc.wait(timeout=max(0.0, at - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        log_text = (home / "killed.log").read_text(errors="replace")[-3000:]
        assert proc.returncode in (0, -signal.SIGKILL), log_text

        report = sync_here(home, vocab)  # to completion
        assert_complete(report)
        statuses = run_statuses(state_url)
        killed_mid_run.append(proc.returncode == -signal.SIGKILL and "interrupted" in statuses)
        assert_same_cdm(dump_cdm(analysis_url), reference.dump, f"{backend}, killed at {at:.2f} s")
    assert any(killed_mid_run[1:]), (
        f"no kill landed while a sync run was under way: {kill_times(reference)}, "
        f"reference run {reference.window} of {reference.seconds:.1f} s"
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_sync_stopped_after_k_batches_resumes_to_the_reference_cdm(
    backend: str,
    reference: Reference,
    vocab: Vocabulary,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    # 1000 rows a batch: 30 batches. Five runs stop after 1, 2, 3, 5 and 8 batches:
    # after the patients, the admissions, the rest of the index (before any person is
    # built), the first EMR event tables and half of the LIS; the sixth finishes.
    home = new_home(
        tmp_path,
        "H2",
        reference.hospital,
        secret_from=reference.home,
        urls=backend_urls(request, backend),
    )
    state_url, analysis_url = urls_of(home)
    for k in (1, 2, 3, 5, 8):
        with pytest.raises(_Interrupted):
            sync_here(home, vocab, batch_size=1000, stop_after_batches=k)
    report = sync_here(home, vocab, batch_size=1000)
    assert_complete(report)
    assert run_statuses(state_url) == ["failed"] * 5 + ["finished"]
    assert_same_cdm(dump_cdm(analysis_url), reference.dump, f"{backend}, stopped 5 times")


def half_made(path: Path, version_table: str) -> list[str]:
    """The tables of a SQLite database that has tables but no migration version yet
    (empty when it has none, or is complete, or cannot be read right now)."""
    if not path.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.05)
        try:
            names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            tables = sorted(names - {version_table, "sqlite_sequence"})
            if not tables:
                return []
            if version_table in names and db.execute(f"SELECT 1 FROM {version_table}").fetchall():
                return []
            return tables
        finally:
            db.close()
    except sqlite3.Error:
        return []


@pytest.mark.parametrize(
    ("database", "version_table"),
    [("edge.db", "alembic_version_edge"), ("analysis.db", "alembic_version_cdm")],
)
def test_sync_killed_while_it_creates_its_databases_recovers(
    database: str, version_table: str, reference: Reference, vocab: Vocabulary, tmp_path: Path
) -> None:
    # A home whose SQLite databases do not exist yet (no `init`; or new migrations
    # after a software upgrade): the first command creates them. It is killed the
    # moment `database` shows tables but no migration version, i.e. a schema half
    # made; the next sync must still finish the job. The state database holds the
    # edge's users, so the first command to make it is the operator's bootstrap; the
    # analysis database is made by the operator's sync.
    home = new_home(tmp_path, "H5", reference.hospital, secret_from=reference.home)
    if database == "edge.db":
        proc = start_edge("users", "add", "op", "--role", "site_operator", "--home", home)
    else:
        proc = start_edge("sync", "--home", home, "--quiet")
    seen: list[str] = []
    while proc.poll() is None and not seen:
        seen = half_made(home / database, version_table)
        if seen:
            proc.kill()
        time.sleep(0.002)
    finish(proc)
    try:
        report = sync_here(home, vocab)
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"killed while {database} had tables {seen[:4]}... and no version, "
            f"the next sync fails: {str(exc.orig).splitlines()[0]}"
        )
    assert_complete(report)
    assert_same_cdm(dump_cdm(urls_of(home)[1]), reference.dump, f"killed creating {database}")


# -- 2. incremental ------------------------------------------------------------


def test_incremental_sync_reads_only_new_rows_and_backfills_new_cancer_patients(
    reference: Reference, vocab: Vocabulary, tmp_path: Path
) -> None:
    # Run 1 is the reference's (a copy of it); a sync with nothing new reads nothing
    # and changes nothing.
    src, home = synced_copy(reference, tmp_path)
    state_url, analysis_url = urls_of(home)
    idle = sync_here(home, vocab)
    assert_complete(idle)
    assert {k: c.read for k, c in idle.counts.items() if c.read} == {}
    assert_same_cdm(dump_cdm(analysis_url), reference.dump, "a sync with nothing new")
    before = reference.dump
    status = cancer_status(state_url)
    cancer = sorted(p for p, c in status.items() if c and stays(src, p))
    lis = lis_rows(src)
    with_labs = {r["pat_id"] for r in lis}
    others = sorted(p for p, c in status.items() if not c and p in with_labs and stays(src, p))
    p_lab, p_stay = cancer[:2]

    # Run 2: one lab in the LIS for a cancer patient's stay; in the EMR a new stay with
    # a diagnosis and a ward lab for another, and a new cancer patient with a stay, a
    # diagnosis and an operation. The keys sort after the old ones as text and as
    # numbers (the next number is the subject of the next test).
    adm, day = free_lab_day(src, p_lab)
    append_lis(src, [new_lab("SA0000099001", p_lab, adm, day)])
    admit = stays(src, p_stay)[-1][2] + dt.timedelta(days=30)
    discharge = admit + dt.timedelta(days=6)
    emr(
        src,
        "INSERT INTO admission VALUES ('A000099001', ?, ?, ?, '肿瘤科')",
        p_stay,
        admit.isoformat(),
        discharge.isoformat(),
    )
    emr(
        src,
        "INSERT INTO diagnosis VALUES "
        "('99901', 'A000099001', ?, 'C34.100x001', '左肺上叶腺癌', '1')",
        p_stay,
    )
    emr(
        src,
        "INSERT INTO exam_result VALUES ('99901', 'A000099001', '血红蛋白', '128', 'g/L', ?)",
        (admit + dt.timedelta(days=1)).isoformat(),
    )
    emr(
        src,
        "INSERT INTO patient_master VALUES ('P00099001', '测试新', '男', '1960-05-05', "
        "'110101196005050017', '13800000000', '北京市东城区测试路1号')",
    )
    emr(
        src,
        "INSERT INTO admission VALUES "
        "('A000099002', 'P00099001', '2024-03-01', '2024-03-09', '胸外科')",
    )
    emr(
        src,
        "INSERT INTO diagnosis VALUES "
        "('99902', 'A000099002', 'P00099001', 'C34.100x001', '右肺上叶腺癌', '1')",
    )
    emr(
        src,
        "INSERT INTO operation_record VALUES "
        "('99901', 'A000099002', '2024-03-04', '胸腔镜下肺叶切除术+淋巴结清扫术')",
    )
    second = sync_here(home, vocab)
    assert_complete(second)
    after = dump_cdm(analysis_url)

    # Runs 3 and 4: two patients who were not cancer patients get a cancer diagnosis on
    # an old stay, one per run: their rows that run 1 read and skipped are fetched
    # again (backfill), and stay when the next patient's are.
    late = {p: [r for r in lis if r["pat_id"] == p] for p in others[:2]}
    backfills = []
    for n, p_late in enumerate(late):
        emr(
            src,
            "INSERT INTO diagnosis VALUES (?, ?, ?, 'C16.900', '胃窦腺癌', '2')",
            f"9990{n + 3}",
            stays(src, p_late)[0][0],
            p_late,
        )
        backfills.append(sync_here(home, vocab))
        assert_complete(backfills[-1])
    final = dump_cdm(analysis_url)

    # The same sources read from scratch.
    scratch = new_home(tmp_path, "scratch", src, secret_from=reference.home)
    assert_complete(sync_here(scratch, vocab))
    from_scratch = dump_cdm(urls_of(scratch)[1])

    # Checked together, so that one fault does not hide the others.
    problems: list[str] = []

    def check(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    grew = {n: len(after[n]) - len(before[n]) for n in after if len(after[n]) != len(before[n])}
    check(
        grew
        == {
            "person": 1,
            "visit_occurrence": 2,
            "condition_occurrence": 2,
            "procedure_occurrence": 1,
            "measurement": 2,
            "observation_period": 1,
        },
        f"run 2 added CDM rows {grew}",
    )
    measured = column(after, "measurement", "src_row") - column(before, "measurement", "src_row")
    check(
        measured
        == {
            row_pseudonym(home, "lis", "lab_results", "SA0000099001"),
            row_pseudonym(home, "emr", "exam_result", "99901"),
        },
        "run 2 did not load the two new lab results under their own row keys",
    )
    read = {k: c.read for k, c in second.counts.items() if c.read}
    added = {
        LIS: 1,
        ("emr", "patient_master"): 1,
        ("emr", "admission"): 2,
        ("emr", "diagnosis"): 2,
        ("emr", "exam_result"): 1,
        ("emr", "operation_record"): 1,
    }
    check(read == added, f"run 2 read {read}, the sources gained {added}")
    status = cancer_status(state_url)
    check(len(final["person"]) == len(after["person"]) + 2, "runs 3-4 did not add 2 persons")
    for (p_late, rows), report in zip(late.items(), backfills, strict=True):
        check(status[p_late], f"{p_late} is not a cancer patient after their diagnosis")
        person = person_id(home, state_url, p_late)
        labs = [r for r in final["measurement"] if r[1] == person]
        labs_from_scratch = [r for r in from_scratch["measurement"] if r[1] == person]
        check(bool(labs), f"no lab of {p_late} was backfilled")
        check(
            len(labs) == len(labs_from_scratch),
            f"{p_late}: {len(labs)} labs, {len(labs_from_scratch)} from scratch",
        )
        # New rows count as read; older rows fetched again for the new cancer
        # patient count as backfilled, and every table still adds up.
        read = {k: c.read for k, c in report.counts.items() if c.read}
        backfilled = {k: c.backfilled for k, c in report.counts.items() if c.backfilled}
        check(
            read == {("emr", "diagnosis"): 1} and backfilled.get(LIS) == len(rows),
            f"the run that backfilled {p_late} read {read}, backfilled {backfilled} "
            f"(their LIS rows: {len(rows)})",
        )
        check(report.balanced, f"counts of the run that backfilled {p_late} do not add up")
    problems += cdm_difference(final, from_scratch)
    assert not problems, "incremental runs against a run from scratch:\n" + "\n".join(problems)


def test_new_rows_keyed_by_the_next_number_in_a_text_key_column_are_read(
    reference: Reference, vocab: Vocabulary, tmp_path: Path
) -> None:
    # The EMR's ids are numbers in TEXT columns (diag_id 1..1246, rec_id 1..438,
    # op_id 1..118), as in many hospital systems; a new row takes the next number.
    src, home = synced_copy(reference, tmp_path)
    state_url, _ = urls_of(home)
    pid = sorted(p for p, c in cancer_status(state_url).items() if c and stays(src, p))[0]
    adm, admit, _ = stays(src, pid)[0]

    def next_id(table: str, column: str) -> str:
        return str(emr(src, f"SELECT MAX(CAST({column} AS INTEGER)) FROM {table}")[0][0] + 1)

    diag, rec, op = (
        next_id("diagnosis", "diag_id"),
        next_id("exam_result", "rec_id"),
        next_id("operation_record", "op_id"),
    )
    emr(
        src,
        "INSERT INTO diagnosis VALUES (?, ?, ?, 'C34.100x001', '左肺上叶腺癌', '2')",
        diag,
        adm,
        pid,
    )
    emr(
        src,
        "INSERT INTO exam_result VALUES (?, ?, '血红蛋白', '127', 'g/L', ?)",
        rec,
        adm,
        admit.isoformat(),
    )
    emr(
        src,
        "INSERT INTO operation_record VALUES (?, ?, ?, '胸腔镜下肺叶切除术+淋巴结清扫术')",
        op,
        adm,
        admit.isoformat(),
    )
    report = sync_here(home, vocab)
    assert_complete(report)
    read = {t: c.read for (s, t), c in report.counts.items() if s == "emr" and c.read}
    assert read == {"diagnosis": 1, "exam_result": 1, "operation_record": 1}, (
        f"new rows {diag=}, {rec=}, {op=} were not all read"
    )


# -- 3. bad input --------------------------------------------------------------


def test_bad_rows_are_quarantined_with_a_reason_and_nothing_else_is_lost(
    reference: Reference, vocab: Vocabulary, tmp_path: Path
) -> None:
    # Two copies of the hospital: in `bad` some rows are spoiled, in `control` the
    # same rows are simply absent. Everything else must load alike.
    bad = copy_hospital(reference.hospital, tmp_path / "bad")
    control = copy_hospital(reference.hospital, tmp_path / "control")
    cancer = {p for p, c in cancer_status(reference.state_url).items() if c}
    held = {key for (s, t, key) in quarantine(reference.state_url) if (s, t) == LIS}

    path = bad / "lis" / "lab_results.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    rows = lis_rows(bad)
    assert len(rows) == len(lines) - 1
    # rows the reference loaded, past the 2000 that the source ranking samples
    usable = [
        i
        for i, r in enumerate(rows)
        if 2500 <= i < len(rows) - 1 and r["pat_id"] in cancer and r["sample_id"] not in held
    ][::50]
    spoil: dict[int, tuple[dict[str, str], str, str]] = dict(
        zip(
            usable,
            [
                (
                    {"item_code": "TM999", "item_name": "某某未知检验"},
                    "unknown_analyte",
                    "某某未知检验",
                ),
                ({"report_time": "2019-02-30"}, "invalid_date", "2019-02-30"),
                ({"report_time": "昨天下午"}, "invalid_date", "昨天下午"),
                ({"result": "阴性"}, "non_numeric_value", "阴性"),
                ({"result": "see comment"}, "non_numeric_value", "see comment"),
            ],
            strict=False,
        )
    )
    assert len(spoil) == 5
    expected: dict[tuple[str, str, str], tuple[str, str]] = {}
    for i, (change, code, said) in spoil.items():
        row = {**rows[i], **change}
        lines[i + 1] = (",".join(row[c] for c in LIS_HEADER) + "\n").encode()
        expected[(*LIS, rows[i]["sample_id"])] = (code, said)
    # invalid bytes in one line: that record is quarantined under its record number
    broken = usable[len(spoil)]
    lines[broken + 1] = lines[broken + 1].replace(
        rows[broken]["item_name"].encode(), b"\xff\xfe\xfd"
    )
    expected[(*LIS, str(broken + 1))] = ("invalid_encoding", "not valid utf-8")
    # the last line cut in the middle of a record, without its line end
    last = len(rows) - 1
    lines[-1] = lines[-1][: len(rows[last]["sample_id"]) + 20]
    expected[(*LIS, str(last + 1))] = ("truncated_row", "the header has 9")
    path.write_bytes(b"".join(lines))
    gone = {*spoil, broken, last}
    with (control / "lis" / "lab_results.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(LIS_HEADER)
        writer.writerows([r[c] for c in LIS_HEADER] for i, r in enumerate(rows) if i not in gone)

    # EMR: ICD-10 codes that are no ICD-10 code, an impossible date of a ward lab
    diagnoses = emr(
        bad,
        "SELECT diag_id FROM diagnosis WHERE icd_code LIKE 'C%' ORDER BY CAST(diag_id AS INTEGER)",
    )
    for (diag_id,), code in zip(diagnoses[::300], ("XX.999", "8140/3"), strict=False):
        emr(bad, "UPDATE diagnosis SET icd_code = ? WHERE diag_id = ?", code, diag_id)
        emr(control, "DELETE FROM diagnosis WHERE diag_id = ?", diag_id)
        expected[("emr", "diagnosis", diag_id)] = ("invalid_code", code)
    rec_id = emr(bad, "SELECT rec_id FROM exam_result ORDER BY CAST(rec_id AS INTEGER)")[100][0]
    emr(bad, "UPDATE exam_result SET report_date = '2020-13-45' WHERE rec_id = ?", rec_id)
    emr(control, "DELETE FROM exam_result WHERE rec_id = ?", rec_id)
    expected[("emr", "exam_result", rec_id)] = ("invalid_date", "2020-13-45")

    homes, reports = {}, {}
    for name, src in (("bad", bad), ("control", control)):
        homes[name] = new_home(tmp_path, f"H-{name}", src, secret_from=reference.home)
        reports[name] = sync_here(homes[name], vocab)
        assert_complete(reports[name])  # the counts add up, no table failed

    held_bad = quarantine(urls_of(homes["bad"])[0])
    held_control = quarantine(urls_of(homes["control"])[0])
    assert {k: held_bad.get(k, ("(not quarantined)", ""))[0] for k in held_control} == {
        k: v[0] for k, v in held_control.items()
    }
    new = {k: v for k, v in held_bad.items() if k not in held_control}
    assert {k: v[0] for k, v in new.items()} == {k: v[0] for k, v in expected.items()}
    for spot, (code, reason) in new.items():
        assert expected[spot][1] in reason, (spot, code, reason)

    # the counts differ from the control's by the spoiled rows, read and quarantined
    spoiled = Counter((s, t) for s, t, _ in expected)
    for table, c in reports["bad"].counts.items():
        k, n = reports["control"].counts[table], spoiled[table]
        assert (c.read, c.quarantined) == (k.read + n, k.quarantined + n), table
        assert (c.skipped, c.loaded, c.merged) == (k.skipped, k.loaded, k.merged), table
    # and every other row arrived
    assert_same_cdm(
        dump_cdm(urls_of(homes["bad"])[1]),
        dump_cdm(urls_of(homes["control"])[1]),
        "spoiled rows against rows left out",
    )


def summary_tables(summary: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The per-table part of a sync summary; checks that each table adds up."""
    tables = {(t["source"], t["table"]): t for t in summary["tables"]}
    for t in tables.values():
        assert t["read"] == t["skipped"] + t["in"], t
        assert t["in"] == t["loaded"] + t["merged"] + t["quarantined"], t
    return tables


def test_a_gbk_export_declared_utf8_is_quarantined_while_auto_reads_it(
    reference: Reference, vocab: Vocabulary, tmp_path: Path
) -> None:
    src = copy_hospital(reference.hospital, tmp_path / "hospital")
    path = src / "lis" / "lab_results.csv"
    path.write_bytes(path.read_text(encoding="utf-8").encode("gbk"))
    rows = len(lis_rows(src, "gbk"))

    # Two homes on these sources, synced side by side: one whose mapping says utf-8
    # (through the CLI, with --json), one whose mapping says auto (in process).
    declared = new_home(tmp_path, "utf8", src, secret_from=reference.home, lis_encoding="utf-8")
    auto = new_home(tmp_path, "auto", src, secret_from=reference.home, lis_encoding="auto")
    running = start_edge("sync", "--home", declared, "--json")
    detected = sync_here(auto, vocab)
    done = finish(running)

    # utf-8: every LIS record (all have Chinese text) is quarantined as undecodable,
    # the rest loads as in the reference; the --json summary adds up.
    assert done.returncode == 0, tail(done)
    summary = json.loads(done.stdout)
    state_url, analysis_url = urls_of(declared)
    assert summary == last_summary(state_url)
    assert summary["status"] == "finished"
    tables = summary_tables(summary)
    lis = tables.pop(LIS)
    assert (lis["read"], lis["quarantined"], lis["in"]) == (rows, rows, rows)
    assert "error" not in lis
    # the other tables as in the reference run
    assert tables == {k: t for k, t in summary_tables(reference.summary).items() if k != LIS}
    held = {k: v for k, v in quarantine(state_url).items() if k[:2] == LIS}
    assert len(held) == rows
    assert {code for code, _ in held.values()} == {"invalid_encoding"}
    assert all("not valid utf-8" in reason for _, reason in held.values())
    dump = dump_cdm(analysis_url)
    kept = [n for n in dump if n not in ("measurement", "value_provenance")]
    assert_same_cdm({n: dump[n] for n in kept}, {n: reference.dump[n] for n in kept}, "utf-8")
    # lab facts only from the EMR's exam results (NLP facts from reports come from pacs too)
    cols = list(Base.metadata.tables["measurement"].columns.keys())
    kind, system = cols.index("measurement_type_concept_id"), cols.index("src_system")
    assert {row[system] for row in dump["measurement"] if row[kind] != NLP} == {"emr"}

    # auto: finds GB18030 and gives the reference's CDM
    assert_complete(detected)
    assert_same_cdm(dump_cdm(urls_of(auto)[1]), reference.dump, "GBK with encoding: auto")


def test_a_source_table_that_disappears_is_reported_and_the_rest_loads(
    reference: Reference, vocab: Vocabulary, tmp_path: Path
) -> None:
    src, home = synced_copy(reference, tmp_path)
    state_url, analysis_url = urls_of(home)
    pid = sorted(p for p, c in cancer_status(state_url).items() if c and stays(src, p))[0]
    adm, day = free_lab_day(src, pid)
    # the EMR loses a table, the PACS export is gone, the LIS has one new result
    emr(src, "DROP TABLE exam_result")
    (src / "pacs" / "studies.csv").unlink()
    append_lis(src, [new_lab("SA0000099001", pid, adm, day)])

    done = edge("sync", "--home", home, "--json")
    assert done.returncode != 0, tail(done)
    summary = json.loads(done.stdout)
    assert summary == last_summary(state_url)
    tables = summary_tables(summary)
    errors = {k: t["error"] for k, t in tables.items() if "error" in t}
    assert set(errors) == {("emr", "exam_result"), ("pacs", "studies")}, errors
    assert "table 'exam_result'" in errors[("emr", "exam_result")]
    assert "not found" in errors[("emr", "exam_result")]
    assert "studies.csv" in errors[("pacs", "studies")]
    assert "not found" in errors[("pacs", "studies")]
    assert (tables[LIS]["read"], tables[LIS]["loaded"]) == (1, 1)

    after = dump_cdm(analysis_url)
    for name, rows in reference.dump.items():  # what was loaded stays
        assert not Counter(rows) - Counter(after[name]), name
    assert {n for n in after if after[n] != reference.dump[n]} == {"measurement"}
    assert len(after["measurement"]) == len(reference.dump["measurement"]) + 1


# -- 4. the CLI ----------------------------------------------------------------


def _table_rows(stdout: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 10:
            rows[(cells[0], cells[1])] = cells[2:]
    return rows


def test_cli_init_sync_export_quarantine_suggest_and_a_concurrent_sync(
    reference: Reference, vocab: Vocabulary, tmp_path: Path
) -> None:
    # `init` + `sync` printed a table: per source table its target and counts
    table = _table_rows(reference.stdout)
    expected = {
        (t["source"], t["table"]): [
            t["target"],
            *(f"{t[n]:,}" for n in ("read", "skipped", "in", "loaded", "merged", "quarantined")),
            "yes",
        ]
        for t in reference.summary["tables"]
    }
    assert table == expected, reference.stdout
    assert len(table) == 11
    assert int(table[LIS][1].replace(",", "")) == len(lis_rows(reference.hospital))
    assert "persons rebuilt:" in reference.stdout

    out = tmp_path / "omop"
    running = [  # these run while the sync below holds its lock (another home)
        start_edge("export-omop", out, "--home", reference.home),
        start_edge("quarantine", "list", "--summary", "--home", reference.home),
        start_edge(
            "mapping",
            "suggest",
            "--source",
            "emr",
            "--mapping",
            reference.home / "mapping.yaml",
            "--home",
            reference.home,
        ),
    ]

    # while a sync runs, a second one is refused (on the CLI and in process)
    home = new_home(tmp_path, "H3", reference.hospital, secret_from=reference.home)
    seen: dict[str, Any] = {}

    class Enough(Exception):
        pass

    def during(label: str, rows: int) -> None:
        seen["cli"] = edge("sync", "--home", home, "--quiet")
        with pytest.raises(Conflict) as refused:
            sync_here(home, vocab)
        seen["code"] = refused.value.code
        raise Enough

    with pytest.raises(Enough):
        sync_here(home, vocab, progress=during)
    assert seen["code"] == "sync_running"
    assert seen["cli"].returncode == 6, tail(seen["cli"])
    assert "another sync is running" in seen["cli"].stderr
    export, held, suggested = (finish(proc) for proc in running)

    # export-omop: one CSV per OMOP table, as many rows as the CDM has
    assert export.returncode == 0, tail(export)
    printed = dict(line.split("\t") for line in export.stdout.splitlines())
    assert set(printed) == set(OMOP_TABLES)
    for name in OMOP_TABLES:
        with (out / f"{name}.csv").open(encoding="utf-8", newline="") as fh:
            written = sum(1 for _ in csv.reader(fh)) - 1
        assert written == int(printed[name]) == len(reference.dump[name]), name
    assert len(reference.dump["person"]) > 200

    # quarantine list --summary: counts per source table and reason code
    assert held.returncode == 0, tail(held)
    listed = {
        (s, t, code): int(n)
        for s, t, code, n in (line.split("\t") for line in held.stdout.splitlines())
    }
    codes = Counter(
        (s, t, code) for (s, t, _), (code, _) in quarantine(reference.state_url).items()
    )
    assert listed == dict(codes)
    assert set(listed) >= {
        ("lis", "lab_results", "missing_value"),
        ("lis", "lab_results", "implausible_value"),
        ("emr", "admission", "dates_out_of_order"),
    }

    # mapping suggest: YAML that names the patient table with target patient
    assert suggested.returncode == 0, tail(suggested)
    proposal = yaml.safe_load(suggested.stdout)
    targets = {t["table"]: t["target"] for t in proposal["tables"]}
    assert targets["patient_master"] == "patient"
    assert {t["source"] for t in proposal["tables"]} == {"emr"}
