"""Federated ML at the site: training rows from the analysis database, the SuperNode
of an approved ML study, released models and the predictions made with them."""
