"""`oncofed-ops demo`: the main job of DESIGN.md, end to end on one machine.

A consortium CA; a hub and three hospital edges, on the WireGuard testbed
(network namespaces, `ops.testbed`) where the machine allows it, else on
loopback with mutual TLS (`ops.federation.LocalFederation`); three synthetic
hospitals with messy source systems (`ops.synth`, variants A, B and C), each
loaded into its edge's analysis database by the edge pipeline (`oncofed-edge
sync`); the lung-cancer study of `ops.demo_data.study` (counts, a descriptive
table, Kaplan-Meier by stage, a Cox model, a Flower-trained model); and a
summary of every message that crossed the edge-hub channel, taken from the wire
capture (`protocol.capture`). Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from edge_node.policy import DEFAULT_POLICY_TOML
from ops import testbed
from ops.demo_data.study import DEMO_STUDIES, FLOWER_STUDY, STAGES, DemoStudy
from ops.federation import (
    EDGE_OPERATOR,
    FederationLayout,
    HubEndpoint,
    LocalFederation,
    _copy_tls,
    edge_ready,
    write_toml,
)
from ops.hub_client import HubClient
from ops.local_federation import StudyFailed
from ops.processes import ManagedProcess, Terminated, python_module
from ops.synth.hospital import HospitalSummary, write_hospital
from ops.synth.variants import get_variant
from ops.wire_report import (
    PatientCheck,
    WireSummary,
    check_no_patient_rows,
    load_pseudonyms,
    summarise,
    wire_table,
)
from protocol.capture import WIRE_CAPTURE_ENV, CapturedMessage, read_capture
from shared_cdm.errors import InvalidInput, OncoFedError

NETWORKS = ("auto", "testbed", "loopback")
DEFAULT_PATIENTS = 200
DEFAULT_SEED = 2026
VARIANTS = ("A", "B", "C")
POLL_INTERVAL_S = 0.5  # the edges' task poll: each study round waits for one
SYNC_TIMEOUT_S = 1800.0
FLOWER_TIMEOUT_S = 600.0


class DemoFailed(OncoFedError):
    code = "demo_failed"


class TestbedUnavailable(OncoFedError):
    """The testbed's set-up failed where `--network auto` may fall back to loopback."""

    __test__ = False  # not a pytest class, whatever its name
    code = "testbed_unavailable"


@dataclass(frozen=True)
class DemoOptions:
    workdir: Path | None = None
    network: str = "auto"
    patients: int = DEFAULT_PATIENTS
    seed: int = DEFAULT_SEED
    keep_running: bool = True
    flower: bool = True
    timeout: float = 900.0

    def check(self) -> None:
        if self.network not in NETWORKS:
            raise InvalidInput(f"--network must be one of {', '.join(NETWORKS)}")
        if not 10 <= self.patients <= 20_000:
            raise InvalidInput("--patients must be between 10 and 20000 per hospital")


@dataclass
class DemoOutcome:
    workdir: Path
    network: str
    hub_url: str
    sites: dict[str, str]  # site -> hospital variant
    persons: dict[str, int]  # site -> persons in its analysis database
    studies: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> study
    flower: str = "not run"
    wire: WireSummary | None = None
    patient_check: PatientCheck | None = None
    captured: tuple[CapturedMessage, ...] = ()  # what `wire` counted
    seconds: dict[str, float] = field(default_factory=dict)


# --- choosing the network ---


def choose_network(requested: str) -> tuple[str, str | None]:
    """("testbed" | "loopback", the reason for falling back or None)."""
    if requested == "loopback":
        return "loopback", None
    try:
        testbed.check_environment()
    except OncoFedError as exc:
        if requested == "testbed":
            raise
        return "loopback", (
            f"cannot build the WireGuard testbed here ({exc.message}); "
            "falling back to loopback with mutual TLS"
        )
    return "testbed", None


def demo_policy() -> str:
    """The default site policy, plus ML studies run without the operator's approval."""
    text = DEFAULT_POLICY_TOML.replace('flower = "manual"\n', 'flower = "auto"\n')
    if text == DEFAULT_POLICY_TOML:
        raise DemoFailed('the default policy has no `flower = "manual"` line to change')
    return text


