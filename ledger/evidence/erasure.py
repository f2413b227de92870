"""Erasure of one order (`ledger erase`; docs/erasure.md): its content and its key are destroyed,
its leaves stay, and the erasure itself is a record of the log.

In ONE transaction (`Erasing.erase`): the order's key is overwritten and replaced by a fresh one
(`ledger.evidence.order_keys`); each of its records keeps only what the tree, the completeness
index and the figures' counts need (leaf index, id, kind, order_id, merchant_id, ts, leaf hash:
`tombstone`) and loses its public fields, its personal blob and its personal commitment; records
held for failed or abandoned escrow steps of the order are deleted; and an ``erasure`` record
naming every erased leaf (`erasure_record`) is appended through the ingest path, salted with the
fresh key, to be anchored by the next `ledger anchor`. Then SQLite is made to forget (`forget`):
the erasure runs with ``secure_delete`` (deleted and overwritten bytes are zeroed), the file is
rebuilt by VACUUM (no free page or stale cell of an earlier write survives), and the WAL is
checkpointed and truncated to nothing.

From then on no record of the order enters the log again (`erased_problem`): not its records
re-ingested from an old file, not an escrow step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger._internal import canonical
from ledger._internal.rfc3339 import rfc3339
from ledger.errors import RecordProblem, StoreError
from ledger.evidence.model import ERASURE_KIND, MAX_ERASED, MAX_ID_CHARS, Record
from ledger.evidence.order_keys import KeyState, OrderKeys
from ledger.evidence.records import parse_record

__all__ = ["ERASURE_KIND", "ERASURE_SOURCE", "MAX_ERASED", "Erasing", "Erasure", "erased_problem",
           "erasure_id", "erasure_record", "tombstone"]

_logger = logging.getLogger(__name__)

ERASURE_SOURCE = "ledger erase"  # the batch source of erasure records
_CHECKPOINT_WAIT_MS = 2000  # how long the WAL checkpoint after an erasure waits for readers


@dataclass(frozen=True)
class Erasure:
    """What `ledger erase` did (or found done before: `already`)."""

    order_id: str
    erased_at: str
    erasure_id: str
    erasure_index: int | None  # the erasure record's leaf (None: not in the log, which cannot happen)
    erased: list[tuple[int, str]]  # (leaf index, record id) of every record whose content is gone
    key_version: int  # of the destroyed key: 2 (salts unrecoverable) or 1 (the master secret derives it)
    already: bool = False  # the order was erased before; nothing was done now
    not_forgotten: str | None = None  # why the file was not rebuilt or the WAL not emptied (None: done)

    @property
    def forgotten(self) -> bool:
        """The file was rebuilt and its WAL emptied (else run `ledger erase` again: `not_forgotten`)."""
        return self.not_forgotten is None

    def to_json(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "erased_at": self.erased_at, "erasure_record": self.erasure_id,
                "erasure_index": self.erasure_index, "already_erased": self.already,
                "erased": [{"index": i, "id": rid} for i, rid in self.erased],
                "key_version": self.key_version, "salts_recoverable": self.key_version == 1,
                "wal_emptied": self.forgotten, "not_forgotten": self.not_forgotten}


def erasure_id(order_id: str) -> str:
    """``<order_id>:erasure``, or ``erasure:<40 hex of SHA-256(order_id)>`` when that is longer than
    an identifier may be."""
    rid = f"{order_id}:erasure"
    if len(rid) <= MAX_ID_CHARS:
        return rid
    return "erasure:" + hashlib.sha256(order_id.encode("utf-8")).hexdigest()[:40]


def tombstone(record_id: str, kind: str, order_id: str, merchant_id: str, ts: str) -> bytes:
    """What an erased record's ``public`` keeps: the fields the tree, the index and the counts use."""
    return canonical.dumps_strict({"id": record_id, "kind": kind, "merchant_id": merchant_id,
                                   "order_id": order_id, "ts": ts})


def erasure_record(
    order_id: str, merchant_id: str, erased: Sequence[tuple[int, str, bytes]], *, reason: str,
    operator: str, at: str, key_version: int,
) -> Record:
    """The ``erasure`` record (docs/records.md), validated like every record (a `ValidationError`
    names the field: a reason too long, a control character in the operator)."""
    obj = {"id": erasure_id(order_id), "kind": ERASURE_KIND, "order_id": order_id, "merchant_id": merchant_id,
           "ts": at, "reason": reason, "operator": operator, "key_version": key_version,
           "erased": [{"index": i, "id": rid, "leaf": leaf.hex()} for i, rid, leaf in erased]}
    return parse_record(obj, source=ERASURE_SOURCE, erasure=True)


def erased_problem(source: str, record: Record, state: KeyState, *, erasing: bool) -> RecordProblem | None:
    """Why `record` may not enter the log, or None: an erasure record comes from `ledger erase`
    only, and an erased order takes no record but its erasure record."""
    if record.kind == ERASURE_KIND:
        if erasing:
            return None
        return RecordProblem(source, None, record.id, "kind", "an erasure record is written by `ledger "
                             "erase` (which destroys the order's content and key), never ingested")
    if state.erased_at is None:
        return None
    return RecordProblem(source, None, record.id, "order_id", (
        f"order {record.order_id!r} was erased on {state.erased_at} (erasure record {state.erasure_id!r}): "
        "its records are never logged again; remove them from the input, which still holds what was erased"))


