"""The composition root: settings in, wired databases, runner and agent out.

The agent, runner and gRPC parts are imported when first needed: they pull in the
analyses (pandas, scipy), which commands that only open the stores never use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from edge_node.ledger.service import Ledger
from edge_node.policy import Policy, load_policy
from edge_node.settings import EdgeSettings
from edge_node.store.database import open_analysis_db, open_state_db
from edge_node.store.datasets import DatasetRegistry
from edge_node.store.tasks import TaskStore

if TYPE_CHECKING:
    from edge_node.agent import EdgeAgent
    from edge_node.runner import TaskRunner
    from edge_node.secagg import SiteIdentity
    from protocol.messages import Registration


@dataclass(frozen=True)
class EdgeStores:
    state: Engine
    analysis: Engine

    @property
    def registry(self) -> DatasetRegistry:
        return DatasetRegistry(self.state)

    @property
    def tasks(self) -> TaskStore:
        return TaskStore(self.state)

    def ledger(self, policy: Policy) -> Ledger:
        return Ledger(self.state, policy)

    def registration(self) -> Registration:
        """What the hub is told, with the CDM dataset's version as it is now."""
        from edge_node.agent import registration_for
        from edge_node.cdm import refresh_cdm

        registry = self.registry
        refresh_cdm(self.analysis, registry)
        return registration_for(registry)


@contextmanager
def edge_stores(settings: EdgeSettings) -> Iterator[EdgeStores]:
    """Both databases (the state database migrated first), disposed on the way out."""
    settings.home.mkdir(parents=True, exist_ok=True)  # default SQLite files live here
    stores = EdgeStores(
        open_state_db(settings.state_db_url), open_analysis_db(settings.analysis_db_url)
    )
    try:
        yield stores
    finally:
        stores.state.dispose()
        stores.analysis.dispose()


def build_runner(
    stores: EdgeStores,
    policy: Policy,
    identity: SiteIdentity | None = None,
    settings: EdgeSettings | None = None,
) -> TaskRunner:
    from edge_node.runner import TaskRunner

    ml = None
    if settings is not None:
        from edge_node.ml.tasks import MlTasks

        ml = MlTasks(
            stores.analysis,
            stores.registry,
            settings.home,
            settings.tls_ca_cert,
            ledger=stores.ledger(policy),
            min_cell_size=policy.min_cell_size,
            require_secure_aggregation=policy.ml_requires_secure_aggregation,
        )
    return TaskRunner.create(stores.analysis, stores.state, policy, identity, ml=ml)


@contextmanager
def edge_agent(settings: EdgeSettings) -> Iterator[EdgeAgent]:
    """The agent wired to the hub over mutual TLS; the channel is closed on the way out."""
    import grpc

    from edge_node.agent import EdgeAgent
    from edge_node.hub_client import HubClient, open_channel
    from edge_node.secagg import SiteIdentity

    policy = load_policy(settings.policy_file)
    # Read now: a missing file is named here, not at the first RPC; the same certificate
    # signs this site's secure-aggregation keys.
    identity = SiteIdentity.from_files(settings.site_name, settings.tls_files)
    with edge_stores(settings) as stores:
        channel: grpc.Channel = open_channel(settings)
        runner: TaskRunner | None = None
        try:
            runner = build_runner(stores, policy, identity, settings)
            yield EdgeAgent(
                client=HubClient.for_channel(channel, settings),
                tasks=stores.tasks,
                runner=runner,
                housekeeping=runner.housekeeping,
                on_start=runner.ml.resume if runner.ml is not None else None,
                on_stop=runner.close,
                registration=stores.registration,
                poll_interval_s=settings.poll_interval_s,
                max_tasks=settings.max_tasks_per_pull,
            )
        finally:
            if runner is not None:
                runner.close()  # also when the agent failed: no SuperNode is left running
            channel.close()
