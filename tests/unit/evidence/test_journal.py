"""The store's journals: an escrow step's records are held out of the log until it is confirmed.

Attacks tried: a record of a step the escrow never took reaching the log (and so an anchored
head) because its transaction failed, was abandoned, or is still pending; another source
(`ledger ingest`) slipping in a record under an id a pending step holds, so that the step's
own record would later conflict; a second process choosing a nonce a stored, unbroadcast
transaction already holds. And a schema-2 store migrates without losing a row.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ledger.dev.flash_sale import generate_flash_sale
from ledger.errors import ConflictError
from ledger.evidence.journal import NewAction
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.records import parse_record
from ledger.evidence.store import SCHEMA_VERSION, Store

SECRET = MasterSecret.from_hex("d7" * 32)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "s.sqlite3", SECRET)


@pytest.fixture(scope="module")
def sale() -> list[dict[str, Any]]:
    return generate_flash_sale(seed=9, orders=4, merchants=1, start="2026-11-11T12:00:00Z")


def _action(order_id: str, action: str = "ship", nonce: int = 7, sender: str = "0x" + "ab" * 20) -> NewAction:
    return NewAction(chain_id=31337, contract="0x" + "11" * 20, order_id=order_id, action=action,
                     record_id=f"{order_id}:{action}", evidence=b"\x01" * 32, payload={}, sender=sender,
                     nonce=nonce, tx_hash=bytes([nonce]) * 32, raw_tx=b"raw")


def _ship(sale: list[dict[str, Any]], tracking: str = "SF1234567890") -> dict[str, Any]:
    order = next(r for r in sale if r["kind"] == "order")
    oid = order["order_id"]
    return {"id": f"{oid}:ship", "kind": "shipment", "order_id": oid, "merchant_id": order["merchant_id"],
            "ts": "2026-11-12T08:00:00Z", "carrier": "SF", "tracking_number": tracking}


def test_a_held_record_enters_the_log_only_when_its_step_is_confirmed(store: Store, sale: list[Any]) -> None:
    rec = parse_record(_ship(sale))
    action_id = store.hold([rec], _action(rec.order_id))
    assert store.held_ids(action_id) == [rec.id]
    assert store.record_by_id(rec.id) is None and store.size == 0  # no head can cover it
    store.mark_action(action_id, "confirmed", block_number=5, gas_used=1)
    stored = store.record_by_id(rec.id)
    assert stored is not None and stored.index == 0 and stored.leaf == store.leaf_for(rec)
    assert store.tree.size == 1
    store.mark_action(action_id, "confirmed", block_number=6)  # again (a re-confirmation): once only
    assert store.size == 1


@pytest.mark.parametrize("status", ["failed", "abandoned"])
def test_the_record_of_a_step_that_never_took_effect_never_enters_the_log(
        store: Store, sale: list[Any], status: str) -> None:
    rec = parse_record(_ship(sale))
    action_id = store.hold([rec], _action(rec.order_id))
    store.mark_action(action_id, status, error="the step never took effect")
    assert store.record_by_id(rec.id) is None and store.size == 0
    assert store.held_ids(action_id) == [rec.id]  # kept for the audit trail
    # The step may be taken again with a new record under the same id: the old one was never logged.
    again = parse_record(_ship(sale, tracking="SF9999999999"))
    second = store.hold([again], _action(rec.order_id, nonce=8))
    store.mark_action(second, "confirmed")
    logged = store.record_by_id(rec.id)
    assert logged is not None and logged.public["tracking_number"] == "SF9999999999"


def test_ingest_cannot_take_an_id_a_pending_step_holds(store: Store, sale: list[Any]) -> None:
    rec = parse_record(_ship(sale))
    store.hold([rec], _action(rec.order_id))
    forged = parse_record(_ship(sale, tracking="YT0000000001"))
    with pytest.raises(ConflictError) as err:
        store.ingest([forged], source="other.jsonl")
    [problem] = err.value.problems
    assert problem.record_id == rec.id and "held by escrow step #1 (ship of order" in problem.reason
    assert store.size == 0
    with pytest.raises(ConflictError):  # not even the identical record: the step adds it itself
        store.ingest([rec], source="other.jsonl")


def test_a_second_pending_step_cannot_hold_the_same_id(store: Store, sale: list[Any]) -> None:
    rec = parse_record(_ship(sale))
    store.hold([rec], _action(rec.order_id))
    with pytest.raises(ConflictError):
        store.hold([rec], _action(rec.order_id, nonce=8))
    assert len(store.actions()) == 1


def test_a_step_citing_a_logged_record_holds_nothing_and_a_changed_one_conflicts(
        store: Store, sale: list[Any]) -> None:
    rec = parse_record(_ship(sale))
    store.ingest([rec], source="carrier.jsonl")
    action_id = store.hold([rec], _action(rec.order_id))
    assert store.held_ids(action_id) == []
    with pytest.raises(ConflictError) as err:
        store.hold([parse_record(_ship(sale, tracking="YT0000000001"))], _action(rec.order_id, nonce=9))
    assert "possible tampering" in err.value.problems[0].reason


def test_pending_nonces_and_attempts(store: Store, sale: list[Any]) -> None:
    rec = parse_record(_ship(sale))
    sender = "0x" + "Ab" * 20
    a = store.hold([rec], _action(rec.order_id, nonce=7, sender=sender))
    anchor = store.record_sent_anchor(chain_id=31337, contract="0x" + "22" * 20, size=1, root=b"\0" * 32,
                                      prev_size=0, sender=sender.lower(), nonce=9, tx_hash=b"\x09" * 32,
                                      raw_tx=b"r")
    assert store.pending_nonces(31337, sender.upper().replace("0X", "0x")) == [7, 9]
    store.replace_attempt("escrow_actions", a, tx_hash=b"\x08" * 32, raw_tx=b"raw2", nonce=7, why="fee bump")
    [row] = store.actions()
    assert row.tx_hash == b"\x08" * 32 and [x.why for x in row.attempts] == ["fee bump"]
    assert row.tx_hashes == (b"\x08" * 32, bytes([7]) * 32)
    assert store.actions(tx_hash=bytes([7]) * 32) == [row]  # found by an earlier attempt's hash too
    store.mark_anchor(anchor, "lost", error="no longer on chain")
    store.mark_action(a, "abandoned", error="nonce taken")
    assert store.pending_nonces(31337, sender) == []
    with pytest.raises(ValueError):
        store.mark_action(a, "lost")  # a status escrow actions do not have


_V2_JOURNALS = """
CREATE TABLE anchors (id INTEGER PRIMARY KEY, chain_id INTEGER NOT NULL, contract TEXT NOT NULL,
 size INTEGER NOT NULL, root BLOB NOT NULL, prev_size INTEGER NOT NULL,
 status TEXT NOT NULL CHECK (status IN ('sent', 'confirmed', 'failed')), sender TEXT NOT NULL,
 nonce INTEGER NOT NULL, tx_hash BLOB NOT NULL, raw_tx BLOB NOT NULL, block_number INTEGER,
 block_hash BLOB, block_timestamp INTEGER, gas_used INTEGER, error TEXT, created_at TEXT NOT NULL,
 updated_at TEXT NOT NULL);