def site_names() -> list[str]:
    return testbed.site_names(len(VARIANTS))


# --- progress ---


class Steps:
    """The demo's progress bars (stderr); `log` prints above them."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._lock = threading.Lock()

    def __enter__(self) -> Steps:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def add(self, description: str, total: int) -> TaskID:
        return self.progress.add_task(description, total=total)

    def advance(self, task: TaskID, description: str | None = None) -> None:
        with self._lock:
            if description is None:
                self.progress.advance(task)
            else:
                self.progress.update(task, advance=1, description=description)

    def finish(self, task: TaskID) -> None:
        total = self.progress.tasks[task].total or 0
        self.progress.update(task, completed=total)

    def log(self, message: str) -> None:
        self.console.log(message)


# --- loopback: LocalFederation, edges fed by the pipeline ---


class PipelineFederation(LocalFederation):
    """A LocalFederation whose edges serve the CDM their own pipeline loaded."""

    def add_synced_edge(
        self, site: str, hospital: Path, policy_text: str, steps: Steps, task: TaskID
    ) -> ManagedProcess:
        hub, _ = self._require_hub()
        self.ca.issue(site, "edge")
        home = self.layout.edge_home(site)
        home.mkdir(parents=True, exist_ok=True)
        _copy_tls(self.ca, site, home / "tls")
        # `init` keeps an edge.toml written before it: a shorter poll for the demo.
        write_toml(
            home / "edge.toml",
            {
                "site_name": site,
                "hub_address": hub.grpc_address,
                "poll_interval_s": POLL_INTERVAL_S,
            },
        )
        self.edge_command(
            site, "init", "--site", site, "--hub", hub.grpc_address, "--operator", EDGE_OPERATOR
        )
        (home / "policy.toml").write_text(policy_text, encoding="utf-8")
        steps.log(f"{site}: edge pipeline running (oncofed-edge sync)")
        self.edge_command(
            site,
            "sync",
            "--mapping",
            str(hospital / "mapping.yaml"),
            "--quiet",
            timeout=SYNC_TIMEOUT_S,
        )
        steps.advance(task)
        argv = python_module("edge_node.cli", "run", "--home", str(home))
        process, _ = self._processes.start(
            f"edge-{site}",
            argv,
            env=self._edge_env(site),
            ready=edge_ready(site),
            timeout=self.ready_timeout,
        )
        with self._edges_lock:
            self.edges[site] = process
        steps.log(f"{site}: enrolled and registered with the hub (mutual TLS)")
        return process


class Federation(Protocol):
    """What the study steps need from either network."""

    def submit(self, spec: Mapping[str, Any], sites: Sequence[str], title: str) -> str: ...
    def wait(self, study_id: str, sites: Sequence[str], timeout: float) -> dict[str, Any]: ...


@dataclass
class LoopbackRunner:
    federation: PipelineFederation

    def submit(self, spec: Mapping[str, Any], sites: Sequence[str], title: str) -> str:
        with self.federation.client() as hub:
            return str(hub.submit_study(spec, sites=list(sites), title=title)["id"])

    def wait(self, study_id: str, sites: Sequence[str], timeout: float) -> dict[str, Any]:
        with self.federation.client() as hub:
            return hub.wait_for_study(
                study_id, timeout=timeout, watch=lambda: self.federation.check_alive(sites)
            )


@dataclass
class TestbedRunner:
    bed: testbed.Testbed

    def submit(self, spec: Mapping[str, Any], sites: Sequence[str], title: str) -> str:
        def go(hub: HubClient) -> str:
            return str(hub.submit_study(spec, sites=list(sites), title=title)["id"])

        return self.bed.on_hub(go)

    def wait(self, study_id: str, sites: Sequence[str], timeout: float) -> dict[str, Any]:
        return self.bed.wait_for_study(study_id, timeout=timeout)


# --- the steps ---


def _fresh_workdir(workdir: Path | None) -> Path:
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix="oncofed-demo-"))
    if workdir.exists() and any(workdir.iterdir()):
        raise InvalidInput(f"work folder {workdir} is not empty; give a new or empty one")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


@contextmanager
def wire_capture(path: Path) -> Iterator[Path]:
    """Every hub and edge started inside sees ONCOFED_WIRE_CAPTURE (children inherit it)."""
    before = os.environ.get(WIRE_CAPTURE_ENV)
    os.environ[WIRE_CAPTURE_ENV] = str(path)
    try:
        yield path
    finally:
        if before is None:
            os.environ.pop(WIRE_CAPTURE_ENV, None)
        else:
            os.environ[WIRE_CAPTURE_ENV] = before


def generate_hospitals(
    root: Path, options: DemoOptions, steps: Steps
) -> dict[str, tuple[Path, HospitalSummary]]:
    task = steps.add("synthetic hospitals generated", len(VARIANTS))
    made = {}
    for index, (site, variant) in enumerate(zip(site_names(), VARIANTS, strict=True)):
        folder = root / "hospitals" / site
        summary = write_hospital(
            folder,
            patients=options.patients,
            seed=options.seed + index,
            variant=get_variant(variant),
        )
        made[site] = (folder, summary)
        steps.advance(task)
    return made


def analysis_db_url(layout: FederationLayout, site: str) -> str:
    return f"sqlite:///{layout.edge_home(site) / 'analysis.db'}"


def run_studies(
    runner: Federation, sites: Sequence[str], steps: Steps, timeout: float
) -> dict[str, dict[str, Any]]:
    """Submit every aggregate study at once (their rounds overlap), then wait for each."""
    task = steps.add("lung-cancer study: analyses finished", len(DEMO_STUDIES))
    ids = {s.key: runner.submit(s.spec, sites, s.title) for s in DEMO_STUDIES}
    steps.log(f"submitted {len(ids)} analyses; the hub auto-approves, each site's policy decides")
    done = {}
    for study in DEMO_STUDIES:
        done[study.key] = runner.wait(ids[study.key], sites, timeout)
        steps.advance(task, f"lung-cancer study: {study.key} {done[study.key].get('status')}")
    return done


def flower_available() -> tuple[bool, str]:
    """Whether this installation runs ML (Flower) studies, and if not, why."""
    try:
        from federated_ml.analyses import known_analyses
        from federated_ml.flower.spec import parse_ml_spec
        from hub.settings import HubSettings
    except ImportError as exc:
        return False, f"the ML study modules are missing ({exc})"
    if "flower" not in known_analyses():
        return False, "the hub has no `flower` analysis"
    if "flower_enabled" not in HubSettings.model_fields:
        return False, "the hub has no `flower_enabled` setting"
    try:
        parse_ml_spec(dict(FLOWER_STUDY.spec["ml"]))
    except OncoFedError as exc:
        return False, f"the demo's ML spec does not fit this version: {exc.message}"
    return True, "available"


def _flower_step(
    runner: Federation, sites: Sequence[str], steps: Steps, enabled: bool, reason: str
) -> tuple[str, dict[str, Any] | None]:
    """Train the Flower model as a study when the ML study API is there; else say why not."""
    if not enabled:
        steps.log(f"Flower step skipped: {reason}")
        return f"skipped: {reason}", None
    task = steps.add("Flower: federated training (join, train, release)", 1)
    study_id = runner.submit(FLOWER_STUDY.spec, sites, FLOWER_STUDY.title)
    study = runner.wait(study_id, sites, FLOWER_TIMEOUT_S)
    steps.finish(task)
    status = str(study.get("status"))
    if status != "completed":
        return f"{status}: {study.get('error')}", study
    inner = (study.get("result") or {}).get("result") or {}
    return str(inner.get("status", status)), study


# --- printing ---


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 0.01 and value != 0 else f"{value:.2f}"
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


def _at(values: Sequence[Any], times: Sequence[Any], day: float) -> object:
    """The step function's value at `day` (None before the first time)."""
    found = None
    for t, v in zip(times, values, strict=False):
        if t is not None and float(t) <= day:
            found = v
    return found


