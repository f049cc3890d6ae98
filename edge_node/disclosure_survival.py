"""Disclosure rules for `kaplan_meier` and `logrank`, phase by phase.

A site with fewer rows than the minimum cell size takes no part (REFUSED): these
analyses run over several rounds and the hub drops a site that refuses.

- horizon: only n and the horizon (already rounded up to a whole step) and the
  group names leave;
- exact: per-time vectors leave only masked by secure aggregation;
- grid: when some bin holds 1..k-1 events or censorings in some group, only the
  indices of those bins leave (the hub widens the grid and asks again); otherwise
  the per-bin counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edge_node.disclosure_cells import (
    Released,
    excluded_missing,
    refuse_small_site,
    row_count,
)
from edge_node.policy import Policy
from federated_ml.analyses import secure_rounds as sr
from federated_ml.stats.survival import invalid_bins
from shared_cdm.errors import Refused


def require_masked(params: Mapping[str, Any], what: str) -> None:
    """Per-time vectors are released only in a mask round of secure aggregation."""
    if sr.phase(params) != "mask":
        raise Refused(
            f"{what}: per-time counts leave this site only masked by secure aggregation, "
            "and this round has no mask phase; nothing is released",
            code="unmasked_vectors",
        )


def _with_excluded(out: dict[str, Any], payload: Mapping[str, Any], k: int) -> list[str]:
    notes: list[str] = []
    if "n_excluded_missing" in payload:
        out["n_excluded_missing"] = payload["n_excluded_missing"]
        excluded_missing(out, k, notes)
    return notes


def control_survival(
    payload: Mapping[str, Any], params: Mapping[str, Any], policy: Policy
) -> Released:
    k = policy.min_cell_size
    n = row_count(payload, "survival")
    refuse_small_site(n, k, "survival")
    if "horizon" in payload:
        horizon = payload["horizon"]
        if not isinstance(horizon, int | float) or isinstance(horizon, bool):
            raise Refused("survival: the horizon is not a number; nothing is released")
        out: dict[str, Any] = {
            "n": n,
            "levels": [str(v) for v in payload.get("levels", [])],
            "horizon": float(horizon),
        }
        return Released(out, tuple(_with_excluded(out, payload, k)))
    if sr.SECURE in payload:
        require_masked(params, "exact survival")
        out = {"n": n, sr.SECURE: dict(payload[sr.SECURE])}
        return Released(out, tuple(_with_excluded(out, payload, k)))
    if "bins" in payload:
        return _grid(payload, n, k)
    raise Refused("survival: this site has no disclosure rule for this round's result")


def _grid(payload: Mapping[str, Any], n: int, k: int) -> Released:
    bins = dict(payload["bins"])
    counts = [
        (np.asarray(b["d"], dtype=np.int64), np.asarray(b["c"], dtype=np.int64))
        for b in bins.values()
    ]
    bad = invalid_bins(counts, k)
    if bad:
        out = {"n": n, "edges": list(payload["edges"]), "invalid_bins": bad}
        note = f"time grid: {len(bad)} bin(s) hold counts below {k}; only their positions sent"
        return Released(out, (note,))
    released = {lv: {"d": list(b["d"]), "c": list(b["c"])} for lv, b in bins.items()}
    out = {"n": n, "edges": list(payload["edges"]), "bins": released}
    return Released(out, tuple(_with_excluded(out, payload, k)))
