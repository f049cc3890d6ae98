"""What each site told the node registry about itself: the provenance a result carries
and the dataset versions the result cache compares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from hub.db.models import Node
from hub.studies import repository


@dataclass(frozen=True)
class SiteProvenance:
    software_version: str
    cdm_version: str
    dataset_version: str | None  # None: the site did not register the study's dataset
    data_quality: Mapping[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "software_version": self.software_version,
            "cdm_version": self.cdm_version,
            "dataset_version": self.dataset_version,
        }
        if self.data_quality is not None:
            out["data_quality"] = dict(self.data_quality)
        return out


UNKNOWN = SiteProvenance(software_version="", cdm_version="", dataset_version=None)


def study_dataset(spec: Mapping[str, Any]) -> str:
    """The dataset a study runs on at every site."""
    return str(spec.get("dataset", "default"))


def _dataset(node: Node, dataset: str) -> Mapping[str, Any] | None:
    for entry in node.datasets:
        if isinstance(entry, Mapping) and entry.get("name") == dataset:
            return entry
    return None


def _of(node: Node, dataset: str) -> SiteProvenance:
    entry = _dataset(node, dataset)
    version = entry.get("version") if entry is not None else None
    quality = entry.get("data_quality") if entry is not None else None
    return SiteProvenance(
        software_version=node.software_version,
        cdm_version=node.cdm_version,
        dataset_version=str(version) if version else None,
        data_quality=quality if isinstance(quality, Mapping) else None,
    )


def site_provenance(
    session: Session, sites: Iterable[str], dataset: str
) -> dict[str, SiteProvenance]:
    """Per site as registered now; a site the registry does not know gets UNKNOWN."""
    wanted = list(sites)
    nodes = {n.name: n for n in repository.nodes_named(session, wanted)}
    return {s: _of(nodes[s], dataset) if s in nodes else UNKNOWN for s in wanted}


def dataset_versions(provenance: Mapping[str, SiteProvenance]) -> dict[str, str] | None:
    """Site → dataset version; None when any site's version is unknown (nothing to compare)."""
    versions = {site: p.dataset_version for site, p in provenance.items()}
    if not versions or any(v is None for v in versions.values()):
        return None
    return {site: str(v) for site, v in sorted(versions.items())}
