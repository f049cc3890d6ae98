"""The coordinating hub: REST API, studies, aggregation, node registry, gRPC service, audit log."""
