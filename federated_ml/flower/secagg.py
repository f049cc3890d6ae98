"""Secure aggregation of the sites' model updates in our own round loop.

Flower's SecAgg+ (SecAggPlusWorkflow with secaggplus_mod) takes four
ClientApp calls per round (set-up, key sharing, masked update, unmasking) and
Flower starts a process for each; it also needs legacy FitIns/FitRes records.
Here a round stays one ClientApp call per site:

* key round (once per run, and for a site first seen later): each ClientApp
  makes an X25519 key pair, keeps the private half in `context.state` (the
  SuperNode holds that in memory across the run's messages and hands it to the
  next ClientApp process) and answers with the public half;
* every train message names the round's sites and their public keys; the site
  encodes `[weights x rows, rows, loss x rows, clipped]` in fixed point mod
  2**128 and adds, for every peer, a mask from their X25519 shared secret
  seeded per run, round and attempt (added towards a higher node id,
  subtracted towards a lower one);
* the server adds the masked vectors: the masks cancel and only the sums are
  left, which it divides by the total row count (FedAvg's weighted mean).

A site that does not answer leaves its masks in the sum: the round is sent
again, once, to the sites that did answer (new masks, since the attempt is
part of the seed). Threat model: an honest-but-curious server, as SecAgg+.
The server relays the public keys, so a server that substitutes keys is not
covered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flwr.app import Array, ArrayRecord, ConfigRecord, MessageType, RecordDict

from federated_ml.secure_agg import FRACTION_BITS, encode_fixed_array
from shared_cdm.errors import InvalidInput

KEYS_MESSAGE = f"{MessageType.QUERY}.secagg_keys"
STATE_RECORD = "oncofed-secagg"  # in context.state: never leaves the SuperNode
UPDATE_RECORD = "secure-update"  # in a train reply: the masked vector
KEY_RECORD = "secagg-key"  # in a key-round reply: the public key
PUBLIC_KEY = "public-key"
MASKED_KEY = "masked"
NODES_KEY = "secagg-nodes"  # in a train message: the round's node ids ...
KEYS_KEY = "secagg-public-keys"  # ... and their public keys, in the same order
ATTEMPT_KEY = "secagg-attempt"
NODE_CONFIG_KEY = "secure-aggregation"  # a site may insist on it in its node config
EXTRA = 3  # rows, loss x rows, clipped flag after the weights
LANE_BYTES = 16


def new_key_pair() -> tuple[bytes, bytes]:
    key = X25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return private, public


def store_key(state: RecordDict, run_id: int) -> bytes:
    """A fresh key pair for this run in the ClientApp's state; returns the public half."""
    private, public = new_key_pair()
    state.config_records[STATE_RECORD] = ConfigRecord(
        {"run": str(run_id), "private": private, "public": public}
    )
    return public


def load_key(state: RecordDict, run_id: int) -> tuple[bytes, bytes]:
    rec = state.config_records.get(STATE_RECORD)
    if rec is None or rec.get("run") != str(run_id):
        raise InvalidInput(
            "secure aggregation: this node holds no key for the run "
            "(its SuperNode restarted, or the key round never reached it)"
        )
    private, public = rec["private"], rec["public"]
    if not isinstance(private, bytes) or not isinstance(public, bytes):
        raise InvalidInput("secure aggregation: the stored key is damaged")
    return private, public


def mask_context(run_id: int, server_round: int, attempt: int, nodes: Sequence[int]) -> bytes:
    """What the pairwise seeds are bound to: a new round, attempt or site set, new masks."""
    names = ",".join(str(n) for n in sorted(nodes))
    return f"oncofed-flower-secagg|{run_id}|{server_round}|{attempt}|{names}".encode()


def update_vector(
    arrays: Mapping[str, np.ndarray], rows: int, loss: float, clipped: int
) -> np.ndarray:
    """The weighted update in the model's own tensor order, then rows, loss x rows, clipped."""
    weights = [np.asarray(a, dtype=np.float64).ravel() * rows for a in arrays.values()]
    tail = np.array([rows, loss * rows if np.isfinite(loss) else 0.0, clipped], dtype=np.float64)
    return np.concatenate([*weights, tail])


