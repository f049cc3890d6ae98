"""De-identify one note: detect spans, shift dates, replace with tags or surrogates.

Offsets are Python string indices (Unicode code points) into the input text.
Dates are always shifted by the patient's offset (HMAC of the patient id under the
site secret, the same `Pseudonymizer.date_shift_days` the CDM pipeline uses), so
intervals between one patient's dates survive; a date whose format cannot be
re-written is replaced by its tag. Other spans become `[TYPE]` tags, or with
`surrogates=True` realistic stand-ins chosen by HMAC so one patient's same value
always gets the same stand-in.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

from edge_node.deid_text import pipeline
from edge_node.deid_text.rules import HAN
from edge_node.deid_text.settings import MAX_SHIFT_DAYS, Settings
from edge_node.pipeline.deid import Pseudonymizer

__all__ = ["MAX_SHIFT_DAYS", "Result", "Settings", "deidentify", "detect"]

CHUNK_CHARS = 100_000
DEFAULT_SETTINGS = Settings()

_MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
]  # fmt: skip
_ZH_DIGITS = "〇一二三四五六七八九"


@dataclass
class Result:
    text: str
    phi: list[tuple[int, int, str]]


def guess_lang(text: str) -> str:
    sample = text[:20000]
    han = len(re.findall(f"[{HAN}]", sample))
    return "zh" if han >= max(1, len(sample) // 50) else "en"


def _chunks(text: str) -> list[tuple[int, str]]:
    """Split very long text at line ends (or spaces) into pieces of at most CHUNK_CHARS."""
    out: list[tuple[int, str]] = []
    pos = 0
    n = len(text)
    while pos < n:
        end = min(n, pos + CHUNK_CHARS)
        if end < n:
            cut = text.rfind("\n", pos + CHUNK_CHARS // 2, end)
            if cut < 0:
                cut = text.rfind(" ", pos + CHUNK_CHARS // 2, end)
            end = cut + 1 if cut >= 0 else end
        out.append((pos, text[pos:end]))
        pos = end
    return out


def detect(text: str, lang: str | None = None) -> list[tuple[int, int, str]]:
    """Identifier spans (start, end, type) in `text`, sorted and non-overlapping."""
    if not text:
        return []
    run = pipeline.runner(lang if lang in ("zh", "en") else guess_lang(text))
    if len(text) <= CHUNK_CHARS:
        return list(run(text)._.phi)
    hits: list[pipeline.Hit] = []
    for offset, piece in _chunks(text):
        for s, e, t in run(piece)._.phi:
            hits.append(pipeline.Hit(s + offset, e + offset, t, True))
    return pipeline.resolve(text, hits)


# --- dates -----------------------------------------------------------------------

_NUM_DATE = re.compile(
    r"(?P<Y>\d{4})(?P<s1>\s*[-/.年]\s*)(?P<M>\d{1,2})(?:(?P<s2>\s*[-/.月]\s*)(?P<D>\d{1,2}))?"
    r"|(?P<D2>\d{1,2})(?P<t1>[-/.])(?P<M2>\d{1,2})(?P<t2>[-/.])(?P<Y2>\d{4}|\d{2})"
)
_MON_RE = re.compile(r"(?i)\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?")


def _days_in(y: int, m: int) -> int:
    return calendar.monthrange(y, m)[1]


def _fmt(value: int, like: str) -> str:
    return (
        str(value).zfill(len(like))
        if like.startswith("0") or (len(like) == 2 and value < 10)
        else str(value)
    )


def _month_like(m: int, like: str) -> str:
    full = _MONTHS[m - 1]
    base = (
        full
        if len(like.rstrip(".")) > 4
        else ("Sept" if m == 9 and like[:4].lower() == "sept" else full[:3])
    )
    if like.isupper():
        base = base.upper()
    return base + ("." if like.endswith(".") else "")


def shift_date(value: str, days: int) -> str | None:
    """`value` moved by `days`, written in its own format; None when not understood."""
    if re.search(f"[{_ZH_DIGITS}十]", value) and "年" in value:
        return None
    mon = _MON_RE.search(value)
    year_m = re.search(r"(?<!\d)(\d{4})(?!\d)", value)
    if mon:
        month = [m.lower()[:3] for m in _MONTHS].index(mon.group(1).lower()) + 1
        rest = value[: mon.start()] + " " * (mon.end() - mon.start()) + value[mon.end() :]
        day_m = None
        for m in re.finditer(r"(?<!\d)(\d{1,2})(?!\d)(?:st|nd|rd|th)?", rest):
            if not re.match(r"\s*[:：]", rest[m.end() :]) and not (
                m.start() > 0 and rest[m.start() - 1] in ":："
            ):
                day_m = m
                break
        year = int(year_m.group(1)) if year_m else 2001
        if day_m is None:
            new = date(year, month, 15) + timedelta(days=days)
            out = value[: mon.start()] + _month_like(new.month, mon.group()) + value[mon.end() :]
            return out.replace(year_m.group(1), str(new.year)) if year_m else out
        day = int(day_m.group(1))
        if day > _days_in(year, month):
            return None
        new = date(year, month, day) + timedelta(days=days)
        pieces = [
            (mon.start(), mon.end(), _month_like(new.month, mon.group())),
            (day_m.start(1), day_m.end(1), _fmt(new.day, day_m.group(1))),
        ]
        if year_m:
            pieces.append((year_m.start(1), year_m.end(1), str(new.year)))
        return _splice(value, pieces)
    zh = re.search(r"(?<!\d)(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]", value)
    if zh and not re.search(r"\d\s*年", value):
        month, day = int(zh.group(1)), int(zh.group(2))
        if not (1 <= month <= 12 and 1 <= day <= _days_in(2001, month)):
            return None
        new = date(2001, month, day) + timedelta(days=days)
        return _splice(
            value,
            [
                (zh.start(1), zh.end(1), _fmt(new.month, zh.group(1))),
                (zh.start(2), zh.end(2), _fmt(new.day, zh.group(2))),
            ],
        )
    num = _NUM_DATE.search(value)
    if num is None:
        if re.fullmatch(r"\d{8}", value):
            try:
                d = date(int(value[:4]), int(value[4:6]), int(value[6:])) + timedelta(days=days)
            except ValueError:
                return None
            return d.strftime("%Y%m%d")
        return None
    if num.group("Y"):
        y, mo = int(num.group("Y")), int(num.group("M"))
        d_s = num.group("D")
        if not 1 <= mo <= 12:
            return None
        if d_s is None:
            new = date(y, mo, 15) + timedelta(days=days)
            return _splice(
                value,
                [
                    (num.start("Y"), num.end("Y"), str(new.year)),
                    (num.start("M"), num.end("M"), _fmt(new.month, num.group("M"))),
                ],
            )
        if not 1 <= int(d_s) <= _days_in(y, mo):
            return None
        new = date(y, mo, int(d_s)) + timedelta(days=days)
        return _splice(
            value,
            [
                (num.start("Y"), num.end("Y"), str(new.year)),
                (num.start("M"), num.end("M"), _fmt(new.month, num.group("M"))),
                (num.start("D"), num.end("D"), _fmt(new.day, d_s)),
            ],
        )
    a, b, y_s = int(num.group("D2")), int(num.group("M2")), num.group("Y2")
    y = int(y_s) + (2000 if len(y_s) == 2 and int(y_s) < 50 else 1900 if len(y_s) == 2 else 0)
    # Day-first unless impossible (the notes here are mostly day-first).
    day, month, swapped = (a, b, False) if b <= 12 else (b, a, True)
    if not (1 <= month <= 12 and 1 <= day <= _days_in(y, month)):
        return None
    new = date(y, month, day) + timedelta(days=days)
    year_out = str(new.year) if len(y_s) == 4 else str(new.year)[2:]
    first, second = (new.month, new.day) if swapped else (new.day, new.month)
    return _splice(
        value,
        [
            (num.start("D2"), num.end("D2"), _fmt(first, num.group("D2"))),
            (num.start("M2"), num.end("M2"), _fmt(second, num.group("M2"))),
            (num.start("Y2"), num.end("Y2"), year_out),
        ],
    )


def _splice(value: str, pieces: list[tuple[int, int, str]]) -> str:
    out = value
    for s, e, new in sorted(pieces, reverse=True):
        out = out[:s] + new + out[e:]
    return out


# --- surrogates ------------------------------------------------------------------

_ZH_SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜"
_ZH_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力"
_EN_GIVEN = ["Alex", "Sam", "Jordan", "Casey", "Morgan", "Taylor", "Robin", "Jamie", "Chris", "Pat"]
_EN_SURNAMES = [
    "Archer",
    "Bishop",
    "Carver",
    "Dalton",
    "Ellery",
    "Fenwick",
    "Garland",
    "Hale",
    "Irving",
    "Keane",
]


def _digits_like(value: str, pick: bytes, keep_prefix: int = 0) -> str:
    out = []
    k = 0
    for i, c in enumerate(value):
        if c.isdigit() and i >= keep_prefix:
            out.append(str(pick[k % len(pick)] % 10))
            k += 1
        elif c.isalpha() and c.isascii() and i >= keep_prefix:
            base = "A" if c.isupper() else "a"
            out.append(chr(ord(base) + pick[k % len(pick)] % 26))
            k += 1
        else:
            out.append(c)
    return "".join(out)


def surrogate(kind: str, value: str, mac: bytes) -> str:
    """A realistic stand-in for `value`, chosen by the bytes of `mac`."""
    is_zh = bool(re.search(f"[{HAN}]", value))
    if kind == "NAME":
        if is_zh:
            given = "".join(_ZH_GIVEN[b % len(_ZH_GIVEN)] for b in mac[1 : max(2, len(value))])
            return _ZH_SURNAMES[mac[0] % len(_ZH_SURNAMES)] + given[: max(1, len(value) - 1)]
        words = value.replace(",", " ").split()
        if len(words) == 1:
            s = _EN_SURNAMES[mac[0] % len(_EN_SURNAMES)]
            return s.upper() if value.isupper() else s
        g, s = _EN_GIVEN[mac[1] % len(_EN_GIVEN)], _EN_SURNAMES[mac[0] % len(_EN_SURNAMES)]
        if "," in value:
            return f"{s.upper() if words[0].isupper() else s}, {g}"
        return f"{g} {s}"
    if kind == "ID_NUMBER":
        out = _digits_like(value, mac, keep_prefix=0)
        digits = re.sub(r"[\s-]", "", out)
        if len(digits) == 18 and digits[:17].isdigit():
            weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
            check = "10X98765432"[
                sum(int(d) * w for d, w in zip(digits[:17], weights, strict=True)) % 11
            ]
            out = out[:-1] + check
        return out
    if kind == "PHONE":
        lead = re.match(r"[+(（\s]*(?:86[\s-]?)?[01]?", value)
        return _digits_like(value, mac, keep_prefix=lead.end() if lead else 0)
    if kind in ("MRN", "DEVICE_ID", "OTHER"):
        return _digits_like(value, mac)
    if kind == "EMAIL":
        return f"user{mac[:3].hex()}@example.org"
    if kind == "URL":
        return "https://example.org/"
    if kind == "IP":
        return f"192.0.2.{mac[0] % 254 + 1}"
    if kind == "ADDRESS":
        if is_zh:
            return f"某市某区{_ZH_SURNAMES[mac[0] % len(_ZH_SURNAMES)]}家路{mac[1] % 200 + 1}号"
        return f"{mac[1] % 200 + 1} {_EN_SURNAMES[mac[0] % len(_EN_SURNAMES)]} Street"
    if kind == "AGE":
        return "90岁以上" if is_zh else "90+"
    if kind == "ORGANIZATION":
        return "某单位" if is_zh else "an employer"
    return f"[{kind}]"


def deidentify(
    text: str,
    *,
    lang: str | None,
    patient_key: str,
    pseudonymizer: Pseudonymizer,
    settings: Settings = DEFAULT_SETTINGS,
) -> Result:
    """Detect and replace identifiers in one note."""
    spans = detect(text, lang)
    shift = pseudonymizer.date_shift_days(patient_key, settings.max_shift_days)
    parts: list[str] = []
    pos = 0
    for s, e, kind in spans:
        parts.append(text[pos:s])
        value = text[s:e]
        if kind == "DATE":
            new = shift_date(value, shift)
            parts.append(new if new is not None else "[DATE]")
        elif settings.surrogates:
            parts.append(
                surrogate(
                    kind,
                    value,
                    bytes.fromhex(
                        pseudonymizer.pseudonym(
                            "deid_text_surrogate", f"{patient_key}\x1e{kind}\x1e{value}"
                        )
                    ),
                )
            )
        else:
            parts.append(f"[{kind}]")
        pos = e
    parts.append(text[pos:])
    return Result("".join(parts), spans)
