"""Federated algorithms: local sufficient statistics, pure combine steps, Flower apps."""

ALGORITHM_VERSION = "0.1.0"
