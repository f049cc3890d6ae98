"""The composition root: settings in, wired databases, runner and agent out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
from sqlalchemy import Engine

from edge_node.agent import EdgeAgent, registration_for
from edge_node.hub_client import HubClient, open_channel
from edge_node.policy import Policy, load_policy
from edge_node.runner import TaskRunner
from edge_node.settings import EdgeSettings
from edge_node.store.database import open_analysis_db, open_state_db
from edge_node.store.datasets import DatasetRegistry
from edge_node.store.tasks import TaskStore


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


def build_runner(stores: EdgeStores, policy: Policy) -> TaskRunner:
    return TaskRunner(stores.analysis, stores.registry, policy)


@contextmanager
def edge_agent(settings: EdgeSettings) -> Iterator[EdgeAgent]:
    """The agent wired to the hub over mutual TLS; the channel is closed on the way out."""
    policy = load_policy(settings.policy_file)
    settings.tls_files.read()  # fail now, with the missing file named, not at the first RPC
    with edge_stores(settings) as stores:
        channel: grpc.Channel = open_channel(settings)
        try:
            registry = stores.registry
            yield EdgeAgent(
                client=HubClient.for_channel(channel, settings),
                tasks=stores.tasks,
                runner=build_runner(stores, policy),
                registration=lambda: registration_for(registry),
                poll_interval_s=settings.poll_interval_s,
                max_tasks=settings.max_tasks_per_pull,
            )
        finally:
            channel.close()
