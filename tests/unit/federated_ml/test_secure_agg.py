from __future__ import annotations

import random

import pytest

from federated_ml import secure_agg as sa
from protocol import tls
from shared_cdm.errors import InvalidInput, Refused

SITES = ["a", "b", "c", "d"]


def _keys() -> dict[str, sa.SiteKeys]:
    return {s: sa.new_site_keys() for s in SITES}


def _masked(keys, vectors, context="study1|r0", label="events"):
    pubs = {s: k.public_b64 for s, k in keys.items()}
    return {
        s: sa.mask(
            vectors[s],
            site=s,
            private_raw=keys[s].private_raw,
            peers={p: v for p, v in pubs.items() if p != s},
            context=context,
            label=label,
        )
        for s in keys
    }


def test_masks_cancel_in_the_sum_and_hide_each_vector() -> None:
    rng = random.Random(3)
    vectors = {s: [rng.randint(0, 40) for _ in range(50)] for s in SITES}
    keys = _keys()
    masked = _masked(keys, vectors)
    total = sa.aggregate(masked.values())
    assert total == [sum(vectors[s][i] for s in SITES) for i in range(50)]
    for s in SITES:  # a single masked vector looks nothing like its counts
        assert all(v > 2**64 for v in sa.unpack(masked[s])[:10])


def test_partial_sum_without_one_site_is_garbage() -> None:
    vectors = {s: [1, 2, 3] for s in SITES}
    masked = _masked(_keys(), vectors)
    partial = sa.aggregate([masked[s] for s in SITES[:3]])
    assert partial != [3, 6, 9]


def test_fixed_point_round_trip_including_negatives() -> None:
    values = [1.5, -2.25, 1e-6, -12345.678, 0.0]
    keys = _keys()
    vecs = {s: [sa.encode_fixed(v) for v in values] for s in SITES}
    total = sa.aggregate(_masked(keys, vecs).values())
    decoded = [sa.decode_fixed(v) for v in total]
    assert decoded == pytest.approx([4 * v for v in values], abs=1e-9)


def test_fewer_than_three_sites_is_refused() -> None:
    keys = {s: sa.new_site_keys() for s in ["a", "b"]}
    with pytest.raises(Refused, match="at least 3"):
        sa.mask(
            [1],
            site="a",
            private_raw=keys["a"].private_raw,
            peers={"b": keys["b"].public_b64},
            context="x",
            label="y",
        )


def test_signed_keys_verify_and_a_swapped_key_is_refused() -> None:
    ca = tls.create_ca()
    a = tls.issue_certificate(ca, "site-a", "edge")
    keys = sa.new_site_keys()
    sig = sa.sign_public_key("site-a", "s1", keys.public_b64, a.key_pem)
    sa.verify_peer("site-a", "s1", keys.public_b64, sig, a.cert_pem.decode(), ca.cert_pem)
    hub_key = sa.new_site_keys().public_b64  # a hub substituting its own key
    with pytest.raises(Refused):
        sa.verify_peer("site-a", "s1", hub_key, sig, a.cert_pem.decode(), ca.cert_pem)
    with pytest.raises(Refused, match="presented as"):
        sa.verify_peer("site-b", "s1", keys.public_b64, sig, a.cert_pem.decode(), ca.cert_pem)
    other = tls.create_ca("Other")
    with pytest.raises(Refused):
        sa.verify_peer("site-a", "s1", keys.public_b64, sig, a.cert_pem.decode(), other.cert_pem)


def test_malformed_masked_vectors_are_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        sa.unpack("not base64!!")
    with pytest.raises(InvalidInput, match="length"):
        sa.aggregate([sa.pack([1, 2]), sa.pack([1])])
