"""The cell rule and its secondary suppression: the pieces every disclosure rule uses.

Pure functions. A count below `min_cell_size` is never released, and neither is a
count that the released numbers would give away by subtraction (hence secondary
suppression over categories, histogram bins, and crosstab rows and columns).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from federated_ml.analyses.base import SUPPRESSED
from shared_cdm.errors import Refused

ALL_SUPPRESSED: Mapping[str, Any] = {"n": SUPPRESSED, "suppressed": True}


@dataclass(frozen=True)
class Released:
    """The payload that may leave, and notes saying what was withheld and why.

    `counted_levels`: the released `n` counts only the rows whose `group` is one of
    these (a t-test with a suppressed group); the ledger then records that smaller
    cohort, not the whole selection.
    """

    payload: dict[str, Any]
    notes: tuple[str, ...] = ()
    counted_levels: tuple[str, ...] | None = None


def is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_small(value: object, k: int) -> bool:
    """A count that must not be released: anything below the minimum cell size, 0 included."""
    return isinstance(value, int) and not isinstance(value, bool) and value < k


def row_count(payload: Mapping[str, Any], analysis: str) -> int:
    n = payload.get("n")
    if not isinstance(n, int) or isinstance(n, bool):
        raise Refused(
            f"{analysis}: the local result has no row count, so disclosure control cannot "
            "check it; nothing is released",
            code="no_disclosure_rule",
        )
    return n


def all_suppressed(k: int, what: str) -> Released:
    return Released(
        dict(ALL_SUPPRESSED),
        (f"{what}: fewer rows than the minimum cell size ({k}); every figure suppressed",),
    )


def refuse_small_site(n: int, k: int, analysis: str) -> None:
    """Multi-round analyses: a site below the cell rule takes no part at all (REFUSED)."""
    if n < k:
        raise Refused(
            f"{analysis}: this site has fewer rows than its minimum cell size ({k}) "
            "and contributes nothing",
            code="below_min_cell_size",
        )


def excluded_missing(out: dict[str, Any], k: int, notes: list[str]) -> None:
    if is_small(out.get("n_excluded_missing"), k):
        out["n_excluded_missing"] = SUPPRESSED
        notes.append(f"rows left out for missing values: below {k}, suppressed")


def suppress_cells(counts: Mapping[str, Any], k: int) -> tuple[dict[str, Any], int, int]:
    """Cells below k become SUPPRESSED; then more cells, smallest first, until the
    suppressed cells cannot be recovered from the total: never exactly one of them,
    and their sum (the total minus the released cells) is not itself below k.

    Returns the released counts, the number suppressed for being small, and the
    number suppressed only to protect those.
    """
    numbers = {c: int(v) for c, v in counts.items() if is_count(v)}
    hidden = {c for c, v in numbers.items() if v < k}
    primary = len(hidden)
    _protect(list(numbers), numbers, hidden, k)
    released = {c: (SUPPRESSED if c in hidden else v) for c, v in counts.items()}
    return released, primary, len(hidden) - primary


def suppress_table(
    cells: Mapping[str, Mapping[str, Any]], k: int
) -> tuple[dict[str, dict[str, Any]], int, int]:
    """A two-way table's cells with 0 < c < k suppressed, then more cells until no
    row and no column has exactly one suppressed cell or suppressed cells summing
    below k (row and column totals may be known from other releases).

    Zero cells are released (an empty cell of a released table); they are taken as
    secondary cells only when nothing else is left in the line.
    """
    numbers: dict[tuple[str, str], int] = {
        (r, c): int(v) for r, row in cells.items() for c, v in row.items() if is_count(v)
    }
    hidden = {key for key, v in numbers.items() if 0 < v < k}
    primary = len(hidden)
    rows = {r for r, _ in numbers}
    cols = {c for _, c in numbers}
    lines = [[key for key in numbers if key[0] == r] for r in sorted(rows)]
    lines += [[key for key in numbers if key[1] == c] for c in sorted(cols)]
    changed = True
    while changed:
        changed = any([_protect(line, numbers, hidden, k) for line in lines])
    released = {
        r: {c: (SUPPRESSED if (r, c) in hidden else v) for c, v in row.items()}
        for r, row in cells.items()
    }
    return released, primary, len(hidden) - primary


def _protect(
    line: Iterable[Hashable], numbers: Mapping[Any, int], hidden: set[Any], k: int
) -> bool:
    """Hide more cells of `line` until its hidden cells are safe; True if any was hidden."""
    keys = list(line)

    def exposed() -> bool:
        mine = [key for key in keys if key in hidden]
        return bool(mine) and (len(mine) == 1 or sum(numbers[key] for key in mine) < k)

    added = False
    while exposed():
        # Smallest non-zero first: it protects the most for the least lost.
        candidates = [key for key in keys if key not in hidden]
        if not candidates:
            break
        hidden.add(min(candidates, key=lambda key: (numbers[key] == 0, numbers[key], str(key))))
        added = True
    return added


def suppression_note(what: str, primary: int, secondary: int, k: int) -> str:
    cells = "cell" if primary == 1 else "cells"
    note = f"{what}: {primary} {cells} below {k} suppressed"
    if secondary:
        note += f", {secondary} more suppressed so they cannot be derived"
    return note
