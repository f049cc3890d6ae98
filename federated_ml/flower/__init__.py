"""Federated model training on Flower's Deployment Engine (SuperLink, SuperNodes).

spec: the ML study spec; models/training: torch models, local fit and evaluation;
features/metrics: where a site reads rows and where the server writes results;
client_app/server_app: the Flower apps; app_bundle/deploy: running them as processes.
"""
