"""Helpers of the pipeline throughput benchmark (`test_pipeline_throughput.py`).

A synthetic hospital cached on disk, throwaway PostgreSQL databases, one
`oncofed-edge sync` run as a child process (wall time and the child's own peak
RSS from `wait4`), and the baseline: a plain PostgreSQL COPY of the same source
rows into text columns.

Also a profiler for one in-process pipeline run, for finding where the time goes:

    .venv/bin/python -m tests.benchmarks.pipeline_bench profile [--patients N] [--top 40]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import io
import json
import os
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
import yaml

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "oncofed-bench"
VARIANT = "A"
SEED = 2026
COPY_CHUNK = 1 << 20  # bytes per COPY write
_COMPLETE = ".complete"  # written last: a hospital folder without it is regenerated


def pg_server_url() -> str:
    return os.environ.get("ONCOFED_TEST_PG_URL") or DEFAULT_PG_URL


def note_text_setting() -> str | None:
    """ONCOFED_BENCH_NOTE_TEXT=omit|scrubbed overrides the policy's `note_text`
    (default: the policy `init` writes, which scrubs note text)."""
    value = os.environ.get("ONCOFED_BENCH_NOTE_TEXT")
    if value not in (None, "omit", "scrubbed"):
        raise ValueError(f"ONCOFED_BENCH_NOTE_TEXT must be omit or scrubbed, not {value!r}")
    return value


def cache_dir() -> Path:
    return Path(os.environ.get("ONCOFED_BENCH_DIR") or DEFAULT_CACHE)


def _bin(name: str) -> list[str]:
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    module = {"oncofed-edge": "edge_node.cli", "oncofed-ops": "ops.cli"}[name]
    return [sys.executable, "-m", module]


# -- the synthetic hospital ------------------------------------------------------------


def hospital(patients: int, root: Path | None = None) -> Path:
    """A synthetic hospital of `patients` patients (variant A) with its mapping.yaml,
    generated once and reused from the cache folder afterwards."""
    root = root or cache_dir()
    folder = root / f"hospital-{VARIANT}-seed{SEED}-{patients}"
    if (folder / _COMPLETE).exists():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    partial = root / f".partial-{folder.name}-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    started = time.perf_counter()
    print(f"\ngenerating a {patients:,}-patient hospital into {folder} ...", flush=True)
    subprocess.run(
        [
            *_bin("oncofed-ops"),
            "synth-hospital",
            "--patients",
            str(patients),
            "--seed",
            str(SEED),
            "--variant",
            VARIANT,
            "--out",
            str(partial),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    from ops.synth.mappings import mapping_text

    (partial / "mapping.yaml").write_text(mapping_text(VARIANT), encoding="utf-8")
    shutil.rmtree(partial / "truth", ignore_errors=True)  # not read by the pipeline; large
    shutil.rmtree(partial / "lab_sheets", ignore_errors=True)
    (partial / _COMPLETE).write_text(f"{time.perf_counter() - started:.1f} s\n")
    partial.rename(folder)
    print(f"generated in {time.perf_counter() - started:.0f} s", flush=True)
    return folder


@dataclass(frozen=True)
class SourceFile:
    """One table the pipeline reads, as a CSV file a plain COPY can load."""

    name: str  # source/table
    path: Path
    columns: list[str]
    encoding: str


def source_files(folder: Path) -> list[SourceFile]:
    """Every mapped source table of the hospital as CSV: the CSV sources as they are,
    the SQL tables exported once to `folder/copy_csv/` (cached with the hospital)."""
    mapping = yaml.safe_load((folder / "mapping.yaml").read_text(encoding="utf-8"))
    out: list[SourceFile] = []
    export = folder / "copy_csv"
    export.mkdir(exist_ok=True)
    for tm in mapping["tables"]:
        spec = mapping["sources"][tm["source"]]
        name = f"{tm['source']}/{tm['table']}"
        if spec["kind"] == "csv":
            path = folder / spec["path"]
            if path.is_dir():
                path = path / f"{tm['table']}.csv"
            with path.open("r", encoding="utf-8-sig", newline="") as fh:
                columns = next(csv.reader(fh))
            out.append(SourceFile(name, path, columns, "utf-8-sig"))
        elif spec["kind"] == "sql":
            db = folder / sa.engine.make_url(spec["url"]).database  # type: ignore[operator]
            path = export / f"{tm['source']}.{tm['table']}.csv"
            columns = _export_sqlite(db, tm["table"], path)
            out.append(SourceFile(name, path, columns, "utf-8"))
        else:
            raise ValueError(f"the benchmark has no COPY baseline for {spec['kind']!r} sources")
    return out


def _export_sqlite(db: Path, table: str, path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        cursor = conn.execute(f'SELECT * FROM "{table}"')
        columns = [d[0] for d in cursor.description]
        if path.exists():
            return columns
        partial = path.with_suffix(".partial")
        with partial.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            while rows := cursor.fetchmany(10_000):
                writer.writerows(rows)
        partial.rename(path)
        return columns


# -- PostgreSQL ------------------------------------------------------------------------


@contextlib.contextmanager
def pg_database(purpose: str, server_url: str | None = None) -> Iterator[str]:
    """A fresh, empty database `oncofed_bench_<purpose>_<hex>`, dropped afterwards."""
    server_url = server_url or pg_server_url()
    name = f"oncofed_bench_{purpose}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield (
                sa.engine.make_url(server_url)
                .set(database=name)
                .render_as_string(hide_password=False)
            )
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _libpq(url: str) -> str:
    u = sa.engine.make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True)
class CopyRun:
    seconds: float  # the median of `repeats`
    rows: int
    bytes: int
    repeats: tuple[float, ...]  # every repeat's seconds


def copy_baseline(files: list[SourceFile], url: str, repeats: int = 3) -> CopyRun:
    """COPY every file into its own text-column table, streamed from disk, one
    transaction per table (as the pipeline commits per batch). Repeated into new
    tables each time (it takes seconds, so one busy moment on a shared machine
    would otherwise decide the ratio); the median counts."""
    times: list[float] = []
    rows = size = 0
    with psycopg.connect(_libpq(url)) as conn:
        for rep in range(repeats):
            for n, f in enumerate(files):
                cols = ", ".join(f'"c{i}_{c}" text' for i, c in enumerate(f.columns))
                conn.execute(f"CREATE TABLE src_{rep}_{n} ({cols})")
            conn.commit()
            rows = size = 0
            started = time.perf_counter()
            for n, f in enumerate(files):
                sql = f"COPY src_{rep}_{n} FROM STDIN (FORMAT csv, HEADER true, ENCODING 'UTF8')"
                with conn.cursor() as cur:
                    with f.path.open("rb") as fh, cur.copy(sql) as copy:
                        while data := fh.read(COPY_CHUNK):
                            copy.write(data)
                            size += len(data)
                    rows += cur.rowcount
                conn.commit()
            times.append(time.perf_counter() - started)
    return CopyRun(statistics.median(times), rows, size, tuple(times))


# -- the pipeline as a child process -----------------------------------------------------


@dataclass(frozen=True)
class SyncRun:
    seconds: float  # wall time of `oncofed-edge sync`, interpreter start-up included
    in_run_seconds: float  # run_sync's own time (extract .. load), from the summary
    peak_rss: int  # bytes: the child's own high-water mark
    cpu_seconds: float  # the child's user + system CPU: the rest of the wall is mostly waiting
    summary: dict[str, Any]
    tree_peak_rss: int = 0  # bytes: the sum over the child and its worker processes, sampled

    @property
    def tables(self) -> list[dict[str, Any]]:
        return list(self.summary["tables"])

    @property
    def read(self) -> int:
        return sum(int(t["read"]) for t in self.tables)


def _tree_rss(pid: int) -> int:
    """Bytes resident in `pid` and its descendants (the scrubbing workers) now; an
    upper bound, as pages two processes share count twice."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status", encoding="ascii", errors="replace") as fh:
                total += next(
                    (int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmRSS:")), 0
                )
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as fh:
                    stack += [int(c) for c in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def _run_measured(
    cmd: list[str], *, stdout: Path, stderr: Path
) -> tuple[int, float, int, float, int]:
    """(exit code, wall seconds, peak RSS bytes, CPU seconds, peak RSS of the process tree)
    of one child: wait4 gives the first three (its peak is the largest single process's),
    a sampler every 0.2 s the tree's sum."""
    with stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        tree_peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal tree_peak
            while not done.wait(0.2):
                tree_peak = max(tree_peak, _tree_rss(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    peak = usage.ru_maxrss * 1024  # Linux: ru_maxrss in KiB
    return proc.returncode, seconds, peak, cpu, max(tree_peak, peak)


def run_sync_child(
    folder: Path, home: Path, *, state_url: str, analysis_url: str, batch_size: int | None = None
) -> SyncRun:
    """`oncofed-edge init` then `oncofed-edge sync --quiet --json` into the given databases."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "edge.toml").write_text(
        "\n".join(
            [
                'site_name = "bench"',
                'hub_address = "127.0.0.1:1"',
                f"state_db_url = {json.dumps(state_url)}",
                f"analysis_db_url = {json.dumps(analysis_url)}",
                f"mapping_file = {json.dumps(str(folder / 'mapping.yaml'))}",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    edge = _bin("oncofed-edge")
    token_file = home / "operator.token"
    init = [*edge, "init", "--site", "bench", "--hub", "127.0.0.1:1", "--home", str(home)]
    if not token_file.exists():  # the first site operator, who runs the sync
        init += ["--operator", "bench", "--token-file", str(token_file)]
    subprocess.run(init, check=True, capture_output=True)
    note_text = note_text_setting()
    if note_text is not None:  # the site policy's choice, as an operator would edit it
        policy = home / "policy.toml"
        lines = policy.read_text(encoding="utf-8").splitlines()
        edited = [
            f'note_text = "{note_text}"' if ln.startswith("note_text") else ln for ln in lines
        ]
        policy.write_text("\n".join(edited) + "\n", encoding="utf-8")
    cmd = [*edge, "sync", "--home", str(home), "--quiet", "--json"]
    cmd += ["--token-file", str(token_file)]
    if batch_size is not None:
        cmd += ["--batch-size", str(batch_size)]
    code, seconds, peak, cpu, tree = _run_measured(
        cmd, stdout=home / "sync.out", stderr=home / "sync.err"
    )
    if code != 0:
        raise AssertionError(
            f"oncofed-edge sync exited {code}:\n"
            + (home / "sync.err").read_text(errors="replace")[-4000:]
            + (home / "sync.out").read_text(errors="replace")[-4000:]
        )
    summary = json.loads((home / "sync.out").read_text(encoding="utf-8"))
    return SyncRun(seconds, float(summary["seconds"]), peak, cpu, summary, tree)


def pipeline_once(
    folder: Path, *, batch_size: int | None = None, workdir: Path | None = None
) -> SyncRun:
    """One sync into fresh state and analysis databases, dropped afterwards."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="oncofed-b-")))
        state = stack.enter_context(pg_database("state"))
        analysis = stack.enter_context(pg_database("analysis"))
        return run_sync_child(
            folder,
            workdir / f"home-{uuid.uuid4().hex[:6]}",
            state_url=state,
            analysis_url=analysis,
            batch_size=batch_size,
        )


# -- profiling one run in-process --------------------------------------------------------


def profile(
    patients: int, top: int, batch_size: int, out: Path | None, note_text: str = "scrubbed"
) -> None:
    from edge_node.pipeline.deid import DeidPolicy
    from edge_node.pipeline.sync import run_sync
    from edge_node.security.vault import init_vault

    folder = hospital(patients)
    with (
        tempfile.TemporaryDirectory(prefix="oncofed-prof-") as tmp,
        pg_database("state") as state,
        pg_database("analysis") as analysis,
    ):
        init_vault(Path(tmp))  # a sync needs a vault key (the map is sealed)
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        report = run_sync(
            home=Path(tmp),
            state_db_url=state,
            analysis_db_url=analysis,
            mapping_file=folder / "mapping.yaml",
            batch_size=batch_size,
            deid_policy=DeidPolicy(note_text=note_text),  # type: ignore[arg-type]
        )
        profiler.disable()
        seconds = time.perf_counter() - started
    read = sum(c.read for c in report.counts.values())
    print(
        f"profiled run: {patients:,} patients, {read:,} rows read, {seconds:.1f} s "
        f"under the profiler ({read / seconds:,.0f} rows/s), batch {batch_size}, "
        f"note text {note_text}"
    )
    if out is not None:
        profiler.dump_stats(out)
        print(f"stats written to {out} (open with `python -m pstats {out}`)")
    for order in ("cumulative", "tottime"):
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf).sort_stats(order)
        print(f"\n=== edge_node functions by {order} ===")
        stats.print_stats(r"/edge_node/", top)
        print(buf.getvalue())
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf).sort_stats(order)
        print(f"=== every function by {order} ===")
        stats.print_stats(top)
        print(buf.getvalue())


# -- where the time goes, without a profiler's overhead ------------------------------------


class _Stages:
    """Wall seconds per stage of one in-process run, from wrappers put around the
    pipeline's stage functions for the run (and taken off after it). The reader
    thread (read + map) overlaps the main thread, so its seconds are listed apart."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        original = getattr(owner, attr)
        self._undo.append((owner, attr, original))
        setattr(owner, attr, self._timed_call(original, name))

    def wrap_dict(self, table: dict[str, Any], name: str) -> None:
        for key, original in list(table.items()):
            self._undo.append((table, key, original))
            table[key] = self._timed_call(original, name)

    def _timed_call(self, original: Any, name: str) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - started)

        return timed

    def timed_iter(self, items: Iterator[Any], name: str) -> Iterator[Any]:
        it = iter(items)
        while True:
            started = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                self.add(name, time.perf_counter() - started)
                return
            self.add(name, time.perf_counter() - started)
            yield item

    def undo(self) -> None:
        for owner, attr, original in reversed(self._undo):
            if isinstance(owner, dict):
                owner[attr] = original
            else:
                setattr(owner, attr, original)
        self._undo.clear()


def stages(patients: int, batch_size: int, defer_indexes: bool, note_text: str) -> None:
    from edge_node.pipeline import events, first_load, linkage, sync
    from edge_node.pipeline.deid import DeidPolicy
    from edge_node.security.vault import init_vault

    folder = hospital(patients)
    clock = _Stages()
    clock.wrap(sync, "upgrade_state_db", "migrations")
    clock.wrap(sync, "upgrade", "migrations")
    clock.wrap(sync, "_ensure_concepts", "vocabulary into the CDM")
    clock.wrap(sync._Runner, "_rank_sources", "rank sources (sample)")
    clock.wrap_dict(linkage.INDEXERS, "index tables (patients, stays, diagnoses)")
    clock.wrap(sync, "count_index_rows", "index tables (patients, stays, diagnoses)")
    clock.wrap(sync, "build_dirty_persons", "persons, visits, conditions")
    clock.wrap(events, "link_events", "events: link")
    if hasattr(events, "scrub_notes"):
        clock.wrap(events, "scrub_notes", "events: note text scrubbing")
    clock.wrap(events, "_load_labs", "events: labs merge+build+COPY")
    clock.wrap(sync, "load_events", "events: all (link+write)")
    clock.wrap(sync._Runner, "_commit", "quarantine + watermarks")
    clock.wrap(first_load, "defer", "first load: drop indexes")
    clock.wrap(first_load, "rebuild", "first load: rebuild indexes")
    mapped, prefetched = sync._mapped, sync.prefetched

    def timed_mapped(tm: Any, mapper: Any, batches: Iterator[Any]) -> Iterator[Any]:
        inner = mapped(tm, mapper, clock.timed_iter(batches, "reader thread: read"))
        return clock.timed_iter(inner, "reader thread: read+map")

    def timed_prefetched(items: Iterator[Any], depth: int = 1) -> Iterator[Any]:
        return clock.timed_iter(prefetched(items, depth), "main: waiting for the reader")

    clock._undo += [(sync, "_mapped", mapped), (sync, "prefetched", prefetched)]
    sync._mapped, sync.prefetched = timed_mapped, timed_prefetched
    try:
        with (
            tempfile.TemporaryDirectory(prefix="oncofed-stages-") as tmp,
            pg_database("state") as state,
            pg_database("analysis") as analysis,
        ):
            init_vault(Path(tmp))  # a sync needs a vault key (the map is sealed)
            started = time.perf_counter()
            cpu = time.process_time()
            report = sync.run_sync(
                home=Path(tmp),
                state_db_url=state,
                analysis_db_url=analysis,
                mapping_file=folder / "mapping.yaml",
                batch_size=batch_size,
                defer_indexes=defer_indexes,
                deid_policy=DeidPolicy(note_text=note_text),  # type: ignore[arg-type]
            )
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu
    finally:
        clock.undo()
    read = sum(c.read for c in report.counts.values())
    print(
        f"in-process run: {patients:,} patients, {read:,} rows, {seconds:.1f} s "
        f"({read / seconds:,.0f} rows/s), process CPU {cpu:.1f} s, batch {batch_size}, "
        f"indexes {'deferred' if defer_indexes else 'kept'}, note text {note_text}"
    )
    for name, spent in sorted(clock.seconds.items(), key=lambda i: -i[1]):
        print(f"  {name:<45} {spent:7.2f} s  {100 * spent / seconds:5.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.pipeline_bench")
    sub = parser.add_subparsers(dest="command", required=True)
    prof = sub.add_parser("profile", help="cProfile one in-process sync into fresh databases")
    prof.add_argument(
        "--patients", type=int, default=int(os.environ.get("ONCOFED_BENCH_PATIENTS", "20000"))
    )
    prof.add_argument("--top", type=int, default=40)
    prof.add_argument("--batch-size", type=int, default=20_000)
    prof.add_argument("--out", type=Path, default=None, help="also dump the raw stats here")
    prof.add_argument("--note-text", choices=("scrubbed", "omit"), default="scrubbed")
    stage = sub.add_parser("stages", help="time one in-process sync per stage, no profiler")
    stage.add_argument(
        "--patients", type=int, default=int(os.environ.get("ONCOFED_BENCH_PATIENTS", "20000"))
    )
    stage.add_argument("--batch-size", type=int, default=20_000)
    stage.add_argument("--keep-indexes", action="store_true", help="no first-load deferral")
    stage.add_argument("--note-text", choices=("scrubbed", "omit"), default="scrubbed")
    args = parser.parse_args()
    if args.command == "stages":
        stages(args.patients, args.batch_size, not args.keep_indexes, args.note_text)
    else:
        profile(args.patients, args.top, args.batch_size, args.out, args.note_text)


if __name__ == "__main__":
    main()
