"""The outbox's journals in the evidence store: anchors and escrow actions, and held records.

Both tables keep what the outbox protocol (`ledger.chain.outbox`) needs to finish or abandon
a signed transaction after any failure: its sender, its nonce, its latest signed bytes, and
the hashes of the attempts it replaced (a fee bump, or a re-signing after another
transaction took its nonce), any one of which may be the one that gets mined.

Statuses (a row moves only along these arrows)::

    sent ──> confirmed ──> lost (an anchor whose transaction a reorg or a reset took away;
      │          │                back to confirmed if that transaction is mined again)
      │          ├──────> sent (an escrow step whose transaction vanished: sent again; an
      │          │              anchor's the node holds pending again after a reorg: awaited)
      │          └──────> failed (an escrow step or anchor a reorg moved to where it reverts)
      ├────> failed       (mined and reverted: the contract's decoded error)
      └────> abandoned    (never mined, and never can be: the reason says why)

(An anchor's re-checks against the chain as it is now: `ledger.evidence.anchor_check`.)

An escrow step's records are *held* (``held_records``, encoded exactly as in the log:
public canonical JSON, encrypted personal fields, leaf hash) from the moment the step is
signed until its transaction is confirmed; only then are they appended to the log, in the
same SQLite transaction that marks the step confirmed. So the log, and every head anchored
from it, never holds the record of a step the escrow did not take. A failed or abandoned
step's held records stay in ``held_records`` for the audit trail and never enter the log.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger._internal.rfc3339 import rfc3339

__all__ = ["ACTION_STATUSES", "ANCHOR_STATUSES", "ActionRow", "AnchorRow", "Attempt", "JournalTables",
           "NewAction", "SCHEMA", "migrate_v2"]

ANCHOR_STATUSES = ("sent", "confirmed", "failed", "lost", "abandoned")
ACTION_STATUSES = ("sent", "confirmed", "failed", "abandoned")


def _check(values: Sequence[str]) -> str:
    return "CHECK (status IN (" + ", ".join(f"'{v}'" for v in values) + "))"


_ANCHORS = f"""
CREATE TABLE IF NOT EXISTS anchors (
    id INTEGER PRIMARY KEY,
    chain_id INTEGER NOT NULL,
    contract TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    prev_size INTEGER NOT NULL,
    status TEXT NOT NULL {_check(ANCHOR_STATUSES)},
    sender TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    tx_hash BLOB NOT NULL,               -- the latest attempt (the mined one once confirmed)
    raw_tx BLOB NOT NULL,
    block_number INTEGER,
    block_hash BLOB,
    block_timestamp INTEGER,
    gas_used INTEGER,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    attempts TEXT NOT NULL DEFAULT '[]', -- JSON: earlier attempts it replaced
    index_root BLOB                      -- the completeness index root anchored with it (NULL: none)
);"""

_ACTIONS = f"""
CREATE TABLE IF NOT EXISTS escrow_actions (
    id INTEGER PRIMARY KEY,              -- append order = the order actions were taken
    chain_id INTEGER NOT NULL,
    contract TEXT NOT NULL,              -- the escrow
    order_id TEXT NOT NULL,              -- evidence-log order id
    action TEXT NOT NULL,                -- fund, ship, deliver, release, ...
    record_id TEXT,                      -- the evidence record behind it, if any
    evidence BLOB,                       -- the 32 bytes passed on chain (that record's leaf)
    payload TEXT NOT NULL,               -- JSON: call arguments, signed offer/attestation
    sender TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    tx_hash BLOB NOT NULL,               -- the latest attempt (the mined one once confirmed)
    raw_tx BLOB NOT NULL,
    status TEXT NOT NULL {_check(ACTION_STATUSES)},
    block_number INTEGER,
    block_timestamp INTEGER,
    gas_used INTEGER,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    block_hash BLOB,
    attempts TEXT NOT NULL DEFAULT '[]'  -- JSON: earlier attempts it replaced
);"""

_INDEXES = """
CREATE INDEX IF NOT EXISTS anchors_target ON anchors(chain_id, contract, status, size);
CREATE INDEX IF NOT EXISTS escrow_actions_order ON escrow_actions(order_id, id);
CREATE INDEX IF NOT EXISTS escrow_actions_status ON escrow_actions(status);
CREATE TABLE IF NOT EXISTS held_records (
    action INTEGER NOT NULL REFERENCES escrow_actions(id),
    seq INTEGER NOT NULL,                -- order within the step
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    order_id TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    public BLOB NOT NULL,
    personal BLOB,
    personal_commitment BLOB,
    leaf BLOB NOT NULL,
    PRIMARY KEY (action, seq)
);
CREATE INDEX IF NOT EXISTS held_records_id ON held_records(id);
"""

SCHEMA = _ANCHORS + _ACTIONS + _INDEXES

_V2_ANCHOR_COLS = ("id, chain_id, contract, size, root, prev_size, status, sender, nonce, tx_hash, raw_tx,"
                   " block_number, block_hash, block_timestamp, gas_used, error, created_at, updated_at")
_V2_ACTION_COLS = ("id, chain_id, contract, order_id, action, record_id, evidence, payload, sender, nonce,"
                   " tx_hash, raw_tx, status, block_number, block_timestamp, gas_used, error, created_at,"
                   " updated_at")


def migrate_v2(db: sqlite3.Connection) -> None:
    """Schema 2 -> 3, inside the caller's transaction: the journals gain statuses (so their
    CHECK constraints are rebuilt), attempts and an action's block hash; held records appear."""
    for table, create, cols in (("anchors", _ANCHORS, _V2_ANCHOR_COLS),
                                ("escrow_actions", _ACTIONS, _V2_ACTION_COLS)):
        db.execute(f"ALTER TABLE {table} RENAME TO {table}_v2")
        db.execute(create)
        db.execute(f"INSERT INTO {table}({cols}) SELECT {cols} FROM {table}_v2")
        db.execute(f"DROP TABLE {table}_v2")
    for stmt in _INDEXES.split(";"):
        if stmt.strip():
            db.execute(stmt)


