"""`oncofed-edge structure` and `oncofed-edge structure-eval`.

spaCy and the rule files load inside the commands, so other edge commands do not
pay for them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer


def _need_file(path: Path, what: str) -> None:
    if not path.is_file():
        typer.echo(f"error: no {what} file {path}", err=True)
        raise typer.Exit(2)


def structure(
    in_path: Annotated[
        Path, typer.Option("--in", help="Reports JSONL: {id, kind, lang, text} per line.")
    ],
    out_path: Annotated[
        Path, typer.Option("--out", help="Output JSONL: {id, kind, fields, evidence, errors}.")
    ],
) -> None:
    """Structure pathology, PET-CT and discharge reports (contracts/structured-report.md)."""
    from edge_node.structure.jsonl import run

    _need_file(in_path, "input")
    stats = run(in_path, out_path)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(stats.by_kind.items())) or "none"
    typer.echo(f"{stats.records} records ({kinds}), {stats.with_errors} with errors", err=True)


def structure_eval(
    in_path: Annotated[Path, typer.Option("--in", help="Reports JSONL.")],
    truth_path: Annotated[
        Path, typer.Option("--truth", help="Truth JSONL: {id, kind, fields} per line.")
    ],
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Also keep the structured output here.")
    ] = None,
    show_misses: Annotated[int, typer.Option(help="How many wrong fields to list.")] = 30,
    calibration_out: Annotated[
        Path | None,
        typer.Option(
            "--calibration-out",
            help="Write the confidence table (right/given per field) measured on these reports.",
        ),
    ] = None,
) -> None:
    """Score `structure` on annotated reports: per-field accuracy, misses."""
    from edge_node.structure.evaluate import load_jsonl, load_truth, score, summary_lines
    from edge_node.structure.jsonl import run

    _need_file(in_path, "input")
    _need_file(truth_path, "truth")
    try:
        truth = load_truth(truth_path)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    with tempfile.TemporaryDirectory() as tmp:
        target = out_path or Path(tmp) / "structured.jsonl"
        run(in_path, target)
        predicted = {str(r["id"]): r for r in load_jsonl(target)}
    report = score(predicted, truth)
    for line in summary_lines(report):
        typer.echo(line)
    for miss in report.misses[:show_misses]:
        typer.echo(f"  miss {miss}")
    if report.misses[show_misses:]:
        typer.echo(f"  ... {len(report.misses) - show_misses} more")
    if calibration_out is not None:
        from edge_node.structure import calibration

        counts = {k: (t.right, t.total) for k, t in report.given.items()}
        calibration.write(calibration_out, calibration.build(counts, source=in_path.name))
        typer.echo(f"calibration for {len(counts)} fields written to {calibration_out}")


def register(app: typer.Typer) -> None:
    """Add `structure` and `structure-eval` to the edge CLI."""
    app.command("structure")(structure)
    app.command("structure-eval")(structure_eval)
