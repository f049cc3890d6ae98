"""The node registry: who is out there, what they serve, when they were last heard from."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from hub import audit
from hub.db.models import Node
from hub.db.session import Database
from protocol.messages import DatasetInfo, Registration, RegistrationAck


@dataclass(frozen=True)
class NodeView:
    name: str
    online: bool
    first_seen: datetime
    last_seen: datetime
    software_version: str
    protocol_version: str
    datasets: tuple[dict[str, Any], ...]


def _dataset_json(d: DatasetInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": d.name,
        "kind": d.kind,
        "version": d.version,
        "columns": list(d.columns),
    }
    # `DatasetInfo` has no data-quality field yet; kept when a newer protocol adds one,
    # so result envelopes can carry each site's quality summary.
    quality = getattr(d, "data_quality", None)
    if isinstance(quality, Mapping):
        out["data_quality"] = dict(quality)
    return out


class NodeRegistry:
    def __init__(
        self,
        db: Database,
        *,
        heartbeat_interval_s: int,
        offline_after_s: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._heartbeat_interval_s = heartbeat_interval_s
        self._offline_after = timedelta(seconds=offline_after_s)
        self._clock = clock

    def register(self, node: str, registration: Registration) -> RegistrationAck:
        """Upsert the node named by its certificate and record what it serves."""
        now = self._clock()
        datasets = [_dataset_json(d) for d in registration.datasets]
        with self._db.transaction() as session:
            row = session.get(Node, node, with_for_update=True)
            first = row is None
            if row is None:
                row = Node(name=node, first_seen=now)
                session.add(row)
            row.last_seen = now
            row.software_version = registration.software_version
            row.cdm_version = registration.cdm_version
            row.protocol_version = str(registration.protocol)
            row.datasets = datasets
            session.flush()
            audit.append(
                session,
                at=now,
                actor=f"node:{node}",
                action="node.registered",
                object_id=node,
                details={
                    "first_time": first,
                    "software_version": registration.software_version,
                    "protocol": str(registration.protocol),
                    "datasets": [d["name"] for d in datasets],
                },
            )
        return RegistrationAck(node_name=node, heartbeat_interval_s=self._heartbeat_interval_s)

    def touch(self, node: str) -> bool:
        """Record that the node is alive; False when it has never registered."""
        now = self._clock()
        with self._db.transaction() as session:
            updated = session.execute(
                sa.update(Node).where(Node.name == node).values(last_seen=now)
            )
            return bool(getattr(updated, "rowcount", 0))

    def list_nodes(self) -> list[NodeView]:
        now = self._clock()
        with self._db.session() as session:
            return [
                NodeView(
                    name=n.name,
                    online=now - n.last_seen <= self._offline_after,
                    first_seen=n.first_seen,
                    last_seen=n.last_seen,
                    software_version=n.software_version,
                    protocol_version=n.protocol_version,
                    datasets=tuple(n.datasets),
                )
                for n in session.scalars(sa.select(Node).order_by(Node.name))
            ]
