"""The log's completeness index (``evidence-escrow/index/v1``, docs/bundle.md "Completeness").

Alongside each tree head the platform commits to an index of its log by order and by
merchant, so that a bundle can prove not only that each disclosed record is in the log but
that no record of the order (or of the merchant in a time range) was left out.

- Every record falls in two **buckets**: its order's (key ``order:<order_id>``) and its
  merchant's day (key ``merchant:<merchant_id>``, UTC day of its ``ts``). A bucket is the
  list of its records' entries ``(leaf index, ts as unix ns, leaf hash)`` in log order,
  committed by a hash chain: ``d0 = H(tag || keyhash [|| day])``,
  ``d(i+1) = H(d(i) || u64 index || u64 ts_ns || leaf)``.
- An order key's **value** is its bucket's chain digest. A merchant key's value commits to
  its **directory**: every UTC day it has records on, with that day's count and digest.
- The **map**: keys are spread over 65,536 shards by the first two bytes of their key hash;
  a shard's hash commits to its sorted ``(keyhash, value)`` pairs, and the index root is the
  RFC 9162 Merkle tree hash over the 65,536 shard hashes (each shard hash being a leaf's
  data). A key's proof is its whole shard plus the 16-hash audit path; a key absent from its
  shard is thereby proven absent.

This module holds the rules that exporter and verifier share; the store keeps the index
(`ledger.evidence.index_store`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from ledger._internal.merkle import leaf_hash, node_hash, root_from_inclusion

__all__ = [
    "DAY_NS",
    "SHARDS",
    "SHARD_LEVELS",
    "Entry",
    "bucket_digest",
    "day_of",
    "directory_value",
    "key_hash",
    "merchant_key",
    "order_key",
    "packed_shard_hash",
    "root_from_shard",
    "shard_hash",
    "shard_of",
    "TopTree",
]

VERSION = "evidence-escrow/index/v1"
SHARD_LEVELS = 16
SHARDS = 1 << SHARD_LEVELS
DAY_NS = 86_400 * 10**9

Entry = tuple[int, int, bytes]  # (leaf index, ts as unix nanoseconds, leaf hash)

_KEY = b"evidence-escrow/index/v1/key\0"
_ORDER = b"evidence-escrow/index/v1/order\0"
_DAY = b"evidence-escrow/index/v1/day\0"
_DIRECTORY = b"evidence-escrow/index/v1/directory\0"
_SHARD = b"evidence-escrow/index/v1/shard\0"


def order_key(order_id: str) -> str:
    return "order:" + order_id


def merchant_key(merchant_id: str) -> str:
    return "merchant:" + merchant_id


def key_hash(key: str) -> bytes:
    return hashlib.sha256(_KEY + key.encode("utf-8")).digest()


def shard_of(keyhash: bytes) -> int:
    return int.from_bytes(keyhash[:2], "big")


def day_of(ts_ns: int) -> int:
    """The UTC day (days since 1970-01-01) of a time in unix nanoseconds."""
    return ts_ns // DAY_NS


def bucket_start(keyhash: bytes, day: int | None = None) -> bytes:
    """d0 of a bucket: an order's (`day` None) or one day of a merchant's."""
    if day is None:
        return hashlib.sha256(_ORDER + keyhash).digest()
    return hashlib.sha256(_DAY + keyhash + day.to_bytes(4, "big")).digest()


def bucket_step(digest: bytes, index: int, ts_ns: int, leaf: bytes) -> bytes:
    return hashlib.sha256(digest + index.to_bytes(8, "big") + ts_ns.to_bytes(8, "big") + leaf).digest()


def bucket_digest(
    keyhash: bytes, entries: Iterable[Entry], day: int | None = None, start: bytes | None = None
) -> bytes:
    """The chain digest of a bucket's entries (continuing from `start` when given)."""
    d = bucket_start(keyhash, day) if start is None else start
    for index, ts, leaf in entries:
        d = bucket_step(d, index, ts, leaf)
    return d


