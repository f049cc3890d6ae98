"""The composition root: one database, the services over it, wired from settings."""

from __future__ import annotations

from dataclasses import dataclass

from federated_ml.flower.deploy import TlsFiles
from hub.db.session import Database
from hub.nodes import NodeRegistry
from hub.settings import HubSettings
from hub.studies.ml import FlowerCoordinator
from hub.studies.service import Clock, StudyService, utc_now


@dataclass(frozen=True)
class Hub:
    settings: HubSettings
    db: Database
    studies: StudyService
    nodes: NodeRegistry
    flower: FlowerCoordinator | None = None


def build_hub(settings: HubSettings, *, db: Database | None = None, clock: Clock = utc_now) -> Hub:
    """Wire the hub's services; the database is opened lazily by SQLAlchemy on first use."""
    database = db if db is not None else Database.from_url(settings.db_url)
    flower = None
    if settings.flower_enabled:
        flower = FlowerCoordinator(
            database,
            settings.home / "ml",
            TlsFiles(settings.tls_ca_cert, settings.tls_cert, settings.tls_key),
            port=settings.flower_port,
            bind_host=settings.grpc_host,  # beside the gRPC endpoint: the tunnel address
            public_host=settings.flower_public_host,
            clock=clock,
        )
    studies = StudyService(
        database,
        auto_approve=settings.auto_approve,
        task_deadline_s=settings.task_deadline_s,
        min_sites=settings.min_sites,
        clock=clock,
        ml=flower,
    )
    nodes = NodeRegistry(
        database,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        offline_after_s=settings.node_offline_after_s,
        clock=clock,
    )
    return Hub(settings=settings, db=database, studies=studies, nodes=nodes, flower=flower)
