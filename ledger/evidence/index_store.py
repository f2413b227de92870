"""The store's completeness index (`ledger.evidence.index` has the rules): kept in the store's
SQLite file beside the records, advanced to a head's size when that head is anchored, and
able to answer for any earlier size, so a bundle proves completeness "as of head N".

State (all derivable from the records table, so a store of an earlier version gains its
index by one pass over the log):

- ``index_map``: each non-empty shard's hash and its pairs as one string (what its hash is
  over), so a changed shard costs one row read and one row write;
- ``index_days``: each merchant's days (count, chain digest);
- ``index_roots``: the root computed at each size; ``meta.index_size``: the size kept.

Records are append-only, so the index at size N is a function of the first N leaves; a size
below ``index_size`` is answered by recomputing only the keys that records at N or later touch.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.evidence.index import (
    DAY_NS,
    EMPTY_SHARD,
    Entry,
    TopTree,
    bucket_digest,
    day_of,
    directory_value,
    key_hash,
    merchant_key,
    order_key,
    packed_shard_hash,
    shard_hash,
    shard_of,
)

__all__ = ["INDEX_SCHEMA", "OLD_INDEX_TABLES", "KeyProof", "LogIndex", "drop_old_index"]

INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS index_map (
    shard INTEGER PRIMARY KEY,           -- first two bytes of its keys' hashes
    hash BLOB NOT NULL,                  -- its shard hash
    pairs BLOB NOT NULL                  -- keyhash || value per key (64 bytes), increasing keyhash
);
CREATE TABLE IF NOT EXISTS index_days (
    merchant TEXT NOT NULL,
    day INTEGER NOT NULL,                -- UTC days since 1970-01-01
    count INTEGER NOT NULL,
    digest BLOB NOT NULL,
    PRIMARY KEY (merchant, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS index_roots (size INTEGER PRIMARY KEY, root BLOB NOT NULL);
"""

# dropped on migration from schema 4 or 5 (rebuilt from the records; the roots stay): what those
# kept, and this version's own tables but the roots, should one be there already
OLD_INDEX_TABLES = ("index_keys", "index_shards", "index_days", "index_map")

_logger = logging.getLogger(__name__)

_Days = dict[int, tuple[int, bytes]]  # day -> (count, digest)


@dataclass
class KeyProof:
    """What a bundle needs to prove one key's value at one size."""

    key: str
    size: int
    root: bytes  # the index root at `size`
    shard: int
    pairs: list[tuple[bytes, bytes]]  # the shard's (keyhash, value), sorted
    path: list[bytes]  # the shard's audit path in the top tree
    entries: list[Entry] = field(default_factory=list)  # an order's bucket
    days: list[tuple[int, int, bytes]] = field(default_factory=list)  # a merchant's directory
    day_entries: dict[int, list[Entry]] = field(default_factory=dict)  # a merchant's buckets asked for