@dataclass(frozen=True)
class Attempt:
    """An earlier signed version of a journal row's transaction, replaced by a later one."""

    tx_hash: bytes
    nonce: int
    why: str
    raw_tx: bytes | None = None  # its signed bytes (None in rows stored before they were kept)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tx_hash": "0x" + self.tx_hash.hex(), "nonce": self.nonce, "why": self.why}
        if self.raw_tx is not None:
            out["raw_tx"] = "0x" + self.raw_tx.hex()
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Attempt:
        raw = obj.get("raw_tx")
        return cls(bytes.fromhex(str(obj["tx_hash"])[2:]), int(obj["nonce"]), str(obj["why"]),
                   None if raw is None else bytes.fromhex(str(raw)[2:]))


def _attempts(text: str) -> tuple[Attempt, ...]:
    return tuple(Attempt.from_json(a) for a in json.loads(text))


@dataclass(frozen=True)
class NewAction:
    """An escrow transaction to note durably (status ``sent``) together with its records."""

    chain_id: int
    contract: str
    order_id: str
    action: str
    record_id: str | None
    evidence: bytes | None
    payload: dict[str, Any]
    sender: str
    nonce: int
    tx_hash: bytes
    raw_tx: bytes


@dataclass(frozen=True)
class ActionRow(NewAction):
    """An escrow transaction the platform signed, with the evidence behind it and its fate."""

    id: int
    status: str
    block_number: int | None
    block_timestamp: int | None
    gas_used: int | None
    error: str | None
    block_hash: bytes | None = None
    attempts: tuple[Attempt, ...] = field(default=())

    @property
    def tx_hashes(self) -> tuple[bytes, ...]:
        """Every hash this step was ever signed as, latest first."""
        return (self.tx_hash, *(a.tx_hash for a in reversed(self.attempts)))


