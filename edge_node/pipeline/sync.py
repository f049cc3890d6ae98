"""`oncofed-edge sync`: one incremental run of the pipeline.

Order of a run: the index tables (patients, admissions, diagnoses, follow-up)
up to their watermarks; the CDM rows of every person they touched; older rows
of patients who have just become cancer patients (backfill); then the event
tables up to their watermarks. Every batch commits its effects before its
watermark moves, and every write is keyed, so a run can be killed anywhere and
the next one finishes the job with the same result.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from queue import Full, Queue
from typing import Any

import sqlalchemy as sa

from edge_node.pipeline import first_load
from edge_node.pipeline.connectors import Connector, SourceMissing, open_connector
from edge_node.pipeline.context import ProgressHook, RunContext, TableCounts, utcnow
from edge_node.pipeline.dbutil import chunks, select_in, upsert
from edge_node.pipeline.deid import Deidentifier, DeidPolicy, Pseudonymizer, SiteSecret
from edge_node.pipeline.events import EVENT_TABLES, load_events
from edge_node.pipeline.linkage import (
    INDEX_TARGETS,
    INDEXERS,
    admissions_t,
    count_index_rows,
    persons_t,
    reid_t,
)
from edge_node.pipeline.mapping import RowMapper, SiteMapping, TableMapping, load_mapping
from edge_node.pipeline.persons import build_dirty_persons, conflicts_t
from edge_node.pipeline.records import MappedRecord, Rejection, SourceBatch
from edge_node.pipeline.sealed import (
    REID_AAD,
    WATERMARK_AAD,
    IdentifierGuard,
    aad,
    require_sync_vault,
)
from edge_node.pipeline.state import PipelineRun, Watermark
from edge_node.pipeline.structuring import take_tally
from edge_node.pipeline.workers import TextWorkers
from edge_node.store.database import upgrade_state_db
from shared_cdm.db import make_engine, upgrade
from shared_cdm.errors import Conflict, OncoFedError
from shared_cdm.models import Concept
from shared_cdm.vocab import Vocabulary, load_default
from shared_cdm.vocab.loader import load_concepts_into_db

runs_t: sa.Table = PipelineRun.__table__  # type: ignore[assignment]
watermarks_t: sa.Table = Watermark.__table__  # type: ignore[assignment]
EVENT_TARGETS = tuple(EVENT_TABLES)
RANK_SAMPLE = 2000
_LAB_COMPLETENESS = ("value", "unit_as_written", "reference_range", "result_date")


@dataclass
class SyncReport:
    run_id: int
    status: str
    counts: dict[tuple[str, str], TableCounts]
    targets: dict[tuple[str, str], str]
    persons: int = 0
    conflicts: int = 0
    seconds: float = 0.0
    ranks: dict[str, int] = field(default_factory=dict)
    structuring: dict[str, Any] = field(default_factory=dict)  # structuring.Tally

    @property
    def balanced(self) -> bool:
        return all(c.balanced for c in self.counts.values())

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "persons_rebuilt": self.persons,
            "conflicts": self.conflicts,
            "seconds": round(self.seconds, 3),
            "source_ranks": self.ranks,
            "structuring": self.structuring,
            "tables": [
                {"source": s, "table": t, "target": self.targets.get((s, t)), **c.as_dict()}
                for (s, t), c in self.counts.items()
            ],
        }


@contextmanager
def sync_lock(home: Path) -> Iterator[None]:
    """One sync per edge at a time; the lock dies with the process."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / "sync.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict("another sync is running on this edge", code="sync_running") from None
        yield
    finally:
        os.close(fd)


