"""The first-load fast path on PostgreSQL (`edge_node/pipeline/first_load.py`): an
empty CDM's event tables take their rows without secondary indexes and foreign
keys, which are rebuilt at the end. It must give exactly the CDM, quarantine and
counts of a load with everything in place, and a run stopped while the indexes
are down must leave the next run to rebuild them and finish the same job.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.pool import NullPool

from edge_node.pipeline import first_load
from edge_node.pipeline.deid import SiteSecret
from edge_node.pipeline.linkage import INDEX_TARGETS
from edge_node.pipeline.sealed import open_quarantine
from edge_node.pipeline.sync import SyncReport, _Interrupted, run_sync
from edge_node.security.vault import require_vault
from ops.synth.hospital import write_hospital
from ops.synth.mappings import mapping_text
from ops.synth.variants import get_variant
from shared_cdm.db import upgrade
from shared_cdm.models import Base
from shared_cdm.vocab import Vocabulary, load_default

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

VARIANT, PATIENTS, SEED = "A", 150, 31
BATCH = 400

Dump = dict[str, list[tuple[Any, ...]]]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return load_default()


@pytest.fixture(scope="module")
def mapping_file(tmp_path_factory: pytest.TempPathFactory, vocab: Vocabulary) -> Path:
    folder = tmp_path_factory.mktemp("hospital")
    write_hospital(folder, patients=PATIENTS, seed=SEED, variant=get_variant(VARIANT), vocab=vocab)
    data = yaml.safe_load(mapping_text(VARIANT))
    data["sources"]["emr"]["url"] = f"sqlite:///{folder / 'emr.db'}"
    data["sources"]["lis"]["path"] = str(folder / "lis" / "lab_results.csv")
    data["sources"]["pacs"]["path"] = str(folder / "pacs" / "studies.csv")
    path = folder / "mapping.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def secret_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("secret")
    SiteSecret.load_or_create(SiteSecret.path_in(home))
    return home


@pytest.fixture(scope="module")
def new_pg_db(pg_server_url: str) -> Iterator[Callable[[], str]]:
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    made: list[str] = []

    def make() -> str:
        name = f"oncofed_t_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return sa.engine.make_url(pg_server_url).set(database=name).render_as_string(False)

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class Edge:
    """One edge home (sharing the module's site secret) on two new PostgreSQL databases."""

    def __init__(self, root: Path, secret_home: Path, make_db: Callable[[], str]) -> None:
        self.home = root / uuid.uuid4().hex[:8]
        self.home.mkdir()
        key = SiteSecret.path_in(self.home)
        shutil.copyfile(SiteSecret.path_in(secret_home), key)
        key.chmod(0o600)
        self.state, self.analysis = make_db(), make_db()

    def sync(self, mapping: Path, vocab: Vocabulary, **kwargs: Any) -> SyncReport:
        return run_sync(
            home=self.home,
            state_db_url=self.state,
            analysis_db_url=self.analysis,
            mapping_file=mapping,
            vocab=vocab,
            batch_size=BATCH,
            **kwargs,
        )

    def query(self, url: str, sql: str) -> list[tuple[Any, ...]]:
        engine = sa.create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(sa.text(sql))]
        finally:
            engine.dispose()

    def cdm(self) -> Dump:
        engine = sa.create_engine(self.analysis, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return {
                    name: sorted(
                        (tuple(_plain(v) for v in row) for row in conn.execute(sa.select(t))),
                        key=repr,
                    )
                    for name, t in sorted(Base.metadata.tables.items())
                }
        finally:
            engine.dispose()

    def quarantine(self) -> list[tuple[Any, ...]]:
        """The quarantine opened (sealed afresh by every run) with conftest's vault key."""
        vault = require_vault(self.home)
        engine = sa.create_engine(self.state, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                stored = conn.execute(sa.text("SELECT * FROM pipeline_quarantine")).mappings()
                opened = [open_quarantine(vault, dict(row)) for row in stored]
        finally:
            engine.dispose()
        return sorted(
            (
                q["source"],
                q["source_table"],
                q["row_key"],
                q["code"],
                q["reason"],
                q["field"],
                json.dumps(q["record"], sort_keys=True),
            )
            for q in opened
        )

    def schema(self) -> list[tuple[Any, ...]]:
        """Every index and constraint of the CDM's tables, and table comments."""
        indexes = self.query(
            self.analysis,
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
        )
        constraints = self.query(
            self.analysis,
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
        )
        comments = self.query(
            self.analysis,
            "SELECT relname, obj_description(oid, 'pg_class') FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' "
            "AND obj_description(oid, 'pg_class') IS NOT NULL",
        )
        return sorted(indexes) + sorted(constraints) + sorted(comments)


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 9) if math.isfinite(value) else repr(value)
    if isinstance(value, decimal.Decimal):
        return str(value.normalize())
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat()
    return value


def _counts(report: SyncReport) -> dict[str, Any]:
    return {f"{s}/{t}": c.as_dict() for (s, t), c in report.counts.items()}


def _index_batches(report: SyncReport, targets: dict[tuple[str, str], str]) -> int:
    """How many batches the run read before its first event table."""
    return sum(
        math.ceil(c.read / BATCH)
        for key, c in report.counts.items()
        if targets.get(key) in INDEX_TARGETS
    )


def test_first_load_gives_the_same_cdm_as_a_load_with_indexes_in_place(
    mapping_file: Path,
    secret_home: Path,
    vocab: Vocabulary,
    new_pg_db: Callable[[], str],
    tmp_path: Path,
) -> None:
    plain = Edge(tmp_path, secret_home, new_pg_db)
    expected = plain.sync(mapping_file, vocab, defer_indexes=False)
    assert expected.status == "finished" and expected.balanced
    reference = plain.cdm()
    assert len(reference["measurement"]) > 1000  # the fast path has real work to do

    fast = Edge(tmp_path, secret_home, new_pg_db)
    report = fast.sync(mapping_file, vocab)
    assert report.status == "finished" and report.balanced
    assert fast.cdm() == reference
    assert fast.quarantine() == plain.quarantine()
    assert _counts(report) == _counts(expected)
    assert report.conflicts == expected.conflicts
    # The indexes, foreign keys and comments are back exactly as they were.
    assert fast.schema() == plain.schema()
    assert first_load.deferred(sa.create_engine(fast.analysis, poolclass=NullPool)) == []

    # A second run finds tables with rows: nothing is deferred, nothing changes.
    again = fast.sync(mapping_file, vocab)
    assert sum(c.read for c in again.counts.values()) == 0
    assert fast.cdm() == reference and fast.schema() == plain.schema()


def test_a_first_load_stopped_with_its_indexes_down_is_finished_by_the_next_run(
    mapping_file: Path,
    secret_home: Path,
    vocab: Vocabulary,
    new_pg_db: Callable[[], str],
    tmp_path: Path,
) -> None:
    plain = Edge(tmp_path, secret_home, new_pg_db)
    expected = plain.sync(mapping_file, vocab, defer_indexes=False)
    # Stop two batches into the event tables: their indexes are down then.
    stop_at = _index_batches(expected, _targets(mapping_file)) + 2

    edge = Edge(tmp_path, secret_home, new_pg_db)
    with pytest.raises(_Interrupted):
        edge.sync(mapping_file, vocab, stop_after_batches=stop_at)
    engine = sa.create_engine(edge.analysis, poolclass=NullPool)
    try:
        down = first_load.deferred(engine)
        assert "measurement" in down or "procedure_occurrence" in down, down
        assert edge.schema() != plain.schema()

        report = edge.sync(mapping_file, vocab)
        assert report.status == "finished" and report.balanced
        assert first_load.deferred(engine) == []
    finally:
        engine.dispose()
    assert edge.cdm() == plain.cdm()
    assert edge.quarantine() == plain.quarantine()
    assert edge.schema() == plain.schema()


def _targets(mapping_file: Path) -> dict[tuple[str, str], str]:
    data = yaml.safe_load(mapping_file.read_text(encoding="utf-8"))
    return {(t["source"], t["table"]): t["target"] for t in data["tables"]}


def test_a_rebuild_the_foreign_keys_refuse_fails_clearly_and_is_tried_again(
    new_pg_db: Callable[[], str],
) -> None:
    url = new_pg_db()
    upgrade(url)
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        assert first_load.defer(engine) == list(first_load.DEFERRABLE)
        with engine.begin() as conn:  # a row of a person the CDM does not have
            conn.execute(
                sa.text(
                    "INSERT INTO measurement (measurement_id, person_id, "
                    "measurement_concept_id, measurement_date, measurement_type_concept_id) "
                    "VALUES (1, 42, 0, '2020-01-01', 0)"
                )
            )
        with pytest.raises(first_load.RebuildFailed) as failed:
            first_load.rebuild(engine)
        assert failed.value.code == "cdm_rebuild_failed"
        assert "measurement" in failed.value.message
        # Nothing is lost: the row and the saved definitions stay for the next try.
        assert "measurement" in first_load.deferred(engine)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM measurement")).scalar_one() == 1
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM measurement"))
        first_load.rebuild(engine)
        assert first_load.deferred(engine) == []
        with engine.connect() as conn:
            fks = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_constraint "
                    "WHERE conrelid = 'measurement'::regclass AND contype = 'f'"
                )
            ).scalar_one()
            idx = conn.execute(
                sa.text("SELECT count(*) FROM pg_indexes WHERE tablename = 'measurement'")
            ).scalar_one()
        assert (fks, idx) == (2, 4)
    finally:
        engine.dispose()
