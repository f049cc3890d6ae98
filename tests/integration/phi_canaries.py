"""PHI canaries: the identifiers a synthetic hospital planted, and a scanner for them.

`hospital_canaries(root)` reads a hospital's truth (`ops.synth`: identities.jsonl,
staff.jsonl, phi.jsonl, labs.csv) and returns every identifier worth looking for,
by kind. `Scanner` finds them in text and in raw bytes:

- text: every canary, case-insensitively; an edge of a canary that is an ASCII
  letter or digit must not touch another ASCII letter or digit (so `3100001`
  inside a hex pseudonym or `Xue Hu` inside `Xue Hua` is no hit); JSON `\\uXXXX`
  escapes are undone first, so an escaped Chinese name is still found.
- digits: resident ID numbers and phone numbers are also looked for, separators
  removed, in the digits-only projection of each line (a leak reformatted as
  `138-1234-5678` or `+86 138 1234 5678` still counts). Long hex tokens (keyed
  pseudonyms, UUIDs) are taken out first: digits inside them are chance.
- raw bytes: decoded as UTF-8 and as GB18030, errors ignored, then as text. In
  the GB18030 reading, canaries shorter than 6 encoded bytes (two Chinese
  characters) are left out: random binary decodes to random Chinese characters,
  and one in ~10^10 four-byte windows would spell a given two-character name.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.synth.variants import EMR_TABLES

PATIENT_NAME = "patient_name"  # patients and their relatives
STAFF_NAME = "staff_name"
RESIDENT_ID = "resident_id"
PHONE = "phone"
ADDRESS = "address"
RECORD_NUMBER = "record_number"
KINDS = (PATIENT_NAME, STAFF_NAME, RESIDENT_ID, PHONE, ADDRESS, RECORD_NUMBER)
DIGIT_KINDS = (RESIDENT_ID, PHONE)

_HAN = re.compile(r"[\u3400-\u9fff]")
_ASCII_ALNUM = re.compile(r"[0-9A-Za-z]")
_HEX_TOKEN = re.compile(r"[0-9A-Fa-f]{16,}")
_JSON_ESCAPE = re.compile(r"(?:\\u[0-9a-fA-F]{4})+")
_ZH_ADDRESS = re.compile(r"(?P<street>[^省市区县]+?\d+号)(?P<building>\d+(?:栋\d+单元|号楼)\d+室)$")
_EN_ADDRESS = re.compile(r"^(?P<building>Flat \w+, Block \d+), (?P<street>No\. \d+ [^,]+),")
MIN_RAW_GB18030_BYTES = 6


@dataclass(frozen=True)
class Canary:
    text: str
    kind: str
    hospital: str


@dataclass(frozen=True)
class Hit:
    canary: Canary
    where: str  # table.column, file:line, wire message
    how: str  # text, utf-8 bytes, gb18030 bytes, digits
    context: str

    def __str__(self) -> str:
        return (
            f"{self.canary.kind} {self.canary.text!r} (hospital {self.canary.hospital}) in "
            f"{self.where} [{self.how}]: …{self.context}…"
        )


@dataclass
class CanaryList:
    canaries: list[Canary] = field(default_factory=list)
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, reason)

    def counts(self) -> Counter[str]:
        return Counter(c.kind for c in self.canaries)


# -- the truth -------------------------------------------------------------------------


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _address_parts(address: str) -> list[str]:
    """The street with its number and the building/flat part."""
    match = _ZH_ADDRESS.search(address) or _EN_ADDRESS.search(address)
    return [match["street"], match["building"]] if match else []


def _candidates(truth: Path) -> Iterator[tuple[str, str]]:
    """(kind, text) for every identifier the truth names, duplicates included."""
    for person in _jsonl(truth / "identities.jsonl"):
        for form in [person["name"], *person["name_forms"]]:
            yield PATIENT_NAME, form
        for relative in person["relatives"]:
            yield PATIENT_NAME, relative["name"]
            yield PHONE, relative["phone"]
        yield RESIDENT_ID, person["resident_id"]
        yield PHONE, person["phone"]
        yield ADDRESS, person["address"]
        for part in _address_parts(person["address"]):
            yield ADDRESS, part
        for number in [
            person["patient_id"],
            *person["duplicate_patient_ids"],
            person["outpatient_no"],
            *person["admission_ids"],
            *person["pathology_nos"],
            *person["accession_nos"],
        ]:
            yield RECORD_NUMBER, number
    for clinician in _jsonl(truth / "staff.jsonl"):
        for form in [clinician["name"], *clinician["name_forms"]]:
            yield STAFF_NAME, form
    with (truth / "labs.csv").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            yield RECORD_NUMBER, row["lab_id"]  # specimen numbers
    # As written in the notes: `150-7246-4935`, `+86 150 7246 4935`, a shorter address,
    # and names (full forms again, or a bare surname).
    as_written = {
        "ID_NUMBER": RESIDENT_ID,
        "PHONE": PHONE,
        "ADDRESS": ADDRESS,
        "RECORD_NUMBER": RECORD_NUMBER,
        "NAME": PATIENT_NAME,
    }
    for span in _jsonl(truth / "phi.jsonl"):
        kind = as_written.get(span["type"])
        if kind == PATIENT_NAME and span["subtype"] == "clinician":
            kind = STAFF_NAME
        if kind is not None:
            yield kind, span["text"]


def _names(truth: Path) -> set[str]:
    """Every full-name form of every person, to tell a bare surname span from a name."""
    names = set()
    for person in _jsonl(truth / "identities.jsonl"):
        names.update([person["name"], *person["name_forms"]])
        names.update(relative["name"] for relative in person["relatives"])
    for clinician in _jsonl(truth / "staff.jsonl"):
        names.update([clinician["name"], *clinician["name_forms"]])
    return names


def hospital_canaries(root: Path, hospital: str, others: Iterable[Path] = ()) -> CanaryList:
    """The canaries of one generated hospital (`others`: the hospitals scanned with it).

    What is left out, and why (each counted in `skipped`):
    - shorter than 3 characters, except a Chinese full name of 2 characters (a surname
      and a one-character given name: a third of the generated Chinese names, and as
      identifying as the others). The generator plants no given name on its own.
    - a bare surname in a note (`Mr Jiang`, `Dr. Wang`): it identifies no one, and the
      generator keeps it out of `name_forms` for that reason.
    - anything that occurs in the ordinary text (`ordinary_text`) of this hospital or
      the others: clinical words, departments, drug and test names, which may rightly
      reach the CDM. A 2-character name that is also a word (`高平`, "high and flat")
      would be left out here: a hit on it would prove nothing.
    - dates and ages over 89 are no canaries: dates reach the CDM (shifted, or kept
      where the policy allows) and an age is a number.
    """
    truth = root / "truth"
    out = CanaryList()
    seen: set[str] = set()
    names = _names(truth)
    fresh: list[tuple[str, str]] = []
    for kind, written in _candidates(truth):
        text = written.strip()
        if text.lower() in seen:
            continue
        seen.add(text.lower())
        two_char_zh_name = kind in (PATIENT_NAME, STAFF_NAME) and bool(_HAN.fullmatch(text[:1]))
        if len(text) < 2 or (len(text) < 3 and not two_char_zh_name):
            out.skipped[kind, "shorter than 3 characters"] += 1
        elif kind in (PATIENT_NAME, STAFF_NAME) and text not in names:
            out.skipped[kind, "surname alone"] += 1
        else:
            fresh.append((kind, text))
    ordinary = Scanner([Canary(t, k, hospital) for k, t in fresh], digits=False)
    corpus = "\n".join(ordinary_text(r) for r in (root, *others))
    in_ordinary = {h.canary.text for h in ordinary.text(corpus, "ordinary text")}
    for kind, text in fresh:
        if text in in_ordinary:
            out.skipped[kind, "occurs in the hospital's ordinary text"] += 1
        else:
            out.canaries.append(Canary(text, kind, hospital))
    return out


# -- the hospital's source systems -----------------------------------------------------


def _generation(root: Path) -> dict[str, Any]:
    return dict(json.loads((root / "truth" / "generation.json").read_text(encoding="utf-8")))


def _emr_rows(root: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(logical table, row under logical field names) of every EMR row."""
    with sqlite3.connect(root / "emr.db") as db:
        for logical, spec in _generation(root)["emr_tables"].items():
            names = list(spec["columns"])
            cols = ", ".join(f'"{spec["columns"][n]}"' for n in names)
            for row in db.execute(f'SELECT {cols} FROM "{spec["table"]}"'):
                yield logical, dict(zip(names, row, strict=True))


