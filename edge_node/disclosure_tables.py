"""Disclosure rules for the one-round tabulations: count, describe, crosstab, ttest.

A site below the cell rule answers OK with a suppressed payload (`{"n": "suppressed",
"suppressed": true}`): the hub combines the other sites and says which were left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge_node.disclosure_cells import (
    Released,
    all_suppressed,
    excluded_missing,
    is_small,
    row_count,
    suppress_cells,
    suppress_table,
    suppression_note,
)
from edge_node.policy import Policy
from federated_ml.analyses.base import SUPPRESSED


def control_count(
    payload: Mapping[str, Any], params: Mapping[str, Any], policy: Policy
) -> Released:
    k = policy.min_cell_size
    if is_small(row_count(payload, "count"), k):
        return all_suppressed(k, "count")
    out = {"n": payload["n"]}
    notes: list[str] = []
    if "n_excluded_missing" in payload:
        out["n_excluded_missing"] = payload["n_excluded_missing"]
        excluded_missing(out, k, notes)
    return Released(out, tuple(notes))


def control_describe(
    payload: Mapping[str, Any], params: Mapping[str, Any], policy: Policy
) -> Released:
    k = policy.min_cell_size
    if is_small(row_count(payload, "describe"), k):
        return all_suppressed(k, "describe")
    out = dict(payload)
    notes: list[str] = []
    excluded_missing(out, k, notes)
    variables: dict[str, Any] = {}
    for name, stats in dict(payload.get("variables", {})).items():
        variables[name] = _variable(name, stats, policy, notes)
    out["variables"] = variables
    return Released(out, tuple(notes))


def _variable(name: str, stats: Mapping[str, Any], policy: Policy, notes: list[str]) -> Any:
    k = policy.min_cell_size
    if is_small(stats.get("n"), k):
        notes.append(f"{name}: fewer than {k} values; suppressed")
        return {"type": stats.get("type"), "n": SUPPRESSED, "suppressed": True}
    if stats.get("type") == "numeric":
        out = dict(stats)
        if not policy.release_extremes and ("min" in out or "max" in out):
            out.pop("min", None)
            out.pop("max", None)
            notes.append(f"{name}: minimum and maximum withheld (individual values)")
        if "histogram" in out:
            bins, primary, secondary = suppress_cells(dict(out["histogram"]), k)
            if primary:
                notes.append(suppression_note(f"{name} histogram", primary, secondary, k))
            out["histogram"] = bins
        return out
    if stats.get("type") == "categorical":
        counts, primary, secondary = suppress_cells(dict(stats.get("counts", {})), k)
        if primary:
            notes.append(
                f"{name}: {primary} categor{'y' if primary == 1 else 'ies'} below {k} suppressed"
                + (f", {secondary} more suppressed so they cannot be derived" if secondary else "")
            )
        return dict(stats, counts=counts)
    return {"type": stats.get("type"), "n": SUPPRESSED, "suppressed": True}


def control_crosstab(
    payload: Mapping[str, Any], params: Mapping[str, Any], policy: Policy
) -> Released:
    k = policy.min_cell_size
    if is_small(row_count(payload, "crosstab"), k):
        return all_suppressed(k, "crosstab")
    cells, primary, secondary = suppress_table(dict(payload.get("cells", {})), k)
    out: dict[str, Any] = {"n": payload["n"], "cells": cells}
    notes: list[str] = []
    if primary:
        notes.append(suppression_note("crosstab", primary, secondary, k))
    if "n_excluded_missing" in payload:
        out["n_excluded_missing"] = payload["n_excluded_missing"]
        excluded_missing(out, k, notes)
    return Released(out, tuple(notes))


def control_ttest(
    payload: Mapping[str, Any], params: Mapping[str, Any], policy: Policy
) -> Released:
    """Each group with fewer than k rows is suppressed; `n` then counts only the
    released groups, or it would give the suppressed group's size away."""
    k = policy.min_cell_size
    if is_small(row_count(payload, "ttest"), k):
        return all_suppressed(k, "ttest")
    groups: dict[str, Any] = {}
    kept: list[str] = []
    for level, g in dict(payload.get("groups", {})).items():
        if is_small(g.get("n"), k):
            groups[level] = {"n": SUPPRESSED, "suppressed": True}
        else:
            groups[level] = {"n": g["n"], "sum": g["sum"], "sum_sq": g["sum_sq"]}
            kept.append(level)
    if not kept:
        return all_suppressed(k, "ttest")
    notes: list[str] = []
    out: dict[str, Any] = {"n": payload["n"], "groups": groups}
    counted = None
    if len(kept) < len(groups):
        out["n"] = sum(int(groups[level]["n"]) for level in kept)
        notes.append(
            f"ttest: {len(groups) - len(kept)} group(s) with fewer than {k} rows suppressed; "
            "n counts the released groups only"
        )
        if is_small(out["n"], k):
            return all_suppressed(k, "ttest")
        counted = tuple(sorted(kept))
    if "n_excluded_missing" in payload:
        out["n_excluded_missing"] = payload["n_excluded_missing"]
        excluded_missing(out, k, notes)
    return Released(out, tuple(notes), counted_levels=counted)
