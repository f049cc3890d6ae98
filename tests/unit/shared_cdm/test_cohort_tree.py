"""The cohort tree: parsing, JSON paths in errors, limits, canonical JSON out."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from shared_cdm.cohort import (
    MAX_DEPTH,
    MAX_LEAVES,
    Comparator,
    Condition,
    Event,
    Group,
    GroupOp,
    Node,
    Window,
    dump_tree,
    parse_tree,
)
from shared_cdm.errors import InvalidInput

DOCS = Path(__file__).resolve().parents[3] / "docs" / "cohort-query.md"

AGE_60 = {"field": "age", "op": ">=", "value": 60}
C34 = {"event": "diagnosis", "field": "code", "op": "starts_with", "value": "C34"}


def test_leaf_condition_parses_to_typed_model() -> None:
    node = parse_tree(AGE_60)
    assert node == Condition(field="age", op=Comparator.GE, value=60)
    assert isinstance(node, Condition) and isinstance(node.value, int)


def test_nested_groups_parse_with_children_in_order() -> None:
    tree = {
        "all": [
            AGE_60,
            {"any": [C34, {"at_least": 2, "of": [AGE_60, AGE_60, C34], "negate": True}]},
        ]
    }
    node = parse_tree(tree)
    assert isinstance(node, Group) and node.op is GroupOp.ALL
    inner = node.children[1]
    assert isinstance(inner, Group) and inner.op is GroupOp.ANY
    at_least = inner.children[1]
    assert isinstance(at_least, Group)
    assert (at_least.op, at_least.n, at_least.negate) == (GroupOp.AT_LEAST, 2, True)
    assert isinstance(inner.children[0], Event)


def test_event_leaf_keeps_window_count_confidence_and_where() -> None:
    node = parse_tree(
        {
            **C34,
            "window": {"from_days": -30, "to_days": 365},
            "min_count": 2,
            "min_confidence": 0.8,
            "where": {"field": "concept_id", "op": "not_null"},
        }
    )
    assert isinstance(node, Event)
    assert node.window == Window(from_days=-30, to_days=365)
    assert (node.min_count, node.min_confidence) == (2, 0.8)
    assert node.where == Condition(field="concept_id", op=Comparator.NOT_NULL)


def test_event_without_condition_means_any_event_of_that_kind() -> None:
    node = parse_tree({"event": "death"})
    assert isinstance(node, Event) and node.field is None and node.op is None


def test_explicit_group_form_equals_canonical_form() -> None:
    explicit = {
        "op": "and",
        "children": [
            AGE_60,
            {"op": "at_least", "n": 1, "children": [C34]},
            {"op": "or", "children": [AGE_60], "negate": True},
        ],
    }
    canonical = {"all": [AGE_60, {"at_least": 1, "of": [C34]}, {"any": [AGE_60], "negate": True}]}
    assert parse_tree(explicit) == parse_tree(canonical)
    assert dump_tree(parse_tree(explicit)) == canonical


def test_dump_is_canonical_and_round_trips() -> None:
    tree: dict[str, Any] = {
        "any": [
            {"field": "stage", "op": "in", "value": ["III", "IV"]},
            {"field": "x", "op": "=", "value": 0},
            {"field": "flag", "op": "=", "value": False, "negate": True},
            {**C34, "window": {"to_days": 90}, "min_count": 3},
        ]
    }
    node = parse_tree(tree)
    assert dump_tree(node) == tree  # defaults dropped, 0 and false kept
    assert parse_tree(json.loads(json.dumps(dump_tree(node)))) == node
    assert json.loads(node.model_dump_json()) == tree


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (
            {"all": [AGE_60, {"any": [{"field": "age", "op": "=>", "value": 1}]}]},
            "where.all[1].any[0]: unknown comparator '=>'",
        ),
        (
            {"any": [AGE_60, AGE_60, {"field": "age", "op": "between", "value": [1]}]},
            "where.any[2]: 'between' needs [low, high]",
        ),
        ({"all": []}, "where: 'all' is empty; a group needs at least one condition"),
        (
            {"any": [{"at_least": 3, "of": [AGE_60, C34]}]},
            "where.any[0]: 'at_least' is 3 but the group has only 2",
        ),
        ({"at_least": 0, "of": [AGE_60]}, "where: 'at_least' must be 1 or more, not 0"),
        ({"all": [{"feild": "age", "op": "=", "value": 1}]}, "where.all[0]: unknown key 'feild'"),
        ({"all": [AGE_60, [AGE_60]]}, "where.all[1]: expected a condition object, got a list"),
        (
            {"field": "age", "op": "=", "value": [1, 2]},
            "where: '=' needs a single value, not a list",
        ),
        ({"field": "age", "op": "in", "value": []}, "where: 'in' needs a non-empty list of values"),
        ({"field": "age", "op": "is_null", "value": 3}, "where: 'is_null' takes no value"),
        ({"field": "age", "op": ">"}, "where: '>' needs a value"),
        ({"field": "s", "op": "like", "value": 5}, "where: 'like' needs a non-empty string"),
        ({"field": "s", "op": "like", "value": "50\\"}, "where: 'like' pattern ends with a lone"),
        ({"field": "age", "op": "between", "value": [9, 1]}, "'between' has low 9 above high 1"),
        ({"all": [AGE_60], "any": [AGE_60]}, "where: a group has exactly one of 'all', 'any'"),
        ({"all": [{**AGE_60, "negate": "yes"}]}, "where.all[0]: 'negate' must be true or false"),
        ({"any": [{**C34, "min_count": 0}]}, "where.any[0]: 'min_count' must be a whole number"),
        ({**C34, "min_confidence": 1.5}, "'min_confidence' must be a number from 0 to 1"),
        ({**C34, "window": {"from_days": 10, "to_days": -10}}, "'window' starts after it ends"),
        ({**C34, "window": {}}, "where: 'window' needs 'from_days' or 'to_days'"),
        ({**C34, "window": {"to_days": "90"}}, "'window.to_days' must be a whole number of days"),
        ({"event": "diagnosis", "field": "code"}, "where: an event's 'field' and 'op' go together"),
        (
            {"event": "measurement", "where": {"all": [AGE_60, C34]}},
            "where.where.all[1]: an event's 'where' cannot hold another event",
        ),
        (
            {"op": "xor", "children": [AGE_60]},
            "where: group 'op' must be 'and', 'or' or 'at_least'",
        ),
        ({"at_least": 1}, "where: an 'at_least' group needs its conditions in 'of'"),
        ({"field": "", "op": "=", "value": 1}, "where: a condition needs 'field'"),
        ({"field": "x", "op": "=", "value": {"a": 1}}, "'=' needs a single value, not an object"),
        ("age >= 60", "where: expected a condition object, got a string"),
    ],
)
def test_malformed_tree_names_the_node_by_json_path(tree: object, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_tree(tree)
    assert str(caught.value).startswith(message) or message in str(caught.value), str(caught.value)
    assert caught.value.code == "invalid_input"


def test_error_path_prefix_can_be_chosen() -> None:
    with pytest.raises(InvalidInput, match=r"^query\.where\.any\[0\]: unknown comparator"):
        parse_tree({"any": [{"field": "a", "op": "~", "value": 1}]}, path="query.where")


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = AGE_60
    for _ in range(depth - 1):
        node = {"all": [node]}
    return node


def test_depth_limit_is_exact() -> None:
    parse_tree(_nested(MAX_DEPTH))
    with pytest.raises(InvalidInput, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_tree(_nested(MAX_DEPTH + 1))


def test_leaf_limit_is_exact() -> None:
    parse_tree({"any": [AGE_60] * MAX_LEAVES})
    with pytest.raises(
        InvalidInput, match=rf"where\.any\[{MAX_LEAVES}\]: .* more than {MAX_LEAVES}"
    ):
        parse_tree({"any": [AGE_60] * (MAX_LEAVES + 1)})


def test_conditions_inside_event_where_count_as_leaves() -> None:
    half = MAX_LEAVES // 2
    event = {"event": "measurement", "where": {"all": [AGE_60] * half}}
    with pytest.raises(InvalidInput, match="more than"):
        parse_tree({"any": [event, event]})  # 2 events + 2 * half conditions


def test_value_types_survive_parsing() -> None:
    node = parse_tree(
        {
            "all": [
                {"field": "a", "op": "=", "value": True},
                {"field": "a", "op": "=", "value": 1},
                {"field": "a", "op": "=", "value": 1.5},
                {"field": "a", "op": "=", "value": "2020-01-31"},
            ]
        }
    )
    assert isinstance(node, Group)
    values = [child.value for child in node.children if isinstance(child, Condition)]
    assert [type(v) for v in values] == [bool, int, float, str]


def test_models_validate_when_used_as_a_pydantic_field() -> None:
    adapter: TypeAdapter[Node] = TypeAdapter(Node)
    node = adapter.validate_python({"any": [AGE_60, C34]})
    assert node == parse_tree({"any": [AGE_60, C34]})
    with pytest.raises(ValidationError, match="unknown comparator"):
        adapter.validate_python({"any": [{"field": "a", "op": "=>", "value": 1}]})
    with pytest.raises(ValidationError, match="not other events"):
        Event(event="measurement", where=Event(event="diagnosis"))


def test_models_are_frozen() -> None:
    node = parse_tree(AGE_60)
    with pytest.raises(ValidationError):
        setattr(node, "value", 70)  # noqa: B010 - the assignment itself is under test


def _doc_json_blocks() -> list[str]:
    return re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_every_json_example_in_the_docs_parses_and_round_trips() -> None:
    blocks = _doc_json_blocks()
    assert len(blocks) >= 4
    for block in blocks:
        node = parse_tree(json.loads(block))
        assert parse_tree(dump_tree(node)) == node, block
