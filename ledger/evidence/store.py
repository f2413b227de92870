"""The evidence store: records, leaves, tree state and anchors in one SQLite file.

Durability: WAL journal with ``synchronous=FULL``; a batch is acknowledged only after
its transaction commits, so ``kill -9`` at any instant loses no acknowledged record.
Ingestion is atomic (one transaction per call, however many batches: all records or none)
and idempotent (an identical record already in the log is skipped; the same id with other
content is a conflict and nothing is stored). An order belongs to one merchant: a new record
whose ``merchant_id`` is not that of its order's first record (in the log, held by a pending
escrow step, or earlier in the same call) is a conflict too.

Personal fields are stored AES-GCM encrypted; everything else is the record's canonical
public JSON plus its leaf hash. Salts are never stored: they derive from the order's key,
re-derived from the master secret (key version 1) or kept wrapped under it (version 2,
``ledger.evidence.order_keys``). An erased order (``ledger.evidence.erasure``) keeps its
leaves and loses its content and its key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ledger._internal.merkle import MerkleTree
from ledger._internal.perf import paused_gc
from ledger._internal.rfc3339 import MAX_NS, parse_time_ns, rfc3339, ts_ns
from ledger.errors import ConflictError, RecordProblem, StoreError
from ledger.evidence.erasure import ERASURE_SOURCE, Erasing, erased_problem
from ledger.evidence.index_store import INDEX_SCHEMA, LogIndex, drop_old_index
from ledger.evidence.journal import SCHEMA as _JOURNAL_SCHEMA
from ledger.evidence.journal import JournalTables, NewAction, migrate_v2
from ledger.evidence.leaf import encode
from ledger.evidence.master_secret import MasterSecret, PersonalCipher, load_data_key
from ledger.evidence.model import Record
from ledger.evidence.order_keys import SCHEMA as _ORDER_KEYS_SCHEMA
from ledger.evidence.order_keys import KeyState, OrderKeys, adopt_v1

_logger = logging.getLogger(__name__)

SCHEMA_VERSION = 6  # 2: ts_ns, records_leaf; 3: journal statuses, attempts, held records; 4: index;
# 5: order keys (v2 random; an older store's orders keep v1), erasure; 6: index kept one row per shard

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    first_idx INTEGER NOT NULL,
    count INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    ingested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    idx INTEGER PRIMARY KEY,             -- leaf index in the log, 0-based, append order
    id TEXT NOT NULL UNIQUE,             -- event id
    kind TEXT NOT NULL,
    order_id TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,              -- ts as unix nanoseconds: time ranges compare these
    public BLOB NOT NULL,                -- canonical JSON of the public fields
    personal BLOB,                       -- AES-GCM blob of the personal fields, or NULL
    personal_commitment BLOB,            -- 32 bytes, or NULL (salted: reveals nothing)
    leaf BLOB NOT NULL,                  -- 32-byte RFC 9162 leaf hash
    batch INTEGER NOT NULL REFERENCES batches(id)
);
CREATE INDEX IF NOT EXISTS records_order ON records(order_id);
CREATE INDEX IF NOT EXISTS records_merchant_ts ON records(merchant_id, ts_ns);
CREATE INDEX IF NOT EXISTS records_leaf ON records(leaf);
"""


def _key_fingerprint(key: bytes) -> str:
    """16 hex characters that identify a data key and reveal nothing about it."""
    return hashlib.sha256(b"evidence-escrow/data-key-fingerprint\0" + key).hexdigest()[:16]


_CHUNK = 20000  # records encoded and inserted at a time: memory holds one chunk's rows
_Progress = Callable[[int], None] | None  # told how many records were stored
_ABSENT = object()


@dataclass(frozen=True)
class Batch:
    """Validated records from one source (a file), stored under that name."""

    source: str
    records: Sequence[Record]


class _Row(NamedTuple):
    """A record as inserted into ``records`` (before its index and batch)."""

    id: str
    kind: str
    order_id: str
    merchant_id: str
    ts: str
    ts_ns: int
    public: bytes
    personal: bytes | None
    personal_commitment: bytes | None
    leaf: bytes


class _Owner(NamedTuple):
    """The merchant an order belongs to, and the record that says so: the order's first record
    in the log before this call (`leaf` set, `origin` its batch id), else its first one held by
    a pending escrow step, else its first one in this call (`origin` names where it came from)."""

    merchant_id: str
    record_id: str
    leaf: int | None
    origin: str | int


