"""What a completed study says about where its numbers came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hub.auth import UserView
from hub.bootstrap import Hub
from hub.db.models import StudyStatus
from protocol.messages import DatasetInfo, Registration, ResultStatus, TaskResult
from shared_cdm import CDM_VERSION


@dataclass(frozen=True)
class DatasetWithQuality(DatasetInfo):
    """A registration as a protocol with a data-quality field would carry it."""

    data_quality: dict[str, Any] = field(default_factory=dict)


QUALITY = {"completeness": 0.91, "plausibility": 0.97}


def _register(hub: Hub, name: str, *datasets: DatasetInfo, software: str = "0.3.0") -> None:
    hub.nodes.register(name, Registration(software, CDM_VERSION, datasets))


def test_each_site_entry_names_its_versions_and_quality_for_the_studys_dataset(
    hub: Hub, researcher: UserView, coordinator: UserView
) -> None:
    _register(
        hub,
        "A",
        DatasetInfo("default", "flat", "a-1"),
        DatasetWithQuality("registry", "flat", "a-7", ("age",), QUALITY),
    )
    _register(hub, "B", DatasetInfo("registry", "flat", "b-2"), software="0.2.9")
    spec = {"analysis": "count", "dataset": "registry"}
    study = hub.studies.submit(researcher, spec)
    hub.studies.approve(coordinator, study.id)
    for site, n in (("A", 14), ("B", 9)):
        (task,) = hub.studies.pull(site)
        hub.studies.submit_result(site, TaskResult(task.task_id, ResultStatus.OK, {"n": n}))

    done = hub.studies.get(researcher, study.id)
    assert done.status is StudyStatus.COMPLETED
    assert done.result is not None
    a, b = done.result["sites"]
    assert a == {
        "name": "A",
        "n": 14,
        "status": "ok",
        "software_version": "0.3.0",
        "cdm_version": CDM_VERSION,
        "dataset_version": "a-7",
        "data_quality": QUALITY,
    }
    assert b["dataset_version"] == "b-2" and b["software_version"] == "0.2.9"
    assert "data_quality" not in b  # B registered none: the key is left out
    assert set(done.result["versions"]) == {"cdm", "algorithm", "protocol"}


def test_the_node_listing_shows_a_registered_quality_summary(hub: Hub) -> None:
    _register(hub, "A", DatasetWithQuality("default", "flat", "v1", (), QUALITY))
    (node,) = hub.nodes.list_nodes()
    assert node.datasets[0]["data_quality"] == QUALITY
