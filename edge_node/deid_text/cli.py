"""`oncofed-edge deid-text` and `oncofed-edge deid-eval`.

`register(app)` adds both commands to the edge CLI. The de-identifier (spaCy,
jieba, and through spaCy thinc and torch) is imported inside the commands, so
the other edge commands do not pay for loading it.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Annotated

import typer

from edge_node.deid_text.settings import MAX_SHIFT_DAYS, SPLITS, Settings


def deid_text(
    in_path: Annotated[
        Path, typer.Option("--in", help="Input JSONL: {id, lang, text[, patient_id]} per line.")
    ],
    out_path: Annotated[
        Path, typer.Option("--out", help="Output JSONL: {id, text, phi, errors} per line.")
    ],
    site_secret_file: Annotated[
        Path | None,
        typer.Option(
            "--site-secret-file",
            help="The site secret (e.g. <edge home>/pipeline.key) keying date shifts and surrogates. "  # noqa: E501
            "Without it a random one-off secret is used: shifts then differ between runs.",
        ),
    ] = None,
    surrogates: Annotated[
        bool,
        typer.Option(
            "--surrogates/--tags",
            help="Replace identifiers by realistic surrogates instead of [TYPE] tags.",
        ),
    ] = False,
    max_shift_days: Annotated[
        int, typer.Option(min=1, max=3650, help="Largest date shift, in days.")
    ] = MAX_SHIFT_DAYS,
) -> None:
    """De-identify clinical notes (zh/en): find identifiers, shift dates, replace the rest."""
    from edge_node.deid_text.jsonl import run
    from edge_node.pipeline.deid import SiteSecret
    from shared_cdm.errors import OncoFedError

    if not in_path.is_file():
        typer.echo(f"error: no input file {in_path}", err=True)
        raise typer.Exit(2)
    if site_secret_file is None:
        typer.echo(
            "warning: no --site-secret-file; dates are shifted with a one-off random secret",
            err=True,
        )
        secret = secrets.token_bytes(32)
    else:
        if not site_secret_file.is_file():
            typer.echo(f"error: no site secret file {site_secret_file}", err=True)
            raise typer.Exit(2)
        try:
            secret = SiteSecret.load_or_create(site_secret_file)
        except OncoFedError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(2) from exc
    stats = run(
        in_path, out_path, secret, Settings(surrogates=surrogates, max_shift_days=max_shift_days)
    )
    typer.echo(
        f"{stats.records} notes, {stats.spans} identifier spans, {stats.with_errors} with errors; "
        + ", ".join(f"{k}={v}" for k, v in sorted(stats.by_type.items())),
        err=True,
    )


def deid_eval(
    split: Annotated[
        str, typer.Option(help=f"Annotated split in the package: {' or '.join(SPLITS)}.")
    ] = "dev",
    file: Annotated[
        Path | None, typer.Option(help="Score another annotated JSONL file instead.")
    ] = None,
    show_leaks: Annotated[
        int,
        typer.Option(
            "--show-leaks",
            "--show-misses",
            help="How many missed spans (and clinical terms lost) to list, with context.",
        ),
    ] = 20,
) -> None:
    """Score the de-identifier: entity recall, character precision, leaks, clinical terms lost."""
    from edge_node.deid_text.evaluate import evaluate, load, split_path

    try:
        path = file if file is not None else split_path(split)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    report = evaluate(load(path))
    s = report.summary()
    typer.echo(f"split: {path.name}  notes: {s['notes']}  identifier spans: {s['gold_spans']}")
    typer.echo(f"entity recall:       {s['entity_recall']:.4f}")
    typer.echo(f"character precision: {s['char_precision']:.4f}")
    typer.echo(f"leaks (missed spans): {s['leaks']}")
    typer.echo(f"clinical terms lost: {s['clinical_terms_lost']} of {s['clinical_terms']}")
    typer.echo("recall by type: " + json.dumps(s["recall_by_type"]))
    for leak in report.leaks[:show_leaks]:
        typer.echo(f"  leak {leak['id']} {leak['type']}: {leak['text']!r}  in {leak['context']!r}")
    for lost in report.clinical_lost[:show_leaks]:
        typer.echo(f"  lost {lost['id']}: {lost['text']!r}")


def register(app: typer.Typer) -> None:
    """Add `deid-text` and `deid-eval` to the edge CLI."""
    app.command("deid-text")(deid_text)
    app.command("deid-eval")(deid_eval)
