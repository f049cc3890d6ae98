"""`oncofed-edge`: the hospital edge node's command line."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from edge_node.bootstrap import edge_agent, edge_stores
from edge_node.cdm import refresh_cdm, upgrade_cdm
from edge_node.cli_support import run_command as _run
from edge_node.cli_support import settings_or_exit as _settings
from edge_node.datasets import add_dataset, remove_dataset
from edge_node.deid_text import cli as deid_text_cli
from edge_node.ocr import cli as ocr_cli
from edge_node.pipeline import cli as pipeline_cli
from edge_node.policy import describe_policy, load_policy, write_default_policy
from edge_node.security import cli as security_cli
from edge_node.security.access import ENV_TOKEN_FILE, bootstrap_operator, gate
from edge_node.settings import SETTINGS_FILE, load_settings, validate_hub_address
from edge_node.structure import cli as structure_cli
from protocol.messages import RegistrationAck
from protocol.tls import validate_party_name
from shared_cdm.errors import Conflict, InvalidInput

app = typer.Typer(help="OncoFed hospital edge node.", no_args_is_help=True, add_completion=False)
dataset_app = typer.Typer(help="Flat datasets this site serves.", no_args_is_help=True)
tasks_app = typer.Typer(help="Tasks received from the hub.", no_args_is_help=True)
policy_app = typer.Typer(help="The site's release policy.", no_args_is_help=True)
ledger_app = typer.Typer(help="The site's disclosure ledger.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")
app.add_typer(tasks_app, name="tasks")
app.add_typer(policy_app, name="policy")
app.add_typer(ledger_app, name="ledger")

HomeOpt = Annotated[
    Path,
    typer.Option(
        "--home",
        envvar="ONCOFED_EDGE_HOME",
        help="The edge's data folder (edge.toml, policy.toml, databases, tls/).",
    ),
]
DEFAULT_HOME = Path("edge-data")
TokenOpt = security_cli.TokenOpt
TokenFileOpt = security_cli.TokenFileOpt


def _toml_string(value: str) -> str:
    # A JSON string with ASCII escapes is a valid TOML basic string.
    return json.dumps(value)


def _init(
    home: Path,
    site: str,
    hub: str,
    tls_dir: Path | None,
    operator: str | None,
    token_file: Path | None,
) -> list[str]:
    validate_party_name(site)
    try:
        validate_hub_address(hub)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    home.mkdir(parents=True, exist_ok=True)
    notes = []
    config = home / SETTINGS_FILE
    if config.exists():
        existing = load_settings(home)
        if existing.site_name != site:
            raise Conflict(
                f"{config} already exists for site {existing.site_name!r}; refusing to change it"
            )
        notes.append(f"{config} exists; left as it is")
    else:
        lines = [f"site_name = {_toml_string(site)}", f"hub_address = {_toml_string(hub)}"]
        if tls_dir is not None:
            tls = tls_dir.expanduser().resolve()
            lines += [
                f"tls_ca_cert = {_toml_string(str(tls / 'ca.crt'))}",
                f"tls_cert = {_toml_string(str(tls / f'{site}.crt'))}",
                f"tls_key = {_toml_string(str(tls / f'{site}.key'))}",
            ]
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        notes.append(f"wrote {config}")
    settings = load_settings(home)
    written = write_default_policy(settings.policy_file)
    notes.append(
        f"wrote default policy {settings.policy_file}"
        if written
        else f"{settings.policy_file} exists; left as it is"
    )
    with edge_stores(settings) as stores:
        # The CDM tables live in the analysis database beside the flat datasets.
        upgrade_cdm(settings.analysis_db_url)
        refresh_cdm(stores.analysis, stores.registry)
    notes.append("state and analysis databases are ready (CDM tables created)")
    # The re-identification map is stored sealed: a sync needs a vault key.
    notes += security_cli.ensure_vault(settings.home)
    if operator is not None:
        token = bootstrap_operator(settings, operator, token_file)
        if token is None:
            notes.append(f"added site operator {operator}; their token is in {token_file} (0600)")
        else:
            notes.append(f"added site operator {operator}; their token, shown only now:")
            typer.echo(token)
    return notes


@app.command("init")
def init_command(
    site: Annotated[str, typer.Option("--site", help="This site's name (its certificate CN).")],
    hub: Annotated[str, typer.Option("--hub", help="The hub's gRPC address, HOST:PORT.")],
    tls_dir: Annotated[
        Path | None,
        typer.Option(
            "--tls-dir", help="Folder with ca.crt, SITE.crt, SITE.key (default HOME/tls)."
        ),
    ] = None,
    operator: Annotated[
        str | None,
        typer.Option(
            "--operator",
            help="Add the edge's first site operator with this name (refused once the edge "
            "has one).",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            envvar=ENV_TOKEN_FILE,
            show_default=False,
            help="With --operator: write their token to this new file (mode 0600) instead of "
            "printing it; later commands read it from the same variable.",
        ),
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Write edge.toml and a default policy.toml (never overwritten) and create the
    databases; with --operator, add the first site operator (no token needed)."""
    for note in _run(lambda: _init(home, site, hub, tls_dir, operator, token_file)):
        typer.echo(note, err=True)


