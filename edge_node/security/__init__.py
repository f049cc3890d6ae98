"""The edge's security: the vault (encryption at rest), the hash-chained audit log,
users and roles, and the honest broker's re-identification.

Submodules are imported directly (`edge_node.security.vault` etc.); this package
imports nothing so that `edge_node.pipeline.deid` can use the vault without cycles.
"""
