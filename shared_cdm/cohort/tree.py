"""The cohort condition tree (F10): leaves "field - comparator - value", events, nested groups.

Canonical JSON (see docs/cohort-query.md):

    {"all": [
        {"field": "age", "op": ">=", "value": 60},
        {"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C34"},
        {"at_least": 1, "of": [...]}
    ]}

`parse_tree` is the entry point for untrusted JSON: it names a bad node by its JSON
path and enforces the size limits. The models validate on their own too, so a
`Node` field in another pydantic schema is checked, but with plainer messages.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictInt,
    Tag,
    ValidationError,
    model_serializer,
    model_validator,
)

from shared_cdm.errors import InvalidInput

MAX_DEPTH = 32
MAX_LEAVES = 1000
MAX_LIST_VALUES = 1000


class Comparator(StrEnum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    IN = "in"
    NOT_IN = "not_in"
    BETWEEN = "between"
    IS_NULL = "is_null"
    NOT_NULL = "not_null"
    LIKE = "like"
    STARTS_WITH = "starts_with"
    CONTAINS = "contains"


NULL_TESTS = frozenset({Comparator.IS_NULL, Comparator.NOT_NULL})
LIST_OPS = frozenset({Comparator.IN, Comparator.NOT_IN})
TEXT_OPS = frozenset({Comparator.LIKE, Comparator.STARTS_WITH, Comparator.CONTAINS})


class GroupOp(StrEnum):
    ALL = "all"
    ANY = "any"
    AT_LEAST = "at_least"


# The explicit form {"op": "and", "children": [...]} spells the group ops this way too.
_EXPLICIT_OPS = {"and": GroupOp.ALL, "or": GroupOp.ANY, **{op.value: op for op in GroupOp}}
_GROUP_FORMS = {"all": "all", "any": "any", "at_least": "of", "children": "children"}

Scalar = bool | int | float | str
Value = Scalar | tuple[Scalar, ...] | None


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", tuple: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _is_scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int | bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_keys(data: dict[str, Any], allowed: set[str], what: str) -> None:
    for key in data:
        if key not in allowed:
            raise ValueError(f"unknown key {key!r} in {what}")


def _check_comparison(op: object, value: object) -> None:
    """The value's shape must suit the comparator."""
    if not isinstance(op, str) or op not in Comparator._value2member_map_:
        raise ValueError(f"unknown comparator {op!r}")
    comparator = Comparator(op)
    if comparator in NULL_TESTS:
        if value is not None:
            raise ValueError(f"'{op}' takes no value")
        return
    if value is None:
        raise ValueError(f"'{op}' needs a value")
    if comparator is Comparator.BETWEEN:
        if not (
            isinstance(value, list | tuple) and len(value) == 2 and all(map(_is_scalar, value))
        ):
            raise ValueError("'between' needs [low, high]")
        low, high = value
        if _is_number(low) and _is_number(high) and low > high:
            raise ValueError(f"'between' has low {low} above high {high}")
    elif comparator in LIST_OPS:
        if not isinstance(value, list | tuple) or not value:
            raise ValueError(f"'{op}' needs a non-empty list of values")
        if len(value) > MAX_LIST_VALUES:
            raise ValueError(f"'{op}' takes at most {MAX_LIST_VALUES} values")
        for item in value:
            if not _is_scalar(item):
                raise ValueError(f"'{op}' list holds {_json_type(item)}; use strings or numbers")
    elif comparator in TEXT_OPS:
        if not isinstance(value, str) or not value:
            raise ValueError(f"'{op}' needs a non-empty string")
        trailing = len(value) - len(value.rstrip("\\"))
        if comparator is Comparator.LIKE and trailing % 2:
            raise ValueError("'like' pattern ends with a lone escape character '\\'")
    elif not _is_scalar(value):
        raise ValueError(f"'{op}' needs a single value, not {_json_type(value)}")


