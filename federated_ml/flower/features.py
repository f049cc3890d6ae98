"""Where a site's ClientApp reads its rows from.

`FeatureSource` is the seam: phase 1 reads a table in a SQLite file named by
the SuperNode's node config; the edge's analysis database plugs in behind the
same two methods later. Rows with a missing or non-numeric value in a needed
column are skipped and counted, never fatal.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from federated_ml.flower.spec import BinaryOutcome, MLStudySpec, input_columns
from shared_cdm.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class FeatureRows:
    keys: list[str]  # a stable row key (pseudonym or row id), used for the split
    columns: dict[str, np.ndarray]
    skipped: int  # rows dropped for a missing or malformed value


class FeatureSource(Protocol):
    def load(self, columns: Sequence[str]) -> FeatureRows: ...


def _as_float(v: object) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        f = float(v)
    elif isinstance(v, str | bytes):
        try:
            f = float(v)
        except ValueError:
            return None
    else:
        return None
    return f if np.isfinite(f) else None


@dataclass(frozen=True)
class SqliteFeatureSource:
    """One table of one SQLite file; `key_column` if present, else SQLite's rowid."""

    path: Path
    table: str = "ml_features"
    key_column: str = "row_key"

    def load(self, columns: Sequence[str]) -> FeatureRows:
        if not self.path.is_file():
            raise NotFound(f"feature database {self.path} does not exist")
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            present = {r[1] for r in conn.execute(f'PRAGMA table_info("{self.table}")')}
            if not present:
                raise NotFound(f"feature table {self.table!r} not found in {self.path}")
            missing = [c for c in columns if c not in present]
            if missing:
                raise InvalidInput(
                    f"feature table {self.table!r} lacks column(s): {', '.join(missing)}"
                )
            key = f'"{self.key_column}"' if self.key_column in present else "rowid"
            cols = ", ".join(f'"{c}"' for c in columns)
            rows = conn.execute(f'SELECT {key}, {cols} FROM "{self.table}" ORDER BY {key}')
            keys: list[str] = []
            values: list[list[float]] = []
            skipped = 0
            for row in rows:
                parsed = [_as_float(v) for v in row[1:]]
                if any(v is None for v in parsed):
                    skipped += 1
                    continue
                keys.append(str(row[0]))
                values.append([v for v in parsed if v is not None])
        finally:
            conn.close()
        matrix = np.asarray(values, dtype=np.float64).reshape(len(values), len(columns))
        return FeatureRows(keys, {c: matrix[:, i] for i, c in enumerate(columns)}, skipped)


def source_from_node_config(node_config: Mapping[str, object]) -> SqliteFeatureSource:
    """The SuperNode's --node-config names the site's feature table."""
    path = node_config.get("feature-db")
    if not isinstance(path, str) or not path:
        raise InvalidInput("node config has no feature-db (path of the site's feature table)")
    table = node_config.get("feature-table", "ml_features")
    key = node_config.get("key-column", "row_key")
    return SqliteFeatureSource(Path(path), str(table), str(key))


def needed_columns(spec: MLStudySpec) -> list[str]:
    return [*input_columns(spec), *outcome_columns(spec)]


def outcome_columns(spec: MLStudySpec) -> list[str]:
    if isinstance(spec.outcome, BinaryOutcome):
        return [spec.outcome.column]
    return [spec.outcome.time_column, spec.outcome.event_column]


def held_out_mask(keys: Sequence[str], fraction: float, seed: int) -> np.ndarray:
    """True for held-out rows: a keyed hash of the row key, so it is stable across runs."""
    cut = int(fraction * 2**32)
    out = np.empty(len(keys), dtype=bool)
    for i, k in enumerate(keys):
        digest = hashlib.sha256(f"{seed}:{k}".encode()).digest()
        out[i] = int.from_bytes(digest[:4], "big") < cut
    return out


@dataclass(frozen=True)
class SiteData:
    x_train: np.ndarray
    outcome_train: dict[str, np.ndarray]
    x_held_out: np.ndarray
    outcome_held_out: dict[str, np.ndarray]
    skipped: int


