"""`oncofed-ops local-federation`: one study over flat tables, real hub and edges.

Inputs are checked before any process starts, so a typo costs a second, not a
federation start-up. The work folder is removed after a completed study and
kept (its path in the error) after a failure, for its logs.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from federated_ml.analyses import analysis_for, known_analyses
from federated_ml.analyses.base import parse_spec
from hub.studies.rules import DEFAULT_MIN_SITES
from ops.federation import LocalFederation
from protocol.tls import validate_party_name
from shared_cdm.errors import InvalidInput, NotFound, OncoFedError


class StudyFailed(OncoFedError):
    """The study ran but ended failed or rejected."""

    code = "study_failed"


@dataclass(frozen=True)
class SiteInput:
    name: str
    csv: Path


def parse_site(value: str) -> SiteInput:
    """`NAME=PATH.csv` → SiteInput; the file must exist."""
    name, sep, path = value.partition("=")
    name, path = name.strip(), path.strip()
    if not sep or not name or not path:
        raise InvalidInput(f"--site {value!r} must look like NAME=PATH.csv")
    validate_party_name(name)
    csv = Path(path).expanduser()
    if not csv.is_file():
        raise NotFound(f"--site {name}: CSV file {csv} does not exist")
    return SiteInput(name, csv)


def parse_sites(values: Iterable[str]) -> list[SiteInput]:
    sites = [parse_site(v) for v in values]
    if not sites:
        raise InvalidInput("give at least one --site NAME=PATH.csv")
    names = [s.name for s in sites]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInput(f"site names must be unique; repeated: {', '.join(duplicates)}")
    return sites


def load_study(path: Path) -> dict[str, Any]:
    """The study spec from a JSON file, checked against the analysis it names."""
    if not path.is_file():
        raise NotFound(f"study file {path} does not exist")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"study file {path} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidInput(f"study file {path} must hold a JSON object")
    spec = parse_spec(raw)
    analysis_for(spec.analysis).validate(spec)
    return raw


def check_output(path: Path) -> Path:
    if not path.parent.is_dir():
        raise NotFound(f"cannot write {path}: folder {path.parent} does not exist")
    return path


def check_policy(path: Path | None) -> Path | None:
    if path is not None and not path.is_file():
        raise NotFound(f"policy file {path} does not exist")
    return path


@dataclass(frozen=True)
class LocalFederationRun:
    sites: tuple[SiteInput, ...]
    study: Mapping[str, Any]
    out: Path
    policy: Path | None = None
    timeout: float = 600.0
    workdir: Path | None = None


def hub_settings_for_local_run() -> dict[str, object]:
    """No minimum number of sites at the hub: one operator holds every table here, so
    the center's rule (which protects sites from researchers) has nothing to protect.
    Each site's own policy (`min_sites`, via `--policy`) still applies."""
    return {"min_sites": dict.fromkeys(known_analyses(), 1)}


def local_run_notes(analysis: str, n_sites: int) -> list[str]:
    minimum = DEFAULT_MIN_SITES.get(analysis, 1)
    if n_sites >= minimum:
        return []
    return [
        f"local federation: {n_sites} site(s), below the coordinating center's usual minimum "
        f"of {minimum} for {analysis}; not enforced because one operator holds every table"
    ]


def write_result(path: Path, envelope: Mapping[str, Any]) -> None:
    text = json.dumps(envelope, indent=2, ensure_ascii=False, sort_keys=False)
    path.write_text(text + "\n", encoding="utf-8")


def run_local_federation(run: LocalFederationRun, console: Console) -> dict[str, Any]:
    """Start the federation, run the study, write its result envelope to `run.out`."""
    root = run.workdir or Path(tempfile.mkdtemp(prefix="oncofed-local-"))
    try:
        envelope = _run_in(root, run, console)
    except BaseException as exc:
        if isinstance(exc, OncoFedError):
            exc.message = f"{exc.message} (work folder kept: {root})"
        raise
    if run.workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    return envelope


def _run_in(root: Path, run: LocalFederationRun, console: Console) -> dict[str, Any]:
    with LocalFederation(root, console=console) as federation:
        federation.init_ca()
        federation.start_hub(auto_approve=True, settings=hub_settings_for_local_run())
        federation.add_edges({s.name: s.csv for s in run.sites}, policy=run.policy)
        names = [s.name for s in run.sites]
        federation.wait_for_sites(names)
        study = federation.run_study(run.study, names, timeout=run.timeout)
    status = study.get("status")
    if status != "completed":
        reason = study.get("error") or "no reason given"
        raise StudyFailed(f"study {study.get('id')} {status}: {reason}")
    envelope = study.get("result")
    if not isinstance(envelope, dict):
        raise StudyFailed(f"study {study.get('id')} completed without a result")
    notes = local_run_notes(str(run.study.get("analysis")), len(run.sites))
    envelope["disclosure"] = [*envelope.get("disclosure", []), *notes]
    write_result(run.out, envelope)
    console.log(f"result written to {run.out}")
    return envelope
