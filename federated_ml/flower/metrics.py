"""What a training run reports, and where the ServerApp writes it.

`MetricsSink` is the seam: phase 1 writes a SQLite file beside the SuperLink;
the hub's database plugs in behind the same two methods later.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class SiteMetrics:
    site: str
    phase: Literal["train", "eval"]
    # train: the round trained in; eval: the global model evaluated (0 = initial).
    model_round: int
    n: int
    loss: float | None
    auc: float | None = None
    skipped_rows: int = 0


@dataclass(frozen=True)
class RoundRecord:
    server_round: int  # 1..rounds for training rounds, rounds + 1 for the final evaluation
    seconds: float
    sites_asked: list[str]
    sites_replied: list[str]
    sites_failed: dict[str, str]  # site -> why (no reply before the round timeout, error)
    train_loss: float | None  # weighted by training rows
    eval_model_round: int | None
    eval_loss: float | None  # weighted by held-out rows
    eval_auc_weighted: float | None  # per-site AUCs weighted by labelled held-out rows
    eval_auc_pooled: float | None  # from the summed score histograms
    calibration: list[tuple[int, float | None, float | None]] = field(default_factory=list)
    site_metrics: list[SiteMetrics] = field(default_factory=list)


@dataclass(frozen=True)
class RunResult:
    run_key: str
    study: str
    status: Literal["completed", "aborted"]
    detail: str
    rounds_completed: int
    sites_participated: list[str]  # every site whose update entered at least one aggregate
    sites_dropped: dict[str, str]
    model_version: str | None
    model_path: str | None
    final_auc_pooled: float | None
    final_auc_weighted: float | None
    seconds_per_round: list[float]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


class MetricsSink(Protocol):
    def record_round(self, run_key: str, record: RoundRecord) -> None: ...

    def record_result(self, result: RunResult) -> None: ...


class MemorySink:
    """Keeps everything in lists; for tests and for composing sinks."""

    def __init__(self) -> None:
        self.rounds: list[tuple[str, RoundRecord]] = []
        self.results: list[RunResult] = []

    def record_round(self, run_key: str, record: RoundRecord) -> None:
        self.rounds.append((run_key, record))

    def record_result(self, result: RunResult) -> None:
        self.results.append(result)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS ml_round (
  run_key TEXT NOT NULL, server_round INTEGER NOT NULL, seconds REAL NOT NULL,
  sites_asked TEXT NOT NULL, sites_replied TEXT NOT NULL, sites_failed TEXT NOT NULL,
  train_loss REAL, eval_model_round INTEGER, eval_loss REAL,
  eval_auc_weighted REAL, eval_auc_pooled REAL, calibration TEXT NOT NULL,
  PRIMARY KEY (run_key, server_round));
CREATE TABLE IF NOT EXISTS ml_site_metric (
  run_key TEXT NOT NULL, server_round INTEGER NOT NULL, site TEXT NOT NULL,
  phase TEXT NOT NULL, model_round INTEGER NOT NULL, n INTEGER NOT NULL,
  loss REAL, auc REAL, skipped_rows INTEGER NOT NULL,
  PRIMARY KEY (run_key, server_round, site, phase));
CREATE TABLE IF NOT EXISTS ml_run (
  run_key TEXT PRIMARY KEY, study TEXT NOT NULL, status TEXT NOT NULL,
  detail TEXT NOT NULL, model_version TEXT, model_path TEXT, result TEXT NOT NULL);
"""


class SqliteMetricsSink:
    """Writes each round as it finishes, so progress is visible during a run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def record_round(self, run_key: str, record: RoundRecord) -> None:
        r = record
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO ml_round VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_key,
                    r.server_round,
                    r.seconds,
                    json.dumps(r.sites_asked),
                    json.dumps(r.sites_replied),
                    json.dumps(r.sites_failed),
                    r.train_loss,
                    r.eval_model_round,
                    r.eval_loss,
                    r.eval_auc_weighted,
                    r.eval_auc_pooled,
                    json.dumps(r.calibration),
                ),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO ml_site_metric VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        run_key,
                        r.server_round,
                        m.site,
                        m.phase,
                        m.model_round,
                        m.n,
                        m.loss,
                        m.auc,
                        m.skipped_rows,
                    )
                    for m in r.site_metrics
                ],
            )

    def record_result(self, result: RunResult) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO ml_run VALUES (?,?,?,?,?,?,?)",
                (
                    result.run_key,
                    result.study,
                    result.status,
                    result.detail,
                    result.model_version,
                    result.model_path,
                    result.to_json(),
                ),
            )


def read_rounds(path: Path, run_key: str) -> list[dict[str, Any]]:
    """The stored rounds of one run, oldest first (for reports and tests)."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT * FROM ml_round WHERE run_key = ? ORDER BY server_round", (run_key,)
        ).fetchall()
        return [dict(r) for r in rows]
    finally:
        conn.close()


def read_site_metrics(path: Path, run_key: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT * FROM ml_site_metric WHERE run_key = ? ORDER BY server_round, site, phase",
            (run_key,),
        ).fetchall()
        return [dict(r) for r in rows]
    finally:
        conn.close()
