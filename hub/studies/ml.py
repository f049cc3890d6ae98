"""ML studies at the hub: the SuperLink beside it, each study's Flower run, its metrics.

An ML study (`analysis: flower`, see federated_ml/flower/study.py) moves through
the ordinary rounds; this module does what a pure `step()` cannot:

* after the `join` round it registers the joining sites' SuperNode keys with the
  SuperLink and submits the Flower run (outside any database transaction: the
  `flwr` commands take seconds), then lets the study advance to `train`; a study
  that standardises features across sites runs with the pooled constants in its
  spec (the model file records them), and one whose constants cannot be pooled is
  never submitted;
* while the study is in `train` it holds the study until the ServerApp's result
  file exists (or the run's time is up), then stores the run and every round's
  metrics in the hub's database (`ml_runs`, `ml_rounds`), adds the result, the
  final weights and the Plotly figures to the study's state, and lets it advance
  to `release`.

One ML study trains at a time per SuperLink: the ServerApp asks every online
SuperNode, and SuperNodes of an earlier study are stopped at its release.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from federated_ml.analyses.base import parse_spec
from federated_ml.flower.deploy import DeploymentError, FlowerDeployment, TlsFiles
from federated_ml.flower.study import (
    FLOWER,
    JOIN,
    PHASE,
    PUBLIC_KEY,
    RESULT_STATE,
    RUN_ID,
    SUPERLINK,
    TRAIN,
    ml_spec_of,
    pooled_standardisation,
    scaling_params,
)
from hub.db.models import MlRound, MlRun, Study, StudyStatus, TaskStatus
from hub.db.session import Database
from hub.studies import repository
from hub.studies.envelope import json_safe
from shared_cdm.errors import InvalidInput, OncoFedError

log = logging.getLogger(__name__)

Advance = Callable[[Session, Study], bool]
# Beyond the spec's own timeouts: SuperNode start-up and a busy machine.
RUN_MARGIN_S = 180.0
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


def _dialable(bind_host: str) -> str:
    """The address SuperNodes dial when none is configured: the one the SuperLink binds
    (the hub's tunnel address on a real network). A wildcard names no single address."""
    if bind_host in WILDCARD_HOSTS:
        raise InvalidInput(
            f"the Flower SuperLink binds {bind_host!r}, which SuperNodes cannot dial; "
            "set flower_public_host in hub.toml (the hub's address as the edges see it)"
        )
    return bind_host


def _state(study: Study) -> dict[str, Any]:
    return dict((study.driver_state or {}).get("state", {}))


def _set_state(study: Study, state: Mapping[str, Any]) -> None:
    # A new dict, so SQLAlchemy sees the JSON column change.
    study.driver_state = json_safe({**(study.driver_state or {}), "state": dict(state)})


def is_ml(study: Study) -> bool:
    return str((study.spec or {}).get("analysis")) == FLOWER


def holds(study: Study) -> bool:
    """True while an ML study waits for the hub's Flower work, not for its sites."""
    if not is_ml(study) or study.status != StudyStatus.RUNNING.value:
        return False
    state = _state(study)
    run = state.get(RESULT_STATE) or {}
    if state.get(PHASE) == JOIN:
        return not run
    if state.get(PHASE) == TRAIN:
        return "result" not in run
    return False


@dataclass(frozen=True)
class _Due:
    study_id: str
    phase: str
    joined: dict[str, str]  # site -> SuperNode public key (join)
    spec: dict[str, Any]
    payloads: dict[str, dict[str, Any]] = field(default_factory=dict)  # the OK answers


def figures(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Plotly figures (as JSON) of loss and AUC per round and of the final calibration."""
    import plotly.graph_objects as go

    train = [r for r in rounds if r.get("train_loss") is not None]
    evals = [r for r in rounds if r.get("eval_model_round") is not None]
    loss = go.Figure()
    loss.add_scatter(
        x=[r["server_round"] for r in train],
        y=[r["train_loss"] for r in train],
        name="training loss",
    )
    loss.add_scatter(
        x=[r["eval_model_round"] for r in evals],
        y=[r.get("eval_loss") for r in evals],
        name="held-out loss",
    )
    loss.update_layout(title="Loss per round", xaxis_title="model after round")
    auc = go.Figure()
    auc.add_scatter(
        x=[r["eval_model_round"] for r in evals],
        y=[r.get("eval_auc_pooled") for r in evals],
        name="pooled held-out AUC",
    )
    auc.add_scatter(
        x=[r["eval_model_round"] for r in evals],
        y=[r.get("eval_auc_weighted") for r in evals],
        name="site-weighted held-out AUC",
    )
    # Non-IID honesty: each site's own held-out AUC next to the pooled one.
    per_site: dict[str, list[tuple[int, float]]] = {}
    for r in evals:
        for m in r.get("site_metrics", []):
            if m.get("phase") == "eval" and m.get("auc") is not None:
                per_site.setdefault(str(m["site"]), []).append((m["model_round"], m["auc"]))
    for site, series in sorted(per_site.items()):
        auc.add_scatter(
            x=[x for x, _ in series],
            y=[y for _, y in series],
            name=f"{site} held-out AUC",
            line={"dash": "dot"},
        )
    auc.update_layout(title="AUC per round", xaxis_title="model after round", yaxis_range=[0, 1])
    calibration = go.Figure()
    last = evals[-1]["calibration"] if evals else []
    points = [(p, o, n) for n, p, o in last if n]
    calibration.add_scatter(
        x=[p for p, _, _ in points],
        y=[o for _, o, _ in points],
        text=[f"n={n}" for _, _, n in points],
        mode="lines+markers",
        name="final model",
    )
    calibration.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="ideal", line={"dash": "dot"})
    calibration.update_layout(
        title="Calibration of the final model (held-out rows, all sites)",
        xaxis_title="mean predicted",
        yaxis_title="observed",
    )
    return {
        name: json.loads(fig.to_json())
        for name, fig in (("loss", loss), ("auc", auc), ("calibration", calibration))
    }


class FlowerCoordinator:
    """The hub's SuperLink and the Flower side of every ML study."""

    def __init__(
        self,
        db: Database,
        workdir: Path,
        tls: TlsFiles,
        *,
        port: int = 0,
        bind_host: str = "127.0.0.1",
        public_host: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self.workdir = workdir
        self._tls = tls
        self._port = port
        self._bind_host = bind_host
        self._public_host = public_host or _dialable(bind_host)
        self._clock = clock
        self._deployment: FlowerDeployment | None = None
        self._lock = threading.Lock()
        # Runs submitted but not yet recorded: a failed transaction must not submit twice.
        self._submitted: dict[str, tuple[dict[str, Any], dict[str, int]]] = {}

    # --- the SuperLink ---

    def start(self) -> None:
        deployment = FlowerDeployment(
            self.workdir / "flower", self._tls, port=self._port or None, host=self._bind_host
        )
        deployment.start_superlink()
        self._deployment = deployment
        log.info("Flower SuperLink listening on %s", deployment.address)

    def stop(self) -> None:
        if self._deployment is not None:
            self._deployment.stop()
            self._deployment = None

    @property
    def superlink_address(self) -> str:
        if self._deployment is None:
            raise InvalidInput("this hub's Flower SuperLink is not running")
        return f"{self._public_host}:{self._deployment.port}"

    def _require(self) -> FlowerDeployment:
        if self._deployment is None or not self._deployment.processes["superlink"].alive():
            raise InvalidInput("this hub's Flower SuperLink is not running")
        return self._deployment

    def _study_dir(self, study_id: str) -> Path:
        return self.workdir / "studies" / study_id

    # --- the studies ---

    def tick(self, advance: Advance) -> int:
        """Do the Flower work that is due; returns how many studies moved."""
        with self._lock:  # the sweeper and a request never submit the same run twice
            moved = 0
            for due in self._due():
                try:
                    if due.phase == JOIN:
                        moved += self._start_run(due, advance)
                    else:
                        moved += self._collect(due, advance)
                except OncoFedError as exc:
                    log.warning("ML study %s: %s", due.study_id, exc)
                except Exception:
                    # The next tick tries again; one study must not stop the others.
                    log.exception("ML study %s: Flower step failed", due.study_id)
            return moved

    def _due(self) -> list[_Due]:
        out = []
        with self._db.session() as session:
            for study_id in repository.running_study_ids(session):
                study = repository.get_study(session, study_id)
                if not holds(study):
                    continue
                tasks = repository.tasks_of_round(session, study.id, study.current_round)
                if not tasks or any(not TaskStatus(t.status).terminal for t in tasks):
                    continue
                payloads = {
                    t.node_name: dict(t.payload or {})
                    for t in tasks
                    if t.status == TaskStatus.OK.value
                }
                joined = {site: str(p.get(PUBLIC_KEY, "")) for site, p in payloads.items()}
                phase = str(_state(study).get(PHASE))
                out.append(_Due(study.id, phase, joined, dict(study.spec), payloads))
        return out

    def _start_run(self, due: _Due, advance: Advance) -> int:
        """Register the joined sites' keys, submit the run, let the study go on to train."""
        ml = ml_spec_of(parse_spec(due.spec))
        run: dict[str, Any]
        node_ids: dict[str, int] = {}
        keys = {s: k for s, k in due.joined.items() if k.startswith("ecdsa-")}
        if due.study_id in self._submitted:
            run, node_ids = self._submitted[due.study_id]
        elif len(keys) < ml.min_nodes:
            # Nothing to start: step() fails the study with the reason.
            run = {"error": f"{len(keys)} site(s) joined, ml.min_nodes is {ml.min_nodes}"}
        else:
            try:
                # Constants that cannot be pooled fail the study in step(); no run for it.
                pooled_standardisation(ml, due.payloads)
                deployment = self._require()
                run = self._submit(deployment, due, keys, node_ids)
                self._submitted[due.study_id] = (run, node_ids)
            except (DeploymentError, InvalidInput) as exc:
                run = {"error": f"the Flower run could not start: {exc}"}
        now = self._clock()
        moved = 0
        with self._db.transaction() as session:
            study = repository.get_study(session, due.study_id, for_update=True)
            if holds(study):
                state = _state(study)
                state[RESULT_STATE] = run
                _set_state(study, state)
                if RUN_ID in run:
                    session.add(
                        MlRun(
                            study_id=study.id,
                            flower_run_id=str(run[RUN_ID]),
                            status="running",
                            detail="",
                            sites=sorted(node_ids),
                            submitted_at=now,
                        )
                    )
                moved = int(advance(session, study))
        self._submitted.pop(due.study_id, None)  # recorded (committed) now
        return moved

    def _submit(
        self,
        deployment: FlowerDeployment,
        due: _Due,
        keys: Mapping[str, str],
        node_ids: dict[str, int],
    ) -> dict[str, Any]:
        from federated_ml.flower.app_bundle import write_app_bundle

        ml = ml_spec_of(parse_spec(due.spec))
        pooled = pooled_standardisation(ml, due.payloads)
        if pooled:  # trained with these constants; the saved model's spec names them
            ml = ml.with_standardisation(scaling_params(pooled))
        base = self._study_dir(due.study_id)
        paths = {}
        for site, key in sorted(keys.items()):
            path = paths[site] = base / "keys" / f"{site}.pub"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(key.strip() + "\n", encoding="utf-8")
        # One `flwr` process per key, side by side: each costs seconds of start-up.
        with ThreadPoolExecutor(max_workers=min(8, len(paths))) as pool:
            futures = {
                s: pool.submit(deployment.register_public_key, s, p) for s, p in paths.items()
            }
            for site, future in futures.items():
                node_ids[site] = future.result()
        app = write_app_bundle(
            base / "app",
            ml,
            results_db=base / "metrics.sqlite",
            results_dir=base / "results",
            model_dir=base / "models",
        )
        run_id = deployment.submit(app)
        log.info("ML study %s: Flower run %s submitted for %s", due.study_id, run_id, sorted(keys))
        return {
            RUN_ID: run_id,
            SUPERLINK: self.superlink_address,
            "node_ids": node_ids,
            "deadline_s": ml.start_timeout_s + (ml.rounds + 1) * ml.round_timeout_s + RUN_MARGIN_S,
        }

    def _collect(self, due: _Due, advance: Advance) -> int:
        """Store the finished run's metrics; hold on while it runs and has time left."""
        with self._db.session() as session:
            record = session.get(MlRun, due.study_id)
            if record is None:
                return 0
            run_id, submitted = record.flower_run_id, record.submitted_at
            state = _state(repository.get_study(session, due.study_id))
        run = dict(state.get(RESULT_STATE) or {})
        base = self._study_dir(due.study_id)
        result_path = base / "results" / f"run-{run_id}.json"
        now = self._clock()
        if result_path.exists():
            result = json.loads(result_path.read_text(encoding="utf-8"))
            rounds = self._rounds(base / "metrics.sqlite", f"run-{run_id}")
            weights = self._weights(result)
        elif now >= submitted + timedelta(seconds=float(run.get("deadline_s", 0))):
            result = {"status": "failed", "detail": "the Flower run gave no result in time"}
            rounds, weights = [], None
        else:
            return 0
        self._unregister(run.get("node_ids") or {})
        run.update(result=result, rounds=rounds, weights=weights, figures=figures(rounds))
        with self._db.transaction() as session:
            study = repository.get_study(session, due.study_id, for_update=True)
            if not holds(study):
                return 0
            record = session.get(MlRun, due.study_id)
            if record is not None:
                record.status = str(result.get("status", "failed"))
                record.detail = str(result.get("detail", ""))
                record.model_version = result.get("model_version")
                record.model_path = result.get("model_path")
                record.result = json_safe(result)
                record.finished_at = now
            for r in rounds:
                session.merge(MlRound(study_id=due.study_id, **r))
            state[RESULT_STATE] = run
            _set_state(study, state)
            return int(advance(session, study))

    @staticmethod
    def _rounds(path: Path, run_key: str) -> list[dict[str, Any]]:
        from federated_ml.flower.metrics import read_rounds, read_site_metrics

        if not path.exists():
            return []
        sites: dict[int, list[dict[str, Any]]] = {}
        for m in read_site_metrics(path, run_key):
            entry = {k: m[k] for k in ("site", "phase", "model_round", "n", "loss", "auc")}
            sites.setdefault(int(m["server_round"]), []).append(entry)
        out = []
        for r in read_rounds(path, run_key):
            out.append(
                {
                    "server_round": int(r["server_round"]),
                    "seconds": float(r["seconds"]),
                    "train_loss": r["train_loss"],
                    "eval_model_round": r["eval_model_round"],
                    "eval_loss": r["eval_loss"],
                    "eval_auc_weighted": r["eval_auc_weighted"],
                    "eval_auc_pooled": r["eval_auc_pooled"],
                    "sites_asked": json.loads(r["sites_asked"]),
                    "sites_replied": json.loads(r["sites_replied"]),
                    "sites_failed": json.loads(r["sites_failed"]),
                    "calibration": json.loads(r["calibration"]),
                    "site_metrics": sites.get(int(r["server_round"]), []),
                }
            )
        return list(json_safe(out))

    @staticmethod
    def _weights(result: Mapping[str, Any]) -> dict[str, Any] | None:
        """The final weights as JSON, only if they hash to the version the run reported."""
        path = result.get("model_path")
        if not path or not Path(str(path)).exists():
            return None
        import torch

        from federated_ml.flower.models import model_version, state_to_json

        saved = torch.load(str(path), weights_only=True)
        state = saved["state_dict"]
        if model_version(state) != result.get("model_version"):
            log.error("model file %s does not match its version; not released", path)
            return None
        return state_to_json(state)

    def _unregister(self, node_ids: Mapping[str, int]) -> None:
        if self._deployment is None:
            return
        for site, node_id in node_ids.items():
            try:
                self._deployment.unregister_supernode(int(node_id))
            except DeploymentError as exc:
                log.warning("could not unregister %s's SuperNode: %s", site, exc)

    # --- what the hub shows ---

    def rounds_of(self, session: Session, study_id: str) -> list[MlRound]:
        return list(
            session.query(MlRound).filter_by(study_id=study_id).order_by(MlRound.server_round)
        )
