"""Cohort search (F10): the condition tree, what it may name, and its compiler to SQL."""

from shared_cdm.cohort.compiler import cohort_select, compile_where, index_first_event
from shared_cdm.cohort.dates import age_in_years, days_between
from shared_cdm.cohort.derived import compile_derived
from shared_cdm.cohort.schema import EVENTS, CdmSchema, EventKind, FlatSchema, Schema
from shared_cdm.cohort.tree import (
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

__all__ = [
    "EVENTS",
    "MAX_DEPTH",
    "MAX_LEAVES",
    "CdmSchema",
    "Comparator",
    "Condition",
    "Event",
    "EventKind",
    "FlatSchema",
    "Group",
    "GroupOp",
    "Node",
    "Schema",
    "Window",
    "age_in_years",
    "cohort_select",
    "compile_derived",
    "compile_where",
    "days_between",
    "dump_tree",
    "index_first_event",
    "parse_tree",
]