def vector_length(template: ArrayRecord) -> int:
    return sum(int(a.numpy().size) for a in template.values()) + EXTRA


# Values mod 2**128 as (n, 2) uint64 [low, high], as in federated_ml/secure_agg.py.
def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo = a[:, 0] + b[:, 0]
    carry = (lo < a[:, 0]).astype(np.uint64)
    return np.stack([lo, a[:, 1] + b[:, 1] + carry], axis=1)


def _sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo = a[:, 0] - b[:, 0]
    borrow = (a[:, 0] < b[:, 0]).astype(np.uint64)
    return np.stack([lo, a[:, 1] - b[:, 1] - borrow], axis=1)


def _pair_stream(private: bytes, peer_public: bytes, context: bytes, length: int) -> np.ndarray:
    own = X25519PrivateKey.from_private_bytes(private)
    shared = own.exchange(X25519PublicKey.from_public_bytes(peer_public))
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=context).derive(shared)
    raw = hashlib.shake_256(seed).digest(length * LANE_BYTES)
    return np.frombuffer(raw, dtype="<u8").reshape(-1, 2)


def mask_update(
    values: np.ndarray,
    *,
    node_id: int,
    private: bytes,
    public: bytes,
    peers: Mapping[int, bytes],
    context: bytes,
) -> bytes:
    """Fixed-point encode and mask; `peers` maps every node of the round (this one too) to its
    public key. Refuses a peer list that could expose this node's update."""
    if peers.get(node_id) != public:
        raise InvalidInput("secure aggregation: the round does not list this node's own key")
    others = {n: k for n, k in peers.items() if n != node_id}
    if not others:
        raise InvalidInput("secure aggregation needs at least two sites in a round")
    if len(set(peers.values())) != len(peers):
        raise InvalidInput("secure aggregation: two sites of the round share a public key")
    out = encode_fixed_array(values)
    for peer, key in sorted(others.items()):
        stream = _pair_stream(private, key, context, len(out))
        out = _add(out, stream) if peer > node_id else _sub(out, stream)
    return out.astype("<u8").tobytes()


def sum_masked(blobs: Sequence[bytes], length: int) -> np.ndarray:
    """Add the masked vectors mod 2**128 and decode the fixed-point total to float64."""
    if not blobs:
        raise InvalidInput("no masked updates to add")
    total: np.ndarray | None = None
    for blob in blobs:
        if len(blob) != length * LANE_BYTES:
            raise InvalidInput("a masked update has the wrong length")
        lanes = np.frombuffer(blob, dtype="<u8").reshape(-1, 2)
        total = lanes.copy() if total is None else _add(total, lanes)
    assert total is not None
    lo, hi = total[:, 0], total[:, 1]
    negative = (lo >> np.uint64(63)).astype(bool)
    # A total within +-2**63 has an all-zero or all-one high word matching the low word's sign;
    # anything else is a sum whose masks did not cancel (or an overflow).
    if not np.all(hi == np.where(negative, np.uint64(0xFFFFFFFFFFFFFFFF), np.uint64(0))):
        raise InvalidInput("the masked updates do not add up to a readable total")
    return lo.view(np.int64).astype(np.float64) / float(1 << FRACTION_BITS)


def decode_total(total: np.ndarray, template: ArrayRecord) -> tuple[ArrayRecord, int, float, int]:
    """The row-weighted mean of the weights, total rows, row-weighted loss, sites clipped."""
    rows = round(float(total[-EXTRA]))
    if rows <= 0:
        raise InvalidInput("the sites' updates cover no training rows")
    out: dict[str, Array] = {}
    offset = 0
    for name, arr in template.items():
        like = arr.numpy()
        part = total[offset : offset + like.size] / rows
        out[name] = Array(np.asarray(part.reshape(like.shape), dtype=like.dtype))
        offset += like.size
    return ArrayRecord(out), rows, float(total[-2]) / rows, round(float(total[-1]))
