"""`oncofed-ops demo`: three synthetic hospitals, one hub, three studies, rich tables.

It runs through the same machinery as `local-federation` (real processes,
mutual TLS over loopback, SQLite everywhere), so what it shows is what a
consortium would see. Progress goes to stderr; the result tables to stdout.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ops.demo_data.generate import DEFAULT_SEED, write_sites
from ops.federation import LocalFederation
from ops.local_federation import StudyFailed
from ops.processes import Terminated
from shared_cdm.errors import InvalidInput


@dataclass(frozen=True)
class DemoStudy:
    title: str
    spec: Mapping[str, Any]


DEMO_STUDIES: tuple[DemoStudy, ...] = (
    DemoStudy(
        "Patients aged 60 or over with stage III-IV disease",
        {
            "analysis": "count",
            "dataset": "default",
            "where": {
                "all": [
                    {"field": "age", "op": ">=", "value": 60},
                    {"field": "stage", "op": "in", "value": ["III", "IV"]},
                ]
            },
        },
    ),
    DemoStudy(
        "Patients aged 80 or over with stage IV disease (a small cohort)",
        {
            "analysis": "count",
            "dataset": "default",
            "where": {
                "all": [
                    {"field": "age", "op": ">=", "value": 80},
                    {"field": "stage", "op": "=", "value": "IV"},
                ]
            },
        },
    ),
    DemoStudy(
        "Age, sex and stage of every patient",
        {"analysis": "describe", "dataset": "default", "variables": ["age", "sex", "stage"]},
    ),
)


@dataclass(frozen=True)
class DemoOutcome:
    workdir: Path
    hub_url: str
    studies: tuple[tuple[DemoStudy, dict[str, Any]], ...]


def _fresh_workdir(workdir: Path | None) -> Path:
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix="oncofed-demo-"))
    if workdir.exists() and any(workdir.iterdir()):
        raise InvalidInput(f"work folder {workdir} is not empty; give a new or empty one")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "-" if value is None else str(value)


def sites_table(envelope: Mapping[str, Any], combined: object) -> Table:
    table = Table()
    table.add_column("site")
    table.add_column("n", justify="right")
    table.add_column("status")
    for site in envelope.get("sites", []):
        table.add_row(str(site.get("name")), _fmt(site.get("n")), str(site.get("status")))
    table.add_section()
    table.add_row("[bold]all sites[/bold]", f"[bold]{_fmt(combined)}[/bold]", "")
    return table


def variables_table(result: Mapping[str, Any]) -> Table:
    table = Table()
    for column in ("variable", "type", "n", "mean", "SD", "counts"):
        table.add_column(column, justify="right" if column in ("n", "mean", "SD") else "left")
    for name, figures in result.get("variables", {}).items():
        counts = figures.get("counts") or {}
        table.add_row(
            name,
            str(figures.get("type")),
            _fmt(figures.get("n")),
            _fmt(figures.get("mean")),
            _fmt(figures.get("sd")),
            ", ".join(f"{k}: {v}" for k, v in counts.items()),
        )
    return table


def print_study(console: Console, study: DemoStudy, envelope: Mapping[str, Any]) -> None:
    result = envelope.get("result") or {}
    analysis = str(study.spec.get("analysis"))
    console.rule(f"[bold]{analysis}[/bold]: {study.title}", align="left")
    if analysis == "count":
        console.print(sites_table(envelope, result.get("count")))
    else:
        console.print(sites_table(envelope, envelope.get("n")))
        console.print(variables_table(result))
    for note in envelope.get("disclosure", []):
        console.print(f"  [yellow]disclosure:[/yellow] {note}", soft_wrap=True)
    console.print()


def _run_studies(
    federation: LocalFederation, sites: Sequence[str], timeout: float
) -> list[tuple[DemoStudy, dict[str, Any]]]:
    done = []
    for study in DEMO_STUDIES:
        finished = federation.run_study(study.spec, sites, title=study.title, timeout=timeout)
        envelope = finished.get("result")
        if finished.get("status") != "completed" or not isinstance(envelope, dict):
            raise StudyFailed(
                f"demo study {study.title!r} {finished.get('status')}: {finished.get('error')}"
            )
        done.append((study, envelope))
    return done


def _wait_until_interrupted(federation: LocalFederation, console: Console) -> None:
    """Keep the federation up until Ctrl-C/SIGTERM (or the hub dies)."""
    while federation.hub_process is not None and federation.hub_process.alive():
        time.sleep(1.0)
    console.log("the hub stopped; shutting the demo down")


def run_demo(
    *,
    out: Console,
    progress: Console,
    workdir: Path | None = None,
    keep_running: bool = False,
    seed: int = DEFAULT_SEED,
    timeout: float = 600.0,
) -> DemoOutcome:
    root = _fresh_workdir(workdir)
    progress.log(f"work folder: {root}")
    tables = write_sites(root / "data", seed)
    progress.log(f"wrote synthetic site tables: {', '.join(sorted(tables))}")
    with LocalFederation(root, console=progress) as federation:
        federation.init_ca()
        hub = federation.start_hub(auto_approve=True)
        federation.add_edges(tables)
        federation.wait_for_sites(tables)
        studies = _run_studies(federation, list(tables), timeout)
        for study, envelope in studies:
            print_study(out, study, envelope)
        # soft_wrap: paths and tokens must stay copyable, whatever the terminal's width.
        out.print(f"Work folder (certificates, databases, logs): {root}", soft_wrap=True)
        if keep_running:
            out.print(f"Hub API: {hub.http_url}  (token: {hub.token})", soft_wrap=True)
            out.print("The federation keeps running; press Ctrl-C to stop it.")
            try:
                _wait_until_interrupted(federation, progress)
            except (KeyboardInterrupt, Terminated):
                progress.log("stopping on request")
    return DemoOutcome(root, hub.http_url, tuple(studies))
