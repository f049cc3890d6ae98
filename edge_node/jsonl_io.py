"""Reading JSON Lines input as the contracts describe it: one record per line, any
encoding a hospital export may use, a bad line reported rather than fatal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO


def decode_line(raw: bytes) -> tuple[str, str | None]:
    """A JSONL line as text: UTF-8, else GB18030/Big5, else the best guess; the second
    value says how it was decoded when that was not UTF-8."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    for enc in ("gb18030", "big5"):
        try:
            return raw.decode(enc), f"line is not UTF-8; decoded as {enc}"
        except UnicodeDecodeError:
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is not None and best.encoding:
        return str(best), f"line is not UTF-8; decoded as {best.encoding}"
    return raw.decode(
        "utf-8", errors="replace"
    ), "line is not UTF-8; undecodable bytes replaced by U+FFFD"


def jsonl_lines(fh: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of each non-blank line, BOM and line ends removed."""
    for lineno, line in enumerate(fh, start=1):
        raw = line[3:] if lineno == 1 and line.startswith(b"\xef\xbb\xbf") else line
        raw = raw.rstrip(b"\r\n")
        if raw.strip():
            yield lineno, raw
