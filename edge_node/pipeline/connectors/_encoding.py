"""Guessing a text file's encoding from a sample of its bytes."""

from __future__ import annotations

import codecs

from shared_cdm.errors import InvalidInput

_BOMS = (  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_PROBE = "\r\n,;|\t\"'"


def check_codec(encoding: str, what: str) -> str:
    """`encoding` if it is `auto` or a codec Python knows, else InvalidInput."""
    if encoding == "auto":
        return encoding
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise InvalidInput(
            f"{what}: unknown encoding {encoding!r} (use auto or a codec name such as "
            "utf-8, gb18030)",
            code="invalid_source",
        ) from None


def ascii_compatible(codec: str) -> bool:
    """Whether newlines, quotes and delimiters are the ASCII bytes (so lines can
    be split on raw bytes). True for UTF-8, GB18030/GBK, Big5, Latin-1, cp125x."""
    if codec.replace("_", "-").lower().startswith(("utf-16", "utf-32", "utf-7")):
        return False
    try:
        return _PROBE.encode(codec) == _PROBE.encode("ascii")
    except (UnicodeError, LookupError):
        return False


def bom_of(head: bytes) -> tuple[str, int] | None:
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec, len(bom)
    return None


def detect_encoding(sample: bytes, *, complete: bool, what: str) -> tuple[str, int]:
    """(codec, BOM length) for a file starting with `sample`.

    BOM, then UTF-8, then GB18030 (a superset of GBK and GB2312), then
    charset_normalizer. A few undecodable lines among many good ones do not
    disqualify a codec: they are reported record by record later.
    """
    found = bom_of(sample)
    if found:
        return found
    if not complete and b"\n" in sample:
        sample = sample[: sample.rindex(b"\n") + 1]  # whole lines only
    if sample.count(0) * 10 > len(sample):  # NULs: UTF-16/32 without a BOM
        return _normalizer(sample, what), 0
    lines = [line for line in sample.split(b"\n") if not line.isascii()]
    if not lines:
        return "utf-8", 0
    utf8_bad = sum(1 for line in lines if not _decodes(line, "utf-8"))
    if utf8_bad == 0 or utf8_bad * 10 <= len(lines) - utf8_bad:
        return "utf-8", 0
    gb_bad = sum(1 for line in lines if not _decodes(line, "gb18030"))
    if gb_bad == 0:
        return "gb18030", 0
    few = max(1, len(lines) // 20)
    if utf8_bad <= gb_bad and utf8_bad <= few:
        return "utf-8", 0
    if gb_bad <= few:
        return "gb18030", 0
    return _normalizer(sample, what), 0


def _decodes(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def _normalizer(sample: bytes, what: str) -> str:
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None or not best.encoding:
        raise InvalidInput(
            f"{what}: cannot tell the text encoding (not UTF-8 nor GB18030); "
            "name it in the mapping (encoding: <codec>)",
            code="unknown_encoding",
        )
    return codecs.lookup(best.encoding).name
