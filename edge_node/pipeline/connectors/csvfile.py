"""Delimited text files (CSV, TSV): one table per file, streamed with byte-offset watermarks.

The file is read in 1 MiB blocks cut at line ends and decoded a block at a time
(line by line only where a block does not decode, so a bad byte costs only its
record). Splitting on raw bytes is safe for UTF-8, GB18030/GBK, Big5 and the
single-byte codecs, whose newline and quote bytes never occur inside a
character; UTF-16/32 files go through a text reader instead.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
import re
from collections import deque
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate, chain
from pathlib import Path
from typing import IO

from edge_node.pipeline.connectors._encoding import (
    ascii_compatible,
    bom_of,
    check_codec,
    detect_encoding,
)
from edge_node.pipeline.connectors._files import list_files
from edge_node.pipeline.connectors.base import SourceMissing, first_rows
from edge_node.pipeline.records import RawReject, SourceBatch, SourceRow
from shared_cdm.errors import InvalidInput

SUFFIXES = (".csv", ".tsv", ".txt")
_SAMPLE = 256 * 1024
_BLOCK = 1 << 20
_HEAD = 4096
_DELIMITERS = (",", "\t", ";", "|")
_ESCAPED = re.compile("[\udc80-\udcff]")
# str.splitlines also breaks at these; csv and bytes.splitlines do not
_ODD_BYTES = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e")
_ODD_CHARS = ("\x85", "\u2028", "\u2029")
_TEXT_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")

# SourceRow is a frozen dataclass whose __init__ costs more than the parsing
# of a row; its slots are set directly on the hot path.
_new = object.__new__
_set_key = SourceRow.__dict__["key"].__set__
_set_values = SourceRow.__dict__["values"].__set__


@dataclass(frozen=True)
class _Format:
    codec: str  # for the body (a BOM is skipped, not decoded)
    bom: int
    delimiter: str


@dataclass(frozen=True)
class _Mark:
    """Where a read stands: after `records` records, `offset` bytes, `line` lines."""

    offset: int
    records: int
    line: int


@dataclass(frozen=True)
class _Resume:
    fmt: _Format
    mark: _Mark
    file: str
    head: str
    head_len: int


@dataclass(slots=True)
class _Block:
    offset: int  # in the file, of lines[0]
    base: int  # reader lines before this block
    lines: list[str]
    data: bytes | None  # the raw bytes (byte reader), to count exact offsets
    ends: list[int] | None = None  # byte offset after each line, from `offset`


class _Blocks:
    """Feeds the csv reader decoded lines a block at a time, and keeps what the
    reader does not tell: where its lines are in bytes, which did not decode
    (`bad`: reader line numbers, 1-based), whether the file has ended."""

    def __init__(self, fh: IO[bytes], fmt: _Format, offset: int) -> None:
        self.fh = fh
        self.fmt = fmt
        self.start = offset
        self.recent: deque[_Block] = deque(maxlen=4)  # a record spans at most 2
        self.bad: deque[int] = deque()
        self.eof = False

    def __iter__(self) -> Iterator[str]:
        return chain.from_iterable(self._blocks())

    def _blocks(self) -> Iterator[list[str]]:
        chunks = self._bytes() if ascii_compatible(self.fmt.codec) else self._text()
        offset, base = self.start, 0
        for lines, bad, data, size in chunks:
            self.recent.append(_Block(offset, base, lines, data))
            self.bad.extend(base + i + 1 for i in bad)
            offset, base = offset + size, base + len(lines)
            yield lines
        self.eof = True

    def _bytes(self) -> Iterator[tuple[list[str], list[int], bytes | None, int]]:
        codec, carry = self.fmt.codec, b""
        while True:
            data = self.fh.read(_BLOCK)
            if data:
                data = carry + data if carry else data
                cut = data.rfind(b"\n") + 1 or data.rfind(b"\r", 0, len(data) - 1) + 1
                if not cut:  # one line longer than a block
                    carry = data
                    continue
                data, carry = data[:cut], data[cut:]
            elif carry:
                data, carry = carry, b""
            else:
                return
            lines, bad = _decode(data, codec)
            yield lines, bad, data, len(data)

    def _text(self) -> Iterator[tuple[list[str], list[int], bytes | None, int]]:
        codec = self.fmt.codec
        wrapper = io.TextIOWrapper(self.fh, encoding=codec, errors="replace", newline="")
        carry = ""
        try:
            while True:
                text = wrapper.read(_BLOCK // 2)
                if text:
                    text = carry + text
                    cut = text.rfind("\n") + 1 or text.rfind("\r", 0, len(text) - 1) + 1
                    if not cut:
                        carry = text
                        continue
                    text, carry = text[:cut], text[cut:]
                elif carry:
                    text, carry = carry, ""
                else:
                    return
                lines = _TEXT_LINES.findall(text)
                bad = [i for i, line in enumerate(lines) if "\ufffd" in line]
                yield lines, bad, None, len(text.encode(codec, "replace"))
        finally:
            wrapper.detach()

    def position(self, line: int) -> int:
        """The byte offset after reader line `line`."""
        for block in reversed(self.recent):
            if block.base <= line:
                k = line - block.base
                if not k:
                    return block.offset
                if block.ends is None:  # once per block: batches often end in one
                    sizes: Iterable[int]
                    if block.data is not None:
                        sizes = map(len, block.data.splitlines(True))
                    else:
                        sizes = (len(x.encode(self.fmt.codec, "replace")) for x in block.lines)
                    block.ends = list(accumulate(sizes))
                return block.offset + block.ends[k - 1]
        return self.start

    def lines(self, first: int, last: int) -> list[str]:
        """Reader lines `first`..`last` (1-based, inclusive)."""
        out: list[str] = []
        for block in self.recent:
            lo, hi = max(first - 1, block.base), min(last, block.base + len(block.lines))
            if lo < hi:
                out += block.lines[lo - block.base : hi - block.base]
        return out

    def has_bad(self, last: int) -> bool:
        """Whether a line up to `last` did not decode (forgetting those lines)."""
        found = False
        while self.bad and self.bad[0] <= last:
            self.bad.popleft()
            found = True
        return found


def _decode(data: bytes, codec: str) -> tuple[list[str], list[int]]:
    """A block's lines, and the indexes of those that did not decode."""
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        pass
    else:
        if not any(b in data for b in _ODD_BYTES) and (
            text.isascii() or not any(c in text for c in _ODD_CHARS)
        ):
            return text.splitlines(True), []
    lines: list[str] = []
    bad: list[int] = []
    for i, raw in enumerate(data.splitlines(True)):
        try:
            lines.append(raw.decode(codec))
        except UnicodeDecodeError:
            lines.append(raw.decode(codec, "surrogateescape"))
            bad.append(i)
    return lines, bad