def _valid_outcome(spec: MLStudySpec, rows: FeatureRows) -> np.ndarray:
    """Binary columns must hold 0/1, follow-up time must be >= 0."""
    n = len(rows.keys)
    if isinstance(spec.outcome, BinaryOutcome):
        y = rows.columns[spec.outcome.column] if n else np.zeros(0)
        return np.isin(y, (0.0, 1.0))
    t = rows.columns[spec.outcome.time_column] if n else np.zeros(0)
    e = rows.columns[spec.outcome.event_column] if n else np.zeros(0)
    return np.isin(e, (0.0, 1.0)) & (t >= 0)


def split_site_rows(spec: MLStudySpec, rows: FeatureRows) -> SiteData:
    outcome_cols = outcome_columns(spec)
    features = input_columns(spec)
    valid = _valid_outcome(spec, rows)
    if not valid.all():
        keep = np.flatnonzero(valid)
        rows = FeatureRows(
            [rows.keys[i] for i in keep],
            {c: v[keep] for c, v in rows.columns.items()},
            rows.skipped + int((~valid).sum()),
        )
    x = np.column_stack([rows.columns[c] for c in features]) if rows.keys else None
    if x is None:
        x = np.zeros((0, len(features)))
    mask = held_out_mask(rows.keys, spec.training.held_out_fraction, spec.training.seed)
    return SiteData(
        x_train=x[~mask],
        outcome_train={c: rows.columns[c][~mask] for c in outcome_cols},
        x_held_out=x[mask],
        outcome_held_out={c: rows.columns[c][mask] for c in outcome_cols},
        skipped=rows.skipped,
    )


# --- federated standardisation (spec `standardise`) ---

MOMENT_KEYS = ("n", "sum", "sum_sq")
# A pooled variance this small relative to the mean's square is rounding, not spread.
_ZERO_VARIANCE = 1e-12


def training_moments(spec: MLStudySpec, data: SiteData) -> dict[str, dict[str, float | int]]:
    """n, sum and sum of squares of each `standardise` feature over the site's training
    rows only: the held-out rows judge the model and must not shape its inputs."""
    columns = input_columns(spec)
    out: dict[str, dict[str, float | int]] = {}
    for name in spec.standardise:
        x = data.x_train[:, columns.index(name)]
        out[name] = {"n": int(x.size), "sum": float(x.sum()), "sum_sq": float(np.square(x).sum())}
    return out


@dataclass(frozen=True)
class Standardisation:
    """A feature's pooled constants: the model's input is (value - mean) / sd."""

    n: int
    mean: float
    sd: float

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "mean": self.mean, "sd": self.sd}


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _site_moments(site: str, name: str, raw: object) -> tuple[int, float, float]:
    entry = raw.get(name) if isinstance(raw, Mapping) else None
    if not isinstance(entry, Mapping):
        raise InvalidInput(f"site {site} sent no standardisation sums for {name}")
    n, total, squares = entry.get("n"), _finite(entry.get("sum")), _finite(entry.get("sum_sq"))
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InvalidInput(f"site {site} sent malformed standardisation sums for {name}")
    if total is None or squares is None or squares < 0:
        raise InvalidInput(f"site {site} sent malformed standardisation sums for {name}")
    return n, total, squares


def pool_moments(spec: MLStudySpec, per_site: Mapping[str, object]) -> dict[str, Standardisation]:
    """Pooled mean and SD (n - 1) of each `standardise` feature from every site's sums:
    exactly what the concatenated training rows would give."""
    out: dict[str, Standardisation] = {}
    for name in spec.standardise:
        sums = [_site_moments(site, name, raw) for site, raw in sorted(per_site.items())]
        n = sum(s[0] for s in sums)
        total = math.fsum(s[1] for s in sums)
        squares = math.fsum(s[2] for s in sums)
        if n < 2:
            raise InvalidInput(
                f"cannot standardise {name}: {n} training row(s) across the sites, "
                "an SD needs at least 2"
            )
        mean = total / n
        variance = (squares - total * mean) / (n - 1)
        if not math.isfinite(variance) or variance <= _ZERO_VARIANCE * max(1.0, mean * mean):
            raise InvalidInput(
                f"cannot standardise {name}: it has the same value ({mean:.6g}) in every "
                "training row across the sites (SD 0); drop it from the features or "
                "give it fixed constants in scaling"
            )
        out[name] = Standardisation(n, mean, math.sqrt(variance))
    return out