def directory_value(keyhash: bytes, days: Iterable[tuple[int, int, bytes]]) -> bytes:
    """A merchant key's value: its days ``(day, count, digest)`` in increasing day order."""
    h = hashlib.sha256(_DIRECTORY + keyhash)
    for day, count, digest in days:
        h.update(day.to_bytes(4, "big") + count.to_bytes(8, "big") + digest)
    return h.digest()


def shard_hash(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A shard's hash over its ``(keyhash, value)`` pairs in increasing keyhash order."""
    h = hashlib.sha256(_SHARD)
    for k, v in pairs:
        h.update(k + v)
    return h.digest()


def packed_shard_hash(packed: bytes) -> bytes:
    """`shard_hash` of pairs given as one string ``keyhash || value || keyhash || value …``
    (in increasing keyhash order): the same hash, in one call."""
    h = hashlib.sha256(_SHARD)
    h.update(packed)
    return h.digest()


EMPTY_SHARD = shard_hash(())


def _empty_levels() -> list[bytes]:
    """The hash of an all-empty subtree at each height (0: one empty shard's leaf hash)."""
    out = [leaf_hash(EMPTY_SHARD)]
    for _ in range(SHARD_LEVELS):
        out.append(node_hash(out[-1], out[-1]))
    return out


_EMPTY = _empty_levels()
_LEAF = hashlib.sha256(b"\x00")
_NODE = hashlib.sha256(b"\x01")


class TopTree:
    """The RFC 9162 tree over the 65,536 shard hashes, every node kept in one list per level
    (131,071 hashes, 4 MiB), so that changing k shards rehashes only their paths."""

    def __init__(self, shards: dict[int, bytes] | None = None) -> None:
        self.levels: list[list[bytes]] = [
            [_EMPTY[h]] * (SHARDS >> h) for h in range(SHARD_LEVELS + 1)
        ]
        if shards:
            self.update(shards)

    def update(self, shards: dict[int, bytes]) -> None:
        """Set these shards' hashes (in place)."""
        leaf, node, levels = _LEAF.copy, _NODE.copy, self.levels
        below = levels[0]
        for s, h in shards.items():
            c = leaf()
            c.update(h)
            below[s] = c.digest()
        changed = {s >> 1 for s in shards}
        for height in range(1, SHARD_LEVELS + 1):
            level = levels[height]
            for p in changed:
                c = node()
                c.update(below[2 * p])
                c.update(below[2 * p + 1])
                level[p] = c.digest()
            below = level
            changed = {p >> 1 for p in changed}

    def root_and_path(
        self, changes: dict[int, bytes] | None = None, prove: int | None = None
    ) -> tuple[bytes, list[bytes]]:
        """The root, with `changes` applied on a copy (the tree itself is untouched), and the
        audit path of shard `prove` (leaf side first) in that tree."""
        overlay: list[dict[int, bytes]] = [{} for _ in range(SHARD_LEVELS + 1)]

        def at(height: int, pos: int) -> bytes:
            got = overlay[height].get(pos)
            return self.levels[height][pos] if got is None else got

        if changes:
            overlay[0] = {s: leaf_hash(h) for s, h in changes.items()}
            changed = set(changes)
            for height in range(SHARD_LEVELS):
                changed = {p >> 1 for p in changed}
                overlay[height + 1] = {
                    p: node_hash(at(height, 2 * p), at(height, 2 * p + 1)) for p in changed
                }
        path = []
        if prove is not None:
            pos = prove
            for height in range(SHARD_LEVELS):
                path.append(at(height, pos ^ 1))
                pos >>= 1
        return at(SHARD_LEVELS, 0), path


def root_from_shard(shard: int, pairs: Sequence[tuple[bytes, bytes]], path: Sequence[bytes]) -> bytes:
    """The index root a shard's listing and audit path lead to (raises `InclusionProofError`
    on a path of the wrong length)."""
    return root_from_inclusion(leaf_hash(shard_hash(pairs)), shard, SHARDS, list(path))