@dataclass(frozen=True)
class AnchorRow:
    id: int
    chain_id: int
    contract: str
    size: int
    root: bytes
    prev_size: int
    status: str
    sender: str
    nonce: int
    tx_hash: bytes
    raw_tx: bytes
    block_number: int | None
    block_hash: bytes | None
    block_timestamp: int | None
    gas_used: int | None
    error: str | None
    attempts: tuple[Attempt, ...] = field(default=())
    index_root: bytes | None = None  # anchored with the head (anchorIndexed); None: plain anchor()

    @property
    def tx_hashes(self) -> tuple[bytes, ...]:
        return (self.tx_hash, *(a.tx_hash for a in reversed(self.attempts)))


_SETTLE_FACTS = {"block_number", "block_hash", "block_timestamp", "gas_used", "error", "tx_hash", "raw_tx",
                 "nonce", "attempts"}


class JournalTables:
    """The journal half of `ledger.evidence.store.Store` (which supplies ``db``, ``_txn`` and
    ``_release_held``)."""

    db: sqlite3.Connection
    closed: bool = False

    def _txn(self) -> Any:  # pragma: no cover - supplied by Store
        raise NotImplementedError

    def _release_held(self, action_id: int) -> None:  # pragma: no cover - supplied by Store
        raise NotImplementedError

    # -- escrow actions ------------------------------------------------------------------
    _ACTION_COLS = (  # in ActionRow's field order
        "chain_id, contract, order_id, action, record_id, evidence, payload, sender, nonce,"
        " tx_hash, raw_tx, id, status, block_number, block_timestamp, gas_used, error, block_hash, attempts"
    )

    def actions(
        self, *, order_id: str | None = None, status: str | None = None,
        contract: str | None = None, tx_hash: bytes | None = None, chain_id: int | None = None,
    ) -> list[ActionRow]:
        """Escrow actions in the order they were taken, optionally filtered (`tx_hash` matches
        any attempt of a step)."""
        where, args = ["1=1"], list[Any]()
        filters = (("order_id", order_id), ("status", status), ("contract", contract), ("chain_id", chain_id))
        for col, val in filters:
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if tx_hash is not None:
            where.append("(tx_hash = ? OR instr(attempts, ?) > 0)")
            args += [tx_hash, "0x" + tx_hash.hex()]
        q = f"SELECT {self._ACTION_COLS} FROM escrow_actions WHERE {' AND '.join(where)} ORDER BY id"
        out = []
        for r in self.db.execute(q, args):
            # mypy assumes `*r[:6]` may fill every field (python/mypy#14648).
            out.append(ActionRow(*r[:6], json.loads(r[6]), *r[7:18], _attempts(r[18])))  # type: ignore[call-arg]
        return out

    def note_actions(self, actions: Sequence[NewAction]) -> list[int]:
        """Insert signed actions (status ``sent``) inside the caller's transaction; their ids."""
        now = rfc3339()
        ids = []
        for a in actions:
            cur = self.db.execute(
                "INSERT INTO escrow_actions(chain_id, contract, order_id, action, record_id,"
                " evidence, payload, sender, nonce, tx_hash, raw_tx, status, created_at,"
                " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,'sent',?,?)",
                (a.chain_id, a.contract, a.order_id, a.action, a.record_id, a.evidence,
                 json.dumps(a.payload, sort_keys=True), a.sender, a.nonce, a.tx_hash, a.raw_tx, now, now))
            ids.append(int(cur.lastrowid or 0))
        return ids

    def mark_action(self, action_id: int, status: str, *, expect: str | None = None, **facts: Any) -> bool:
        """Record how a step ended; ``confirmed`` appends its held records to the log in the
        same transaction. With `expect`, only if the row still has that status (another
        process may have settled it meanwhile); whether the row changed."""
        return self._mark("escrow_actions", ACTION_STATUSES, action_id, status, expect, facts)

    def mark_anchor(self, anchor_id: int, status: str, *, expect: str | None = None, **facts: Any) -> bool:
        return self._mark("anchors", ANCHOR_STATUSES, anchor_id, status, expect, facts)

    def _mark(self, table: str, statuses: Sequence[str], row_id: int, status: str, expect: str | None,
              facts: dict[str, Any]) -> bool:
        bad = set(facts) - _SETTLE_FACTS - ({"block_hash"} if table == "anchors" else set())
        if bad or status not in statuses:
            raise ValueError(f"unknown {table} status {status!r} or fields {sorted(bad)}")
        with self._txn():
            if "tx_hash" in facts:
                facts = {**facts, **self._promote(table, row_id, facts["tx_hash"])}
            sets = "".join(f", {k} = ?" for k in facts)
            guard = "" if expect is None else " AND status = ?"
            cur = self.db.execute(f"UPDATE {table} SET status = ?, updated_at = ?{sets} WHERE id = ?{guard}",
                                  (status, rfc3339(), *facts.values(), row_id,
                                   *(() if expect is None else (expect,))))
            if not cur.rowcount:
                return False
            if table == "escrow_actions" and status == "confirmed":
                self._release_held(row_id)
            return True

    def _promote(self, table: str, row_id: int, mined: bytes) -> dict[str, Any]:
        """When an earlier attempt is the one mined, make it the row's latest (its bytes and
        nonce with its hash, so a re-send after a reorg sends what was mined) and keep the
        latest among the attempts: the row's columns to set."""
        cur, raw, nonce, text = self.db.execute(
            f"SELECT tx_hash, raw_tx, nonce, attempts FROM {table} WHERE id = ?", (row_id,)).fetchone()
        attempts = list(_attempts(text))
        hit = [i for i, a in enumerate(attempts) if a.tx_hash == mined]
        if bytes(cur) == mined or not hit:
            return {}
        was = attempts[hit[-1]]
        attempts[hit[-1]] = Attempt(bytes(cur), int(nonce), f"not mined: its earlier attempt 0x{mined.hex()} "
                                    "was", bytes(raw))
        out: dict[str, Any] = {"attempts": json.dumps([a.to_json() for a in attempts]), "nonce": was.nonce}
        if was.raw_tx is not None:
            out["raw_tx"] = was.raw_tx
        return out

    def replace_attempt(self, table: str, row_id: int, *, tx_hash: bytes, raw_tx: bytes, nonce: int,
                        why: str) -> bool:
        """Make a newly signed transaction the row's latest attempt, keeping the one it
        replaces (hash, nonce, bytes) among the attempts (either may still be mined: same
        nonce, or not); False, changing nothing, if the row is no longer ``sent``."""
        if table not in ("anchors", "escrow_actions"):
            raise ValueError(f"no journal table {table!r}")
        with self._txn():
            old = self.db.execute(f"SELECT tx_hash, nonce, attempts, raw_tx FROM {table} WHERE id = ?"
                                  " AND status = 'sent'", (row_id,)).fetchone()
            if old is None:
                return False
            attempts = [*json.loads(old[2]), Attempt(old[0], old[1], why, bytes(old[3])).to_json()]
            self.db.execute(
                f"UPDATE {table} SET tx_hash = ?, raw_tx = ?, nonce = ?, attempts = ?, updated_at = ?"
                " WHERE id = ?", (tx_hash, raw_tx, nonce, json.dumps(attempts), rfc3339(), row_id))
            return True

    def pending_nonces(self, chain_id: int, sender: str) -> list[int]:
        """The nonces of this sender's transactions still ``sent`` in either journal (a nonce a
        crashed run signed but the node may never have seen is still taken)."""
        if self.closed:  # a store this process closed: its rows no longer hold the chain's nonces here
            return []
        q = ("SELECT nonce FROM anchors WHERE chain_id = ? AND status = 'sent' AND lower(sender) = lower(?)"
             " UNION SELECT nonce FROM escrow_actions WHERE chain_id = ? AND status = 'sent'"
             " AND lower(sender) = lower(?)")
        return sorted(int(r[0]) for r in self.db.execute(q, (chain_id, sender, chain_id, sender)))

    def held_ids(self, action_id: int) -> list[str]:
        """The ids of the records a step holds (logged once it is confirmed)."""
        return [r[0] for r in self.db.execute("SELECT id FROM held_records WHERE action = ? ORDER BY seq",
                                              (action_id,))]

    def pending_holders(self, ids: Sequence[str]) -> Iterator[tuple[str, int, str, str]]:
        """(record id, action id, action, order id) for each of `ids` held by a step still ``sent``."""
        if not ids or self.db.execute("SELECT 1 FROM held_records LIMIT 1").fetchone() is None:
            return
        for i in range(0, len(ids), 900):
            part = list(ids[i : i + 900])
            yield from self.db.execute(
                "SELECT h.id, a.id, a.action, a.order_id FROM held_records h JOIN escrow_actions a"
                f" ON a.id = h.action WHERE a.status = 'sent' AND h.id IN ({','.join('?' * len(part))})",
                part)

    # -- anchors ------------------------------------------------------------------------
    _ANCHOR_COLS = (
        "id, chain_id, contract, size, root, prev_size, status, sender, nonce, tx_hash, raw_tx,"
        " block_number, block_hash, block_timestamp, gas_used, error, attempts, index_root"
    )

    def record_sent_anchor(
        self, *, chain_id: int, contract: str, size: int, root: bytes, prev_size: int, sender: str,
        nonce: int, tx_hash: bytes, raw_tx: bytes, index_root: bytes | None = None,
    ) -> int:
        """Durably note a signed anchor transaction BEFORE it is broadcast."""
        with self._txn():
            cur = self.db.execute(
                "INSERT INTO anchors(chain_id, contract, size, root, prev_size, status, sender,"
                " nonce, tx_hash, raw_tx, created_at, updated_at, index_root)"
                " VALUES (?,?,?,?,?,'sent',?,?,?,?,?,?,?)",
                (chain_id, contract, size, root, prev_size, sender, nonce, tx_hash, raw_tx,
                 rfc3339(), rfc3339(), index_root),
            )
            return int(cur.lastrowid or 0)

    def anchors(
        self, chain_id: int | None = None, contract: str | None = None, status: str | None = None
    ) -> list[AnchorRow]:
        where, args = ["1=1"], []
        for col, val in (("chain_id", chain_id), ("contract", contract), ("status", status)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        q = f"SELECT {self._ANCHOR_COLS} FROM anchors WHERE {' AND '.join(where)} ORDER BY id"
        return [AnchorRow(*r[:16], _attempts(r[16]), r[17]) for r in self.db.execute(q, args)]  # type: ignore[call-arg]

    def anchor_row(self, anchor_id: int) -> AnchorRow | None:
        r = self.db.execute(f"SELECT {self._ANCHOR_COLS} FROM anchors WHERE id = ?", (anchor_id,)).fetchone()
        return None if r is None else AnchorRow(*r[:16], _attempts(r[16]), r[17])  # type: ignore[call-arg]

    def action_row(self, action_id: int) -> ActionRow | None:
        r = self.db.execute(f"SELECT {self._ACTION_COLS} FROM escrow_actions WHERE id = ?",
                            (action_id,)).fetchone()
        return None if r is None else \
            ActionRow(*r[:6], json.loads(r[6]), *r[7:18], _attempts(r[18]))  # type: ignore[call-arg]

    def latest_confirmed(self, chain_id: int, contract: str) -> AnchorRow | None:
        """The confirmed anchor of the largest head; of several anchors of that head (one
        re-anchored after the first was lost), the latest."""
        rows = self.anchors(chain_id, contract, "confirmed")
        return max(rows, key=lambda a: (a.size, a.id)) if rows else None
