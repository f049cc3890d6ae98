"""Logistic regression log-likelihood, score and information on one site's rows."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from federated_ml.stats.cox import CoxTerms

FloatArray = NDArray[np.float64]


def logistic_terms(y: FloatArray, x: FloatArray, beta: FloatArray) -> CoxTerms:
    """Same shape of terms as Cox: (loglik, score, information, n, events=sum(y))."""
    eta = x @ beta
    p = 1.0 / (1.0 + np.exp(-eta))
    # log(1 + e^eta) computed stably
    loglik = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
    gradient = x.T @ (y - p)
    information = (x * (p * (1 - p))[:, None]).T @ x
    return CoxTerms(loglik, gradient, information, len(y), int(y.sum()))