def km_table(result: Mapping[str, Any]) -> Table:
    table = Table()
    columns = ("group", "at risk (start)", "events", "1-year", "3-year", "5-year", "median (days)")
    for column in columns:
        table.add_column(column, justify="left" if column == "group" else "right")
    groups = result.get("groups", {})
    order = sorted(groups, key=lambda g: (STAGES.index(g) if g in STAGES else len(STAGES), g))
    for name in order:
        g = groups[name]
        times, surv = g.get("time", []), g.get("survival", [])
        events = g.get("events") or []
        at_risk = g.get("at_risk") or []
        table.add_row(
            name,
            _fmt(at_risk[0] if at_risk else None),
            _fmt(sum(e for e in events if isinstance(e, int | float))),
            *(_fmt(_at(surv, times, day)) for day in (365.0, 1095.0, 1825.0)),
            _fmt(g.get("median")),
        )
    return table


def cox_table(result: Mapping[str, Any]) -> Table:
    table = Table()
    for column in ("covariate", "coef", "HR", "95% CI of HR", "p"):
        table.add_column(column, justify="left" if column == "covariate" else "right")
    for name, coef in (result.get("coef") or {}).items():
        low, high = (result.get("hr_ci95") or {}).get(name, [None, None])
        table.add_row(
            name,
            _fmt(coef),
            _fmt((result.get("hr") or {}).get(name)),
            f"{_fmt(low)}-{_fmt(high)}",
            _fmt((result.get("p") or {}).get(name)),
        )
    return table


