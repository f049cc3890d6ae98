"""The edge–hub wire protocol: proto sources, generated stubs, serde and mutual TLS."""
