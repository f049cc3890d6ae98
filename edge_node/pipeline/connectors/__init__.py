"""Source connectors: SQL databases, CSV/TSV files, FHIR R4 and HL7 v2 files, read
as batches of text rows with resumable watermarks (see `base.Connector`)."""

from __future__ import annotations

from edge_node.pipeline.connectors.base import Connector, SourceMissing, open_connector

__all__ = ["Connector", "SourceMissing", "open_connector"]