CREATE INDEX anchors_target ON anchors(chain_id, contract, status, size);
CREATE TABLE escrow_actions (id INTEGER PRIMARY KEY, chain_id INTEGER NOT NULL, contract TEXT NOT NULL,
 order_id TEXT NOT NULL, action TEXT NOT NULL, record_id TEXT, evidence BLOB, payload TEXT NOT NULL,
 sender TEXT NOT NULL, nonce INTEGER NOT NULL, tx_hash BLOB NOT NULL, raw_tx BLOB NOT NULL,
 status TEXT NOT NULL CHECK (status IN ('sent', 'confirmed', 'failed')), block_number INTEGER,
 block_timestamp INTEGER, gas_used INTEGER, error TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX escrow_actions_order ON escrow_actions(order_id, id);
CREATE INDEX escrow_actions_status ON escrow_actions(status);
INSERT INTO anchors VALUES (1, 31337, '0xlog', 3, x'00', 0, 'confirmed', '0xs', 4, x'aa', x'bb', 12, x'cc',
 1700000000, 50000, NULL, 't', 't');
INSERT INTO escrow_actions VALUES (1, 31337, '0xesc', 'O1', 'ship', 'O1:ship', x'01', '{"a": 1}', '0xs', 5,
 x'dd', x'ee', 'sent', NULL, NULL, NULL, NULL, 't', 't');
"""


def test_a_schema_2_store_migrates_keeping_every_row(tmp_path: Path, sale: list[Any]) -> None:
    path = tmp_path / "v2.sqlite3"
    Store(path, SECRET).close()
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE held_records; DROP TABLE anchors; DROP TABLE escrow_actions;"
                     + _V2_JOURNALS + "UPDATE meta SET value = '2' WHERE key = 'schema';")
    db.commit()
    db.close()
    with Store(path, SECRET) as store:
        [anchor] = store.anchors()
        assert (anchor.size, anchor.status, anchor.block_number, anchor.attempts) == (3, "confirmed", 12, ())
        [action] = store.actions(status="sent")
        assert (action.order_id, action.payload, action.nonce, action.block_hash) == ("O1", {"a": 1}, 5, None)
        store.mark_anchor(anchor.id, "lost", error="reorg")  # the new statuses are allowed
        schema = store.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
        assert schema == str(SCHEMA_VERSION)


def test_an_earlier_attempt_mined_becomes_the_rows_latest_bytes_and_nonce(store: Store,
                                                                          sale: list[Any]) -> None:
    """A fee bump (or a re-signing) is stored as the latest attempt, yet the earlier one may be
    the one mined. Settling names the mined hash: the row then holds ITS bytes and nonce (a
    re-send after a reorg must send what was mined, not the other attempt's bytes, and watch
    its hash), and the unmined attempt is kept among the attempts (it could still be mined)."""
    rec = parse_record(_ship(sale))
    first = _action(rec.order_id, nonce=7)
    a = store.hold([rec], first)
    store.replace_attempt("escrow_actions", a, tx_hash=b"\x08" * 32, raw_tx=b"raw-bumped", nonce=9,
                          why="signed again")
    assert store.mark_action(a, "confirmed", expect="sent", tx_hash=first.tx_hash, block_number=3)
    row = store.action_row(a)
    assert row is not None
    assert (row.tx_hash, row.raw_tx, row.nonce) == (first.tx_hash, b"raw", 7)
    assert [(x.tx_hash, x.raw_tx, x.nonce) for x in row.attempts] == [(b"\x08" * 32, b"raw-bumped", 9)]
    assert set(row.tx_hashes) == {first.tx_hash, b"\x08" * 32}


def test_a_step_settled_by_another_process_is_not_settled_or_replaced_again(store: Store,
                                                                            sale: list[Any]) -> None:
    """Two processes driving one step (the compare-and-set behind the run locks): the second
    to settle changes nothing, and its records enter the log once; a replacement signed by the
    second is not stored over a settled row."""
    rec = parse_record(_ship(sale))
    a = store.hold([rec], _action(rec.order_id))
    assert store.mark_action(a, "confirmed", expect="sent", block_number=5)
    assert not store.mark_action(a, "abandoned", expect="sent", error="nonce taken")
    assert not store.replace_attempt("escrow_actions", a, tx_hash=b"\x09" * 32, raw_tx=b"x", nonce=8,
                                     why="bump")
    row = store.action_row(a)
    assert row is not None and (row.status, row.block_number, row.attempts) == ("confirmed", 5, ())
    assert [r.id for r in store.records_for_order(rec.order_id)] == [rec.id]