@dataclass(frozen=True)
class IngestResult:
    source: str
    stored: int
    skipped: int  # identical records already in the log
    first_index: int
    size: int  # log size after the batch


@dataclass(frozen=True)
class StoredRecord:
    """A record as the store holds it, with what a bundle needs to disclose it."""

    index: int
    id: str
    kind: str
    order_id: str
    merchant_id: str
    ts: str
    public: dict[str, Any]
    personal_commitment: bytes | None
    leaf: bytes
    personal_blob: bytes | None
    #: (when, erasure record id) for a record of an erased order: its content is gone (`public`
    #: holds only id, kind, order_id, merchant_id and ts); None for a record with its content
    erased: tuple[str, str] | None = None


class Store(JournalTables, Erasing):
    """An evidence store at `path` (a SQLite file), bound to one master secret (journals: `.journal`)."""

    def __init__(self, path: str | Path, secret: MasterSecret) -> None:
        self.path = Path(path)
        self.secret = secret
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else exc
            raise StoreError(f"cannot open evidence store {self.path}: {reason}") from None
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA cache_size=-131072")  # 128 MiB: index inserts stay in memory
        self.db.executescript(_SCHEMA)
        self.db.executescript(_ORDER_KEYS_SCHEMA)
        self._migrate()
        self.db.executescript(_JOURNAL_SCHEMA)
        self.db.executescript(INDEX_SCHEMA)
        self.index = LogIndex(self.db, self._txn)
        self.keys = OrderKeys(self.db, secret, self._txn)
        data_key = load_data_key(secret)
        self._check_meta(_key_fingerprint(data_key))
        self._tree: MerkleTree | None = None
        self._cipher = PersonalCipher(data_key)
        _logger.debug("opened evidence store %s (master secret %s)", self.path, secret.fingerprint)

    # -- set-up -----------------------------------------------------------------
    def _migrate(self) -> None:
        """Bring a schema-2 to -5 store to this version (its journals; records are unchanged;
        every order a store before 5 holds keeps key version 1; the completeness index is
        rebuilt from the records when first asked for)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None or row[0] not in ("2", "3", "4", "5"):
            return
        with self._txn():
            if row[0] == "2":
                migrate_v2(self.db)  # rebuilds the anchors table with this version's columns
            elif row[0] == "3":
                self.db.execute("ALTER TABLE anchors ADD COLUMN index_root BLOB")
            if row[0] != "5":
                _logger.info("%s: %d order(s) keep key version 1", self.path, adopt_v1(self.db))
            drop_old_index(self.db)
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
        _logger.info("migrated %s from schema %s to %d", self.path, row[0], SCHEMA_VERSION)

    def _check_meta(self, data_key_fingerprint: str) -> None:
        rows = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        fingerprint = self.secret.fingerprint
        if not rows:
            with self._txn():
                self.db.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [("schema", str(SCHEMA_VERSION)), ("secret_fingerprint", fingerprint),
                     ("data_key_fingerprint", data_key_fingerprint)],
                )
            return
        if rows.get("schema") != str(SCHEMA_VERSION):
            raise StoreError(
                f"{self.path} has schema {rows.get('schema')}, this version reads {SCHEMA_VERSION}"
            )
        if rows.get("secret_fingerprint") != fingerprint:
            raise StoreError(
                f"{self.path} was created with a different master secret "
                "(LEDGER_MASTER_SECRET / LEDGER_MASTER_SECRET_FILE): its salts would not match"
            )
        if rows.get("data_key_fingerprint") != data_key_fingerprint:
            raise StoreError(
                f"{self.path} was created with a different personal-data key (LEDGER_DATA_KEY, "
                "or the master secret's own when unset): its personal fields could not be read"
            )

    def close(self) -> None:
        self.index.flush(closing=True)
        self.db.close()
        self.closed = True

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    class _Txn:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> None:
            self.db.execute("BEGIN IMMEDIATE")

        def __exit__(self, exc_type: object, *rest: object) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _txn(self) -> Store._Txn:
        return Store._Txn(self.db)

    # -- the tree -----------------------------------------------------------------
    @property
    def size(self) -> int:
        row = self.db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM records").fetchone()
        return int(row[0])

    @property
    def tree(self) -> MerkleTree:
        """The in-memory Merkle tree over every stored leaf (loaded once, then extended)."""
        size = self.size
        if self._tree is None or self._tree.size > size:
            self._tree = MerkleTree()
        if self._tree.size < size:
            cur = self.db.execute(
                "SELECT leaf FROM records WHERE idx >= ? ORDER BY idx", (self._tree.size,)
            )
            while chunk := cur.fetchmany(65536):
                self._tree.extend(r[0] for r in chunk)
        return self._tree

    def index_root(self, size: int) -> bytes:
        """The completeness index's root over the first `size` leaves (`ledger.evidence.index`)."""
        return self.index.root(size)

    # -- ingestion ------------------------------------------------------------------
    def ingest(self, records: Sequence[Record], *, source: str, progress: _Progress = None) -> IngestResult:
        """Store one validated batch atomically (see `ingest_batches`)."""
        return self.ingest_batches([Batch(source, records)], progress=progress)[0]

    def ingest_batches(self, batches: Sequence[Batch], *, progress: _Progress = None) -> list[IngestResult]:
        """Store validated batches (the files of one `ledger ingest`) in ONE transaction, so
        that a caller never has to say which of them were stored: all, or none.

        A record identical to one in the log, or in an earlier batch, is skipped. A record
        whose id is there with other content, or is held by an escrow step awaiting its
        transaction (`hold`), is a conflict; so is one whose order belongs to another merchant
        (`_owner_problems`): every conflict is listed in one ConflictError, naming what
        differs, and nothing is stored.
        """
        extend_tree = self._tree is not None and self._tree.size == self.size
        with paused_gc(), self._txn():
            results, leaves, conflicts = self._insert(batches, progress, keep_leaves=extend_tree)
            if conflicts:
                raise ConflictError(conflicts)
        if extend_tree and self._tree is not None:
            self._tree.extend(leaves)
        for r in results:
            _logger.info("%s: stored %d record(s), %d already present; log size %d", r.source,
                         r.stored, r.skipped, r.size)
        return results

    def hold(self, records: Sequence[Record], action: NewAction) -> int:
        """Note a signed escrow step (status ``sent``) and hold its records, in ONE transaction,
        before its transaction is broadcast; returns the step's id. The records enter the log
        only when the step is marked ``confirmed`` (`ledger.evidence.journal`). A record already
        in the log identically is not held again; one there with other content, or held by
        another pending step, or of an order that belongs to another merchant, is a conflict
        and nothing is stored."""
        source = f"escrow:{action.action}"
        with self._txn():
            rows, conflicts = self._encoded(records, f"escrow:{action.action}")
            existing = self._existing_leaves([row.id for row in rows])
            conflicts += [self._conflict(source, row, {}) for row in rows
                          if row.id in existing and existing[row.id] != row.leaf]
            conflicts += self._held_conflicts(source, [row.id for row in rows])
            conflicts += self._owner_problems(source, [row for row in rows if row.id not in existing],
                                              self.size, {}, self._held_owners())
            if conflicts:
                raise ConflictError(conflicts)
            (action_id,) = self.note_actions([action])
            self.db.executemany(
                "INSERT INTO held_records(action, seq, id, kind, order_id, merchant_id, ts, ts_ns, public,"
                " personal, personal_commitment, leaf) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(action_id, seq, *row) for seq, row in enumerate(rows) if row.id not in existing])
        _logger.info("noted escrow action %s of order %s, holding %d record(s) until it is confirmed",
                     action.action, action.order_id, len(rows) - len(existing))
        return action_id

    def _append_erasure(self, record: Record) -> int:
        """Append `ledger erase`'s erasure record through the ingest path, inside its transaction
        (the in-memory tree catches up from the table when next asked for); its leaf index."""
        results, _, problems = self._insert([Batch(ERASURE_SOURCE, [record])], None, keep_leaves=False,
                                            erasing=True)
        if problems or results[0].stored != 1:
            raise ConflictError(problems or [RecordProblem(ERASURE_SOURCE, None, record.id, None,
                                                           "the erasure record is already in the log")])
        return results[0].first_index

    def _held_conflicts(self, source: str, ids: Sequence[str]) -> list[RecordProblem]:
        return [RecordProblem(source, None, rid, None, (
                    f"id held by escrow step #{aid} ({act} of order {oid!r}) until its transaction is "
                    "confirmed: it enters the log then (`ledger resume` finishes or abandons the step)"))
                for rid, aid, act, oid in self.pending_holders(ids)]

    def _release_held(self, action_id: int) -> None:
        """Append a confirmed step's held records to the log (inside the caller's transaction)."""
        held = self.db.execute(
            "SELECT id, kind, order_id, merchant_id, ts, ts_ns, public, personal, personal_commitment, leaf"
            " FROM held_records WHERE action = ? ORDER BY seq", (action_id,)).fetchall()
        existing = self._existing_leaves([h[0] for h in held])
        if any(existing[h[0]] != h[9] for h in held if h[0] in existing):
            raise StoreError(f"escrow step #{action_id} holds a record whose id the log already has "
                             "with other content: the store was edited behind the platform's back")
        fresh = [h for h in held if h[0] not in existing]
        if not fresh:
            return
        size = self.size
        batch = int(self.db.execute(
            "INSERT INTO batches(source, first_idx, count, skipped, ingested_at) VALUES (?, ?, ?, ?, ?)",
            (f"escrow-step:{action_id}", size, len(fresh), len(held) - len(fresh), rfc3339())).lastrowid or 0)
        self.db.executemany(
            "INSERT INTO records(idx, id, kind, order_id, merchant_id, ts, ts_ns, public,"
            " personal, personal_commitment, leaf, batch) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [(size + j, *h, batch) for j, h in enumerate(fresh)])
        _logger.info("escrow step #%d confirmed: its %d record(s) entered the log at %d", action_id,
                     len(fresh), size)

    def leaf_for(self, record: Record) -> bytes:
        """The leaf hash `record` has (or would have) in this log (a new order gets its key now, so
        that an offer signed over this leaf stays true when the record is stored)."""
        salt, psalt = self.keys.states([record.order_id], create=True)[record.order_id].key.salts(record.id)
        return encode(record, salt, psalt).leaf_hash

    def _encoded(self, records: Sequence[Record], source: str, *, erasing: bool = False,
                 ) -> tuple[list[_Row], list[RecordProblem]]:
        """The rows of the records that may enter the log (their orders' keys looked up in one
        batch, a new order given a version-2 key in the caller's transaction), and a problem for
        each that may not: a record of an erased order, an erasure record not `ledger erase`'s."""
        states = self.keys.states([r.order_id for r in records], create=True)
        rows, problems = [], []
        for r in records:
            state = states[r.order_id]
            problem = erased_problem(source, r, state, erasing=erasing)
            if problem is None:
                rows.append(self._row(r, state))
            else:
                problems.append(problem)
        return rows, problems

    def _row(self, r: Record, state: KeyState) -> _Row:
        salt, psalt = state.key.salts(r.id)
        e = encode(r, salt, psalt)
        blob = None if e.personal_jcs is None else self._cipher.encrypt_canonical(r.id, e.personal_jcs)
        return _Row(r.id, r.kind, r.order_id, r.merchant_id, r.ts, ts_ns(r.ts), e.public_jcs, blob,
                    e.personal_commitment, e.leaf_hash)

    def _insert(
        self, batches: Sequence[Batch], progress: _Progress, *, keep_leaves: bool, erasing: bool = False,
    ) -> tuple[list[IngestResult], list[bytes], list[RecordProblem]]:
        """Insert the batches' new records in chunks (inside the caller's transaction); a
        conflict is collected, and the caller rolls everything back."""
        size = start = self.size
        held = self._held_owners()
        results: list[IngestResult] = []
        leaves: list[bytes] = []
        conflicts: list[RecordProblem] = []
        this_call: dict[int, str] = {}  # batch id -> source, for the batches of this call
        for b in batches:
            batch = int(self.db.execute(
                "INSERT INTO batches(source, first_idx, count, skipped, ingested_at) VALUES (?, ?, 0, 0, ?)",
                (b.source, size, rfc3339()),
            ).lastrowid or 0)
            this_call[batch] = b.source
            first, skipped = size, 0
            for i in range(0, len(b.records), _CHUNK):
                rows, refused = self._encoded(b.records[i : i + _CHUNK], b.source, erasing=erasing)
                conflicts += refused
                existing = self._existing_leaves([row.id for row in rows])
                fresh = [row for row in rows if row.id not in existing]
                skipped += sum(1 for row in rows if existing.get(row.id) == row.leaf)
                conflicts += [self._conflict(b.source, row, this_call) for row in rows
                              if row.id in existing and existing[row.id] != row.leaf]
                conflicts += self._held_conflicts(b.source, [row.id for row in fresh])
                conflicts += self._owner_problems(b.source, fresh, start, this_call, held)
                self.db.executemany(
                    "INSERT INTO records(idx, id, kind, order_id, merchant_id, ts, ts_ns, public,"
                    " personal, personal_commitment, leaf, batch) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(size + j, *row, batch) for j, row in enumerate(fresh)],
                )
                size += len(fresh)
                if keep_leaves:
                    leaves += [row.leaf for row in fresh]
                if progress:
                    progress(len(rows) + len(refused))
            self.db.execute("UPDATE batches SET count = ?, skipped = ? WHERE id = ?",
                            (size - first, skipped, batch))
            results.append(IngestResult(b.source, size - first, skipped, first, size))
        return results, leaves, conflicts

    def _conflict(self, source: str, row: _Row, this_call: dict[int, str]) -> RecordProblem:
        """A record whose id is already stored with other content: where, and what differs."""
        idx, public, commitment, batch, stored_from = self.db.execute(
            "SELECT r.idx, r.public, r.personal_commitment, r.batch, b.source FROM records r"
            " JOIN batches b ON b.id = r.batch WHERE r.id = ?", (row.id,)).fetchone()
        old, new = json.loads(public), json.loads(row.public)
        fields = sorted(k for k in old.keys() | new.keys() if old.get(k, _ABSENT) != new.get(k, _ABSENT))
        if commitment != row.personal_commitment:
            fields.append("personal")
        differ = f"differing: {', '.join(fields)}" if fields else "same fields, another leaf"
        if batch in this_call:
            reason = (f"id also in {stored_from} with different content ({differ}): one id is "
                      "one record")
        else:
            reason = (f"id already in the log with different content (leaf {idx}, from "
                      f"{stored_from}; {differ}): possible tampering. Logged records never "
                      "change: another event needs its own id")
        return RecordProblem(source, None, row.id, None, reason)

    def _owner_problems(self, source: str, rows: Sequence[_Row], start: int, this_call: dict[int, str],
                        held: dict[str, _Owner]) -> list[RecordProblem]:
        """A problem for each of `rows` (new records from `source`, not yet stored) whose order
        belongs to another merchant (`_owners`); an order first met in `rows` belongs to the
        merchant of its first record there."""
        if not rows:
            return []
        owners = self._owners(list(dict.fromkeys(row.order_id for row in rows)), start, this_call, held)
        problems = []
        for row in rows:
            owner = owners.get(row.order_id)
            if owner is None:
                owners[row.order_id] = _Owner(row.merchant_id, row.id, None, source)
            elif owner.merchant_id != row.merchant_id:
                problems.append(RecordProblem(source, None, row.id, "merchant_id", (
                    f"order {row.order_id!r} belongs to merchant {owner.merchant_id!r} "
                    f"({self._owner_text(owner)}); this record says {row.merchant_id!r}: an order "
                    "belongs to exactly one merchant")))
        return problems

    def _owners(self, order_ids: list[str], start: int, this_call: dict[int, str],
                held: dict[str, _Owner]) -> dict[str, _Owner]:
        """The `_Owner` of each of `order_ids` that has one: the first record of each in the log
        (leaves from `start` on were stored by this call, from the batches `this_call` names),
        else `held`'s. One query: the ids go in as one JSON array (ids are ASCII), each is one
        seek in the covering index on order_id, then one row read per order found."""
        owners: dict[str, _Owner] = {}
        rows = self.db.execute(
            "SELECT order_id, merchant_id, id, idx, batch FROM records WHERE idx IN (SELECT MIN(idx) FROM"
            " records WHERE order_id IN (SELECT value FROM json_each(?)) GROUP BY order_id)",
            (json.dumps(order_ids),))
        for oid, mid, rid, idx, batch in rows:
            if idx < start:
                owners[oid] = _Owner(mid, rid, idx, batch)
            elif oid not in held:
                owners[oid] = _Owner(mid, rid, None, this_call[batch])
        if held:
            owners.update({oid: held[oid] for oid in order_ids if oid in held and oid not in owners})
        return owners

    def _held_owners(self) -> dict[str, _Owner]:
        """The `_Owner` of each order with records held by a pending escrow step (its first one)."""
        if self.db.execute("SELECT 1 FROM held_records LIMIT 1").fetchone() is None:
            return {}
        owners: dict[str, _Owner] = {}
        for oid, mid, rid, aid, act in self.db.execute(
                "SELECT h.order_id, h.merchant_id, h.id, a.id, a.action FROM escrow_actions a"
                " JOIN held_records h ON h.action = a.id WHERE a.status = 'sent' ORDER BY a.id, h.seq"):
            owners.setdefault(oid, _Owner(mid, rid, None, f"escrow step #{aid} ({act}), held until its "
                                                           "transaction is confirmed"))
        return owners

    def _owner_text(self, owner: _Owner) -> str:
        if owner.leaf is None:
            return f"record {owner.record_id!r}, from {owner.origin}"
        (source,) = self.db.execute("SELECT source FROM batches WHERE id = ?", (owner.origin,)).fetchone()
        return f"record {owner.record_id!r}, leaf {owner.leaf}, from {source}"

    def _existing_leaves(self, ids: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        step = 900  # below SQLite's host-parameter limit
        for i in range(0, len(ids), step):
            part = ids[i : i + step]
            q = f"SELECT id, leaf FROM records WHERE id IN ({','.join('?' * len(part))})"
            found.update(self.db.execute(q, part).fetchall())
        return found

    # -- reading ------------------------------------------------------------------------
    _COLS = ("idx, id, kind, order_id, merchant_id, ts, public, personal_commitment, leaf, personal,"
             " erased_at, erasure_id")

    def _rows(self, where: str, args: Iterable[Any]) -> list[StoredRecord]:
        # USING: `order_id` in `where` is the records' (every record's order has a key row)
        q = (f"SELECT {self._COLS} FROM records LEFT JOIN order_keys USING (order_id) WHERE {where}"
             " ORDER BY idx")
        return [
            StoredRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8], r[9],
                         None if r[10] is None or r[1] == r[11] else (r[10], r[11]))
            for r in self.db.execute(q, tuple(args))
        ]

    def records_for_order(self, order_id: str) -> list[StoredRecord]:
        return self._rows("order_id = ?", (order_id,))

    def records_for_orders(self, order_ids: Iterable[str]) -> dict[str, list[StoredRecord]]:
        """Every record of each order, in log order, keyed by order id (one query per 900 ids)."""
        ids = list(dict.fromkeys(order_ids))
        out: dict[str, list[StoredRecord]] = {oid: [] for oid in ids}
        for i in range(0, len(ids), 900):  # below SQLite's host-parameter limit
            part = ids[i : i + 900]
            for r in self._rows(f"order_id IN ({','.join('?' * len(part))})", part):
                out[r.order_id].append(r)
        return out

    def records_for_merchant(
        self, merchant_id: str, since: str | None = None, until: str | None = None
    ) -> list[StoredRecord]:
        """A merchant's records with ``since <= ts < until`` (RFC 3339 bounds, compared as times)."""
        where, args = self._time_range(since, until)
        return self._rows("merchant_id = ?" + where, [merchant_id, *args])

    def records_in_range(self, since: str | None, until: str | None) -> list[StoredRecord]:
        """All records with ``since <= ts < until`` (RFC 3339 bounds, compared as times)."""
        where, args = self._time_range(since, until)
        return self._rows("1=1" + where, args)

    @staticmethod
    def _time_range(since: str | None, until: str | None) -> tuple[str, list[int]]:
        # Every record's time is in 0..MAX_NS; a bound outside it is clamped, or dropped
        # where it selects everything, so that it binds as an SQLite INTEGER.
        where, args = "", []
        if since:
            lo = max(parse_time_ns(since), 0)
            if lo > MAX_NS:
                where += " AND 0"
            else:
                where += " AND ts_ns >= ?"
                args.append(lo)
        if until:
            hi = max(parse_time_ns(until), 0)
            if hi <= MAX_NS:
                where += " AND ts_ns < ?"
                args.append(hi)
        return where, args

    def record_by_id(self, record_id: str) -> StoredRecord | None:
        rows = self._rows("id = ?", (record_id,))
        return rows[0] if rows else None

    def personal(self, record: StoredRecord) -> dict[str, str] | None:
        if record.personal_blob is None:
            return None
        return self._cipher.decrypt(record.id, record.personal_blob)

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT kind, COUNT(*) FROM records GROUP BY kind").fetchall())

    def index_of(self, record_id: str) -> int | None:
        """The leaf index of a record, or None if it is not in the log."""
        row = self.db.execute("SELECT idx FROM records WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else int(row[0])

    def record_by_leaf(self, leaf: bytes) -> StoredRecord | None:
        rows = self._rows("leaf = ?", (leaf,))
        return rows[0] if rows else None