def _check_flag(data: dict[str, Any], key: str) -> None:
    if key in data and not isinstance(data[key], bool):
        raise ValueError(f"'{key}' must be true or false")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _drop_defaults(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    # Only named keys are compared, and by type too, so `value: 0` or `value: false` survives.
    def is_default(key: str, item: Any) -> bool:
        return key in defaults and type(item) is type(defaults[key]) and item == defaults[key]

    return {
        key: item for key, item in data.items() if item is not None and not is_default(key, item)
    }


class Condition(_Model):
    """A field of the subject (or of an event, inside an event's `where`) compared to a value."""

    field: str
    op: Comparator
    value: Value = None
    negate: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        if isinstance(data, dict):
            _check_keys(data, {"field", "op", "value", "negate"}, "a condition")
            if not isinstance(data.get("field"), str) or not data["field"]:
                raise ValueError("a condition needs 'field' (a non-empty string)")
            if "op" not in data:
                raise ValueError("a condition needs 'op'")
            _check_comparison(data["op"], data.get("value"))
            _check_flag(data, "negate")
        return data

    @model_serializer(mode="wrap")
    def _canonical(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _drop_defaults(handler(self), {"negate": False})


class Window(_Model):
    """Days relative to the index date, both ends inclusive; negative is before the index."""

    from_days: StrictInt | None = None
    to_days: StrictInt | None = None

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            if isinstance(data, Window):
                return data
            raise ValueError(f"'window' must be an object, not {_json_type(data)}")
        _check_keys(data, {"from_days", "to_days"}, "'window'")
        start, end = data.get("from_days"), data.get("to_days")
        if start is None and end is None:
            raise ValueError("'window' needs 'from_days' or 'to_days'")
        for key, days in (("from_days", start), ("to_days", end)):
            if days is not None and (not isinstance(days, int) or isinstance(days, bool)):
                raise ValueError(f"'window.{key}' must be a whole number of days, not {days!r}")
        if start is not None and end is not None and start > end:
            raise ValueError(f"'window' starts after it ends ({start} > {end})")
        return data

    @model_serializer(mode="wrap")
    def _canonical(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _drop_defaults(handler(self), {})


class Event(_Model):
    """At least `min_count` events of one kind that match, dated within `window` of the index."""

    event: str
    field: str | None = None
    op: Comparator | None = None
    value: Value = None
    where: Node | None = None
    window: Window | None = None
    min_count: StrictInt = 1
    min_confidence: float | None = None
    negate: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        _check_keys(data, set(Event.model_fields), "an event")
        if not isinstance(data.get("event"), str) or not data["event"]:
            raise ValueError("'event' must name an event kind, e.g. 'diagnosis'")
        if ("field" in data) != ("op" in data):
            raise ValueError("an event's 'field' and 'op' go together")
        if "field" in data:
            if not isinstance(data["field"], str) or not data["field"]:
                raise ValueError("'field' must be a non-empty string")
            _check_comparison(data["op"], data.get("value"))
        elif data.get("value") is not None:
            raise ValueError("an event's 'value' needs 'field' and 'op'")
        count = data.get("min_count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"'min_count' must be a whole number >= 1, not {count!r}")
        confidence = data.get("min_confidence")
        if confidence is not None and not (_is_number(confidence) and 0 <= confidence <= 1):
            raise ValueError(f"'min_confidence' must be a number from 0 to 1, not {confidence!r}")
        _check_flag(data, "negate")
        return data

    @model_validator(mode="after")
    def _no_nested_events(self) -> Event:
        if self.where is not None and any(isinstance(leaf, Event) for leaf in leaves(self.where)):
            raise ValueError("an event's 'where' holds conditions on that event, not other events")
        return self

    @model_serializer(mode="wrap")
    def _canonical(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _drop_defaults(handler(self), {"negate": False, "min_count": 1})


def _group_form(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Which JSON form a group uses, as (key holding the children, normalised fields)."""
    forms = [key for key in _GROUP_FORMS if key in data]
    if len(forms) != 1:
        found = ", ".join(repr(key) for key in forms)
        raise ValueError(f"a group has exactly one of 'all', 'any', 'at_least' (found {found})")
    form = forms[0]
    allowed = {
        "all": {"all", "negate"},
        "any": {"any", "negate"},
        "at_least": {"at_least", "of", "negate"},
        "children": {"op", "n", "children", "negate"},
    }[form]
    _check_keys(data, allowed, f"an {form!r} group" if form != "children" else "a group")
    _check_flag(data, "negate")
    fields: dict[str, Any] = {"negate": data.get("negate", False)}
    if form == "children":
        op = data.get("op")
        if not isinstance(op, str) or op not in _EXPLICIT_OPS:
            raise ValueError(f"group 'op' must be 'and', 'or' or 'at_least', not {op!r}")
        fields["op"] = _EXPLICIT_OPS[op]
        fields["n"] = data.get("n")
        if fields["op"] is not GroupOp.AT_LEAST and fields["n"] is not None:
            raise ValueError(f"'n' belongs to 'at_least' groups, not {op!r}")
    else:
        fields["op"] = GroupOp(form)
        fields["n"] = data.get("at_least")
    key = _GROUP_FORMS[form]
    if key not in data:
        raise ValueError(f"an 'at_least' group needs its conditions in '{key}'")
    children = data[key]
    if not isinstance(children, list | tuple):
        raise ValueError(f"'{key}' must be a list of conditions, not {_json_type(children)}")
    if not children:
        raise ValueError(f"'{key}' is empty; a group needs at least one condition")
    if fields["op"] is GroupOp.AT_LEAST:
        n = fields["n"]
        if not isinstance(n, int) or isinstance(n, bool):
            raise ValueError(f"'at_least' needs a whole number, not {n!r}")
        if n < 1:
            raise ValueError(f"'at_least' must be 1 or more, not {n}")
        if n > len(children):
            raise ValueError(f"'at_least' is {n} but the group has only {len(children)}")
    fields["children"] = children
    return key, fields


class Group(_Model):
    """AND (`all`), OR (`any`) or "at least n of" over child nodes."""

    op: GroupOp
    n: StrictInt | None = None
    children: tuple[Node, ...]
    negate: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        return _group_form(data)[1] if isinstance(data, dict) else data

    @model_serializer(mode="wrap")
    def _canonical(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        children = handler(self)["children"]
        out: dict[str, Any]
        if self.op is GroupOp.AT_LEAST:
            out = {"at_least": self.n, "of": children}
        else:
            out = {self.op.value: children}
        if self.negate:
            out["negate"] = True
        return out


def _node_tag(data: Any) -> str | None:
    if isinstance(data, BaseModel):
        return {Condition: "condition", Event: "event", Group: "group"}.get(type(data))
    if isinstance(data, dict):
        if "event" in data:
            return "event"
        return "group" if any(key in data for key in _GROUP_FORMS) else "condition"
    return None


Node = Annotated[
    Annotated[Condition, Tag("condition")]
    | Annotated[Event, Tag("event")]
    | Annotated[Group, Tag("group")],
    Discriminator(_node_tag),
]

Event.model_rebuild()
Group.model_rebuild()


def leaves(node: Node) -> list[Condition | Event]:
    """Every leaf under `node`, conditions inside events' `where` included."""
    if isinstance(node, Group):
        return [leaf for child in node.children for leaf in leaves(child)]
    if isinstance(node, Event) and node.where is not None:
        return [node, *leaves(node.where)]
    return [node]


def dump_tree(node: Node) -> dict[str, Any]:
    """The canonical JSON form of `node`; `parse_tree(dump_tree(n)) == n`."""
    return node.model_dump(mode="json")


def parse_tree(data: object, *, path: str = "where") -> Node:
    """Validate JSON into a tree, or raise InvalidInput naming the bad node's JSON path."""
    return _Parser().parse(data, path, depth=1, in_event=False)


_M = TypeVar("_M", bound=BaseModel)


class _Parser:
    def __init__(self) -> None:
        self.leaf_count = 0

    def parse(self, data: object, path: str, *, depth: int, in_event: bool) -> Node:
        if depth > MAX_DEPTH:
            raise InvalidInput(f"{path}: the tree is nested deeper than {MAX_DEPTH} levels")
        if not isinstance(data, dict):
            raise InvalidInput(f"{path}: expected a condition object, got {_json_type(data)}")
        tag = _node_tag(data)
        if tag == "group":
            return self._group(data, path, depth=depth, in_event=in_event)
        self.leaf_count += 1
        if self.leaf_count > MAX_LEAVES:
            raise InvalidInput(f"{path}: the tree has more than {MAX_LEAVES} conditions")
        if tag == "condition":
            return _validated(Condition, data, path)
        if in_event:
            raise InvalidInput(f"{path}: an event's 'where' cannot hold another event")
        fields = dict(data)
        if data.get("where") is not None:
            fields["where"] = self.parse(
                data["where"], f"{path}.where", depth=depth + 1, in_event=True
            )
        return _validated(Event, fields, path)

    def _group(self, data: dict[str, Any], path: str, *, depth: int, in_event: bool) -> Group:
        try:
            key, fields = _group_form(data)
        except ValueError as exc:
            raise InvalidInput(f"{path}: {exc}") from None
        fields["children"] = tuple(
            self.parse(child, f"{path}.{key}[{i}]", depth=depth + 1, in_event=in_event)
            for i, child in enumerate(fields["children"])
        )
        return _validated(Group, fields, path)


def _validated(model: type[_M], data: dict[str, Any], path: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"{path}: {_message(exc)}") from None


def _message(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    cause = error.get("ctx", {}).get("error")
    if error["type"] == "value_error" and cause is not None:
        return str(cause)
    # The models' own checks come first, so this is a backstop with pydantic's wording.
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
