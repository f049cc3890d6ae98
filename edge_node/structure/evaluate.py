"""Per-field accuracy of `structure` output against hand-written truth.

How values are compared (the same rules the development tests use):
- numbers: equal within 0.05 (a size of 2.35 cm read as 2.3 is wrong, 2.30 right);
- `diagnosis_icd10`, `chemotherapy_regimens`: as sets (order is not scored);
- `procedures`: as a set of (name with whitespace collapsed, case-folded, date);
  `procedures.date` is reported too, scoring the dates alone;
- `lesions`: right when the lists have the same length and the lesions match in
  order (site, role, tendency exact; size_cm and suvmax within 0.05);
  `lesions.<attribute>` rows score each attribute over lesions aligned by order;
- anything else: exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOL = 0.05
LESION_ATTRS = ("site", "size_cm", "suvmax", "tendency", "role")


def _num_eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(float(a) - float(b)) <= TOL + 1e-9
    return bool(a == b)


def _proc_key(p: Any) -> tuple[str, Any]:
    if not isinstance(p, dict):
        return (str(p), None)
    return (" ".join(str(p.get("name", "")).split()).casefold(), p.get("date"))


def _lesion_eq(a: Any, b: Any) -> bool:
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    return all(_num_eq(a.get(k), b.get(k)) for k in LESION_ATTRS)


def same(name: str, truth: Any, got: Any) -> bool:
    """Whether `got` is right for field `name`."""
    if name in ("diagnosis_icd10", "chemotherapy_regimens"):
        if truth is None or got is None:
            return truth == got or (not truth and not got)
        return set(map(str, truth)) == set(map(str, got))
    if name == "procedures":
        if not truth or not got:
            return not truth and not got
        return {_proc_key(p) for p in truth} == {_proc_key(p) for p in got}
    if name == "lesions":
        truth, got = truth or [], got or []
        return len(truth) == len(got) and all(map(_lesion_eq, truth, got))
    return _num_eq(truth, got)


@dataclass
class Tally:
    right: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else 0.0

    def add(self, ok: bool) -> None:
        self.right += ok
        self.total += 1


@dataclass
class Report:
    fields: dict[tuple[str, str], Tally] = field(default_factory=dict)
    overall: Tally = field(default_factory=Tally)
    records: int = 0
    missing: int = 0
    evidence_missing: int = 0
    misses: list[str] = field(default_factory=list)
    # (kind, field) -> right / total among records where the extractor gave a value
    given: dict[tuple[str, str], Tally] = field(default_factory=dict)

    def tally(self, kind: str, name: str) -> Tally:
        return self.fields.setdefault((kind, name), Tally())


def _extra_rows(report: Report, kind: str, name: str, truth: Any, got: Any) -> None:
    if name == "procedures":
        dates_t = sorted(str(_proc_key(p)[1]) for p in truth or [])
        dates_g = sorted(str(_proc_key(p)[1]) for p in got or [])
        report.tally(kind, "procedures.date").add(dates_t == dates_g)
    if name == "lesions":
        truth, got = truth or [], got or []
        for i in range(max(len(truth), len(got))):
            t = truth[i] if i < len(truth) else {}
            g = got[i] if i < len(got) and isinstance(got[i], dict) else {}
            for attr in LESION_ATTRS:
                ok = i < len(truth) and i < len(got) and _num_eq(t.get(attr), g.get(attr))
                report.tally(kind, f"lesions.{attr}").add(ok)


def score(predicted: dict[str, dict[str, Any]], truth: list[dict[str, Any]]) -> Report:
    """Score output records (by id) against truth records."""
    report = Report()
    for t in truth:
        rid, kind = str(t["id"]), t["kind"]
        report.records += 1
        pred = predicted.get(rid)
        if pred is None:
            report.missing += 1
        got_fields = (pred or {}).get("fields") or {}
        cited = {e.get("field") for e in (pred or {}).get("evidence") or []}
        for name, want in t["fields"].items():
            got = got_fields.get(name)
            ok = same(name, want, got)
            report.tally(kind, name).add(ok)
            report.overall.add(ok)
            _extra_rows(report, kind, name, want, got)
            if got not in (None, []):
                report.given.setdefault((kind, name), Tally()).add(ok)
                if name not in cited:
                    report.evidence_missing += 1
            if not ok:
                report.misses.append(
                    f"{rid} {name}: want {json.dumps(want, ensure_ascii=False)}"
                    f" got {json.dumps(got, ensure_ascii=False)}"
                )
    return report


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not JSON ({exc.msg})") from exc
        if not isinstance(obj, dict) or "id" not in obj:
            raise ValueError(f"{path}:{n}: not a record with an id")
        out.append(obj)
    return out


def load_truth(path: Path) -> list[dict[str, Any]]:
    truth = load_jsonl(path)
    for t in truth:
        if t.get("kind") not in ("pathology", "petct", "discharge") or not isinstance(
            t.get("fields"), dict
        ):
            raise ValueError(f"{path}: truth record {t.get('id')!r} needs a kind and fields")
    return truth


def summary_lines(report: Report) -> list[str]:
    lines = [
        f"records {report.records}  missing outputs {report.missing}"
        f"  field accuracy {report.overall.accuracy:.3f}"
        f" ({report.overall.right}/{report.overall.total})"
        f"  non-null fields without evidence {report.evidence_missing}"
    ]
    for (kind, name), t in sorted(report.fields.items()):
        lines.append(f"  {kind:<10} {name:<28} {t.accuracy:.3f}  ({t.right}/{t.total})")
    return lines