class Erasing:
    """The erasure half of `ledger.evidence.store.Store` (which supplies ``db``, ``keys``, ``_txn``
    and ``_append_erasure``)."""

    db: sqlite3.Connection
    keys: OrderKeys

    def _txn(self) -> Any:  # pragma: no cover - supplied by Store
        raise NotImplementedError

    def _append_erasure(self, record: Record) -> int:  # pragma: no cover - supplied by Store
        raise NotImplementedError

    def erasure_of(self, order_id: str) -> KeyState | None:
        """The order's key state if it was erased (when, by which record), else None."""
        row = self.db.execute("SELECT erased_at FROM order_keys WHERE order_id = ?", (order_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        return self.keys.states([order_id], create=False)[order_id]

    def erase(self, order_id: str, *, reason: str, operator: str, at: str | None = None) -> Erasure:
        """Erase `order_id` (see the module docstring); an order erased before is reported as such
        (`Erasure.already`) and left as it is, but for SQLite forgetting again. `StoreError` for an
        order the log does not hold, one with an escrow step still pending, or one of more than
        `MAX_ERASED` records; a `ValidationError` for a reason or operator that is not valid text."""
        self.db.execute("PRAGMA secure_delete=ON")  # what is deleted or overwritten is zeroed
        try:
            with self._txn():
                done = self.erasure_of(order_id)
                if done is not None:
                    result = self._already(order_id, done)
                else:
                    result = self._erase_now(order_id, reason=reason, operator=operator, at=at or rfc3339())
            return dataclasses.replace(result, not_forgotten=self.forget())
        finally:
            # off again: on the ingest hot path it zeroes every index row it rewrites (about 15% of
            # the cost per record), and VACUUM after an erasure rewrites the whole file anyway
            self.db.execute("PRAGMA secure_delete=OFF")

    def _erase_now(self, order_id: str, *, reason: str, operator: str, at: str) -> Erasure:
        rows = self.db.execute("SELECT idx, id, kind, merchant_id, ts, leaf FROM records WHERE order_id = ?"
                               " ORDER BY idx", (order_id,)).fetchall()
        self._check_erasable(order_id, rows)
        old = self.keys.states([order_id], create=False)[order_id]
        record = erasure_record(order_id, rows[0][3], [(r[0], r[1], r[5]) for r in rows], reason=reason,
                                operator=operator, at=at, key_version=old.version)
        self.keys.destroy(order_id, at=at, erasure_id=record.id)
        self.db.executemany(
            "UPDATE records SET public = ?, personal = NULL, personal_commitment = NULL WHERE idx = ?",
            [(tombstone(rid, kind, order_id, mid, ts), idx) for idx, rid, kind, mid, ts, _ in rows])
        held = self.db.execute("DELETE FROM held_records WHERE order_id = ?", (order_id,)).rowcount
        index = self._append_erasure(record)
        _logger.info("erased order %s: %d record(s) lost their content, %d held record(s) deleted, key "
                     "version %d destroyed; erasure record %s is leaf %d", order_id, len(rows), held,
                     old.version, record.id, index)
        return Erasure(order_id, at, record.id, index, [(r[0], r[1]) for r in rows], old.version)

    def _already(self, order_id: str, done: KeyState) -> Erasure:
        assert done.erased_at is not None and done.erasure_id is not None
        rows = self.db.execute("SELECT idx, id FROM records WHERE order_id = ? ORDER BY idx",
                               (order_id,)).fetchall()
        index = next((i for i, rid in rows if rid == done.erasure_id), None)
        return Erasure(order_id, done.erased_at, done.erasure_id, index,
                       [(i, rid) for i, rid in rows if rid != done.erasure_id], done.erased_version or 2,
                       already=True)

    def _check_erasable(self, order_id: str, rows: list[Any]) -> None:
        if not rows:
            raise StoreError(f"order {order_id!r} has no records in the log: nothing to erase (check the id)")
        pending = self.db.execute("SELECT id, action, tx_hash FROM escrow_actions WHERE order_id = ? AND"
                                  " status = 'sent' ORDER BY id LIMIT 1", (order_id,)).fetchone()
        if pending is not None:
            raise StoreError(
                f"order {order_id!r} has an escrow step still pending (#{pending[0]} {pending[1]}, tx "
                f"0x{bytes(pending[2]).hex()}): its records enter the log once its transaction is confirmed. "
                "Settle it first (`ledger resume`), then erase the order")
        if len(rows) > MAX_ERASED:
            raise StoreError(f"order {order_id!r} has {len(rows)} records; one erasure erases at most "
                             f"{MAX_ERASED} (its record names every erased leaf)")
        taken = self.db.execute("SELECT idx FROM records WHERE id = ?", (erasure_id(order_id),)).fetchone()
        if taken is not None:
            raise StoreError(f"the erasure record's id {erasure_id(order_id)!r} is already leaf {taken[0]} "
                             "of the log: this order cannot be erased under it")

    def forget(self) -> str | None:
        """Make the SQLite files forget what was deleted or overwritten: rebuild the file (VACUUM: no
        free page or stale cell of an earlier write survives), then checkpoint and truncate the WAL.
        None when done; else why not (another connection still reads an older snapshot, whose
        pages stay in the WAL until a later checkpoint; VACUUM failed): run `ledger erase` again."""
        try:
            self.db.execute("VACUUM")
        except sqlite3.Error as exc:  # e.g. no room for its temporary copy: the erasure itself stands
            _logger.warning("VACUUM after an erasure failed: %s", exc)
            return f"SQLite could not rebuild the file ({exc})"
        timeout = self.db.execute("PRAGMA busy_timeout").fetchone()[0]
        self.db.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_WAIT_MS}")  # a reader is not waited for long
        try:
            busy, _, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {int(timeout)}")
        if busy:
            _logger.warning("another connection holds the store's WAL: the erased pages leave it at the next "
                            "checkpoint")
            return "another process reads the store: its WAL still holds earlier pages"
        return None
