"""Identifiers planted in free text, and the truth of where each one is.

Real discharge summaries, pathology and imaging reports carry the patient's
name, record numbers, phone numbers, addresses, resident ID numbers, relatives
and clinicians by name, and dates. `ops.synth.texts` writes documents with such
identifiers around the unchanged clinical text; every identifier it plants is a
span of a `Doc`, and `truth_lines` turns the spans into `truth/phi.jsonl` lines.

Everything here draws from a patient's own *identity* random generator
(`identity_rng`), never from the clinical one, so the clinical content of a
seed is the same whether or not identifiers are planted.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import date

from ops.synth import people
from ops.synth.people import Name

# `type` values of truth/phi.jsonl
NAME = "NAME"
ID_NUMBER = "ID_NUMBER"
PHONE = "PHONE"
ADDRESS = "ADDRESS"
RECORD_NUMBER = "RECORD_NUMBER"
DATE = "DATE"
AGE_OVER_89 = "AGE_OVER_89"
PHI_TYPES = (NAME, ID_NUMBER, PHONE, ADDRESS, RECORD_NUMBER, DATE, AGE_OVER_89)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def identity_rng(seed: int, variant: str, index: int) -> random.Random:
    return random.Random(f"oncofed-synth/{seed}/{variant}/{index}/identity")


class Doc:
    """A text built piece by piece; `phi` pieces are remembered as spans."""

    __slots__ = ("parts", "size", "spans")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.spans: list[tuple[str, str, int, int]] = []  # type, subtype, start, end

    def add(self, text: str) -> Doc:
        self.parts.append(text)
        self.size += len(text)
        return self

    def phi(self, kind: str, subtype: str, text: str) -> Doc:
        start = self.size
        self.size = end = start + len(text)
        self.spans.append((kind, subtype, start, end))
        self.parts.append(text)
        return self

    def field(self, label: str, kind: str, subtype: str, text: str) -> Doc:
        """`label` as it is, then `text` as an identifier: `住院号：` + `A000000012`."""
        start = self.size + len(label)
        self.size = end = start + len(text)
        self.spans.append((kind, subtype, start, end))
        self.parts += (label, text)
        return self

    def mark(self, kind: str, subtype: str, start: int, end: int) -> None:
        """A span inside text already added (an age inside the clinical text)."""
        self.spans.append((kind, subtype, start, end))

    def text(self) -> str:
        return "".join(self.parts)


def truth_lines(
    text: str,
    spans: list[tuple[str, str, int, int]],
    *,
    system: str,
    table: str,
    record_id: str,
    field_name: str,
    patient_id: str,
) -> list[str]:
    """`truth/phi.jsonl` lines: offsets are Python string (code point) indices,
    `end` exclusive, so `text[start:end] == span text`."""
    # ids and names of tables and fields are plain ASCII: no escaping needed
    head = (
        f'{{"system": "{system}", "table": "{table}", "record_id": "{record_id}", '
        f'"field": "{field_name}", "patient_id": "{patient_id}"'
    )
    lines = []
    for kind, subtype, start, end in spans:
        piece = text[start:end]
        quoted = (
            f'"{piece}"'
            if '"' not in piece and "\\" not in piece
            else json.dumps(piece, ensure_ascii=False)
        )
        lines.append(
            f'{head}, "type": "{kind}", "subtype": "{subtype}", "text": {quoted}, '
            f'"start": {start}, "end": {end}}}\n'
        )
    return lines


# ---------------------------------------------------------------------------
# how dates and phone numbers are written


def date_style(rng: random.Random, variant: str) -> str:
    """One style per document: the way this writer spells dates."""
    roll = rng.random()
    if variant == "A":
        return "iso" if roll < 0.6 else "zh" if roll < 0.85 else "slash" if roll < 0.95 else "dot"
    if variant == "C":
        return (
            "zh"
            if roll < 0.6
            else "dot_short"
            if roll < 0.75
            else "iso"
            if roll < 0.9
            else "slash_short"
        )
    return (
        "dmy"
        if roll < 0.5
        else "d_mon_y"
        if roll < 0.75
        else "dd_mon_yyyy"
        if roll < 0.9
        else "iso"
    )


def format_date(day: date, style: str) -> str:
    if style == "iso":
        return day.isoformat()
    if style == "zh":
        return f"{day.year}年{day.month}月{day.day}日"
    if style == "slash":
        return f"{day.year}/{day.month:02d}/{day.day:02d}"
    if style == "slash_short":
        return f"{day.year}/{day.month}/{day.day}"
    if style == "dot":
        return f"{day.year}.{day.month:02d}.{day.day:02d}"
    if style == "dot_short":
        return f"{day.year}.{day.month}.{day.day}"
    if style == "dmy":
        return f"{day.day:02d}/{day.month:02d}/{day.year}"
    if style == "d_mon_y":
        return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"
    return f"{day.day:02d}-{_MONTHS[day.month - 1]}-{day.year}"  # dd_mon_yyyy


def format_phone(rng: random.Random, number: str, language: str) -> str:
    """An 11-digit mobile number as people write it."""
    roll = rng.random()
    a, b, c = number[:3], number[3:7], number[7:]
    if language == "zh":
        if roll < 0.5:
            return number
        if roll < 0.75:
            return f"{a}-{b}-{c}"
        return f"{a} {b} {c}" if roll < 0.9 else f"+86 {number}"
    if roll < 0.4:
        return f"{a} {b} {c}"
    if roll < 0.7:
        return f"+86 {a} {b} {c}"
    return number if roll < 0.9 else f"(+86) {a}-{b}-{c}"


def time_of_day(rng: random.Random) -> str:
    return f"{rng.randint(7, 18):02d}:{rng.randrange(60):02d}"


# ---------------------------------------------------------------------------
# who the patient is, and who treats them


@dataclass(frozen=True)
class Clinician:
    name: Name
    title: str  # a key of `TITLES`


TITLES = {  # key -> (Chinese title, English title)
    "chief": ("主任医师", "Consultant"),
    "associate_chief": ("副主任医师", "Associate Consultant"),
    "attending": ("主治医师", "Attending Physician"),
    "resident": ("住院医师", "Resident"),
    "pathologist": ("病理医师", "Pathologist"),
    "radiologist": ("放射科医师", "Radiologist"),
    "technologist": ("检验师", "Medical Technologist"),
}


@dataclass(frozen=True)
class Staff:
    """A hospital's clinicians, the same for every patient of a seed and variant."""

    chiefs: tuple[Clinician, ...]
    attendings: tuple[Clinician, ...]
    residents: tuple[Clinician, ...]
    pathologists: tuple[Clinician, ...]
    radiologists: tuple[Clinician, ...]
    technologists: tuple[Clinician, ...]

    @classmethod
    def for_hospital(cls, seed: int, variant: str, language: str) -> Staff:
        rng = random.Random(f"oncofed-synth/{seed}/{variant}/staff")

        def some(count: int, title: str) -> tuple[Clinician, ...]:
            return tuple(
                Clinician(people.any_name(rng, language, rng.random() < 0.55), title)
                for _ in range(count)
            )

        chiefs = some(4, "chief") + some(6, "associate_chief")
        return cls(
            chiefs=chiefs,
            attendings=some(16, "attending"),
            residents=some(20, "resident"),
            pathologists=some(6, "pathologist"),
            radiologists=some(8, "radiologist"),
            technologists=some(8, "technologist"),
        )

    def everyone(self) -> list[Clinician]:
        return [
            *self.chiefs,
            *self.attendings,
            *self.residents,
            *self.pathologists,
            *self.radiologists,
            *self.technologists,
        ]