class LogIndex:
    """The index of one store (its connection and transaction maker).

    Advancing the index changes shards all over the map (keys are hashes), so writing them at
    every anchor would rewrite most of its pages each time. The changed shards and directories
    are kept in memory instead (the *overlay*, on top of the persisted state at
    ``meta.index_size``) and written together when the overlay spans `FLUSH_RECORDS` records or
    `FLUSH_BYTES` bytes, and when the store closes. The index is derived data: an overlay lost
    to a crash is recomputed from the records; the roots computed are persisted at once. If
    another process persisted a newer state, this one's overlay is dropped, never written over it.
    """

    FLUSH_RECORDS = 250_000
    FLUSH_BYTES = 64 << 20

    def __init__(self, db: sqlite3.Connection, txn: Callable[[], Any]) -> None:
        self.db = db
        self._txn = txn
        self._top: TopTree | None = None
        self._top_size = -1
        self._base = -1  # the persisted size the overlay is on (-1: no overlay)
        self._mem_size = -1
        self._dirty: dict[int, tuple[bytes, bytes]] = {}  # shard -> (hash, packed pairs)
        self._dirty_days: dict[str, _Days] = {}  # merchant -> its whole directory
        self._changed_days: set[tuple[str, int]] = set()
        self._dirty_bytes = 0

    # -- state ---------------------------------------------------------------------------
    def _persisted(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'index_size'").fetchone()
        return 0 if row is None else int(row[0])

    @property
    def size(self) -> int:
        """The size the index is kept at (in memory or persisted)."""
        return self._mem_size if self._base >= 0 else self._persisted()

    def _sync(self) -> None:
        """Drop the overlay if another process persisted a newer state under it."""
        if self._base >= 0 and self._persisted() != self._base:
            self._drop()

    def _drop(self) -> None:
        self._base = self._mem_size = self._top_size = -1
        self._top = None
        self._dirty, self._dirty_days, self._changed_days, self._dirty_bytes = {}, {}, set(), 0

    def _keep(self, end: int, shards: dict[int, tuple[bytes, bytes]], days: dict[str, _Days],
              changed_days: Iterable[tuple[str, int]]) -> None:
        """Put an advance's results in the overlay (persisting it when it has grown enough)."""
        if self._base < 0:
            self._base = self._persisted()
        self._mem_size = end
        for s, hp in shards.items():
            old = self._dirty.get(s)
            self._dirty_bytes += len(hp[1]) - (0 if old is None else len(old[1]))
            self._dirty[s] = hp
        self._dirty_days.update(days)
        self._changed_days.update(changed_days)
        if end - self._base >= self.FLUSH_RECORDS or self._dirty_bytes >= self.FLUSH_BYTES:
            self._write()

    def _write(self) -> None:
        """Persist the overlay (inside the caller's transaction, on the state it was built on)."""
        self.db.executemany(
            "INSERT OR REPLACE INTO index_map(shard, hash, pairs) VALUES (?, ?, ?)",
            [(s, h, packed) for s, (h, packed) in sorted(self._dirty.items())],
        )
        self.db.executemany(
            "INSERT OR REPLACE INTO index_days(merchant, day, count, digest) VALUES (?,?,?,?)",
            [(m, d, *self._dirty_days[m][d]) for m, d in sorted(self._changed_days)],
        )
        self.db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('index_size', ?)", (str(self._mem_size),)
        )
        self._base = self._mem_size
        self._dirty, self._dirty_days, self._changed_days, self._dirty_bytes = {}, {}, set(), 0

    def flush(self, *, closing: bool = False) -> None:
        """Persist the overlay now (the store does when it closes); a newer persisted state wins.
        `closing`: a failure is logged, not raised (the overlay is recomputed when next needed)."""
        if self._base < 0 or self._mem_size == self._base:
            return
        try:
            with self._txn():
                if self._persisted() == self._base:
                    self._write()
                else:
                    self._drop()
        except sqlite3.Error as exc:
            if not closing:
                raise
            _logger.warning("the completeness index at size %d was not persisted: %s", self._mem_size, exc)

    def _tree(self) -> TopTree:
        """The top tree at the kept size."""
        size = self.size
        if self._top is None or self._top_size != size:
            self._top = TopTree(
                {int(s): bytes(h) for s, h in self.db.execute("SELECT shard, hash FROM index_map")}
            )
            self._top.update({s: h for s, (h, _) in self._dirty.items()})
            self._top_size = size
        return self._top

    def root(self, size: int) -> bytes:
        """The index root of the log's first `size` leaves (advancing the kept index to `size`
        when it is behind)."""
        with self._txn():
            self._sync()
            current = self.size
            if size > current:
                self._advance(current, size)
                current = size
            row = self.db.execute("SELECT root FROM index_roots WHERE size = ?", (size,)).fetchone()
            if row is not None:
                return bytes(row[0])
            root, _ = self._snapshot(size, current).root_and_path(None)
            self.db.execute("INSERT INTO index_roots(size, root) VALUES (?, ?)", (size, root))
            return root

    def _records(self, where: str, args: Sequence[Any]) -> Iterable[tuple[int, str, str, int, bytes]]:
        return self.db.execute(
            f"SELECT idx, order_id, merchant_id, ts_ns, leaf FROM records WHERE {where} ORDER BY idx", args
        )

    def _advance(self, start: int, end: int) -> None:  # long function: one pass, in the caller's transaction
        """Extend the kept index from size `start` to `end` (inside the caller's transaction):
        read the new records once, and each touched shard and merchant directory once."""
        orders: dict[str, list[Entry]] = defaultdict(list)
        merchants: dict[str, dict[int, list[Entry]]] = defaultdict(lambda: defaultdict(list))
        for idx, oid, mid, ts, leaf in self._records("idx >= ? AND idx < ?", (start, end)):
            e = (idx, ts, bytes(leaf))
            orders[oid].append(e)
            merchants[mid][ts // DAY_NS].append(e)
        okeys = {oid: key_hash(order_key(oid)) for oid in orders}
        mkeys = {mid: key_hash(merchant_key(mid)) for mid in merchants}
        shards = self._pairs({shard_of(kh) for kh in [*okeys.values(), *mkeys.values()]})
        for oid, entries in orders.items():
            kh = okeys[oid]
            pairs = shards[shard_of(kh)]
            pairs[kh] = bucket_digest(kh, entries, start=pairs.get(kh))
        directories = self._directories(list(merchants))
        changed_days = []
        for mid, new_days in merchants.items():
            kh, days = mkeys[mid], directories[mid]
            for day, entries in new_days.items():
                count, digest = days.get(day, (0, None))
                days[day] = (count + len(entries), bucket_digest(kh, entries, day, start=digest))
                changed_days.append((mid, day))
            shards[shard_of(kh)][kh] = directory_value(kh, ((d, c, g) for d, (c, g) in sorted(days.items())))
        kept = {}
        for s, pairs in shards.items():
            packed = b"".join([k + pairs[k] for k in sorted(pairs)])
            kept[s] = (packed_shard_hash(packed), packed)
        tree = self._tree()
        tree.update({s: h for s, (h, _) in kept.items()})
        self._keep(end, kept, directories, changed_days)
        self._top_size = end
        root, _ = tree.root_and_path(None)
        self.db.execute("INSERT OR REPLACE INTO index_roots(size, root) VALUES (?, ?)", (end, root))

    def _pairs(self, shards: Iterable[int]) -> dict[int, dict[bytes, bytes]]:
        """These shards' kept pairs (keyhash -> value), one query per 900 shards."""
        out: dict[int, dict[bytes, bytes]] = {s: {} for s in shards}
        for s in out:
            if s in self._dirty:
                b = self._dirty[s][1]
                out[s] = {b[j : j + 32]: b[j + 32 : j + 64] for j in range(0, len(b), 64)}
        wanted = sorted(s for s in out if s not in self._dirty)
        for i in range(0, len(wanted), 900):
            part = wanted[i : i + 900]
            for s, packed in self.db.execute(
                f"SELECT shard, pairs FROM index_map WHERE shard IN ({','.join('?' * len(part))})", part
            ):
                b = bytes(packed)
                out[int(s)] = {b[j : j + 32]: b[j + 32 : j + 64] for j in range(0, len(b), 64)}
        return out

    def _directories(self, merchants: Sequence[str]) -> dict[str, _Days]:
        """These merchants' kept days, one query per 900 merchants."""
        out: dict[str, _Days] = {m: dict(self._dirty_days.get(m, {})) for m in merchants}
        wanted = [m for m in merchants if m not in self._dirty_days]
        for i in range(0, len(wanted), 900):
            part = wanted[i : i + 900]
            for m, d, c, g in self.db.execute(
                "SELECT merchant, day, count, digest FROM index_days"
                f" WHERE merchant IN ({','.join('?' * len(part))})",
                part,
            ):
                out[m][int(d)] = (int(c), bytes(g))
        return out

    def _days(self, merchant: str) -> _Days:
        return self._directories([merchant])[merchant]

    def _listings(self, shards: Sequence[int]) -> dict[int, list[tuple[bytes, bytes]]]:
        return {s: sorted(pairs.items()) for s, pairs in self._pairs(shards).items()}

    # -- answers at any size ---------------------------------------------------------------
    def _snapshot(self, size: int, current: int) -> _Snapshot:
        return _Snapshot(self, size, current)

    def order_proof(self, order_id: str, size: int) -> KeyProof:
        """An order's bucket at `size` and the proof of its value."""
        with self._txn():
            snap = self._prepare(size)
            key = order_key(order_id)
            entries = [
                (i, t, bytes(lf))
                for i, _, _, t, lf in self._records("order_id = ? AND idx < ?", (order_id, size))
            ]
            proof = snap.proof(key)
        proof.entries = entries
        return proof

    def merchant_proof(
        self, merchant_id: str, size: int, since_ns: int | None, until_ns: int | None
    ) -> KeyProof:
        """A merchant's directory at `size`, the buckets of its days that overlap
        [since_ns, until_ns), and the proof of its value."""
        with self._txn():
            snap = self._prepare(size)
            key = merchant_key(merchant_id)
            proof = snap.proof(key)
            days = snap.days(merchant_id)
            wanted = [
                d
                for d in sorted(days)
                if (since_ns is None or d >= day_of(since_ns))
                and (until_ns is None or d <= day_of(until_ns - 1))
            ]
            proof.days = [(d, *days[d]) for d in sorted(days)]
            proof.day_entries = {d: [] for d in wanted}
            if wanted:
                lo, hi = wanted[0] * 86_400 * 10**9, (wanted[-1] + 1) * 86_400 * 10**9
                for idx, _, _, ts, leaf in self._records(
                    "merchant_id = ? AND ts_ns >= ? AND ts_ns < ? AND idx < ?", (merchant_id, lo, hi, size)
                ):
                    if day_of(ts) in proof.day_entries:
                        proof.day_entries[day_of(ts)].append((idx, ts, bytes(leaf)))
        return proof

    def _prepare(self, size: int) -> _Snapshot:
        self._sync()
        current = self.size
        if size > current:
            self._advance(current, size)
            current = size
        return self._snapshot(size, current)


class _Snapshot:
    """The index at `size` seen through the kept index at `current` >= size: the keys that
    records in [size, current) touched are recomputed from the records table."""

    def __init__(self, index: LogIndex, size: int, current: int) -> None:
        self.index, self.size = index, size
        self.values: dict[bytes, tuple[int, bytes] | None] = {}  # keyhash -> (shard, value) | absent
        self.merchant_days: dict[str, _Days] = {}
        self._by_shard: dict[int, dict[bytes, bytes | None]] | None = None
        if size == current:
            return
        later = list(index._records("idx >= ? AND idx < ?", (size, current)))
        for oid in {r[1] for r in later}:
            kh = key_hash(order_key(oid))
            entries = [
                (i, t, bytes(lf))
                for i, _, _, t, lf in index._records("order_id = ? AND idx < ?", (oid, size))
            ]
            self.values[kh] = (shard_of(kh), bucket_digest(kh, entries)) if entries else None
        touched: dict[str, set[int]] = defaultdict(set)
        for r in later:
            touched[r[2]].add(day_of(r[3]))
        for mid, changed in touched.items():
            kh = key_hash(merchant_key(mid))
            days = index._days(mid)
            for day in changed:
                lo, hi = day * 86_400 * 10**9, (day + 1) * 86_400 * 10**9
                entries = [
                    (i, t, bytes(lf))
                    for i, _, _, t, lf in index._records(
                        "merchant_id = ? AND ts_ns >= ? AND ts_ns < ? AND idx < ?", (mid, lo, hi, size)
                    )
                ]
                if entries:
                    days[day] = (len(entries), bucket_digest(kh, entries, day))
                else:
                    days.pop(day, None)
            self.merchant_days[mid] = days
            self.values[kh] = (
                (shard_of(kh), directory_value(kh, ((d, c, g) for d, (c, g) in sorted(days.items()))))
                if days
                else None
            )

    def _changed(self) -> dict[int, dict[bytes, bytes | None]]:
        """The recomputed keys by shard (None: absent at this size), grouped once."""
        if self._by_shard is None:
            self._by_shard = defaultdict(dict)
            for kh, sv in self.values.items():
                self._by_shard[shard_of(kh)][kh] = None if sv is None else sv[1]
        return self._by_shard

    def listing(self, shard: int,
                listed: list[tuple[bytes, bytes]] | None = None) -> list[tuple[bytes, bytes]]:
        """The shard's sorted pairs at this size (`listed`: its kept listing, when already read)."""
        pairs = dict(self.index._listings([shard])[shard] if listed is None else listed)
        for kh, value in self._changed().get(shard, {}).items():
            if value is None:
                pairs.pop(kh, None)
            else:
                pairs[kh] = value
        return sorted(pairs.items())

    def root_and_path(self, prove: int | None) -> tuple[bytes, list[bytes]]:
        changed = sorted(self._changed())
        listings = self.index._listings(changed)  # one query per 900 shards, not one per shard
        changes = {}
        for s in changed:
            pairs = self.listing(s, listings[s])
            changes[s] = shard_hash(pairs) if pairs else EMPTY_SHARD
        return self.index._tree().root_and_path(changes, prove)

    def proof(self, key: str) -> KeyProof:
        kh = key_hash(key)
        shard = shard_of(kh)
        root, path = self.root_and_path(shard)
        return KeyProof(key, self.size, root, shard, self.listing(shard), path)

    def days(self, merchant_id: str) -> _Days:
        if merchant_id in self.merchant_days:
            return self.merchant_days[merchant_id]
        return self.index._days(merchant_id)


def drop_old_index(db: sqlite3.Connection) -> None:
    """Forget the index a schema-4 or -5 store kept (inside the caller's transaction): it is
    rebuilt from the records when first asked for; the roots it computed stay (same rules)."""
    for table in OLD_INDEX_TABLES:
        db.execute(f"DROP TABLE IF EXISTS {table}")
    db.execute("DELETE FROM meta WHERE key = 'index_size'")