def run_sync(
    *,
    home: Path,
    state_db_url: str,
    analysis_db_url: str,
    mapping_file: Path,
    deid_policy: DeidPolicy | None = None,
    batch_size: int = 20000,
    full: bool = False,
    progress: ProgressHook | None = None,
    vocab: Vocabulary | None = None,
    stop_after_batches: int | None = None,
    defer_indexes: bool = True,
    text_workers: int | None = None,
) -> SyncReport:
    """Run the pipeline once. `stop_after_batches` exists for tests of interruption;
    `defer_indexes=False` loads empty event tables with their indexes in place (the
    rows are the same; tests compare the two ways). `text_workers` processes scrub
    and structure notes (default ONCOFED_SCRUB_WORKERS, else 1; `auto` = one per CPU; 1 =
    in-process)."""
    started = time.perf_counter()
    mapping = load_mapping(mapping_file)
    # Before anything is read: the re-identification map is only ever written sealed.
    vault = require_sync_vault(home)
    with sync_lock(home):
        upgrade_state_db(state_db_url)
        upgrade(analysis_db_url)
        state, analysis = make_engine(state_db_url), make_engine(analysis_db_url)
        _async_commits(state)
        _async_commits(analysis)
        try:
            vocab = vocab or load_default()
            _ensure_concepts(analysis, vocab)
            secret = SiteSecret.load_or_create(SiteSecret.path_in(home))
            deid = Deidentifier(Pseudonymizer(secret), deid_policy or DeidPolicy())
            run_id = _start_run(state, mapping)
            ctx = RunContext(
                state=state,
                analysis=analysis,
                deid=deid,
                vocab=vocab,
                run_id=run_id,
                icd10_ranges=tuple(mapping.icd10_ranges),
                concepts={
                    (c.vocabulary_id, c.concept_code): c.concept_id for c in vocab.concepts()
                },
                ids=IdentifierGuard(secret, vault),
                batch_size=batch_size,
                progress=progress,
                text_workers=TextWorkers(
                    deid.pseudonymizer,
                    secret,
                    surrogates=deid.policy.note_identifiers == "surrogates",
                    workers=text_workers,
                ),
            )
            runner = _Runner(
                ctx,
                mapping,
                full=full,
                stop_after_batches=stop_after_batches,
                defer_indexes=defer_indexes,
            )
            try:
                runner.run()
                status = "finished"
            except BaseException:
                take_tally(ctx)
                _finish_run(state, run_id, "failed", None)
                raise
            finally:
                runner.close()
                ctx.text_workers.close()
            report = SyncReport(
                run_id,
                status,
                ctx.counts,
                runner.targets,
                persons=runner.persons,
                conflicts=sum(ctx.conflicts.values()),
                seconds=time.perf_counter() - started,
                ranks={
                    f"{s}/{t}": r for (s, t), r in sorted(ctx.ranks.items(), key=lambda i: i[1])
                },
                structuring=take_tally(ctx),
            )
            _finish_run(state, run_id, status, report.summary())
            return report
        finally:
            state.dispose()
            analysis.dispose()


