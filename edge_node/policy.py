"""The site's release policy: which analyses run on their own, which wait for the
operator, which are refused, and the limits disclosure control and the ledger enforce.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_node.pipeline.deid import DeidPolicy
from shared_cdm.errors import InvalidInput


class Decision(StrEnum):
    AUTO = "auto"  # run as soon as it arrives
    MANUAL = "manual"  # wait for the site operator's approval
    DENY = "deny"  # answer REFUSED without running


DifferencingScope = Literal["requester", "all"]

DEFAULT_MIN_CELL_SIZE = 5
# The coordinating center sets the minimum sites per result (3 for count and
# describe by default); a site adds its own only when it wants more.
DEFAULT_MIN_SITES = 1
# Aggregate analyses behind this site's disclosure control run without an operator
# (DataSHIELD's model); anything else waits for approval.
AGGREGATE_ANALYSES = (
    "count",
    "describe",
    "kaplan_meier",
    "logrank",
    "cox",
    "logistic",
    "crosstab",
    "ttest",
)
# Analyses a site names in its default policy although they wait for the operator:
# training a model (Flower) is approved study by study.
APPROVED_ANALYSES = ("flower",)


def _default_decisions() -> dict[str, Decision]:
    return {
        **dict.fromkeys(AGGREGATE_ANALYSES, Decision.AUTO),
        **dict.fromkeys(APPROVED_ANALYSES, Decision.MANUAL),
    }


# DataSHIELD's default: at most one parameter per three rows at a site.
DEFAULT_MAX_PARAMETERS_RATIO = 0.3333
DEFAULT_MAX_REPEATS = 10
DEFAULT_EPSILON_PER_REQUESTER = 3.0
DEFAULT_EPSILON_TOTAL = 10.0
DEFAULT_SECAGG_KEY_TTL_HOURS = 24.0

DEFAULT_POLICY_TOML = """\
# What this site releases. Edit, then restart `oncofed-edge run`.

# Counts below this are never released (they become "suppressed").
min_cell_size = 5

# Results need at least this many sites (when the hub says how many take part).
# The coordinating center's own minimum (3 for count and describe) applies
# anyway; raise this to require more sites than the center does.
min_sites = 1

# Minimum and maximum are single patients' values: withheld unless true.
release_extremes = false

# Exact Kaplan-Meier, log-rank and pooled Cox release per-time vectors only
# masked by secure aggregation; false refuses every round that needs it.
allow_secure_aggregation = true

# ML studies (Flower): true refuses to join any study whose model updates are not
# securely aggregated (the hub would see this site's own update).
ml_requires_secure_aggregation = false

# Regressions: at most this many parameters per row at this site (DataSHIELD: 1/3).
max_parameters_ratio = 0.3333

# The disclosure ledger: refuse two cohorts whose rows differ by fewer than
# min_cell_size, asked by the same requester ("requester") or by anyone ("all");
# refuse the same question from the same requester more than max_repeats times.
differencing_scope = "requester"
max_repeats = 10

# Differential privacy (studies that ask for it): epsilon this site spends at most.
epsilon_budget_per_requester = 3.0
epsilon_budget_total = 10.0

# Secure-aggregation key pairs of a study are deleted this long after their last use.
secagg_key_ttl_hours = 24.0

# analysis name = "auto" (run at once) | "manual" (operator approves) | "deny".
# The aggregate analyses below default to "auto" when left out of this table;
# any other analysis needs the operator's approval.
[analyses]
count = "auto"
describe = "auto"
kaplan_meier = "auto"
logrank = "auto"
cox = "auto"
logistic = "auto"
crosstab = "auto"
ttest = "auto"
# ML studies (a model trained with Flower): the operator approves each one.
flower = "manual"

# How `oncofed-edge sync` de-identifies the analysis database. A change takes
# effect for rows loaded afterwards: rebuild the analysis database after editing.
[deidentification]
# "shift": every date of a patient moves by one offset, fixed per patient (keyed
# by the site secret); "keep": real dates, only where the ethics approval allows.
dates = "shift"
# The offset lies between -max_shift_days and +max_shift_days days, never 0.
max_shift_days = 180
# What of the birth date reaches the CDM: "year", "year_month" or "date".
# Month and day, when kept, are shifted like every other date.
birth = "year"
# Clinical notes: "scrubbed" copies each note's text after the free-text
# de-identifier (identifiers replaced, dates shifted like the patient's other
# dates); "omit" loads notes with an empty text. A note that cannot be scrubbed
# is quarantined, never copied as written.
note_text = "scrubbed"
# What replaces an identifier in a note: "tags" ([NAME], [PHONE]...) or
# "surrogates" (realistic stand-ins, the same one for a patient's same value).
note_identifiers = "tags"
"""


@dataclass(frozen=True)
class Policy:
    min_cell_size: int = DEFAULT_MIN_CELL_SIZE
    analyses: Mapping[str, Decision] = field(
        default_factory=lambda: MappingProxyType(_default_decisions())
    )
    release_extremes: bool = False
    min_sites: int = DEFAULT_MIN_SITES
    allow_secure_aggregation: bool = True
    ml_requires_secure_aggregation: bool = False
    max_parameters_ratio: float = DEFAULT_MAX_PARAMETERS_RATIO
    differencing_scope: DifferencingScope = "requester"
    max_repeats: int = DEFAULT_MAX_REPEATS
    epsilon_budget_per_requester: float = DEFAULT_EPSILON_PER_REQUESTER
    epsilon_budget_total: float = DEFAULT_EPSILON_TOTAL
    secagg_key_ttl_hours: float = DEFAULT_SECAGG_KEY_TTL_HOURS
    deidentification: DeidPolicy = field(default_factory=DeidPolicy)

    def decision_for(self, analysis: str) -> Decision:
        return self.analyses.get(analysis, Decision.MANUAL)

    def fingerprint(self) -> str:
        """A hash of every rule: cached answers are valid only under the same policy."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["analyses"] = {name: str(d) for name, d in sorted(self.analyses.items())}
        data["deidentification"] = self.deidentification.model_dump()
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


