"""Our side of the wire: typed values the rest of the code uses.

Generated protobuf classes never leave `protocol`; `protocol.serde` converts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, order=True)
class ProtocolVersion:
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def compatible_with(self, other: ProtocolVersion) -> bool:
        """Same major version: minor versions only add optional fields."""
        return self.major == other.major


PROTOCOL_VERSION = ProtocolVersion(1, 0)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: str  # "flat" or "cdm"
    version: str
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Registration:
    software_version: str
    cdm_version: str
    datasets: tuple[DatasetInfo, ...] = ()
    protocol: ProtocolVersion = PROTOCOL_VERSION


@dataclass(frozen=True)
class RegistrationAck:
    node_name: str
    heartbeat_interval_s: int
    protocol: ProtocolVersion = PROTOCOL_VERSION


@dataclass(frozen=True)
class TaskAssignment:
    """One unit of work for one site: an analysis step over one dataset."""

    task_id: str
    study_id: str
    round: int
    analysis: str
    dataset: str
    spec: Mapping[str, Any]
    requester: str
    created_at: datetime
    deadline: datetime | None = None


class ResultStatus(StrEnum):
    OK = "ok"
    REFUSED = "refused"  # policy or disclosure control said no
    FAILED = "failed"  # the site could not compute it


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    status: ResultStatus
    payload: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""
    disclosure: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubmitAck:
    accepted: bool
    duplicate: bool
