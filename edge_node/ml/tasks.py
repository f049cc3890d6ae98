"""The site's side of an ML study's three rounds (federated_ml/flower/study.py).

* `join`: build the study's rows from the analysis database (a spec that does not
  fit this site's data fails here, before any training), write them to a snapshot
  file in the edge's own folder (owner-only) for the ClientApp, make a SuperNode key
  pair for this study and answer with its public half; for the spec's `standardise`
  features also n, sum and sum of squares over the training rows (never the
  held-out ones), refused below the site's minimum cell size.
* `train`: standardise the snapshot with the pooled constants the round carries
  (into a second file, so a repeated round never scales twice), then start this
  study's SuperNode (TLS to the hub's SuperLink, verified with the consortium CA;
  node authentication with the study's key); it runs until the release round or
  until the study's time is up, whichever comes first. What starting it needs (the
  SuperLink address, the study's wall-clock expiry) is kept in `training.json`, so
  an edge that stopped or was killed mid-training starts it again (`resume`).
* `release`: stop the SuperNode, delete the snapshots, and keep the released model
  (its hash checked, the pooled constants in its spec) for `oncofed-edge predict`.

What leaves the site here is the SuperNode public key and those sums; the model
updates leave through Flower. The rows never leave.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from edge_node.cdm import CDM_DATASET, refresh_cdm
from edge_node.ledger.canonical import cohort_spec_hash, question_hash
from edge_node.ledger.service import Ledger, Release
from edge_node.ml.features import (
    AnalysisDbFeatureSource,
    MlStudy,
    parse_ml_study,
    standardise_snapshot,
    write_snapshot,
)
from edge_node.ml.models import store_model
from edge_node.store.datasets import DatasetRegistry
from federated_ml.flower.deploy import (
    flower_env,
    free_port,
    make_node_keys,
    node_config_arg,
    signal_flower_pid,
    stale_flower_processes,
    stop_process_tree,
)
from federated_ml.flower.features import (
    SiteData,
    needed_columns,
    split_site_rows,
    training_moments,
)
from federated_ml.flower.privacy import CLIP_KEY, SCALE_KEY, calibrate
from federated_ml.flower.secagg import NODE_CONFIG_KEY as SECURE_NODE_CONFIG_KEY
from federated_ml.flower.spec import BinaryOutcome, MLStudySpec
from federated_ml.flower.study import (
    JOIN,
    MODEL,
    MOMENTS,
    PHASE,
    PUBLIC_KEY,
    RELEASE,
    SCALING,
    SUPERLINK,
    TRAIN,
)
from protocol.messages import ResultStatus, TaskAssignment, TaskResult
from shared_cdm.errors import InvalidInput, NotFound, OncoFedError, Refused

_LOG = logging.getLogger(__name__)
ML_DIR = "ml"
SNAPSHOT = "features.sqlite"
STANDARDISED = "features-standardised.sqlite"  # the snapshot scaled by pooled constants
KEY_NAME = "supernode"
FLWR_HOME = "flwr-home"  # the SuperNode's working folder (its FLWR_HOME)
# Kept from the train round until the release (or the study's time is up): a restarted
# edge starts the SuperNode again from it.
TRAINING = "training.json"
SECURE_MARK = "secure-aggregation"  # present: the joined study aggregates securely
# Beyond the spec's own timeouts before a forgotten SuperNode is stopped.
LIFETIME_MARGIN_S = 300.0
# A SuperNode whose key the SuperLink refuses exits within this time.
START_CHECK_S = 2.0
# An orphan is asked to end (SIGTERM) first: a SuperNode that exits cleanly deactivates
# itself at the SuperLink, while a killed one stays "online" there for two heartbeat
# intervals and a new one with its key cannot activate meanwhile. Then it is killed.
ORPHAN_GRACE_S = 5.0


@dataclass
class RunningSupernode:
    study_id: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    expires_at: float  # on the monotonic clock


@dataclass(frozen=True)
class TrainingRecord:
    """What `training.json` keeps: enough to start the study's SuperNode again."""

    superlink: str
    expires_at: float  # wall clock (Unix seconds): monotonic time does not survive a restart

    def write(self, path: Path) -> None:
        # Temp file then rename: a crash leaves the old file or the new one, never half.
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(
            json.dumps({"superlink": self.superlink, "expires_at": self.expires_at}),
            encoding="utf-8",
        )
        temp.replace(path)

    @classmethod
    def read(cls, path: Path) -> TrainingRecord:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InvalidInput(f"{path} cannot be read: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidInput(f"{path} holds no JSON object")
        superlink, expires_at = data.get("superlink"), data.get("expires_at")
        if not isinstance(superlink, str) or ":" not in superlink:
            raise InvalidInput(f"{path} names no SuperLink address (got {superlink!r})")
        if (
            isinstance(expires_at, bool)
            or not isinstance(expires_at, int | float)
            or not math.isfinite(expires_at)
        ):
            raise InvalidInput(f"{path} has no valid expiry time (got {expires_at!r})")
        return cls(superlink, float(expires_at))


def _phase(task: TaskAssignment) -> str:
    params = task.spec.get("round_params") or {}
    phase = params.get(PHASE) if isinstance(params, dict) else None
    if phase not in (JOIN, TRAIN, RELEASE):
        raise InvalidInput(f"ML study task has no valid phase (got {phase!r})")
    return str(phase)


class MlTasks:
    """Runs ML study tasks and owns this site's SuperNode processes."""

    def __init__(
        self,
        analysis_engine: Engine,
        registry: DatasetRegistry,
        home: Path,
        ca_cert: Path,
        *,
        ledger: Ledger | None = None,
        min_cell_size: int = 1,
        require_secure_aggregation: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = ledger
        self._min_cell_size = min_cell_size
        self._require_secure = require_secure_aggregation
        self._engine = analysis_engine
        self._registry = registry
        self._home = home
        self._ca_cert = ca_cert
        self._monotonic = monotonic
        self._clock = clock  # wall clock, for the expiry kept across restarts
        self.running: dict[str, RunningSupernode] = {}

    def _dir(self, study_id: str) -> Path:
        if not study_id.replace("-", "").replace("_", "").isalnum():
            raise InvalidInput(f"study id {study_id!r} is not valid")
        return self._home / ML_DIR / study_id

    def joined(self, study_id: str) -> bool:
        """Whether this site joined the study (and so approved it)."""
        return (self._dir(study_id) / f"{KEY_NAME}.pub").exists()

    def phase(self, task: TaskAssignment) -> str:
        return _phase(task)

    def run(self, task: TaskAssignment) -> TaskResult:
        phase = _phase(task)
        study = parse_ml_study(task.spec)
        if phase == JOIN:
            payload = self._join(task, study)
        elif phase == TRAIN:
            payload = self._train(task, study)
        else:
            payload = self._release(task)
        return TaskResult(task.task_id, ResultStatus.OK, payload, "")

    def _join(self, task: TaskAssignment, study: MlStudy) -> dict[str, Any]:
        rows = AnalysisDbFeatureSource(self._engine, self._registry, study).rows()
        columns = needed_columns(study.ml)
        split = split_site_rows(study.ml, rows.as_feature_rows(columns))
        if len(split.x_train) == 0:
            raise InvalidInput(
                f"this site has no usable training rows for the study "
                f"({rows.skipped.total} row(s) left out for missing or unusable values)"
            )
        self._check_cells(study, split.outcome_train)
        sums = standardisation_sums(study.ml, split, self._min_cell_size)
        if self._require_secure and not study.ml.secure_aggregation:
            raise Refused(
                "ML study: its model updates are not securely aggregated and this site's "
                "policy (ml_requires_secure_aggregation) requires it, so it takes no part",
                code="secure_aggregation_required",
            )
        directory = self._dir(task.study_id)
        if study.ml.secure_aggregation:  # the ClientApp then refuses any plain train message
            directory.mkdir(parents=True, exist_ok=True)
            (directory / SECURE_MARK).write_text("true", encoding="utf-8")
        dp = self._privacy(task, study, directory)
        self._record(task, study, dp, sums)
        write_snapshot(directory / SNAPSHOT, rows, columns)
        (directory / STANDARDISED).unlink(missing_ok=True)  # made again from these rows
        public = directory / f"{KEY_NAME}.pub"
        if not public.exists():  # a repeated join (after a restart) answers with the same key
            make_node_keys(directory, KEY_NAME)
        _LOG.info(
            "ML study %s: joined with %d rows (%d left out)",
            task.study_id,
            len(rows.keys),
            rows.skipped.total,
        )
        answer: dict[str, Any] = {PUBLIC_KEY: public.read_text(encoding="utf-8").strip()}
        if sums:
            answer[MOMENTS] = sums
        return answer

    def _check_cells(self, study: MlStudy, outcome: Mapping[str, Any]) -> None:
        """Model updates from fewer rows, or fewer events or non-events, than the
        site's minimum cell size say too much about the few: the site takes no part."""
        k = self._min_cell_size
        spec = study.ml.outcome
        labels = outcome[spec.column if isinstance(spec, BinaryOutcome) else spec.event_column]
        n = len(labels)
        events = int((labels == 1).sum())
        smallest = min(events, n - events)
        if n < k or smallest < k:
            raise Refused(
                f"ML study: {n} training row(s), {events} with the outcome; this site's "
                f"minimum cell size is {k}, so it takes no part",
                code="too_few_rows",
            )

    def _privacy(self, task: TaskAssignment, study: MlStudy, directory: Path) -> dict[str, Any]:
        """The site's DP noise for this study (none when the spec asks for none)."""
        privacy = study.ml.privacy
        if privacy is None:
            return {}
        if self._ledger is not None:  # refused before anything is built or sent
            self._ledger.check_budget(task.requester, privacy.epsilon, task.task_id)
        dp = {
            "epsilon": privacy.epsilon,
            "delta": privacy.delta,
            CLIP_KEY: privacy.clip_norm,
            SCALE_KEY: calibrate(privacy, study.ml.rounds),
        }
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "dp.json").write_text(json.dumps(dp), encoding="utf-8")
        return dp

    def _record(
        self,
        task: TaskAssignment,
        study: MlStudy,
        dp: Mapping[str, Any],
        sums: Mapping[str, Any],
    ) -> None:
        """The disclosure ledger's entry: what will leave (model updates, rounds), epsilon."""
        if self._ledger is None:
            return
        spec = study.study
        if spec.dataset == CDM_DATASET:
            record = refresh_cdm(self._engine, self._registry)
            version = record.version if record is not None else ""
        else:
            version = self._registry.get(spec.dataset).version
        released = {
            "flower_model_updates": study.ml.rounds,
            "model": study.ml.model.kind,
            "inputs": len(study.ml.features),
            "dp": dict(dp) or None,
            "secure_aggregation": study.ml.secure_aggregation,
            "standardisation_sums": dict(sums) or None,
        }
        self._ledger.record(
            Release(
                task=task,
                analysis=spec.analysis,
                dataset=spec.dataset,
                dataset_version=version,
                question=question_hash(task.spec, {}),
                cohort_spec=cohort_spec_hash(spec, list(study.ml.features)),
                released=released,
                counts=(),
                epsilon=float(dp.get("epsilon", 0.0)),
                cached=False,
            )
        )

    def _node_config(self, directory: Path) -> dict[str, str | int | float]:
        scaled = directory / STANDARDISED
        rows = scaled if scaled.exists() else directory / SNAPSHOT
        config: dict[str, str | int | float] = {"feature-db": str(rows)}
        dp_file = directory / "dp.json"
        if dp_file.exists():
            dp = json.loads(dp_file.read_text(encoding="utf-8"))
            config[CLIP_KEY], config[SCALE_KEY] = float(dp[CLIP_KEY]), float(dp[SCALE_KEY])
        if (directory / SECURE_MARK).exists():
            config[SECURE_NODE_CONFIG_KEY] = "true"
        return config

    def _train(self, task: TaskAssignment, study: MlStudy) -> dict[str, Any]:
        params = task.spec.get("round_params") or {}
        superlink = str(params.get(SUPERLINK, ""))
        if ":" not in superlink:
            raise InvalidInput("the train round names no SuperLink address")
        directory = self._dir(task.study_id)
        if not self.joined(task.study_id) or not (directory / SNAPSHOT).exists():
            raise NotFound("this site has not joined the study (no key or rows for it)")
        current = self.running.get(task.study_id)
        if current is not None and current.popen.poll() is None:
            return {"supernode": "running"}
        self._standardise(study.ml, params, directory)
        ml = study.ml
        lifetime = ml.start_timeout_s + (ml.rounds + 1) * ml.round_timeout_s + LIFETIME_MARGIN_S
        record = TrainingRecord(superlink, self._clock() + lifetime)
        # Written first: an edge killed before it answers still starts the SuperNode again.
        record.write(directory / TRAINING)
        try:
            self._start(task.study_id, directory, record)
        except Exception:
            (directory / TRAINING).unlink(missing_ok=True)  # the round failed: nothing to resume
            raise
        return {"supernode": "started"}

    def _start(self, study_id: str, directory: Path, record: TrainingRecord) -> None:
        """Start the study's SuperNode (the train round, or again after a restart) and
        track it; InvalidInput when it exits at once (e.g. the SuperLink refused its key)."""
        home = directory / FLWR_HOME
        home.mkdir(parents=True, exist_ok=True)
        self._end_orphans(study_id, home)
        log_path = directory / "supernode.log"
        argv = [
            str(_bin("flower-supernode")),
            "--superlink", record.superlink,
            "--root-certificates", str(self._ca_cert),
            "--auth-supernode-private-key", str(directory / f"{KEY_NAME}.key"),
            "--port", str(free_port()),
            "--node-config", node_config_arg(self._node_config(directory)),
        ]  # fmt: skip
        with log_path.open("ab") as log_file:
            popen = subprocess.Popen(
                argv,
                cwd=home,
                env=flower_env(home),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        left = max(0.0, record.expires_at - self._clock())
        self.running[study_id] = RunningSupernode(
            study_id, popen, log_path, self._monotonic() + left
        )
        try:
            popen.wait(timeout=START_CHECK_S)
        except subprocess.TimeoutExpired:
            _LOG.info("ML study %s: SuperNode started (pid %d)", study_id, popen.pid)
            return
        self.running.pop(study_id, None)
        _LOG.error("SuperNode exited: %s", log_path.read_text(errors="replace")[-2000:])
        raise InvalidInput(
            f"the SuperNode exited at once (code {popen.returncode}); see {log_path.name} "
            "in the edge's ml folder"
        )

    def _end_orphans(self, study_id: str, home: Path) -> None:
        """End the Flower processes an edge that was killed left running for this study
        (its SuperNode, in a session of its own, outlives it), so only one runs."""
        orphans = stale_flower_processes(home)
        if not orphans:
            return
        _LOG.warning(
            "ML study %s: ending Flower process(es) %s left by an earlier run of the edge",
            study_id,
            ", ".join(map(str, orphans)),
        )
        left = _end_flower_processes(home, orphans)
        if left:
            raise InvalidInput(f"Flower process(es) {left} in {home} would not end")

    def _standardise(self, ml: MLStudySpec, params: Mapping[str, Any], directory: Path) -> None:
        """The rows the ClientApp trains on: the join's snapshot with the pooled constants."""
        if not ml.standardise:
            return
        constants = params.get(SCALING)
        if not isinstance(constants, Mapping):
            raise InvalidInput(
                "the train round carries no standardisation constants for "
                + ", ".join(ml.standardise)
            )
        scaling = ml.with_standardisation(constants).scaling
        standardise_snapshot(
            directory / SNAPSHOT,
            directory / STANDARDISED,
            needed_columns(ml),
            {name: scaling[name] for name in ml.standardise},
        )

    def _release(self, task: TaskAssignment) -> dict[str, Any]:
        self.stop(task.study_id)
        directory = self._dir(task.study_id)
        (directory / TRAINING).unlink(missing_ok=True)  # first: a released study never resumes
        for name in (SNAPSHOT, STANDARDISED):  # training is over: the copies go
            (directory / name).unlink(missing_ok=True)
        params = task.spec.get("round_params") or {}
        model = params.get(MODEL)
        if not isinstance(model, dict):
            return {"model_stored": False}
        spec = {k: v for k, v in task.spec.items() if k != "round_params"}
        store_model(
            self._home,
            task.study_id,
            str(model["version"]),
            spec,
            model["weights"],
            scaling=params.get(SCALING),
        )
        return {"model_stored": True, "model_version": str(model["version"])}

    def stop(self, study_id: str) -> None:
        running = self.running.pop(study_id, None)
        if running is None:
            return
        stop_process_tree(running.popen)
        # The SuperNode's SuperExec sits in a session of its own and ends only when it
        # notices its parent gone; one that exited by itself leaves no children to
        # find, so whatever Flower process still works in the study's folder goes too.
        home = self._dir(study_id) / FLWR_HOME
        left = _end_flower_processes(home, stale_flower_processes(home))
        if left:
            _LOG.error("ML study %s: Flower process(es) %s would not end", study_id, left)
        _LOG.info("ML study %s: SuperNode stopped", study_id)

    def reap(self) -> None:
        """Stop SuperNodes whose study ran out of time (the release never came)."""
        now = self._monotonic()
        for study_id, running in list(self.running.items()):
            if running.popen.poll() is not None:
                # The hub unregisters a study's SuperNodes when its run ends: they exit.
                _LOG.info("ML study %s: SuperNode exited (%s)", study_id, running.popen.returncode)
                self.stop(study_id)
            elif now >= running.expires_at:
                _LOG.warning("ML study %s: SuperNode outlived its study; stopping it", study_id)
                self.stop(study_id)
                (self._dir(study_id) / TRAINING).unlink(missing_ok=True)

    def close(self) -> None:
        """Stop every SuperNode; their `training.json` stays, so a restart resumes them."""
        for study_id in list(self.running):
            self.stop(study_id)

    def resume(self) -> list[str]:
        """Start again, when the edge starts, the SuperNodes of studies it was training
        when it stopped or was killed (the hub's train round was answered then and is not
        sent again). A study whose time ran out is let go; one whose file is damaged is
        skipped with a warning. Never raises: returns the studies resumed."""
        root = self._home / ML_DIR
        try:
            folders = sorted(p for p in root.iterdir() if (p / TRAINING).is_file())
        except FileNotFoundError:
            return []
        except OSError as exc:
            _LOG.error("ML studies not resumed: %s cannot be read: %s", root, exc)
            return []
        resumed = []
        for folder in folders:
            try:
                if self._resume(folder.name):
                    resumed.append(folder.name)
            except (OncoFedError, OSError) as exc:  # one study's trouble stops no other
                _LOG.warning("ML study %s: SuperNode not resumed: %s", folder.name, exc)
        return resumed

    def _resume(self, study_id: str) -> bool:
        directory = self._dir(study_id)
        path = directory / TRAINING
        current = self.running.get(study_id)
        if current is not None and current.popen.poll() is None:
            return False
        try:
            record = TrainingRecord.read(path)
        except InvalidInput as exc:
            _LOG.warning(
                "ML study %s: its SuperNode is not started again, %s is damaged: %s",
                study_id,
                path.name,
                exc,
            )
            return False
        if record.expires_at <= self._clock():
            self._end_orphans(study_id, directory / FLWR_HOME)
            path.unlink(missing_ok=True)
            _LOG.info(
                "ML study %s: its time ran out while the edge was stopped; SuperNode not "
                "started again",
                study_id,
            )
            return False
        if not self.joined(study_id) or not (directory / SNAPSHOT).exists():
            raise NotFound("this site has no key or rows for the study any more")
        self._start(study_id, directory, record)
        _LOG.info("ML study %s: SuperNode started again after the edge restarted", study_id)
        return True


def standardisation_sums(
    ml: MLStudySpec, split: SiteData, min_cell_size: int
) -> dict[str, dict[str, float | int]]:
    """What the site sends for federated standardisation: per feature n, sum and sum of
    squares of its training rows. Sums over fewer rows than the site's minimum cell
    size say too much about the few: the site takes no part."""
    sums = training_moments(ml, split)
    few = {name: int(m["n"]) for name, m in sums.items() if m["n"] < min_cell_size}
    if few:
        raise Refused(
            f"ML study: standardising {', '.join(sorted(few))} would release sums over "
            f"{min(few.values())} training row(s); this site's minimum cell size is "
            f"{min_cell_size}, so it takes no part",
            code="too_few_rows",
        )
    return sums


def _bin(name: str) -> Path:
    # The SuperNode is the one installed beside this Python, never one from PATH.
    return Path(sys.executable).parent / name


def _end_flower_processes(home: Path, pids: list[int]) -> list[int]:
    """SIGTERM, then SIGKILL, the Flower processes working in `home`; those still
    running after both (none, normally)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not pids:
            break
        for pid in pids:
            signal_flower_pid(pid, sig)  # only while that pid still runs a Flower program
        deadline = time.monotonic() + ORPHAN_GRACE_S
        while pids and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = stale_flower_processes(home)
    return pids