def _csv_rows(root: Path, which: str) -> Iterator[dict[str, str]]:
    spec = _generation(root)[which]
    text = (root / spec["file"]).read_text(encoding=spec.get("encoding", "utf-8"))
    back = {column: name for name, column in spec["columns"].items()}
    for row in csv.DictReader(io.StringIO(text)):
        yield {back.get(k, k): v for k, v in row.items()}


def _blanked(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = "\n" * (end - start)
    return "".join(chars)


def ordinary_text(root: Path) -> str:
    """The hospital's source text that is no identifier: every field but the patient's
    identity fields and record keys, with the identifiers planted in notes cut out."""
    spans: dict[tuple[str, str, str, str], list[tuple[int, int]]] = defaultdict(list)
    for span in _jsonl(root / "truth" / "phi.jsonl"):
        key = (span["system"], span["table"], span["record_id"], span["field"])
        spans[key].append((span["start"], span["end"]))
    identity = {"name", "resident_id", "phone", "address", "accession_no"}
    parts = [str(_generation(root)["hospital_name"])]

    def add(system: str, table: str, record_id: str, row: dict[str, Any]) -> None:
        for name, value in row.items():
            if value is None or name in identity or name.endswith("_id"):
                continue
            text = str(value)
            parts.append(_blanked(text, spans.get((system, table, record_id, name), [])))

    for logical, row in _emr_rows(root):
        add("emr", logical, str(row[EMR_TABLES[logical][0]]), row)  # the record's key
    for which, system, table in (("lis", "lis", "lab_results"), ("pacs", "pacs", "studies")):
        for row in _csv_rows(root, which):
            add(system, table, str(row.get("study_id", "")), row)
    return "\n".join(parts)


def source_surfaces(root: Path) -> Iterator[tuple[str, str | bytes]]:
    """(where, text or raw bytes) of the hospital's source systems, for the positive
    control: every EMR cell, the EMR database file, and the LIS and PACS files."""
    for logical, row in _emr_rows(root):
        for name, value in row.items():
            if value is not None:
                yield f"emr {logical}.{name}", str(value)
    yield "emr.db (raw)", (root / "emr.db").read_bytes()
    for which in ("lis", "pacs"):
        yield f"{which} file (raw)", (root / _generation(root)[which]["file"]).read_bytes()


# -- the scanner -----------------------------------------------------------------------


def _trie_pattern(words: Iterable[str], guard: bool) -> str:
    """One regex for all `words` (already lower-case), longest first at each branch."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def alnum(ch: str) -> bool:
        return guard and bool(_ASCII_ALNUM.fullmatch(ch))

    def expr(node: dict[str, Any], last: str) -> str:
        branches = [re.escape(ch) + expr(node[ch], ch) for ch in sorted(node) if ch]
        if "" in node:
            branches.append("(?![0-9A-Za-z])" if alnum(last) else "")
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    roots = []
    for ch in sorted(trie):
        head = re.escape(ch)
        if alnum(ch):  # checked after the first character, which keeps it a fast prefix
            head += f"(?<![0-9A-Za-z]{re.escape(ch)})"
        roots.append(head + expr(trie[ch], ch))
    return "|".join(roots) or "(?!)"


def _unescape_json(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        raw = match.group(0).encode("ascii").decode("unicode_escape")
        return raw.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

    return _JSON_ESCAPE.sub(one, text)


def digits_projection(line: str) -> str:
    """The line's digits with every separator removed, long hex tokens taken out."""
    line = _HEX_TOKEN.sub(lambda m: " " if re.search("[A-Fa-f]", m.group(0)) else m.group(0), line)
    return re.sub(r"\D+", "", line)


def digits_form(canary: Canary) -> str | None:
    """What a resident ID or phone number leaves in a digits-only projection."""
    if canary.kind not in DIGIT_KINDS:
        return None
    digits = re.sub(r"\D", "", canary.text)
    if canary.kind == PHONE and len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]  # +86: the national number is what matters
    return digits if len(digits) >= 10 else None