def _show(lines: list[str], fmt: _Format) -> str:
    """A record's lines as text for the quarantine (bad bytes as \\xNN)."""
    text = "".join(lines)
    if _ESCAPED.search(text):
        text = text.encode(fmt.codec, "surrogateescape").decode(fmt.codec, "backslashreplace")
    return text


def _given_codec(encoding: str, sample: bytes) -> tuple[str, int]:
    """(codec, BOM length) for a codec named in the mapping."""
    found = bom_of(sample)
    name = codecs.lookup(encoding).name
    if name in ("utf-8", "utf-8-sig"):
        return "utf-8", 3 if found and found[0] == "utf-8" else 0
    if name in ("utf-16", "utf-32"):  # the BOM tells the byte order
        return found if found and found[0].startswith(name) else (f"{name}-le", 0)
    return name, found[1] if found and found[0] == name else 0


class CsvConnector:
    """A file, a folder of *.csv/*.tsv/*.txt, or a glob; table = file stem.

    Row key: the `key` column's value, else the record's number (1 = the first
    record after the header). Watermark: file name, byte offset after the last
    complete record, record and line counts, and a hash of the first 4 KiB
    (of the first `offset` bytes when shorter), with the detected format.
    """

    def __init__(
        self, name: str, path: Path, *, encoding: str = "auto", delimiter: str | None = None
    ) -> None:
        self.name = name
        self.path = path
        self.encoding = check_codec(encoding, f"source {name!r}")
        if delimiter == "\\t":
            delimiter = "\t"
        if delimiter is not None and delimiter != "auto" and len(delimiter) != 1:
            raise InvalidInput(
                f"source {name!r}: delimiter must be one character or auto, got {delimiter!r}",
                code="invalid_source",
            )
        self.delimiter = delimiter

    # -- the files -------------------------------------------------------

    def _files(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for stamp in list_files(self.name, self.path, SUFFIXES):
            stem = stamp.path.stem
            if stem in found:
                raise InvalidInput(
                    f"source {self.name!r}: two files give table {stem!r}: "
                    f"{found[stem]} and {stamp.path}",
                    code="invalid_source",
                )
            found[stem] = stamp.path
        return found

    def _file(self, table: str) -> Path:
        path = self._files().get(table)
        if path is None:
            raise SourceMissing(
                self.name, table, f"file {table}{{{','.join(SUFFIXES)}}} in {self.path}"
            )
        return path

    def _open(self, table: str, path: Path) -> IO[bytes]:
        try:
            return path.open("rb", buffering=0)
        except FileNotFoundError:
            raise SourceMissing(self.name, table, f"file {path}") from None

    def _format(self, path: Path, fh: IO[bytes]) -> _Format:
        fh.seek(0)
        sample = fh.read(_SAMPLE)
        if self.encoding == "auto":
            what = f"source {self.name!r}, file {path.name}"
            codec, bom = detect_encoding(sample, complete=len(sample) < _SAMPLE, what=what)
        else:
            codec, bom = _given_codec(self.encoding, sample)
        return _Format(codec, bom, self._delimiter(path, sample[bom:], codec))

    def _delimiter(self, path: Path, body: bytes, codec: str) -> str:
        if self.delimiter not in (None, "auto"):
            return str(self.delimiter)
        if self.delimiter is None and path.suffix.lower() == ".csv":
            return ","
        lines = _TEXT_LINES.findall(body.decode(codec, "replace"))[:101]
        if len(lines) > 1:
            lines.pop()  # may be cut short
        best, best_score = ",", (0.0, 0)
        for cand in _DELIMITERS:
            try:
                widths = [len(r) for r in csv.reader(lines, delimiter=cand) if r]
            except csv.Error:
                continue
            if not widths or widths[0] < 2:
                continue
            score = (sum(w == widths[0] for w in widths) / len(widths), widths[0])
            if score > best_score:
                best, best_score = cand, score
        return best

    def _header(self, fh: IO[bytes], fmt: _Format) -> tuple[list[str], _Mark]:
        fh.seek(fmt.bom)
        src = _Blocks(fh, fmt, fmt.bom)
        reader = csv.reader(src, delimiter=fmt.delimiter)
        fields = next((r for r in reader if r), [])
        mark = _Mark(src.position(reader.line_num), 0, reader.line_num)
        names = [f.strip() for f in fields]
        if names and not names[-1]:
            names.pop()  # a trailing delimiter
        cols: list[str] = []
        for i, given in enumerate(names, start=1):
            base = given or f"column_{i}"
            n, k = base, 2
            while n in cols:
                n, k = f"{base}_{k}", k + 1
            cols.append(n)
        return cols, mark

    # -- the interface ---------------------------------------------------

    def tables(self) -> list[str]:
        return sorted(self._files())

    def columns(self, table: str) -> list[str]:
        path = self._file(table)
        with self._open(table, path) as fh:
            return self._header(fh, self._format(path, fh))[0]

    def read(
        self,
        table: str,
        *,
        key: str | None,
        watermark: str | None,
        batch_size: int = 5000,
    ) -> Iterator[SourceBatch]:
        return self._scan(table, key=key, watermark=watermark, batch_size=batch_size)

    def read_where(
        self,
        table: str,
        column: str,
        values: Collection[str],
        *,
        batch_size: int = 5000,
        key: str | None = None,
    ) -> Iterator[SourceBatch]:
        wanted = {str(v) for v in values}
        batch = SourceBatch()
        for part in self._scan(table, key=key, watermark=None, batch_size=batch_size, col=column):
            batch.rows += [r for r in part.rows if r.values.get(column) in wanted]
            if len(batch.rows) >= batch_size:
                yield batch
                batch = SourceBatch()
        if batch.rows:
            yield batch

    def sample(self, table: str, n: int = 1000) -> list[SourceRow]:
        return first_rows(self._scan(table, key=None, watermark=None, batch_size=n), n)

    def close(self) -> None:
        return None

    # -- reading ---------------------------------------------------------

    def _resume(self, fh: IO[bytes], path: Path, watermark: str | None) -> _Resume | None:
        """The watermark if it can be resumed on this file as it is now: same
        name, same first bytes, not shorter than the offset."""
        if not watermark:
            return None
        try:
            wm = json.loads(watermark)
            res = _Resume(
                _Format(str(wm["encoding"]), int(wm["bom"]), str(wm["delimiter"])),
                _Mark(int(wm["offset"]), int(wm["records"]), int(wm["line"])),
                str(wm["file"]),
                str(wm["head"]),
                int(wm["head_len"]),
            )
        except (ValueError, KeyError, TypeError):
            return None  # not a CSV watermark: start again
        if res.file != path.name or os.fstat(fh.fileno()).st_size < res.mark.offset:
            return None
        if hashlib.sha256(os.pread(fh.fileno(), res.head_len, 0)).hexdigest() != res.head:
            return None
        if self.encoding not in ("auto", res.fmt.codec):
            return None  # the mapping now names another encoding
        return res

    def _watermark(self, fh: IO[bytes], path: Path, fmt: _Format, mark: _Mark) -> str:
        head_len = min(_HEAD, mark.offset)
        head = os.pread(fh.fileno(), head_len, 0)
        return json.dumps(
            {
                "file": path.name,
                "offset": mark.offset,
                "records": mark.records,
                "line": mark.line,
                "head": hashlib.sha256(head).hexdigest(),
                "head_len": head_len,
                "encoding": fmt.codec,
                "bom": fmt.bom,
                "delimiter": fmt.delimiter,
            },
            ensure_ascii=False,
            sort_keys=True,
        )

    def _scan(
        self,
        table: str,
        *,
        key: str | None,
        watermark: str | None,
        batch_size: int,
        col: str | None = None,
    ) -> Iterator[SourceBatch]:
        path = self._file(table)
        with self._open(table, path) as fh:
            resume = self._resume(fh, path, watermark)
            fmt = resume.fmt if resume is not None else self._format(path, fh)
            cols, start = self._header(fh, fmt)
            if not cols:
                return
            for name, what in ((key, "key column"), (col, "column")):
                if name is not None and name not in cols:
                    raise SourceMissing(
                        self.name,
                        table,
                        f"{what} {name!r} (the header of {path.name} has {', '.join(cols)})",
                    )
            if resume is not None:
                start = resume.mark
            yield from self._records(fh, path, fmt, cols, key, start, watermark, batch_size)

    def _records(
        self,
        fh: IO[bytes],
        path: Path,
        fmt: _Format,
        cols: list[str],
        key: str | None,
        start: _Mark,
        watermark: str | None,
        batch_size: int,
    ) -> Iterator[SourceBatch]:
        fh.seek(start.offset)
        src = _Blocks(fh, fmt, start.offset)
        reader = csv.reader(src, delimiter=fmt.delimiter, strict=True)
        ncols = len(cols)
        key_at = cols.index(key) if key is not None else -1
        recno = start.records
        first = end = 0  # reader lines of the record just read: first+1..end
        cut = False  # it ends inside quotes at the end of the file
        rows: list[SourceRow] = []
        rejects: list[RawReject] = []
        room = batch_size  # rows that fit in the batch, given its rejects
        bad = src.bad
        new, set_key, set_values = _new, _set_key, _set_values
        problem = ""  # a record's fault, or "" when it is a row
        while True:
            try:
                for fields in reader:
                    first, end = end, reader.line_num
                    if len(fields) == ncols and not bad:  # the hot path
                        recno += 1
                        k = str(recno) if key_at < 0 else fields[key_at]
                        if k:
                            row = new(SourceRow)
                            set_key(row, k)
                            # zip's strict= keyword alone costs a third of this line
                            set_values(row, {c: v or None for c, v in zip(cols, fields)})  # noqa: B905
                            rows.append(row)
                            if len(rows) < room:
                                continue
                        else:
                            problem = "missing_key"
                    elif not fields:
                        continue  # a blank line
                    else:
                        recno += 1
                        problem = self._problem(fields, ncols, src.has_bad(end))
                        k = str(recno) if key_at < 0 else fields[key_at]
                        if not problem and k:
                            values = {c: v or None for c, v in zip(cols, fields, strict=False)}
                            rows.append(SourceRow(k, values))
                        elif not problem:
                            problem = "missing_key"
                    if problem:
                        why = {
                            "invalid_encoding": f"bytes that are not valid {fmt.codec}",
                            "missing_key": f"key column {key!r} is empty",
                        }.get(problem, f"{len(fields)} fields, the header has {ncols}")
                        rejects.append(
                            self._reject(src, path, start, first, end, recno, problem, why)
                        )
                        problem = ""
                    if len(rows) + len(rejects) >= batch_size:
                        mark = self._mark(src, start, first, end, recno, cut)
                        yield SourceBatch(rows, rejects, self._watermark(fh, path, fmt, mark))
                        rows, rejects = [], []
                    room = batch_size - len(rejects)
                break
            except csv.Error as exc:
                first, end = end, reader.line_num
                recno += 1
                src.has_bad(end)
                cut = src.eof
                why = "the file ends inside a quoted field" if cut else str(exc)
                code = "truncated_row" if cut else "malformed_row"
                rejects.append(self._reject(src, path, start, first, end, recno, code, why))
                room = batch_size - len(rejects)
                if len(rows) + len(rejects) >= batch_size:
                    mark = self._mark(src, start, first, end, recno, cut)
                    yield SourceBatch(rows, rejects, self._watermark(fh, path, fmt, mark))
                    rows, rejects, room = [], [], batch_size
        final = self._watermark(fh, path, fmt, self._mark(src, start, first, end, recno, cut))
        if rows or rejects or final != watermark:
            yield SourceBatch(rows, rejects, final)

    @staticmethod
    def _problem(fields: list[str], ncols: int, undecodable: bool) -> str:
        if undecodable:
            return "invalid_encoding"
        if len(fields) < ncols:
            return "truncated_row"
        if len(fields) > ncols + 1 or (len(fields) == ncols + 1 and fields[-1]):
            return "extra_fields"
        return ""  # right, or one trailing delimiter

    @staticmethod
    def _reject(
        src: _Blocks,
        path: Path,
        start: _Mark,
        first: int,
        end: int,
        recno: int,
        code: str,
        why: str,
    ) -> RawReject:
        where = f"{path.name} line {start.line + first + 1}"
        raw = _show(src.lines(first + 1, end), src.fmt)
        return RawReject(str(recno), code, f"{where}: {why}", raw)

    @staticmethod
    def _mark(src: _Blocks, start: _Mark, first: int, end: int, recno: int, cut: bool) -> _Mark:
        """After the record just read, or before it when a writer may not have
        finished it (no line end yet, or inside quotes at the end of the file)."""
        last = src.lines(end, end)
        if cut or (last and not last[0].endswith(("\n", "\r"))):
            return _Mark(src.position(first), recno - 1, start.line + first)
        return _Mark(src.position(end), recno, start.line + end)