@dataset_app.command("add")
def dataset_add(
    name: Annotated[str, typer.Argument(help="Dataset name studies refer to, e.g. default.")],
    path: Annotated[Path, typer.Argument(help="CSV file (UTF-8 or GBK), header in row one.")],
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Register a CSV file as a flat dataset, replacing an earlier version of it
    (site operators)."""
    settings = _settings(home)
    _run(lambda: gate(settings, "dataset add", token, token_file, target=name))

    def body() -> str:
        with edge_stores(settings) as stores:
            record = add_dataset(
                name, path, analysis_engine=stores.analysis, registry=stores.registry
            )
        return (
            f"{record.name}\t{record.row_count} rows\t{len(record.columns)} columns"
            f"\tversion {record.version[:12]}"
        )

    typer.echo(_run(body))


@dataset_app.command("list")
def dataset_list(
    token: TokenOpt = None, token_file: TokenFileOpt = None, home: HomeOpt = DEFAULT_HOME
) -> None:
    """List registered datasets: name, kind, rows, version and columns
    (site operators and clinicians)."""
    settings = _settings(home)
    _run(lambda: gate(settings, "dataset list", token, token_file))

    def body() -> list[str]:
        with edge_stores(settings) as stores:
            return [
                f"{r.name}\t{r.kind}\t{r.row_count} rows\t{r.version[:12]}\t{', '.join(r.columns)}"
                for r in stores.registry.all()
            ]

    for line in _run(body):
        typer.echo(line)


@dataset_app.command("remove")
def dataset_remove(
    name: Annotated[str, typer.Argument(help="The dataset to remove.")],
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Remove a dataset: its registration and its table in the analysis database
    (site operators)."""
    settings = _settings(home)
    _run(lambda: gate(settings, "dataset remove", token, token_file, target=name))

    def body() -> None:
        with edge_stores(settings) as stores:
            remove_dataset(name, analysis_engine=stores.analysis, registry=stores.registry)

    _run(body)
    typer.echo(f"removed dataset {name}", err=True)


@app.command("run")
def run_command(
    token: TokenOpt = None, token_file: TokenFileOpt = None, home: HomeOpt = DEFAULT_HOME
) -> None:
    """Run the agent (register, heartbeat, pull, run, submit) until SIGTERM or SIGINT
    (site operators; the token is checked when the agent starts)."""
    settings = _settings(home)
    _run(lambda: gate(settings, "run", token, token_file))
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def ready(_ack: RegistrationAck) -> None:
        print(f"edge {settings.site_name} ready", flush=True)

    def body() -> None:
        with edge_agent(settings) as agent:
            agent.run(stop, on_ready=ready)

    _run(body)


@tasks_app.command("list")
def tasks_list(
    token: TokenOpt = None, token_file: TokenFileOpt = None, home: HomeOpt = DEFAULT_HOME
) -> None:
    """List received tasks: id, study, analysis, status and when they arrived
    (site operators and clinicians)."""
    settings = _settings(home)
    _run(lambda: gate(settings, "tasks list", token, token_file))

    def body() -> list[str]:
        with edge_stores(settings) as stores:
            return [
                "\t".join(
                    [
                        r.task.task_id,
                        r.task.study_id,
                        r.task.analysis,
                        r.state,
                        r.received_at.isoformat(timespec="seconds"),
                        r.result.status.value if r.result else "",
                    ]
                )
                for r in stores.tasks.all()
            ]

    typer.echo("task_id\tstudy\tanalysis\tstatus\treceived\tresult")
    for line in _run(body):
        typer.echo(line)


@tasks_app.command("approve")
def tasks_approve(
    task_id: Annotated[str, typer.Argument(help="The task awaiting approval.")],
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Approve a task awaiting the operator; the running agent runs it at its next poll
    (site operators)."""
    settings = _settings(home)
    _run(lambda: gate(settings, "tasks approve", token, token_file, target=task_id))

    def body() -> None:
        with edge_stores(settings) as stores:
            stores.tasks.approve(task_id)

    _run(body)
    typer.echo(f"task {task_id} approved", err=True)


@tasks_app.command("reject")
def tasks_reject(
    task_id: Annotated[str, typer.Argument(help="The task awaiting approval.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why; sent to the hub with the refusal.")
    ] = "",
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Reject a task awaiting the operator; the hub receives REFUSED with the reason
    (site operators)."""
    settings = _settings(home)
    _run(lambda: gate(settings, "tasks reject", token, token_file, target=task_id))

    def body() -> None:
        with edge_stores(settings) as stores:
            stores.tasks.reject(task_id, reason)

    _run(body)
    typer.echo(f"task {task_id} rejected", err=True)


@policy_app.command("show")
def policy_show(
    token: TokenOpt = None, token_file: TokenFileOpt = None, home: HomeOpt = DEFAULT_HOME
) -> None:
    """Show the policy in force (policy.toml, or the defaults when it is absent)
    (site operators and clinicians)."""
    settings = _settings(home)
    _run(lambda: gate(settings, "policy show", token, token_file))
    policy = _run(lambda: load_policy(settings.policy_file))
    typer.echo(f"# {settings.policy_file}")
    for line in describe_policy(policy):
        typer.echo(line)


@ledger_app.command("list")
def ledger_list(
    requester: Annotated[
        str | None, typer.Option("--requester", help="Only what this requester received.")
    ] = None,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Every released result: when, to whom, which study and task, counts and epsilon
    (site operators and clinicians)."""
    settings = _settings(home)
    _run(lambda: gate(settings, "ledger list", token, token_file))
    policy = _run(lambda: load_policy(settings.policy_file))

    def body() -> list[str]:
        with edge_stores(settings) as stores:
            return [
                "\t".join(
                    [
                        r.released_at.isoformat(timespec="seconds"),
                        r.requester,
                        r.study_id,
                        r.task_id,
                        r.analysis,
                        f"{r.dataset}@{r.dataset_version[:12]}",
                        " ".join(f"{k}={v}" for k, v in sorted(r.counts.items())),
                        f"{r.epsilon:g}",
                        "cached" if r.cached else "",
                    ]
                )
                for r in stores.ledger(policy).releases(requester)
            ]

    typer.echo("released\trequester\tstudy\ttask\tanalysis\tdataset\tcounts\tepsilon\tnote")
    for line in _run(body):
        typer.echo(line)


@app.command("predict")
def predict_command(
    study_id: Annotated[str, typer.Argument(help="The ML study whose released model to apply.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Score this site's current patients in the study's cohort with its released model
    (the weights' hash checked) and store the scores per pseudonym in the analysis
    database; prints counts and the score distribution, sends nothing (site operators
    and clinicians)."""
    from edge_node.ml.models import predict_study

    settings = _settings(home)
    _run(lambda: gate(settings, "predict", token, token_file, target=study_id))

    def body() -> dict[str, object]:
        with edge_stores(settings) as stores:
            summary = predict_study(settings.home, stores.analysis, stores.registry, study_id)
            return summary.as_dict()

    summary = _run(body)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    for key, value in summary.items():
        typer.echo(f"{key}\t{value}")
    typer.echo("scores stored in table ml_prediction of the analysis database", err=True)


@ledger_app.command("budget")
def ledger_budget(
    token: TokenOpt = None, token_file: TokenFileOpt = None, home: HomeOpt = DEFAULT_HOME
) -> None:
    """Epsilon spent per requester and in total, against the policy's budgets
    (site operators and clinicians)."""
    settings = _settings(home)
    _run(lambda: gate(settings, "ledger budget", token, token_file))
    policy = _run(lambda: load_policy(settings.policy_file))

    def body() -> list[str]:
        with edge_stores(settings) as stores:
            budget = stores.ledger(policy).budget()
        lines = [
            f"{who}\t{spent:g} of {budget.requester_limit:g}"
            for who, spent in budget.per_requester.items()
        ]
        return [*lines, f"total\t{budget.total:g} of {budget.total_limit:g}"]

    typer.echo("requester\tepsilon spent")
    for line in _run(body):
        typer.echo(line)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app()


app.add_typer(pipeline_cli.mapping_app, name="mapping")
security_cli.register(app)
deid_text_cli.register(app)
ocr_cli.register(app)
structure_cli.register(app)
app.add_typer(pipeline_cli.quarantine_app, name="quarantine")


@app.command("sync")
def sync_command(
    mapping: Annotated[
        Path | None,
        typer.Option("--mapping", help="The site mapping (default HOME/mapping.yaml)."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=100, max=200_000, help="Rows per batch.")
    ] = 20000,
    full: Annotated[
        bool, typer.Option("--full", help="Forget the watermarks and read every source again.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    scrub_workers: Annotated[
        str | None,
        typer.Option(
            "--scrub-workers",
            help="Processes that scrub and structure notes: a number or 'auto' (one per "
            "CPU); default ONCOFED_SCRUB_WORKERS, else 1 (in the sync process).",
        ),
    ] = None,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Load what changed in the sources since the last sync into the CDM (safe to re-run
    or interrupt). Prints, per source table: in = loaded + merged + quarantined (site operators)."""
    settings = _settings(home)
    _run(lambda: gate(settings, "sync", token, token_file))
    status = pipeline_cli.sync_command(
        settings,
        mapping=mapping,
        batch_size=batch_size,
        full=full,
        quiet=quiet,
        as_json=as_json,
        run=_run,
        scrub_workers=scrub_workers,
    )
    if status:
        raise typer.Exit(status)


@app.command("export-omop")
def export_omop_command(
    out_dir: pipeline_cli.OutDir,
    with_provenance: Annotated[
        bool,
        typer.Option(
            "--with-provenance",
            help="Add OncoFed's provenance columns and extension tables.",
        ),
    ] = False,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Write the analysis database as OMOP CDM v5.4 CSV files (one per table) into OUT_DIR
    (site operators)."""
    from edge_node.pipeline.omop_export import export_omop

    settings = _settings(home)
    _run(lambda: gate(settings, "export-omop", token, token_file, target=str(out_dir)))
    counts = _run(
        lambda: export_omop(settings.analysis_db_url, out_dir, with_provenance=with_provenance)
    )
    for table, rows in counts.items():
        typer.echo(f"{table}\t{rows}")
    typer.echo(f"wrote {len(counts)} tables to {out_dir}", err=True)


@pipeline_cli.mapping_app.command("suggest")
def mapping_suggest(
    source: Annotated[str, typer.Option("--source", help="The source's name in the mapping.")],
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            help="A mapping whose `sources` names the source (default HOME/mapping.yaml).",
        ),
    ] = None,
    spec: Annotated[
        str | None,
        typer.Option(
            "--spec",
            help='The source as JSON instead, e.g. \'{"kind": "csv", "path": "lis/"}\'.',
        ),
    ] = None,
    tables: Annotated[
        list[str] | None, typer.Option("--table", help="Only these tables (repeatable).")
    ] = None,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Propose a mapping for a source's tables from names, aliases and value profiles;
    review it before use (site operators)."""
    from edge_node.pipeline.connectors import open_connector
    from edge_node.pipeline.mapping import load_mapping
    from edge_node.pipeline.suggest import suggest_mapping
    from shared_cdm.vocab import load_default

    settings = _settings(home)
    _run(lambda: gate(settings, "mapping suggest", token, token_file, target=source))

    def body() -> str:
        if spec is not None:
            try:
                options = json.loads(spec)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"--spec is not JSON: {exc}") from exc
            base = Path.cwd()
        else:
            path = mapping or settings.mapping_file
            site = load_mapping(path)
            if source not in site.sources:
                raise InvalidInput(
                    f"{path} has no source {source!r}; it has {', '.join(site.sources)}"
                )
            options, base = site.sources[source].options(), site.base_dir
        connector = open_connector(source, options, base)
        try:
            return suggest_mapping(connector, source, tables, load_default())
        finally:
            connector.close()

    typer.echo(_run(body), nl=False)


@pipeline_cli.quarantine_app.command("list")
def quarantine_list(
    code: Annotated[str | None, typer.Option("--code", help="Only this reason code.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many rows.")] = 50,
    summary: Annotated[
        bool, typer.Option("--summary", help="Counts per source table and reason instead.")
    ] = False,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Show quarantined records (they may hold identifiers: this stays in the hospital)
    (site operators)."""
    settings = _settings(home)
    _run(lambda: gate(settings, "quarantine list", token, token_file))
    if summary:
        for source, table, reason, n in _run(lambda: pipeline_cli.quarantine_summary(settings)):
            typer.echo(f"{source}\t{table}\t{reason}\t{n}")
        return
    for row in _run(lambda: pipeline_cli.quarantine_rows(settings, code=code, limit=limit)):
        typer.echo(
            f"{row['source']}\t{row['source_table']}\t{row['row_key']}\t{row['code']}\t{row['reason']}"
        )


if __name__ == "__main__":
    main()
