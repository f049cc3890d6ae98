"""The site's release policy: which analyses run on their own, which wait for the
operator, which are refused, and the minimum cell size disclosure control enforces.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared_cdm.errors import InvalidInput


class Decision(StrEnum):
    AUTO = "auto"  # run as soon as it arrives
    MANUAL = "manual"  # wait for the site operator's approval
    DENY = "deny"  # answer REFUSED without running


DEFAULT_MIN_CELL_SIZE = 5

DEFAULT_POLICY_TOML = """\
# What this site releases. Edit, then restart `oncofed-edge run`.

# Counts below this are never released (they become "suppressed").
min_cell_size = 5

# Minimum and maximum are single patients' values: withheld unless true.
release_extremes = false

# analysis name = "auto" (run at once) | "manual" (operator approves) | "deny".
# An analysis not listed here needs the operator's approval.
[analyses]
count = "auto"
describe = "auto"
kaplan_meier = "manual"
logrank = "manual"
cox = "manual"
logistic = "manual"
"""


@dataclass(frozen=True)
class Policy:
    min_cell_size: int = DEFAULT_MIN_CELL_SIZE
    analyses: Mapping[str, Decision] = field(
        default_factory=lambda: MappingProxyType(
            {"count": Decision.AUTO, "describe": Decision.AUTO}
        )
    )
    release_extremes: bool = False

    def decision_for(self, analysis: str) -> Decision:
        return self.analyses.get(analysis, Decision.MANUAL)


class _PolicyFile(BaseModel):
    """The file's shape; strict so that `min_cell_size = "5"` is an error, not a guess."""

    model_config = ConfigDict(extra="forbid", strict=True)

    min_cell_size: int = Field(DEFAULT_MIN_CELL_SIZE, ge=1, le=10_000)
    release_extremes: bool = False
    analyses: dict[str, Decision] = Field(default_factory=dict)


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
    return Policy(
        min_cell_size=parsed.min_cell_size,
        analyses=MappingProxyType(dict(parsed.analyses)),
        release_extremes=parsed.release_extremes,
    )


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
    """The policy in `path`; a missing file means the defaults (auto count/describe)."""
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
        f"release_extremes = {str(policy.release_extremes).lower()}",
        "analyses (not listed: manual):",
    ]
    lines += [f"  {name} = {decision.value}" for name, decision in sorted(policy.analyses.items())]
    return lines