class _PolicyFile(BaseModel):
    """The file's shape; strict so that `min_cell_size = "5"` is an error, not a guess."""

    model_config = ConfigDict(extra="forbid", strict=True)

    min_cell_size: int = Field(DEFAULT_MIN_CELL_SIZE, ge=1, le=10_000)
    release_extremes: bool = False
    analyses: dict[str, Decision] = Field(default_factory=dict)
    min_sites: int = Field(DEFAULT_MIN_SITES, ge=1, le=1000)
    allow_secure_aggregation: bool = True
    ml_requires_secure_aggregation: bool = False
    max_parameters_ratio: float = Field(DEFAULT_MAX_PARAMETERS_RATIO, gt=0, le=1)
    differencing_scope: DifferencingScope = "requester"
    max_repeats: int = Field(DEFAULT_MAX_REPEATS, ge=1)
    epsilon_budget_per_requester: float = Field(DEFAULT_EPSILON_PER_REQUESTER, ge=0)
    epsilon_budget_total: float = Field(DEFAULT_EPSILON_TOTAL, ge=0)
    secagg_key_ttl_hours: float = Field(DEFAULT_SECAGG_KEY_TTL_HOURS, gt=0)
    deidentification: DeidPolicy = Field(default_factory=DeidPolicy)


def parse_policy(text: str, source: str = "policy") -> Policy:
    """A Policy from TOML text; InvalidInput names the offending key."""
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{source} is not valid TOML: {exc}") from exc
    # Strict mode refuses strings for enums, so decisions are converted by value here.
    decisions = raw.get("analyses")
    if isinstance(decisions, dict):
        raw["analyses"] = {k: _decision(k, v, source) for k, v in decisions.items()}
    try:
        parsed = _PolicyFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"`{'.'.join(str(p) for p in err['loc'])}`: {err['msg']}" for err in exc.errors()
        )
        raise InvalidInput(f"{source} is invalid: {problems}", code="invalid_policy") from exc
    values = parsed.model_dump()
    # A file that lists some analyses keeps the defaults for the others.
    merged = {**_default_decisions(), **parsed.analyses}
    values["analyses"] = MappingProxyType(merged)
    values["deidentification"] = parsed.deidentification  # the model, not its dump
    return Policy(**values)


def _decision(name: str, value: object, source: str) -> Decision:
    try:
        return Decision(value) if isinstance(value, str) else Decision("")
    except ValueError:
        allowed = ", ".join(f'"{d.value}"' for d in Decision)
        raise InvalidInput(
            f"{source} is invalid: `analyses.{name}` is {value!r}; use one of {allowed}",
            code="invalid_policy",
        ) from None


def load_policy(path: Path) -> Policy:
    """The policy in `path`; a missing file means the defaults."""
    if not path.exists():
        return Policy()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"policy file {path} is not UTF-8 text: {exc}") from exc
    return parse_policy(text, f"policy file {path}")


def write_default_policy(path: Path) -> bool:
    """Write the default policy unless a file is already there; True if written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEFAULT_POLICY_TOML, encoding="utf-8")
    return True


def describe_policy(policy: Policy) -> list[str]:
    """Lines a person reads in `oncofed-edge policy show`."""
    lines = [
        f"min_cell_size = {policy.min_cell_size}",
        f"min_sites = {policy.min_sites}",
        f"release_extremes = {str(policy.release_extremes).lower()}",
        f"allow_secure_aggregation = {str(policy.allow_secure_aggregation).lower()}",
        f"ml_requires_secure_aggregation = {str(policy.ml_requires_secure_aggregation).lower()}",
        f"max_parameters_ratio = {policy.max_parameters_ratio}",
        f'differencing_scope = "{policy.differencing_scope}"',
        f"max_repeats = {policy.max_repeats}",
        f"epsilon_budget_per_requester = {policy.epsilon_budget_per_requester}",
        f"epsilon_budget_total = {policy.epsilon_budget_total}",
        f"secagg_key_ttl_hours = {policy.secagg_key_ttl_hours}",
        "analyses (others: manual):",
    ]
    lines += [f"  {name} = {decision.value}" for name, decision in sorted(policy.analyses.items())]
    deid = policy.deidentification
    lines += [
        "deidentification:",
        f'  dates = "{deid.dates}"',
        f"  max_shift_days = {deid.max_shift_days}",
        f'  birth = "{deid.birth}"',
        f'  note_text = "{deid.note_text}"',
        f'  note_identifiers = "{deid.note_identifiers}"',
    ]
    return lines