def km_summary(result: Mapping[str, Any]) -> str:
    groups = result.get("groups", {})
    parts = []
    for stage in [s for s in STAGES if s in groups]:
        value = _at(groups[stage].get("survival", []), groups[stage].get("time", []), 1095.0)
        parts.append(f"stage {stage} {_fmt(value)}")
    return "3-year survival: " + ", ".join(parts) if parts else "no groups"


def cox_summary(result: Mapping[str, Any]) -> str:
    hr = result.get("hr") or {}
    if "stage_iv" not in hr:
        return "no stage IV coefficient"
    return (
        f"stage IV multiplies the hazard by {_fmt(hr['stage_iv'])} against stages I-II "
        f"(stage III: {_fmt(hr.get('stage_iii'))}); each year of age by {_fmt(hr.get('age'))}; "
        f"an EGFR inhibitor by {_fmt(hr.get('egfr_tki'))}"
    )


def print_study(console: Console, study: DemoStudy, envelope: Mapping[str, Any]) -> None:
    result = envelope.get("result") or {}
    analysis = str(study.spec.get("analysis"))
    console.rule(f"[bold]{analysis}[/bold]: {study.title}", align="left")
    if analysis == "count":
        console.print(sites_table(envelope, result.get("count")))
    elif analysis == "describe":
        console.print(sites_table(envelope, envelope.get("n")))
        console.print(variables_table(result))
    elif analysis == "kaplan_meier":
        console.print(sites_table(envelope, envelope.get("n")))
        console.print(km_table(result))
        console.print(f"  {km_summary(result)}", soft_wrap=True)
    elif analysis == "cox":
        console.print(sites_table(envelope, envelope.get("n")))
        console.print(cox_table(result))
        console.print(f"  {cox_summary(result)}", soft_wrap=True)
    for note in envelope.get("disclosure", []):
        console.print(f"  [yellow]disclosure:[/yellow] {note}", soft_wrap=True)
    console.print()


def print_flower(console: Console, status: str, study: Mapping[str, Any] | None) -> None:
    console.rule(f"[bold]flower[/bold]: {FLOWER_STUDY.title}", align="left")
    console.print(f"  status: {status}", soft_wrap=True)
    envelope = (study or {}).get("result") or {}
    result = envelope.get("result") or {}
    if envelope:
        console.print(sites_table(envelope, envelope.get("n")))
    rounds = result.get("rounds") or []
    metrics = sorted(
        {
            k
            for r in rounds
            for k, v in r.items()
            if isinstance(v, int | float) and k != "server_round"
        }
    )
    if rounds and metrics:
        table = Table()
        table.add_column("round", justify="right")
        for name in metrics:
            table.add_column(name, justify="right")
        for r in rounds:
            table.add_row(_fmt(r.get("server_round")), *(_fmt(r.get(m)) for m in metrics))
        console.print(table)
    scalars = {
        k: v for k, v in result.items() if isinstance(v, int | float | str) and k != "detail"
    }
    if scalars:
        console.print(
            "  " + "; ".join(f"{k}: {_fmt(v)}" for k, v in scalars.items()), soft_wrap=True
        )
    console.print()