class Scanner:
    """Finds canaries; keeps a tally of what it looked at (`scanned`)."""

    def __init__(self, canaries: Iterable[Canary], *, digits: bool = True) -> None:
        self.by_key: dict[str, Canary] = {}
        for canary in canaries:
            self.by_key.setdefault(canary.text.lower(), canary)
        # Matched against lower-cased text; a lookahead finds a canary inside another.
        self._text = re.compile(f"(?=({_trie_pattern(self.by_key, True)}))")
        self.by_digits: dict[str, Canary] = {}
        if digits:
            for canary in self.by_key.values():
                form = digits_form(canary)
                if form:
                    self.by_digits.setdefault(form, canary)
        self._digits = re.compile(f"(?=({_trie_pattern(self.by_digits, False)}))")
        self.scanned: Counter[str] = Counter()

    def _find(self, text: str, where: str, how: str, min_bytes: int = 0) -> list[Hit]:
        hits = []
        for match in self._text.finditer(text.lower()):
            canary = self.by_key[match.group(1)]
            if len(canary.text.encode("gb18030")) < min_bytes:
                continue
            context = text[max(0, match.start() - 30) : match.end(1) + 30].replace("\n", " ")
            hits.append(Hit(canary, where, how, context))
        return hits

    def _digit_hits(self, text: str, where: str) -> list[Hit]:
        hits = []
        for line in text.splitlines():
            projection = digits_projection(line)
            for match in self._digits.finditer(projection):
                canary = self.by_digits[match.group(1)]
                hits.append(Hit(canary, where, "digits", line[:200]))
        return hits

    def text(self, text: str, where: str, *, how: str = "text") -> list[Hit]:
        self.scanned[f"{how} chars"] += len(text)
        if "\\u" in text:
            text = text + "\n" + _unescape_json(text)
        hits = self._find(text, where, how)
        if self.by_digits:
            hits += self._digit_hits(text, where)
        return hits

    def raw(self, data: bytes, where: str) -> list[Hit]:
        self.scanned["raw bytes"] += len(data)
        hits = self.text(data.decode("utf-8", "ignore"), where, how="utf-8 bytes")
        gb = data.decode("gb18030", "ignore")
        if "\\u" in gb:
            gb = gb + "\n" + _unescape_json(gb)
        return hits + self._find(gb, where, "gb18030 bytes", MIN_RAW_GB18030_BYTES)

    def value(self, value: object, where: str) -> list[Hit]:
        """A database value: text, bytes, or JSON (scanned as text, and unescaped)."""
        if value is None or isinstance(value, bool | int | float):
            return []
        if isinstance(value, bytes | bytearray | memoryview):
            return self.raw(bytes(value), where)
        if isinstance(value, str):
            return self.text(value, where)
        return self.text(json.dumps(value, ensure_ascii=False, default=str), where)
