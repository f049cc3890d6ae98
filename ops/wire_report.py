"""What crossed the edge–hub channel, from a wire capture (`protocol.capture`).

`summarise` counts messages and bytes per message type and direction, as the hub
saw them (every request that reached it and every reply it sent); the edges'
own records cross-check it. `check_no_patient_rows` looks through every captured
message, decoded, for the edges' person pseudonyms and for anything shaped like
a table of records. Neither prints or returns a message's content: only counts,
sites and message positions.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from google.protobuf import message_factory
from google.protobuf.message import DecodeError, Message
from rich.table import Table

from protocol.capture import REQUEST, RESPONSE, STATUS, CapturedMessage
from protocol.generated import oncofed_federation_pb2 as pb
from shared_cdm.db import make_engine

EDGE_HUB = pb.DESCRIPTOR.services_by_name["EdgeHub"]
HUB_SIDE = "hub"
TO_HUB, TO_EDGE = "edge → hub", "hub → edge"
# A JSON list of at least this many objects with the same keys reads as rows of a table.
RECORD_LIST_MIN = 5
_HEX_TOKEN = re.compile(rb"[0-9a-fA-F]{32}")


@dataclass(frozen=True)
class WireLine:
    method: str  # "PullTasks"
    message: str  # "PullTasksRequest"
    direction: str  # TO_HUB or TO_EDGE
    count: int
    bytes: int


@dataclass(frozen=True)
class WireSummary:
    lines: tuple[WireLine, ...]
    vantage: str  # whose records the lines count: "hub", or "edges" without hub records
    edge_requests: int  # requests the edges recorded sending
    edge_replies: int  # replies the edges recorded getting
    failed_calls: int  # calls an edge saw fail (a status instead of a reply)
    sides: tuple[str, ...]

    @property
    def messages(self) -> int:
        return sum(line.count for line in self.lines)

    @property
    def bytes(self) -> int:
        return sum(line.bytes for line in self.lines)


def method_name(message: CapturedMessage) -> str:
    return message.method.rsplit("/", 1)[-1]


def message_type(method: str, direction: str) -> str:
    """The protobuf type of a request or reply of an EdgeHub method."""
    found = EDGE_HUB.methods_by_name.get(method)
    if found is None:
        return f"{method} ({direction})"
    return str(found.input_type.name if direction == REQUEST else found.output_type.name)


def summarise(messages: Sequence[CapturedMessage]) -> WireSummary:
    """Per (method, direction): how many messages and bytes crossed.

    Each message is recorded at both ends; the hub's record is counted once. A
    capture without hub records (the hub ran without the variable) counts the
    edges' successful calls instead.
    """
    edge = [m for m in messages if m.side != HUB_SIDE]
    hub = [m for m in messages if m.side == HUB_SIDE and m.direction in (REQUEST, RESPONSE)]
    vantage = HUB_SIDE
    counted = hub
    if not hub:
        vantage = "edges"
        counted = [m for m in edge if m.direction in (REQUEST, RESPONSE)]
    counts: Counter[tuple[str, str]] = Counter()
    sizes: Counter[tuple[str, str]] = Counter()
    for m in counted:
        key = (method_name(m), m.direction)
        counts[key] += 1
        sizes[key] += len(m.data)
    order = {name: i for i, name in enumerate(EDGE_HUB.methods_by_name)}
    keys = sorted(counts, key=lambda k: (order.get(k[0], len(order)), k[0], k[1] != REQUEST))
    lines = tuple(
        WireLine(
            method=method,
            message=message_type(method, direction),
            direction=TO_HUB if direction == REQUEST else TO_EDGE,
            count=counts[(method, direction)],
            bytes=sizes[(method, direction)],
        )
        for method, direction in keys
    )
    return WireSummary(
        lines=lines,
        vantage=vantage,
        edge_requests=sum(m.direction == REQUEST for m in edge),
        edge_replies=sum(m.direction == RESPONSE for m in edge),
        failed_calls=sum(m.direction == STATUS for m in edge),
        sides=tuple(sorted({m.side for m in messages})),
    )


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def wire_table(summary: WireSummary) -> Table:
    table = Table(title=f"EdgeHub messages (counted at the {summary.vantage})")
    for column in ("method", "message type", "direction", "messages", "bytes"):
        table.add_column(column, justify="right" if column in ("messages", "bytes") else "left")
    for line in summary.lines:
        table.add_row(
            line.method, line.message, line.direction, str(line.count), _human(line.bytes)
        )
    table.add_section()
    table.add_row("[bold]total[/bold]", "", "", str(summary.messages), _human(summary.bytes))
    return table


# --- no patient-level content ---


@dataclass(frozen=True)
class PatientCheck:
    persons: Mapping[str, int]  # site -> persons in its analysis database
    messages: int  # messages looked through
    pseudonym_hits: tuple[str, ...]  # "message #k (...): a pseudonym of site S", never the value
    record_lists: tuple[str, ...]  # "message #k (...): a list of N records"
    undecodable: tuple[str, ...]  # messages that did not parse as their type

    @property
    def clean(self) -> bool:
        return not (self.pseudonym_hits or self.record_lists or self.undecodable)

    def statement(self) -> str:
        total = sum(self.persons.values())
        sites = len(self.persons)
        if self.clean:
            return (
                f"No patient-level content crossed: none of the {self.messages} captured records "
                f"(each message is recorded at both ends) carries any of the {total} person "
                f"pseudonyms of the {sites} sites' analysis databases, "
                f"and none carries a list of records (rows); only aggregates, model updates and "
                f"control messages."
            )
        problems = [*self.pseudonym_hits, *self.record_lists, *self.undecodable]
        return f"PATIENT-LEVEL CONTENT FOUND in {len(problems)} place(s): " + "; ".join(
            problems[:10]
        )


def load_pseudonyms(analysis_db_url: str) -> set[str]:
    """The person pseudonyms (`person.person_source_value`) of one analysis database."""
    engine = make_engine(analysis_db_url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("person"):
                return set()
            rows = conn.execute(sa.text("SELECT person_source_value FROM person"))
            return {str(r[0]).lower() for r in rows if r[0]}
    finally:
        engine.dispose()


def decode(message: CapturedMessage) -> Message | None:
    """The message parsed as its EdgeHub type; None for a status text or an unknown method."""
    method = EDGE_HUB.methods_by_name.get(method_name(message))
    if method is None or message.direction not in (REQUEST, RESPONSE):
        return None
    kind = method.input_type if message.direction == REQUEST else method.output_type
    return message_factory.GetMessageClass(kind).FromString(message.data)


def _values(value: Any) -> Iterator[Any]:
    """Every scalar of a protobuf message at any depth; JSON held in bytes, parsed."""
    if isinstance(value, Message):
        for _, inner in value.ListFields():
            yield from _values(inner)
    elif isinstance(value, bytes):
        try:
            yield json.loads(value.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            yield value
    elif isinstance(value, str | int | float | bool) or value is None:
        yield value
    elif hasattr(value, "items"):
        for key, inner in value.items():
            yield key
            yield from _values(inner)
    elif isinstance(value, Iterable):
        for inner in value:
            yield from _values(inner)


def _json_nodes(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, Mapping):
        for inner in value.values():
            yield from _json_nodes(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _json_nodes(inner)


def largest_record_list(value: Any) -> int:
    """The length of the longest JSON list of objects that share their keys (0: none)."""
    longest = 0
    for node in _json_nodes(value):
        records = isinstance(node, list) and node and all(isinstance(x, Mapping) for x in node)
        if records and len({frozenset(x) for x in node}) == 1:
            longest = max(longest, len(node))
    return longest


def _texts(value: Any) -> Iterator[bytes]:
    for node in _json_nodes(value):
        if isinstance(node, str):
            yield node.encode("utf-8", "replace")
        elif isinstance(node, bytes):
            yield node
        elif isinstance(node, Mapping):
            yield from (str(k).encode("utf-8", "replace") for k in node)


def check_no_patient_rows(
    messages: Sequence[CapturedMessage],
    pseudonyms: Mapping[str, Collection[str]],
    *,
    record_list_min: int = RECORD_LIST_MIN,
) -> PatientCheck:
    """Look through every message, raw and decoded, for patient-level content."""
    owner = {p.lower(): site for site, listed in pseudonyms.items() for p in listed}
    hits: list[str] = []
    lists: list[str] = []
    broken: list[str] = []
    for k, message in enumerate(messages):
        where = f"message #{k} ({message.side}, {method_name(message)} {message.direction})"
        try:
            parsed = decode(message)
        except DecodeError:
            broken.append(f"{where}: does not parse as its message type")
            parsed = None
        values = list(_values(parsed)) if parsed is not None else []
        chunks = [message.data, *(t for v in values for t in _texts(v))]
        found = {
            owner[token.decode("ascii").lower()]
            for chunk in chunks
            for token in _HEX_TOKEN.findall(chunk)
            if token.decode("ascii").lower() in owner
        }
        hits += [f"{where}: a person pseudonym of site {site}" for site in sorted(found)]
        longest = max((largest_record_list(v) for v in values), default=0)
        if longest >= record_list_min:
            lists.append(f"{where}: a list of {longest} records")
    return PatientCheck(
        persons={site: len(listed) for site, listed in pseudonyms.items()},
        messages=len(messages),
        pseudonym_hits=tuple(hits),
        record_lists=tuple(lists),
        undecodable=tuple(broken),
    )