def print_hospitals(
    console: Console,
    hospitals: Mapping[str, tuple[Path, HospitalSummary]],
    persons: Mapping[str, int],
) -> None:
    table = Table(title="Synthetic hospitals and their edges' analysis databases")
    for column in ("site", "variant", "patients", "with cancer", "source problems", "CDM persons"):
        table.add_column(column, justify="left" if column in ("site", "variant") else "right")
    for site, (_, summary) in hospitals.items():
        table.add_row(
            site,
            summary.variant,
            str(summary.patients),
            str(summary.cancer_patients),
            str(sum(summary.problems.values())),
            str(persons.get(site, "-")),
        )
    console.print(table)
    console.print()


def print_wire(
    console: Console, summary: WireSummary, check: PatientCheck, flower_ran: bool = False
) -> None:
    console.rule("[bold]What crossed the wire[/bold] (edge-hub channel, from the capture)")
    console.print(wire_table(summary))
    if flower_ran:
        console.print(
            "  not in this table: the Flower model updates, which travel between the "
            "SuperNodes and the hub's SuperLink on a channel of their own (TLS, node "
            "authentication) that the EdgeHub capture does not see",
            soft_wrap=True,
        )
    console.print(
        f"  the edges' own records: {summary.edge_requests} requests sent, "
        f"{summary.edge_replies} replies received, {summary.failed_calls} calls failed "
        f"(a status, no reply); parties captured: {', '.join(summary.sides)}",
        soft_wrap=True,
    )
    style = "green" if check.clean else "bold red"
    console.print(f"  [{style}]{check.statement()}[/{style}]", soft_wrap=True)
    console.print()


# --- the run ---


def _wait_until_interrupted(alive: Callable[[], bool], console: Console) -> None:
    while alive():
        time.sleep(1.0)
    console.log("the hub stopped; shutting the demo down")