@dataclass
class Relative:
    relation: str  # "spouse", "son", "daughter"
    name: Name
    phone: str


@dataclass
class Identity:
    """Everything that identifies one patient, as the hospital holds it."""

    patient_id: str
    name: Name
    male: bool
    birth: date
    resident_id: str
    phone: str
    address: str
    address_short: str  # without the province or country part
    outpatient_no: str
    relatives: list[Relative]
    chief: Clinician
    attending: Clinician
    resident: Clinician
    admission_ids: list[str] = field(default_factory=list)
    pathology_nos: list[str] = field(default_factory=list)
    accession_nos: list[str] = field(default_factory=list)

    def truth(self, duplicates: list[str]) -> dict[str, object]:
        return {
            "patient_id": self.patient_id,
            "duplicate_patient_ids": duplicates,
            "name": self.name.full,
            "name_forms": name_forms(self.name),
            "male": self.male,
            "birth_date": self.birth.isoformat(),
            "resident_id": self.resident_id,
            "phone": self.phone,
            "address": self.address,
            "outpatient_no": self.outpatient_no,
            "admission_ids": self.admission_ids,
            "pathology_nos": self.pathology_nos,
            "accession_nos": self.accession_nos,
            "relatives": [
                {"relation": r.relation, "name": r.name.full, "phone": r.phone}
                for r in self.relatives
            ],
            "clinicians": sorted(
                {self.chief.name.full, self.attending.name.full, self.resident.name.full}
            ),
        }


