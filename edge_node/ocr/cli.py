"""`oncofed-edge ocr-labs` and `oncofed-edge ocr-eval`.

`register(app)` adds both commands. The OCR stack (rapidocr, onnxruntime,
OpenCV, pypdfium2) is imported inside the commands only, so the other edge
commands do not pay for loading it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _inputs(in_dir: Path) -> list[Path]:
    if not in_dir.is_dir():
        typer.echo(f"error: no input folder {in_dir}", err=True)
        raise typer.Exit(2)
    from edge_node.ocr.labs import input_files

    return input_files(in_dir)


def ocr_labs(
    in_dir: Annotated[
        Path, typer.Option("--in", help="Folder of lab sheets: PNG, JPEG or PDF files.")
    ],
    out_path: Annotated[
        Path, typer.Option("--out", help="Output JSONL: {file, items, errors} per input file.")
    ],
) -> None:
    """Read lab sheets (photos, scans, PDFs; zh/en) into items (contracts/lab-ocr.md)."""
    from edge_node.ocr.labs import read_files, write_jsonl

    files, items, failed = write_jsonl(read_files(_inputs(in_dir)), out_path)
    typer.echo(f"{files} files, {items} items, {failed} files with errors", err=True)


def ocr_eval(
    in_dir: Annotated[Path, typer.Option("--in", help="Folder of lab sheets.")],
    truth_path: Annotated[
        Path, typer.Option("--truth", help="Truth JSONL: {file, degradation, language, items}.")
    ],
    show_misses: Annotated[int, typer.Option(help="How many wrong items to list.")] = 20,
) -> None:
    """Score lab-sheet OCR against truth: value accuracy overall and per degradation."""
    from edge_node.ocr.evaluate import load_truth, score, summary_lines
    from edge_node.ocr.labs import read_files

    if not truth_path.is_file():
        typer.echo(f"error: no truth file {truth_path}", err=True)
        raise typer.Exit(2)
    try:
        truth = load_truth(truth_path)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    paths = [p for p in _inputs(in_dir) if p.name in truth]
    report = score(read_files(paths), truth)
    for line in summary_lines(report):
        typer.echo(line)
    for miss in report.misses[:show_misses]:
        typer.echo(f"  miss {miss}")


def register(app: typer.Typer) -> None:
    """Add `ocr-labs` and `ocr-eval` to the edge CLI."""
    app.command("ocr-labs")(ocr_labs)
    app.command("ocr-eval")(ocr_eval)
