"""`oncofed-edge ocr-labs`, `oncofed-edge ocr-eval` and `oncofed-edge frames`.

`register(app)` adds the commands. The OCR stack (rapidocr, onnxruntime,
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


def frames(
    video: Annotated[Path, typer.Argument(help="Video file (any format FFmpeg decodes).")],
    every: Annotated[
        float, typer.Option("--every", help="Keep one frame every N seconds.", min=0.001)
    ] = 1.0,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Output JSONL (default: standard output).")
    ] = None,
    keep_frames: Annotated[
        Path | None,
        typer.Option("--keep-frames", help="Also save the kept frames as PNG in this folder."),
    ] = None,
) -> None:
    """Cut a video into frames and OCR their burned-in text (timestamps, labels)."""
    import json
    import sys

    from edge_node.ocr.engine import RapidOcrEngine
    from edge_node.ocr.frames import VideoError, read_video

    if not video.is_file():
        typer.echo(f"error: no video file {video}", err=True)
        raise typer.Exit(2)
    fout = out_path.open("w", encoding="utf-8") if out_path else sys.stdout
    count = 0
    try:
        for rec in read_video(video, every, RapidOcrEngine(), keep_frames):
            fout.write(json.dumps(rec, ensure_ascii=False) + "\n")
            count += 1
    except VideoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        if out_path:
            fout.close()
    typer.echo(f"{count} frames read from {video.name}", err=True)


def register(app: typer.Typer) -> None:
    """Add `ocr-labs`, `ocr-eval` and `frames` to the edge CLI."""
    app.command("ocr-labs")(ocr_labs)
    app.command("ocr-eval")(ocr_eval)
    app.command("frames")(frames)
