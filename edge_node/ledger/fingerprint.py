"""Cohort fingerprints: the sorted 64-bit keys of a cohort's rows, compared as multisets."""

from __future__ import annotations

import hashlib

import numpy as np


def pack(keys: np.ndarray) -> bytes:
    return np.sort(np.asarray(keys, dtype=np.uint64)).astype("<u8").tobytes()


def unpack(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u8").astype(np.uint64)


def digest(keys: np.ndarray) -> str:
    return hashlib.sha256(pack(keys)).hexdigest()


def multiset_difference(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(rows in a but not in b, rows in b but not in a), counting repeated keys."""
    ua, ca = np.unique(np.asarray(a, dtype=np.uint64), return_counts=True)
    ub, cb = np.unique(np.asarray(b, dtype=np.uint64), return_counts=True)
    keys = np.union1d(ua, ub)
    na = np.zeros(keys.size, np.int64)
    nb = np.zeros(keys.size, np.int64)
    na[np.searchsorted(keys, ua)] = ca
    nb[np.searchsorted(keys, ub)] = cb
    diff = na - nb
    return int(diff[diff > 0].sum()), int(-diff[diff < 0].sum())


def differs_by_few(a: np.ndarray, b: np.ndarray, k: int) -> bool:
    """True when one cohort contains the other and they differ by 1..k-1 rows: the two
    counts would give away the count of those few rows."""
    only_a, only_b = multiset_difference(a, b)
    nested = only_a == 0 or only_b == 0
    return nested and 0 < only_a + only_b < k
