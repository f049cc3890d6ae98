"""HL7 v2 message files: OBX results of ORU^R01 messages, and the PID of every message.

A file holds one or more messages (segments end with CR, LF or CRLF; a message
starts with MSH; MLLP framing and FHS/BHS batch envelopes are dropped). A
message that cannot be parsed is rejected alone, and so are lines of text
between messages; the other messages go on. HL7 timestamps become ISO text
(`2024-01-02T10:30`, with seconds and offset when given) when they are valid
dates, else they are kept as written.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import hl7

from edge_node.pipeline.connectors._encoding import check_codec, detect_encoding
from edge_node.pipeline.connectors._files import (
    FileStamp,
    Item,
    Unit,
    list_files,
    read_files,
    read_files_where,
)
from edge_node.pipeline.connectors.base import SourceMissing, first_rows
from edge_node.pipeline.records import RawReject, SourceBatch, SourceRow

SUFFIXES = (".hl7", ".txt")
COLUMNS: dict[str, tuple[str, ...]] = {
    "OBX": (
        "lab_id",
        "patient_id",
        "admission_id",
        "item_code",
        "item_name",
        "value",
        "unit",
        "reference_range",
        "result_date",
        "abnormal_flag",
        "result_status",
        "value_type",
        "message_id",
    ),
    "PID": (
        "patient_id",
        "name",
        "sex",
        "birth_date",
        "resident_id",
        "phone",
        "address",
        "admission_id",
        "message_id",
    ),
}
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_ENVELOPE = ("FHS", "BHS", "FTS", "BTS")
_TS = re.compile(
    r"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(\.\d{1,4})?)?)?)?)?)?([+-]\d{4})?"
)
_CJK = re.compile("[\u3400-\u9fff\uf900-\ufaff]")
_ESCAPED = re.compile("[\udc80-\udcff]")
_PATIENT_TYPES = {"MR", "MRN", "PI", "PT", "PN"}
_NATIONAL_TYPES = {"NI", "SS", "SB", "CZ", "NH"}
_HL7_NULL = '""'


def hl7_datetime(text: str | None) -> str | None:
    """An HL7 TS/DTM as ISO text when it is a valid date, else as written."""
    if not text:
        return None
    m = _TS.fullmatch(text.strip())
    if m is None:
        return text
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0))
    except ValueError:
        return text
    if mo is None:
        return y
    if d is None:
        return f"{y}-{mo}"
    if h is None:
        return f"{y}-{mo}-{d}"
    out = f"{y}-{mo}-{d}T{h}:{mi or '00'}"
    if s is not None:
        out += f":{s}{frac or ''}"
    if tz:
        out += f"{tz[:3]}:{tz[3:]}"
    return out


def _f(seg: Any, field: int, comp: int = 1, rep: int = 1, sub: int = 1) -> str | None:
    """One value of a segment (1-based, as in the standard; unescaped); '' and
    the HL7 null are None."""
    try:
        value = seg.extract_field(
            field_num=field, repeat_num=rep, component_num=comp, subcomponent_num=sub
        )
    except (IndexError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(value, str) or value in ("", _HL7_NULL):
        return None
    return value


def _reps(seg: Any, field: int) -> int:
    try:
        value = seg(field)
    except (IndexError, KeyError, TypeError):
        return 0
    if isinstance(value, hl7.Field) and value and isinstance(value[0], hl7.Repetition):
        return len(value)
    return 1


def _join_name(family: str | None, given: list[str | None]) -> str | None:
    parts = [g for g in given if g]
    if _CJK.search((family or "") + "".join(parts)):
        return (family or "") + "".join(parts) or None
    return " ".join([*parts, family or ""]).strip() or None


@dataclass
class _Chunk:
    """The lines of one message, or of text outside any message."""

    lines: list[str]
    message: bool
    where: str

    @property
    def text(self) -> str:
        return "\r".join(self.lines)

    @property
    def key(self) -> str:
        """MSH-10 (message control ID) when it can be read, else the position."""
        if self.message:
            msh = self.lines[0]
            fields = msh.split(msh[3]) if len(msh) > 3 else []
            if len(fields) > 9 and fields[9].strip():
                return fields[9].strip()
        return self.where


def _is_segment(line: str, sep: str) -> bool:
    return bool(_SEGMENT_ID.match(line)) and (len(line) == 3 or line[3] == sep)


def _close(lines: list[str], message: bool, sep: str, name: str, n: int) -> list[_Chunk]:
    """The chunks of lines read up to the next MSH: a message, with any text
    after its last segment as a chunk of its own; or text outside messages."""
    after = f"{name} text after message {n}" if n else f"{name} text before any message"
    if not message:
        return [_Chunk(lines, False, after)]
    where = f"{name} message {n}"
    good = len(lines)
    while good > 1 and not _is_segment(lines[good - 1], sep):
        good -= 1
    if good == len(lines):
        return [_Chunk(lines, True, where)]
    return [_Chunk(lines[:good], True, where), _Chunk(lines[good:], False, after)]


class Hl7Connector:
    """A file, a folder of *.hl7/*.txt, or a glob; tables OBX and PID."""

    def __init__(self, name: str, path: Path, *, encoding: str = "auto") -> None:
        self.name = name
        self.path = path
        self.encoding = check_codec(encoding, f"source {name!r}")

    def _files(self) -> list[FileStamp]:
        return list_files(self.name, self.path, SUFFIXES)

    def _check(self, table: str) -> list[FileStamp]:
        files = self._files()
        if table not in COLUMNS:
            raise SourceMissing(self.name, table, "table (an HL7 v2 source has OBX and PID)")
        return files

    def tables(self) -> list[str]:
        self._files()
        return sorted(COLUMNS)

    def columns(self, table: str) -> list[str]:
        self._check(table)
        return list(COLUMNS[table])

    # -- files into messages ---------------------------------------------

    def _codec(self, path: Path) -> str:
        if self.encoding != "auto":
            return self.encoding
        with path.open("rb") as fh:
            sample = fh.read(256 * 1024)
        codec, bom = detect_encoding(sample, complete=len(sample) < 256 * 1024, what=str(path))
        if codec == "utf-8":
            return "utf-8-sig"
        return codec.rsplit("-", 1)[0] if bom else codec  # utf-16: the BOM gives the order

    def _chunks(self, stamp: FileStamp) -> Iterator[_Chunk]:
        try:
            codec = self._codec(stamp.path)
            fh = stamp.path.open(encoding=codec, errors="surrogateescape", newline=None)
        except FileNotFoundError:
            return  # removed since listing
        lines: list[str] = []
        message, sep, n = False, "|", 0  # n: messages so far
        with fh:
            for raw in fh:
                line = raw.strip("\x0b\x1c\n").rstrip("\r")
                if not line.strip():
                    continue
                head = line[:3]
                if head == "MSH" or head in _ENVELOPE:
                    if lines:
                        yield from _close(lines, message, sep, stamp.name, n)
                    lines, message = ([line], True) if head == "MSH" else ([], False)
                    sep = line[3] if len(line) > 3 else "|"
                    n += head == "MSH"
                else:
                    lines.append(line)
        if lines:
            yield from _close(lines, message, sep, stamp.name, n)

    # -- messages into rows ----------------------------------------------

    def _units(self, table: str, key: str | None, stamp: FileStamp) -> Iterator[Unit]:
        for chunk in self._chunks(stamp):
            yield partial(self._items, table, key, chunk)

    def _items(self, table: str, key: str | None, chunk: _Chunk) -> list[Item]:
        msg, problem = self._parse(chunk)
        if msg is None:
            heads = {line[:3] for line in chunk.lines}
            if table in heads or not heads & set(COLUMNS):
                code = "invalid_encoding" if _ESCAPED.search(chunk.text) else "invalid_hl7"
                raw = chunk.text
                if code == "invalid_encoding":
                    raw = raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                return [RawReject(chunk.key, code, f"{chunk.where}: {problem}", raw)]
            return []
        msh = msg.segment("MSH")
        control = _f(msh, 10) or chunk.where
        rows = self._obx(msg, control) if table == "OBX" else self._pid(msg, control)
        if key is not None:
            rows = [SourceRow(r.values.get(key) or r.key, r.values) for r in rows]
        return list(rows)

    @staticmethod
    def _parse(chunk: _Chunk) -> tuple[Any, str]:
        if not chunk.message:
            return None, "text that is not part of an HL7 message"
        msh = chunk.lines[0]
        if len(msh) < 8 or msh[3].isalnum() or msh[3] == " ":
            return None, "the MSH segment has no field separator and encoding characters"
        if _ESCAPED.search(chunk.text):
            return None, "bytes that are not valid text in the file's encoding"
        sep = msh[3]
        for i, line in enumerate(chunk.lines[1:], start=2):
            if not _is_segment(line, sep):
                return None, f"segment {i} is not an HL7 segment: {line[:40]!r}"
        try:
            msg = hl7.parse(chunk.text)
            mtype = _f(msg.segment("MSH"), 9)
        except (hl7.HL7Exception, ValueError, IndexError, KeyError, TypeError) as exc:
            return None, f"cannot parse: {exc}"
        if not mtype:
            return None, "MSH-9 (message type) is empty"
        return msg, ""

    @staticmethod
    def _patient_ids(pid: Any) -> tuple[str | None, str | None]:
        """(hospital patient ID, resident ID) from PID-3 (and PID-2, PID-19)."""
        own: list[tuple[str, str]] = []
        national = None
        for rep in range(1, _reps(pid, 3) + 1):
            value = _f(pid, 3, 1, rep)
            kind = (_f(pid, 3, 5, rep) or "").upper()
            if not value:
                continue
            if kind in _NATIONAL_TYPES or kind.startswith("NN"):
                national = national or value
            else:
                own.append((kind, value))
        patient = next((v for k, v in own if k in _PATIENT_TYPES), own[0][1] if own else None)
        return patient or _f(pid, 2), national or _f(pid, 19)

    def _pid_values(self, msg: Any) -> dict[str, str | None]:
        try:
            pid = msg.segment("PID")
        except KeyError:
            return {}
        patient, resident = self._patient_ids(pid)
        address = None
        if _f(pid, 11) or _f(pid, 11, 3):
            street, other, city, state, zip_, country = (_f(pid, 11, c) for c in (1, 2, 3, 4, 5, 6))
            if _CJK.search("".join(x for x in (street, other, city, state) if x)):
                parts = [x for x in (state, city, street, other) if x]
                # a municipality is both province and city: 北京市北京市
                address = "".join(x for i, x in enumerate(parts) if not i or x != parts[i - 1])
            else:
                region = " ".join(x for x in (state, zip_) if x)
                address = ", ".join(x for x in (street, other, city, region, country) if x)
        phone = _f(pid, 13, 1) or _f(pid, 13, 12)
        if not phone and (_f(pid, 13, 6) or _f(pid, 13, 7)):
            phone = (_f(pid, 13, 6) or "") + (_f(pid, 13, 7) or "")
        return {
            "patient_id": patient,
            "name": _join_name(_f(pid, 5, 1), [_f(pid, 5, 2), _f(pid, 5, 3)]),
            "sex": _f(pid, 8),
            "birth_date": hl7_datetime(_f(pid, 7)),
            "resident_id": resident,
            "phone": phone or None,
            "address": address or None,
        }

    @staticmethod
    def _visit(msg: Any) -> str | None:
        try:
            return _f(msg.segment("PV1"), 19)
        except KeyError:
            return None

    def _pid(self, msg: Any, control: str) -> list[SourceRow]:
        values = self._pid_values(msg)
        if not values:
            return []
        values |= {"admission_id": self._visit(msg), "message_id": control}
        return [SourceRow(f"{control}/PID", values)]

    def _obx(self, msg: Any, control: str) -> list[SourceRow]:
        if _f(msg.segment("MSH"), 9, 1) != "ORU":
            return []
        patient = self._pid_values(msg).get("patient_id")
        visit = self._visit(msg)
        obr_count = sum(1 for seg in msg if str(seg[0]) == "OBR")
        rows: list[SourceRow] = []
        obr: Any = None
        for n, seg in enumerate(msg, start=1):
            kind = str(seg[0])
            if kind == "OBR":
                obr = seg
                continue
            if kind != "OBX":
                continue
            set_id = _f(seg, 1) or f"#{n}"
            lab_id = f"{control}/{set_id}"
            if obr_count > 1 and obr is not None:
                lab_id = f"{control}/{_f(obr, 1) or '?'}/{set_id}"
            value_type = _f(seg, 2)
            rows.append(
                SourceRow(
                    lab_id,
                    {
                        "lab_id": lab_id,
                        "patient_id": patient,
                        "admission_id": visit,
                        "item_code": _f(seg, 3, 1),
                        "item_name": _f(seg, 3, 2),
                        "value": self._value(seg, value_type),
                        "unit": _f(seg, 6, 1) or _f(seg, 6, 2),
                        "reference_range": _f(seg, 7),
                        "result_date": hl7_datetime(
                            _f(seg, 14) or (_f(obr, 7) if obr is not None else None)
                        ),
                        "abnormal_flag": _f(seg, 8),
                        "result_status": _f(seg, 11),
                        "value_type": value_type,
                        "message_id": control,
                    },
                )
            )
        return rows

    @staticmethod
    def _value(seg: Any, value_type: str | None) -> str | None:
        if value_type in ("CE", "CWE", "CNE"):
            return _f(seg, 5, 2) or _f(seg, 5, 1)
        if value_type == "SN":  # comparator ^ number [^ separator ^ number]
            parts = [_f(seg, 5, c) or "" for c in (1, 2, 3, 4)]
            return "".join(parts) or None
        values = [_f(seg, 5, 1, rep) for rep in range(1, max(_reps(seg, 5), 1) + 1)]
        return "\n".join(v for v in values if v) or None

    # -- the interface ---------------------------------------------------

    def read(
        self,
        table: str,
        *,
        key: str | None,
        watermark: str | None,
        batch_size: int = 5000,
    ) -> Iterator[SourceBatch]:
        files = self._check(table)
        return read_files(files, watermark, partial(self._units, table, key), batch_size)

    def read_where(
        self,
        table: str,
        column: str,
        values: Collection[str],
        *,
        batch_size: int = 5000,
        key: str | None = None,
    ) -> Iterator[SourceBatch]:
        files = self._check(table)
        units = partial(self._units, table, key)
        return read_files_where(files, units, column, {str(v) for v in values}, batch_size)

    def sample(self, table: str, n: int = 1000) -> list[SourceRow]:
        return first_rows(self.read(table, key=None, watermark=None, batch_size=n), n)

    def close(self) -> None:
        return None