def _async_commits(engine: sa.Engine) -> None:
    """PostgreSQL commits of this run's connections do not wait for the WAL flush.
    Safe: a commit lost to a server crash only loses batches the next run replays
    (every write is keyed and the watermark commits with its batch's effects)."""
    if engine.dialect.name != "postgresql":
        return

    @sa.event.listens_for(engine, "connect")
    def _no_sync_commit(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cursor:
            cursor.execute("SET synchronous_commit = off")
        dbapi_conn.commit()  # keep the setting past the pool's reset rollback


Mapped = tuple[SourceBatch, list[MappedRecord], list[Rejection]]


def _mapped(
    tm: TableMapping, mapper: RowMapper, batches: Iterator[SourceBatch]
) -> Iterator[Mapped]:
    for batch in batches:
        rejections = [
            Rejection(tm.source, tm.table, r.key, r.code, r.reason, None, {"raw": r.raw[:2000]})
            for r in batch.rejects
        ]
        records: list[MappedRecord] = []
        for row in batch.rows:
            out = mapper.map(row)
            if isinstance(out, MappedRecord):
                records.append(out)
            else:
                rejections.append(out)
        yield batch, records, rejections


_DONE = object()


def prefetched(items: Iterator[Mapped], depth: int = 1) -> Iterator[Mapped]:
    """Read and map the next batch in a thread while this one is written: the
    database's time overlaps the mapping's. At most `depth` batches wait."""
    queue: Queue[Any] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put(item, timeout=0.2)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            queue.put(exc)

    worker = threading.Thread(target=produce, name="oncofed-sync-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=30)


class _Interrupted(Exception):
    """Raised by the test hook `stop_after_batches`."""


def _ensure_concepts(analysis: sa.Engine, vocab: Vocabulary) -> None:
    with analysis.connect() as conn:
        present = conn.execute(
            sa.select(sa.func.count()).select_from(Concept.__table__)
        ).scalar_one()
    if not present:
        from sqlalchemy.orm import Session

        with Session(analysis) as session, session.begin():
            load_concepts_into_db(session, vocab)


def _start_run(state: sa.Engine, mapping: SiteMapping) -> int:
    with state.begin() as conn:
        conn.execute(
            sa.update(runs_t).where(runs_t.c.status == "running").values(status="interrupted")
        )
        stmt = (
            sa.insert(runs_t)
            .values(
                started_at=utcnow(), status="running", mapping_fingerprint=mapping.fingerprint()
            )
            .returning(runs_t.c.run_id)
        )
        return int(conn.execute(stmt).scalar_one())


def _finish_run(state: sa.Engine, run_id: int, status: str, summary: dict[str, Any] | None) -> None:
    with state.begin() as conn:
        conn.execute(
            sa.update(runs_t)
            .where(runs_t.c.run_id == run_id)
            .values(status=status, finished_at=utcnow(), summary=summary)
        )


class _Runner:
    def __init__(
        self,
        ctx: RunContext,
        mapping: SiteMapping,
        *,
        full: bool,
        stop_after_batches: int | None,
        defer_indexes: bool = True,
    ) -> None:
        self.ctx = ctx
        self.defer_indexes = defer_indexes
        self.mapping = mapping
        self.full = full
        self.connectors: dict[str, Connector] = {}
        self.targets: dict[tuple[str, str], str] = {}
        self.persons = 0
        self.batches_left = stop_after_batches

    def close(self) -> None:
        for connector in self.connectors.values():
            connector.close()

    def connector(self, name: str) -> Connector:
        if name not in self.connectors:
            spec = self.mapping.sources[name]
            self.connectors[name] = open_connector(name, spec.options(), self.mapping.base_dir)
        return self.connectors[name]

    def tables(self, *targets: str) -> list[TableMapping]:
        return [tm for tm in self.mapping.tables if tm.target in targets]

    def run(self) -> None:
        ctx = self.ctx
        # A first load killed before it rebuilt its indexes: rebuilt before anything reads.
        first_load.rebuild(ctx.analysis)
        if self.full:
            with ctx.state.begin() as conn:
                conn.execute(sa.delete(watermarks_t))
        for tm in self.mapping.tables:
            self.targets[(tm.source, tm.table)] = tm.target
        ctx.events_started = self._any_watermark(self.tables(*EVENT_TARGETS))
        self._rank_sources()
        for target in INDEX_TARGETS:
            for tm in self.tables(target):
                self._process(tm)
        with ctx.state.connect() as conn:
            count_index_rows(ctx, conn)
        self.persons += build_dirty_persons(ctx)
        self._backfill()
        # Nothing reads the event tables while they load: an empty one takes its rows
        # without indexes and foreign keys, which are built once at the end.
        if self.defer_indexes:
            first_load.defer(ctx.analysis)
        for tm in self.tables(*EVENT_TARGETS):
            self._process(tm)
        first_load.rebuild(ctx.analysis)

    def _any_watermark(self, tables: list[TableMapping]) -> bool:
        with self.ctx.state.connect() as conn:
            for tm in tables:
                if self._watermark(conn, tm) is not None:
                    return True
        return False

    def _watermark(self, conn: sa.Connection, tm: TableMapping) -> str | None:
        sealed = conn.execute(
            sa.select(watermarks_t.c.watermark).where(
                watermarks_t.c.source == tm.source, watermarks_t.c.source_table == tm.table
            )
        ).scalar_one_or_none()
        if sealed is None:
            return None
        return self.ctx.ids.open(
            sealed,
            aad(WATERMARK_AAD, tm.source, tm.table),
            what=f"the watermark of {tm.source}/{tm.table}",
        )

    def _rank_sources(self) -> None:
        """Mergeable sources ranked by missing rate on a sample (lowest first)."""
        rates: list[tuple[float, int, str, str]] = []
        for order, tm in enumerate(self.tables("lab")):
            try:
                connector = self.connector(tm.source)
                mapper = RowMapper(tm, connector.columns(tm.table), self.ctx.vocab)
                sample = connector.sample(tm.table, RANK_SAMPLE)
            except OncoFedError:
                continue  # reported when the table is processed
            missing = 0.0
            for row in sample:
                out = mapper.map(row)
                if isinstance(out, MappedRecord):
                    missing += sum(out.fields.get(f) is None for f in _LAB_COMPLETENESS) / len(
                        _LAB_COMPLETENESS
                    )
                else:
                    missing += 1.0
            rates.append((missing / max(len(sample), 1), order, tm.source, tm.table))
        for rank, (_, _, source, table) in enumerate(sorted(rates)):
            self.ctx.ranks[(source, table)] = rank

    def _process(
        self,
        tm: TableMapping,
        batches: Iterator[SourceBatch] | None = None,
        *,
        backfill: bool = False,
    ) -> None:
        """Read one mapped table (after its watermark, or the given batches) and load it."""
        ctx = self.ctx
        counts = ctx.table_counts(tm.source, tm.table)
        try:
            connector = self.connector(tm.source)
            mapper = RowMapper(tm, connector.columns(tm.table), ctx.vocab)
            if batches is None:
                with ctx.state.connect() as conn:
                    start = self._watermark(conn, tm)
                batches = connector.read(
                    tm.table, key=tm.key, watermark=start, batch_size=ctx.batch_size
                )
            for batch, records, rejections in prefetched(_mapped(tm, mapper, batches)):
                self._batch(tm, batch, records, rejections, counts, backfill=backfill)
        except SourceMissing as exc:
            counts.error = exc.message
        except OncoFedError as exc:
            if exc.code in ("unknown_target",):
                raise
            counts.error = exc.message

    def _batch(
        self,
        tm: TableMapping,
        batch: SourceBatch,
        records: list[MappedRecord],
        rejections: list[Rejection],
        counts: TableCounts,
        *,
        backfill: bool = False,
    ) -> None:
        ctx = self.ctx
        if backfill:
            counts.backfilled += len(batch.rows) + len(batch.rejects)
        else:
            counts.read += len(batch.rows) + len(batch.rejects)
        conflicts: list[dict[str, Any]] = []
        if tm.target in INDEXERS:
            with ctx.state.begin() as conn:
                rejections += INDEXERS[tm.target](ctx, conn, records)
                self._commit(conn, tm, batch, rejections, conflicts)
        else:
            more, conflicts = load_events(ctx, tm.target, records)
            rejections += more
            with ctx.state.begin() as conn:
                self._commit(conn, tm, batch, rejections, conflicts)
        counts.quarantined += len(rejections)
        if ctx.progress is not None:
            ctx.progress(f"{tm.source}/{tm.table}", len(batch.rows) + len(batch.rejects))
        if self.batches_left is not None:
            self.batches_left -= 1
            if self.batches_left <= 0:
                raise _Interrupted("stopped by stop_after_batches")

    def _commit(
        self,
        conn: sa.Connection,
        tm: TableMapping,
        batch: SourceBatch,
        rejections: list[Rejection],
        conflicts: list[dict[str, Any]],
    ) -> None:
        self.ctx.quarantine(conn, rejections)
        if conflicts:
            unique = {
                (c["cdm_table"], c["row_id"], c["field"], c["other_source"]): c for c in conflicts
            }
            upsert(
                conn,
                conflicts_t,
                list(unique.values()),
                ["cdm_table", "row_id", "field", "other_source"],
            )
            for c in unique.values():
                self.ctx.conflicts[c["cdm_table"]] += 1
        if batch.watermark is not None:
            upsert(
                conn,
                watermarks_t,
                [
                    {
                        "source": tm.source,
                        "source_table": tm.table,
                        # sealed: a watermark may be the last key read (a patient ID)
                        "watermark": self.ctx.ids.seal(
                            batch.watermark, aad(WATERMARK_AAD, tm.source, tm.table)
                        ),
                        "updated_at": utcnow(),
                    }
                ],
            )

    def _backfill(self) -> None:
        """Older event rows of persons who became cancer patients after those rows were read."""
        ctx = self.ctx
        with ctx.state.connect() as conn:
            keys = [
                k
                for (k,) in conn.execute(
                    sa.select(persons_t.c.person_key).where(persons_t.c.needs_backfill)
                )
            ]
            if not keys:
                return
            # The source is asked by its own IDs: opened from the sealed map and stays.
            entries = select_in(conn, reid_t, "person_key", keys)
            pids = [
                ctx.ids.open(
                    e.sealed_id,
                    aad(REID_AAD, e.person_key, e.patient_hash),
                    what=f"the re-identification entry of {e.person_key}",
                )
                for e in entries
            ]
            admissions = [
                ctx.admission_id_of(row)
                for row in select_in(
                    conn, admissions_t, "patient_id", [e.patient_hash for e in entries]
                )
            ]
        for tm in self.tables(*EVENT_TARGETS):
            with ctx.state.connect() as conn:
                if self._watermark(conn, tm) is None:
                    continue  # read in full below anyway
            try:
                connector = self.connector(tm.source)
                mapper = RowMapper(tm, connector.columns(tm.table), ctx.vocab)
            except OncoFedError as exc:
                ctx.table_counts(tm.source, tm.table).error = exc.message
                continue
            column, values = (
                (mapper.resolved.get("patient_id"), pids)
                if mapper.resolved.get("patient_id")
                else (mapper.resolved.get("admission_id"), admissions)
            )
            if column is None:
                continue
            rows = connector.read_where(
                tm.table, column, values, batch_size=ctx.batch_size, key=tm.key
            )
            self._process(tm, rows, backfill=True)
        with ctx.state.begin() as conn:
            for part in chunks(keys):
                conn.execute(
                    sa.update(persons_t)
                    .where(persons_t.c.person_key.in_(part))
                    .values(needs_backfill=False)
                )
