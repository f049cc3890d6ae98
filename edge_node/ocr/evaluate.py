"""Scoring `ocr-labs` output against a truth file (one line per sheet:
`{file, degradation, language, items}` with items in the contract's format).

An item is right when the sheet's output has an item with its code whose value
(within printed rounding), qualifier, unit and flag all match. Value accuracy is
right items over truth items, overall and per degradation and language."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIELDS = ("value", "qualifier", "unit", "flag")


@dataclass
class Tally:
    items: int = 0
    right: int = 0
    found: int = 0  # an item with the code came out, right or not
    wrong_fields: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FIELDS, 0))

    @property
    def accuracy(self) -> float:
        return self.right / self.items if self.items else 0.0


@dataclass
class Report:
    overall: Tally = field(default_factory=Tally)
    groups: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    extra_items: int = 0  # output items with no truth item of their code
    file_errors: int = 0
    misses: list[str] = field(default_factory=list)


def load_truth(path: Path) -> dict[str, dict[str, Any]]:
    truth = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
                truth[row["file"]] = row
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a truth line ({exc})") from None
    return truth


def same_value(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def score(records: Iterable[dict[str, Any]], truth: dict[str, dict[str, Any]]) -> Report:
    report = Report()
    for record in records:
        sheet = truth.get(record["file"])
        if sheet is None:
            continue
        report.file_errors += bool(record["errors"])
        groups = [report.overall, report.groups[sheet.get("degradation", "?")],
                  report.groups[f"lang={sheet.get('language', '?')}"]]  # fmt: skip
        unused = list(record["items"])
        for want in sheet["items"]:
            got = next((item for item in unused if item["code"] == want["code"]), None)
            wrong = []
            if got is not None:
                unused.remove(got)
                wrong = [
                    f for f in FIELDS
                    if not (same_value(got[f], want[f]) if f == "value" else got[f] == want[f])
                ]  # fmt: skip
            for tally in groups:
                tally.items += 1
                tally.found += got is not None
                tally.right += got is not None and not wrong
                for f in wrong:
                    tally.wrong_fields[f] += 1
            if got is None or wrong:
                shown = {f: got[f] for f in FIELDS} if got else None
                report.misses.append(
                    f"{record['file']} {want['code']}: want "
                    f"{ {f: want[f] for f in FIELDS} } got {shown}"
                )
        report.extra_items += sum(1 for item in unused if item["code"] is not None)
    return report


def summary_lines(report: Report) -> list[str]:
    o = report.overall
    lines = [
        f"value accuracy: {o.accuracy:.4f} ({o.right}/{o.items} items; "
        f"found {o.found}; extra {report.extra_items}; files with errors {report.file_errors})"
    ]
    for name in sorted(report.groups):
        t = report.groups[name]
        wrong = ", ".join(f"{k} {v}" for k, v in t.wrong_fields.items() if v)
        lines.append(
            f"  {name:12s} {t.accuracy:.4f} ({t.right}/{t.items})"
            + (f"  wrong: {wrong}" if wrong else "")
            + (f"  not found: {t.items - t.found}" if t.items > t.found else "")
        )
    return lines
