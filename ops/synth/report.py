"""The summary `oncofed-ops synth-hospital` prints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from ops.synth.hospital import HospitalSummary


def print_summary(console: Console, out: Path, summary: HospitalSummary) -> None:
    console.print(
        f"hospital {summary.variant}: {summary.patients} patients "
        f"({summary.cancer_patients} with cancer) in {out} ({summary.seconds:.1f} s)"
    )
    rows = Table("source", "rows")
    for table, count in sorted(summary.emr_rows.items()):
        rows.add_row(f"emr.{table}", str(count))
    rows.add_row("lis lab results", str(summary.lis_rows))
    rows.add_row("pacs studies", str(summary.pacs_rows))
    for kind, count in sorted(summary.problems.items()):
        rows.add_row(f"problem: {kind}", str(count))
    console.print(rows)
    files = Table("file", "bytes")
    for path, size in summary.files.items():
        files.add_row(path, f"{size:,}")
    console.print(files)