def name_forms(name: Name) -> list[str]:
    """The spellings of the whole name that documents use (`Jianguo Wang`,
    `WANG, Jianguo`, `J. Wang`); a surname alone (`Mr Wang`, `Dr. Wang`) is in
    phi.jsonl but not here, as it identifies no one by itself."""
    forms = [name.full, name.surname_first, name.initial_form]
    return sorted(set(forms), key=forms.index)


def honorific(name: Name) -> str:
    if name.style == "malay":
        return "Encik" if name.male else "Puan"
    return "Mr" if name.male else "Mrs"


def outpatient_no(variant: str, index: int) -> str:
    return {"A": f"MZ{index + 1:08d}", "B": f"OPD{index + 1:07d}"}.get(
        variant, f"M{index + 500001:07d}"
    )


def short_address(address: str, language: str) -> str:
    if language == "zh":
        city = address.find("市")
        province = address.find("省")
        return address[province + 1 :] if 0 <= province < city else address
    return address.rsplit(", ", 1)[0]


def with_flat(rng: random.Random, address: str, language: str) -> str:
    """A street address made complete with building, unit and flat."""
    building, floor, flat = rng.randint(1, 30), rng.randint(1, 24), rng.randint(1, 6)
    if language == "zh":
        if rng.random() < 0.6:
            return f"{address}{building}栋{rng.randint(1, 4)}单元{floor}0{flat}室"
        return f"{address}{building}号楼{floor}0{flat}室"
    return f"Flat {floor}{'ABCDEF'[flat - 1]}, Block {building}, {address}"


def make_identity(
    rng: random.Random,
    *,
    patient_id: str,
    index: int,
    variant: str,
    language: str,
    male: bool,
    birth: date,
    resident_id: str,
    phone: str,
    street_address: str,
    staff: Staff,
) -> Identity:
    name = people.any_name(rng, language, male)
    address = with_flat(rng, street_address, language)
    relatives = [
        Relative(relation, member, people.phone(rng))
        for relation, member in people.family(rng, name)
    ]
    return Identity(
        patient_id=patient_id,
        name=name,
        male=male,
        birth=birth,
        resident_id=resident_id,
        phone=phone,
        address=address,
        address_short=short_address(address, language),
        outpatient_no=outpatient_no(variant, index),
        relatives=relatives,
        chief=rng.choice(staff.chiefs),
        attending=rng.choice(staff.attendings),
        resident=rng.choice(staff.residents),
    )