def _failures(studies: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return [
        f"{key} {study.get('status')}: {study.get('error')}"
        for key, study in studies.items()
        if study.get("status") != "completed" or not isinstance(study.get("result"), dict)
    ]


def _raise_failures(outcome: DemoOutcome) -> None:
    failed = _failures(outcome.studies)
    if not outcome.flower.startswith(("completed", "skipped")):
        failed.append(f"flower {outcome.flower}")
    if failed:
        raise StudyFailed(
            f"demo analyses did not complete: {'; '.join(failed)} (work folder {outcome.workdir})"
        )


def _persons(urls: Mapping[str, str]) -> dict[str, set[str]]:
    return {site: load_pseudonyms(url) for site, url in urls.items()}


def _report(
    out: Console,
    outcome: DemoOutcome,
    hospitals: Mapping[str, tuple[Path, HospitalSummary]],
    flower_study: Mapping[str, Any] | None,
    capture: Path,
    pseudonyms: Mapping[str, set[str]],
) -> None:
    print_hospitals(out, hospitals, outcome.persons)
    by_key = {s.key: s for s in DEMO_STUDIES}
    for key, study in outcome.studies.items():
        if study.get("status") == "completed" and isinstance(study.get("result"), dict):
            print_study(out, by_key[key], study["result"])
        else:
            out.rule(f"[bold]{key}[/bold]: {by_key[key].title}", align="left")
            out.print(
                f"  [bold red]{study.get('status')}[/bold red]: {study.get('error')}",
                soft_wrap=True,
            )
    print_flower(out, outcome.flower, flower_study)
    messages = read_capture(capture) if capture.exists() else []
    outcome.captured = tuple(messages)
    outcome.wire = summarise(messages)
    outcome.patient_check = check_no_patient_rows(messages, pseudonyms)
    flower_ran = flower_study is not None
    print_wire(out, outcome.wire, outcome.patient_check, flower_ran)


def run_demo(*, out: Console, progress: Console, options: DemoOptions) -> DemoOutcome:
    options.check()
    started = time.monotonic()
    network, fallback = choose_network(options.network)
    root = _fresh_workdir(options.workdir).resolve()
    capture = root / "wire-capture.jsonl"
    progress.log(f"work folder: {root}")
    if fallback:
        progress.print(f"[yellow]{fallback}[/yellow]", soft_wrap=True)
    enabled, reason = flower_available() if options.flower else (False, "--no-flower")
    flower = (enabled, reason)
    if network == "testbed":
        try:
            with wire_capture(capture), Steps(progress) as steps:
                return _run_on_testbed(out, steps, options, root, capture, flower, started)
        except TestbedUnavailable as exc:
            # auto only: the checks passed but the machine would not build it
            progress.print(
                f"[yellow]the WireGuard testbed could not be built ({exc.message}); "
                "falling back to loopback with mutual TLS[/yellow]",
                soft_wrap=True,
            )
            root = root / "loopback"
            capture = root / "wire-capture.jsonl"
            root.mkdir()
    with wire_capture(capture), Steps(progress) as steps:
        return _run_on_loopback(out, steps, options, root, capture, flower, started)


def _run_on_loopback(
    out: Console,
    steps: Steps,
    options: DemoOptions,
    root: Path,
    capture: Path,
    flower: tuple[bool, str],
    started: float,
) -> DemoOutcome:
    sites = site_names()
    policy = demo_policy()
    seconds: dict[str, float] = {}
    federation = PipelineFederation(root / "federation", console=steps.console)
    with federation:
        setup = steps.add("consortium CA and hub", 2)
        federation.init_ca()
        steps.advance(setup)
        settings = {"flower_enabled": True} if flower[0] else {}
        with ThreadPoolExecutor(max_workers=1) as pool:
            # The hub starts (its own processes) while the hospitals are generated here.
            hub_future = pool.submit(federation.start_hub, auto_approve=True, settings=settings)
            hospitals = generate_hospitals(root, options, steps)
            hub = hub_future.result()
        steps.advance(setup)
        seconds["hub up, hospitals generated"] = time.monotonic() - started
        pipelines = steps.add("edge pipelines (sync into the CDM) and enrolment", len(sites))
        with ThreadPoolExecutor(max_workers=len(sites)) as pool:
            futures = [
                pool.submit(
                    federation.add_synced_edge,
                    site,
                    hospitals[site][0],
                    policy,
                    steps,
                    pipelines,
                )
                for site in sites
            ]
            for future in futures:
                future.result()
        federation.wait_for_sites(sites)
        seconds["edges synced and online"] = time.monotonic() - started
        urls = {s: analysis_db_url(federation.layout, s) for s in sites}
        pseudonyms = _persons(urls)
        runner = LoopbackRunner(federation)
        given = _Given(out, steps, options, root, capture, flower, started)
        outcome = _studies_and_report(
            given, runner, sites, seconds, hospitals, pseudonyms, "loopback", hub.http_url, hub
        )
        if options.keep_running:
            _keep_running(
                out,
                steps.console,
                lambda: federation.hub_process is not None and federation.hub_process.alive(),
            )
    _raise_failures(outcome)
    return outcome


@dataclass(frozen=True)
class _Given:
    """What run_demo hands either network's run; its last steps need all of it."""

    out: Console
    steps: Steps
    options: DemoOptions
    root: Path
    capture: Path
    flower: tuple[bool, str]
    started: float


def _studies_and_report(
    given: _Given,
    runner: Federation,
    sites: Sequence[str],
    seconds: dict[str, float],
    hospitals: Mapping[str, tuple[Path, HospitalSummary]],
    pseudonyms: Mapping[str, set[str]],
    network: str,
    hub_url: str,
    hub: HubEndpoint | None,
) -> DemoOutcome:
    """The studies, the Flower step and the report: the same on either network."""
    steps, started = given.steps, given.started
    studies = run_studies(runner, sites, steps, given.options.timeout)
    seconds["analyses done"] = time.monotonic() - started
    flower_status, flower_study = _flower_step(runner, sites, steps, *given.flower)
    seconds["flower done"] = time.monotonic() - started
    outcome = DemoOutcome(
        workdir=given.root,
        network=network,
        hub_url=hub_url,
        sites=dict(zip(sites, VARIANTS, strict=True)),
        persons={s: len(p) for s, p in pseudonyms.items()},
        studies=studies,
        flower=flower_status,
        seconds=seconds,
    )
    steps.progress.stop()
    _report(given.out, outcome, hospitals, flower_study, given.capture, pseudonyms)
    _closing(given.out, outcome, hub, started, given.options.keep_running)
    return outcome


def _closing(
    out: Console,
    outcome: DemoOutcome,
    hub: HubEndpoint | None,
    started: float,
    keep_running: bool,
) -> None:
    outcome.seconds["total"] = time.monotonic() - started
    out.print(
        f"Network: {outcome.network}. Work folder (certificates, databases, logs, wire capture): "
        f"{outcome.workdir}",
        soft_wrap=True,
    )
    out.print(f"Demo run time: {outcome.seconds['total']:.0f} s", soft_wrap=True)
    if hub is not None and keep_running:
        out.print(f"Hub API: {hub.http_url}  (token: {hub.token})", soft_wrap=True)


def _keep_running(out: Console, progress: Console, alive: Callable[[], bool]) -> None:
    out.print("The hub keeps the results and keeps running; press Ctrl-C to stop everything.")
    try:
        _wait_until_interrupted(alive, progress)
    except (KeyboardInterrupt, Terminated):
        progress.log("stopping on request")


# --- the testbed ---


def _run_on_testbed(
    out: Console,
    steps: Steps,
    options: DemoOptions,
    root: Path,
    capture: Path,
    flower: tuple[bool, str],
    started: float,
) -> DemoOutcome:
    sites = site_names()
    seconds: dict[str, float] = {}
    build = steps.add("testbed: namespaces, WireGuard, hub, hospitals, edge pipelines", 1)
    try:
        bed = testbed.up(
            root / "testbed",
            # The SuperLink binds the hub's tunnel address; the edges start with the
            # demo's policy (ML studies run without an operator's approval).
            testbed.TestbedOptions(
                sites=len(sites),
                patients=options.patients,
                seed=options.seed,
                flower=flower[0],
                policy=demo_policy(),
            ),
            steps.log,
        )
    except testbed.TestbedError as exc:  # namespaces, links or tunnels refused
        if options.network != "auto":
            raise
        raise TestbedUnavailable(exc.message) from exc
    try:
        steps.finish(build)
        seconds["testbed up"] = time.monotonic() - started
        urls = {s: analysis_db_url(bed.layout, s) for s in sites}
        pseudonyms = _persons(urls)
        hospitals = _testbed_hospitals(bed, sites, options)
        runner = TestbedRunner(bed)
        given = _Given(out, steps, options, root, capture, flower, started)
        hub_url = f"http://127.0.0.1:{testbed.HUB_HTTP_PORT} in {bed.hub_host.namespace}"
        outcome = _studies_and_report(
            given, runner, sites, seconds, hospitals, pseudonyms, "testbed", hub_url, None
        )
        if options.keep_running:
            out.print(
                f"Hub API: {outcome.hub_url} (e.g. `ip netns exec {bed.hub_host.namespace} curl "
                f"-H 'Authorization: Bearer ...' "
                f"http://127.0.0.1:{testbed.HUB_HTTP_PORT}/api/v1/studies`; "
                f"token in {bed.root / 'hub.token'})",
                soft_wrap=True,
            )
            _keep_running(out, steps.console, lambda: bed.running(testbed.HUB_NAME))
    finally:
        left = bed.down(keep_files=True)
        if left:
            steps.console.log("left behind: " + "; ".join(left))
    _raise_failures(outcome)
    return outcome


def _testbed_hospitals(
    bed: testbed.Testbed, sites: Sequence[str], options: DemoOptions
) -> dict[str, tuple[Path, HospitalSummary]]:
    """What the testbed generated, read back from each hospital's truth folder."""
    made = {}
    for index, site in enumerate(sites):
        folder = bed.root / "hospitals" / site
        summary = HospitalSummary(variant="ABC"[index % 3], patients=options.patients)
        patients = folder / "truth" / "patients.jsonl"
        if patients.exists():
            with patients.open(encoding="utf-8") as rows:
                summary.cancer_patients = sum(
                    1 for line in rows if line.strip() and json.loads(line).get("site")
                )
        problems = folder / "truth" / "problems.jsonl"
        if problems.exists():
            with problems.open(encoding="utf-8") as rows:
                summary.problems.update(
                    str(json.loads(line).get("kind")) for line in rows if line.strip()
                )
        made[site] = (folder, summary)
    return made
