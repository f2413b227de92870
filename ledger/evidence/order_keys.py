"""Order keys: which derivation each order uses, and where a random one is kept (docs/records.md,
"Order keys and their versions").

- **Version 1** (the orders a store held before version 2 existed): ``order_key =
  HKDF-Expand(prk, "order:" || order_id, 32)``, re-derivable from the master secret forever.
- **Version 2** (every order first seen since): 32 random bytes from the OS CSPRNG, stored only
  wrapped under a key of the master secret::

      wrap_key = HKDF-Expand(prk, "order-key-wrap/v2", 32)
      wrapped  = 0x02 || nonce(12) || AES-256-GCM(wrap_key, nonce, order_key,
                                                 aad = "evidence-escrow/order-key/v2" || 0x00 || order_id)

  Erasing the order (`ledger.evidence.erasure`) overwrites and deletes the wrapped key: nothing
  derives it again, so the salts of the erased records are gone with it.

Salts derive from an order key the same way in both versions (`OrderKey`), so a bundle and its
verifier never see the difference. The table ``order_keys`` says which version each order
uses; an order without a row is new, and gets a version-2 key in the transaction that first
stores (or first asks for the leaf of) one of its records.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.errors import StoreError
from ledger.evidence.master_secret import MasterSecret, OrderKey

__all__ = ["KEY_VERSIONS", "SCHEMA", "WRAP_AAD_PREFIX", "KeyState", "OrderKeys", "adopt_v1",
           "unwrap_order_key", "wrap_order_key"]

KEY_VERSIONS = (1, 2)
WRAP_VERSION = 2  # the first byte of a wrapped key
_WRAP_BYTE = bytes((WRAP_VERSION,))
WRAP_AAD_PREFIX = b"evidence-escrow/order-key/v2\x00"
_NONCE_LEN = 12
_KEY_LEN = 32
_WRAPPED_LEN = 1 + _NONCE_LEN + _KEY_LEN + 16
_CACHE = 65536  # unwrapped keys kept per store (a dict, cleared when full)
_STEP = 900  # ids per query: below SQLite's host-parameter limit

SCHEMA = """
CREATE TABLE IF NOT EXISTS order_keys (
    order_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL CHECK (version IN (1, 2)), -- how the order's current key is derived
    wrapped BLOB,                        -- version 2: 0x02 || nonce || AES-GCM(order key); version 1: NULL
    erased_at TEXT,                      -- RFC 3339: when the order was erased (NULL: it is not)
    erasure_id TEXT,                     -- the erasure record's id
    erased_version INTEGER               -- the version of the key its erased records were salted with
) WITHOUT ROWID;
"""


def wrap_order_key(wrap_key: bytes | AESGCM, order_id: str, key: bytes, nonce: bytes | None = None) -> bytes:
    """``0x02 || nonce || AES-256-GCM(wrap_key, nonce, key, aad)`` (see the module docstring);
    `nonce` is random unless given (the worked example of docs/records.md gives one)."""
    nonce = os.urandom(_NONCE_LEN) if nonce is None else nonce
    aead = wrap_key if isinstance(wrap_key, AESGCM) else AESGCM(wrap_key)
    return _WRAP_BYTE + nonce + aead.encrypt(nonce, key, WRAP_AAD_PREFIX + order_id.encode("utf-8"))


def unwrap_order_key(aead: AESGCM, order_id: str, wrapped: bytes) -> bytes:
    """The order key in `wrapped`; `StoreError` when it is not one this master secret wrapped for
    this order (another order's row, a damaged row)."""
    if len(wrapped) != _WRAPPED_LEN or wrapped[0] != WRAP_VERSION:
        raise StoreError(f"the stored key of order {order_id!r} is damaged (not a version-2 wrapped key)")
    try:
        return aead.decrypt(wrapped[1:1 + _NONCE_LEN], wrapped[1 + _NONCE_LEN:],
                            WRAP_AAD_PREFIX + order_id.encode("utf-8"))
    except InvalidTag:
        raise StoreError(f"the stored key of order {order_id!r} does not unwrap under this master secret: "
                         "the row was altered or moved from another order") from None


@dataclass(frozen=True, slots=True)
class KeyState:
    """An order's key as the store holds it now."""

    order_id: str
    version: int  # 1 or 2: how `key` is derived
    key: OrderKey
    erased_at: str | None = None  # when the order was erased (its records before then have no content)
    erasure_id: str | None = None  # the erasure record
    erased_version: int | None = None  # the version of the key the erased records used


class OrderKeys:
    """The ``order_keys`` table of one store: look keys up in batches, create version-2 keys for
    new orders, destroy one on erasure."""

    def __init__(self, db: sqlite3.Connection, secret: MasterSecret, txn: Callable[[], Any]) -> None:
        self._db = db
        self._secret = secret
        self._txn = txn
        self._aead = AESGCM(secret.wrap_key)
        self._cache: dict[str, tuple[bytes, OrderKey]] = {}  # order id -> (wrapped, its key)

    def __repr__(self) -> str:
        return "OrderKeys(<keys hidden>)"

    def states(self, order_ids: Iterable[str], *, create: bool) -> dict[str, KeyState]:
        """The key of every order in `order_ids` (one query per 900 orders). An order without a
        key is new: with `create` it gets a random version-2 key, stored in the caller's
        transaction (or in one of its own); without, it is a `StoreError`."""
        ids = list(dict.fromkeys(order_ids))
        found: dict[str, KeyState] = {}
        for i in range(0, len(ids), _STEP):
            part = ids[i:i + _STEP]
            rows = self._db.execute(
                "SELECT order_id, version, wrapped, erased_at, erasure_id, erased_version FROM order_keys"
                f" WHERE order_id IN ({','.join('?' * len(part))})", part).fetchall()
            for row in rows:
                found[row[0]] = self._state(*row)
        missing = [oid for oid in ids if oid not in found]
        if not missing:
            return found
        if not create:
            raise StoreError(f"order {missing[0]!r} has no key in the store: it has no records here, "
                             "or the store was edited behind the platform's back")
        if not self._db.in_transaction:
            with self._txn():  # again under the write lock: another process may have created it
                return self.states(ids, create=True)
        rows = []
        for oid in missing:
            wrapped, key = self._new_key(oid)
            rows.append((oid, wrapped))
            found[oid] = KeyState(oid, 2, key)
        self._db.executemany("INSERT INTO order_keys(order_id, version, wrapped) VALUES (?, 2, ?)", rows)
        return found

    def _state(self, order_id: str, version: int, wrapped: bytes | None, erased_at: str | None,
               erasure_id: str | None, erased_version: int | None) -> KeyState:
        if version == 1:
            key = self._secret.order(order_id)
        else:
            if wrapped is None:
                raise StoreError(f"order {order_id!r} has a version-2 key without its wrapped key")
            cached = self._cache.get(order_id)
            if cached is not None and cached[0] == wrapped:
                key = cached[1]
            else:
                key = OrderKey(unwrap_order_key(self._aead, order_id, bytes(wrapped)))
                self._remember(order_id, bytes(wrapped), key)
        return KeyState(order_id, version, key, erased_at, erasure_id, erased_version)

    def _remember(self, order_id: str, wrapped: bytes, key: OrderKey) -> None:
        if len(self._cache) >= _CACHE:
            self._cache.clear()
        self._cache[order_id] = (wrapped, key)

    def _new_key(self, order_id: str) -> tuple[bytes, OrderKey]:
        raw = os.urandom(_KEY_LEN)
        wrapped = wrap_order_key(self._aead, order_id, raw)
        key = OrderKey(raw)
        self._remember(order_id, wrapped, key)
        return wrapped, key

    def destroy(self, order_id: str, *, at: str, erasure_id: str) -> KeyState:
        """Erase the order's key (inside the caller's transaction): its wrapped key is overwritten
        with zeros, then replaced by a fresh random key that salts only the records the order gets
        from now on (its erasure record). Returns the fresh state; `erased_version` says which
        version the erased key was (1: the master secret still derives it)."""
        old = self.states([order_id], create=False)[order_id]
        self._db.execute("UPDATE order_keys SET wrapped = zeroblob(length(wrapped)) WHERE order_id = ?"
                         " AND wrapped IS NOT NULL", (order_id,))
        self._cache.pop(order_id, None)
        wrapped, key = self._new_key(order_id)
        self._db.execute(
            "UPDATE order_keys SET version = 2, wrapped = ?, erased_at = ?, erasure_id = ?,"
            " erased_version = ? WHERE order_id = ?", (wrapped, at, erasure_id, old.version, order_id))
        return KeyState(order_id, 2, key, at, erasure_id, old.version)


def adopt_v1(db: sqlite3.Connection) -> int:
    """Migration (inside the caller's transaction): every order a store already holds, logged or
    held, keeps key version 1, so its existing leaves keep verifying. Returns how many."""
    cur = db.execute(
        "INSERT OR IGNORE INTO order_keys(order_id, version) SELECT order_id, 1 FROM"
        " (SELECT order_id FROM records UNION SELECT order_id FROM held_records)")
    return int(cur.rowcount)
