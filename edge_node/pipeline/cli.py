"""The pipeline's commands: `sync`, `export-omop`, `mapping suggest`, `quarantine list`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from edge_node.pipeline.context import ProgressHook
from edge_node.pipeline.sealed import open_quarantine
from edge_node.security.vault import require_vault
from edge_node.settings import EdgeSettings

if TYPE_CHECKING:
    from edge_node.pipeline.sync import SyncReport

mapping_app = typer.Typer(
    help="The site mapping: source tables to CDM fields.", no_args_is_help=True
)
quarantine_app = typer.Typer(help="Rejected source records and why.", no_args_is_help=True)


@contextmanager
def progress_bars(enabled: bool) -> Iterator[ProgressHook | None]:
    """One bar per source table (rows read so far, no total: sources do not say)."""
    if not enabled:
        yield None
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<36}"),
        BarColumn(bar_width=None, pulse_style="cyan"),
        TextColumn("{task.completed:>12,} rows"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bars:
        tasks: dict[str, Any] = {}

        def hook(label: str, rows: int) -> None:
            if label not in tasks:
                tasks[label] = bars.add_task(label, total=None)
            bars.advance(tasks[label], rows)

        yield hook


def sync_table(report: SyncReport) -> Table:
    table = Table(title=f"sync run {report.run_id}: {report.status} in {report.seconds:.1f} s")
    backfill = any(c.backfilled for c in report.counts.values())
    names = ["source", "table", "target", "read"]
    names += ["backfilled"] if backfill else []
    names += ["skipped", "in", "loaded", "merged", "quarantined", "adds up"]
    for name in names:
        table.add_column(
            name, justify="right" if name not in ("source", "table", "target") else "left"
        )
    for (source, name), c in report.counts.items():
        cells = [source, name, report.targets.get((source, name), ""), f"{c.read:,}"]
        cells += [f"{c.backfilled:,}"] if backfill else []
        cells += [
            f"{c.skipped:,}",
            f"{c.entered:,}",
            f"{c.loaded:,}",
            f"{c.merged:,}",
            f"{c.quarantined:,}",
            "yes" if c.balanced and not c.error else ("error" if c.error else "NO"),
        ]
        table.add_row(*cells)
    return table


def sync_command(
    settings: EdgeSettings,
    *,
    mapping: Path | None,
    batch_size: int,
    full: bool,
    quiet: bool,
    as_json: bool,
    run: Callable[[Callable[[], Any]], Any],
    scrub_workers: str | None = None,
) -> int:
    """Run a sync and print its summary; returns the exit status."""
    from edge_node.cdm import refresh_cdm
    from edge_node.pipeline.sync import run_sync
    from edge_node.policy import load_policy
    from edge_node.store.database import open_state_db
    from edge_node.store.datasets import DatasetRegistry
    from shared_cdm.db import make_engine

    def body() -> SyncReport:
        from edge_node.pipeline.workers import worker_count

        workers = worker_count(scrub_workers)  # a bad value fails before anything is read
        policy = load_policy(settings.policy_file)
        with progress_bars(not quiet and not as_json) as hook:
            report = run_sync(
                home=settings.home,
                state_db_url=settings.state_db_url,
                analysis_db_url=settings.analysis_db_url,
                mapping_file=(mapping or settings.mapping_file).expanduser().resolve(),
                deid_policy=policy.deidentification,
                batch_size=batch_size,
                full=full,
                progress=hook,
                text_workers=workers,
            )
        state, analysis = (
            open_state_db(settings.state_db_url),
            make_engine(settings.analysis_db_url),
        )
        try:  # the hub sees a new CDM version once the data changed
            refresh_cdm(analysis, DatasetRegistry(state))
        finally:
            state.dispose()
            analysis.dispose()
        return report

    report: SyncReport = run(body)
    if as_json:
        typer.echo(json.dumps(report.summary(), ensure_ascii=False, indent=2))
    else:
        console = Console()
        console.print(sync_table(report))
        console.print(
            f"persons rebuilt: {report.persons:,}   conflicts reported: {report.conflicts:,}   "
            f"source ranks (lowest missing rate first): {', '.join(report.ranks) or '-'}"
        )
        for (source, name), c in report.counts.items():
            if c.error:
                console.print(f"[red]error[/red] {source}/{name}: {c.error}")
    failed = any(c.error for c in report.counts.values()) or not report.balanced
    return 3 if failed else 0


def quarantine_rows(
    settings: EdgeSettings, *, code: str | None, limit: int
) -> list[dict[str, Any]]:
    from edge_node.pipeline.state import QuarantinedRecord
    from edge_node.store.database import open_state_db

    table: sa.Table = QuarantinedRecord.__table__  # type: ignore[assignment]
    # Reasons and rows are sealed (they quote IDs): opened with the vault key, or
    # a loud error, never a wrong row.
    vault = require_vault(settings.home)
    engine = open_state_db(settings.state_db_url)
    try:
        stmt = sa.select(table).order_by(table.c.id).limit(limit)
        if code:
            stmt = stmt.where(table.c.code == code)
        with engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(stmt)]
    finally:
        engine.dispose()
    return [open_quarantine(vault, row) for row in rows]


def quarantine_summary(settings: EdgeSettings) -> list[tuple[str, str, str, int]]:
    from edge_node.pipeline.state import QuarantinedRecord
    from edge_node.store.database import open_state_db

    table: sa.Table = QuarantinedRecord.__table__  # type: ignore[assignment]
    engine = open_state_db(settings.state_db_url)
    try:
        stmt = (
            sa.select(table.c.source, table.c.source_table, table.c.code, sa.func.count())
            .group_by(table.c.source, table.c.source_table, table.c.code)
            .order_by(table.c.source, table.c.source_table, table.c.code)
        )
        with engine.connect() as conn:
            return [(str(a), str(b), str(c), int(n)) for a, b, c, n in conn.execute(stmt)]
    finally:
        engine.dispose()


OutDir = Annotated[
    Path, typer.Argument(help="Folder for the CSV files (new, empty or a previous export).")
]
