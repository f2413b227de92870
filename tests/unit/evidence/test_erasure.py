"""Erasure (`ledger.evidence.erasure`, docs/erasure.md): the erased order's content and key are gone
from every byte of the store's files, a backup taken afterwards included; its leaves, every other
order's records and proofs, and every earlier head are untouched; the erasure is a record of the
log; nothing brings the content back.

SQLite is the store's only backend (one file with its -wal and -shm companions), so the forensic
test reads those three files.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger._internal import canonical
from ledger.dev.flash_sale import generate_flash_sale
from ledger.errors import ConflictError, StoreError, ValidationError
from ledger.evidence.bundle import export_bundle, verify_bundle
from ledger.evidence.bundle_format import dumps_bundle, load_bundle
from ledger.evidence.erasure import MAX_ERASED, erasure_id
from ledger.evidence.journal import NewAction
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.records import parse_jsonl, parse_record
from ledger.evidence.store import Store
from tests.unit.evidence.bundle_data import CHAIN_ID, CONTRACT
from tests.unit.evidence.bundle_data import paper_anchor as anchor

SECRET = MasterSecret.from_hex("c5" * 32)
START = "2026-11-11T22:00:00Z"
KEPT = ("id", "kind", "order_id", "merchant_id", "ts")  # what an erased record keeps


@pytest.fixture(scope="module")
def sale() -> list[dict[str, Any]]:
    return generate_flash_sale(seed=11, orders=40, merchants=2, start=START)


def _by_order(sale: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for o in sale:
        out.setdefault(o["order_id"], []).append(o)
    return out


def _victim(sale: list[dict[str, Any]]) -> str:
    """An order with a shipment, a payment and personal fields in several records."""
    for oid, recs in _by_order(sale).items():
        kinds = {r["kind"] for r in recs}
        if {"order", "payment", "shipment"} <= kinds and sum("personal" in r for r in recs) >= 3:
            return oid
    raise AssertionError("no order to erase in the sale")


@pytest.fixture
def store(tmp_path: Path, sale: list[dict[str, Any]]) -> Iterator[Store]:
    """The sale ingested in three batches (so that pages split and are rewritten) and anchored."""
    s = Store(tmp_path / "evidence.sqlite3", SECRET)
    third = len(sale) // 3
    for part in (sale[:third], sale[third:2 * third], sale[2 * third:]):
        s.ingest([parse_record(o) for o in part], source="sale.jsonl")
    anchor(s, 0)
    yield s
    s.close()


# --------------------------------------------------------------------------- the files forget


def _files(store: Store) -> bytes:
    """Every byte of the store's files: the database, its WAL and its shared-memory index."""
    out = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = Path(str(store.path) + suffix)
        if p.exists():
            out += p.read_bytes()
    return out


def _needles(store: Store, sale: list[dict[str, Any]], oid: str) -> dict[str, bytes]:
    """What erasing `oid` must remove from the files: its personal values, the public values only it
    has, each record's canonical public fields, its key, salts, wrapped key, personal blobs and
    commitments. A value that stays for another reason (another order has it too) is not searched."""
    key = store.keys.states([oid], create=False)[oid]
    mine = _by_order(sale)[oid]
    stored = store.records_for_order(oid)
    needles: dict[str, bytes] = {"order key": key.key.key, "order key hex": key.key.key.hex().encode()}
    wrapped = store.db.execute("SELECT wrapped FROM order_keys WHERE order_id = ?", (oid,)).fetchone()[0]
    needles["wrapped key"] = bytes(wrapped)
    for r, s in zip(mine, stored, strict=True):
        salt, psalt = key.key.salts(r["id"])
        needles |= {f"{r['id']} salt": salt, f"{r['id']} salt hex": salt.hex().encode(),
                    f"{r['id']} personal salt": psalt, f"{r['id']} public": canonical.dumps_strict(s.public)}
        if s.personal_blob is not None and s.personal_commitment is not None:
            needles |= {f"{r['id']} personal blob": s.personal_blob,
                        f"{r['id']} commitment": s.personal_commitment,
                        f"{r['id']} commitment hex": s.personal_commitment.hex().encode()}
        for name, value in (r.get("personal") or {}).items():
            needles[f"{r['id']} personal.{name}"] = value.encode()
        for name, value in r.items():
            if name not in KEPT and isinstance(value, str) and len(value) >= 6:
                needles[f"{r['id']} {name}"] = value.encode()
    # what stays legitimately: every other record's content and the erased records' kept fields
    stays = b"\n".join(canonical.dumps_strict({k: v for k, v in o.items() if k != "personal"})
                       for o in sale if o["order_id"] != oid)
    stays += b"\n".join(json.dumps([r[k] for k in KEPT]).encode() for r in mine)
    return {name: v for name, v in needles.items() if v not in stays}


def test_after_erasure_no_byte_of_the_files_holds_the_erased_order(store: Store,
                                                                    sale: list[dict[str, Any]]) -> None:
    """Ingests run without secure_delete, so the pages they split and the index rows they rewrite
    leave stale copies of cells in free pages and free space: the erasure's own secure_delete does
    not reach those, its VACUUM does (without it, this test finds the order's canonical JSON)."""
    oid = _victim(sale)
    needles = _needles(store, sale, oid)
    assert {"wrapped key", "order key", f"{oid}:ship tracking_number"} <= needles.keys()
    before = _files(store)
    found_before = {n for n, v in needles.items() if v in before}
    # the search would see them: the wrapped key, the public fields, the blobs are in the file
    assert {"wrapped key", f"{oid}:ship tracking_number", f"{oid}:pay payment_ref"} <= found_before
    done = store.erase(oid, reason="GDPR art. 17 request 1234", operator="dpo@platform")
    assert done.forgotten and not done.already and done.key_version == 2
    after = _files(store)
    assert [n for n, v in needles.items() if v in after] == []
    store.close()
    assert [n for n, v in needles.items() if v in _files(store)] == []  # closed: the files as they rest


def test_a_backup_taken_after_the_erasure_holds_none_of_it(store: Store, sale: list[dict[str, Any]],
                                                           tmp_path: Path) -> None:
    oid = _victim(sale)
    needles = _needles(store, sale, oid)
    store.erase(oid, reason="PIPL art. 47", operator="dpo")
    backup = sqlite3.connect(tmp_path / "backup.sqlite3")
    store.db.backup(backup)
    backup.close()
    data = (tmp_path / "backup.sqlite3").read_bytes()
    assert [n for n, v in needles.items() if v in data] == []


def test_a_reader_holding_the_wal_is_reported_and_a_rerun_forgets(store: Store,
                                                                   sale: list[dict[str, Any]]) -> None:
    oid = _victim(sale)
    needles = _needles(store, sale, oid)
    reader = sqlite3.connect(store.path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM records").fetchone()  # holds a snapshot from before
    assert not store.erase(oid, reason="r", operator="o").forgotten
    reader.execute("COMMIT")
    reader.close()
    again = store.erase(oid, reason="r", operator="o")
    assert again.already and again.forgotten
    assert [n for n, v in needles.items() if v in _files(store)] == []


# --------------------------------------------------------------------------- what stays, what changes


def test_the_leaves_every_head_and_the_other_orders_are_untouched(store: Store,
                                                                  sale: list[dict[str, Any]]) -> None:
    oid = _victim(sale)
    size = store.size
    roots = [store.tree.root(n) for n in range(1, size + 1)]
    index_root = store.index_root(size)
    others = {r.id: r for r in store.records_in_range(None, None) if r.order_id != oid}
    leaves = [r.leaf for r in store.records_in_range(None, None)]
    done = store.erase(oid, reason="r", operator="o")
    store.close()
    reopened = Store(store.path, SECRET)
    assert [reopened.tree.root(n) for n in range(1, size + 1)] == roots
    assert reopened.index_root(size) == index_root
    assert [r.leaf for r in reopened.records_in_range(None, None)][:size] == leaves
    assert {r.id: r for r in reopened.records_in_range(None, None) if r.order_id != oid} == others
    assert reopened.size == size + 1 and done.erasure_index == size
    erased = reopened.records_for_order(oid)
    assert [r.erased for r in erased[:-1]] == [(done.erased_at, erasure_id(oid))] * (len(erased) - 1)
    for r in erased[:-1]:
        assert set(r.public) == set(KEPT) and r.personal_blob is None and r.personal_commitment is None
    counts = reopened.counts()
    assert counts["erasure"] == 1 and sum(counts.values()) == size + 1
    reopened.close()


def test_the_erasure_record_says_what_when_why_and_who(store: Store, sale: list[dict[str, Any]]) -> None:
    oid = _victim(sale)
    before = store.records_for_order(oid)
    done = store.erase(oid, reason="GDPR art. 17 request 1234", operator="dpo@platform",
                       at="2026-12-01T09:00:00Z")
    record = store.record_by_id(done.erasure_id)
    assert record is not None and record.erased is None and record.index == done.erasure_index
    assert record.public == {
        "id": f"{oid}:erasure", "kind": "erasure", "order_id": oid, "merchant_id": before[0].merchant_id,
        "ts": "2026-12-01T09:00:00Z", "reason": "GDPR art. 17 request 1234", "operator": "dpo@platform",
        "key_version": 2, "erased": [{"index": r.index, "id": r.id, "leaf": r.leaf.hex()} for r in before]}
    assert record.leaf == store.leaf_for(parse_record(record.public, erasure=True))
    state = store.erasure_of(oid)
    assert state is not None and (state.erased_at, state.erasure_id, state.erased_version) == (
        "2026-12-01T09:00:00Z", f"{oid}:erasure", 2)
    assert store.erasure_of(before[0].order_id + "x") is None


def test_erasing_again_changes_nothing_and_says_when(store: Store, sale: list[dict[str, Any]]) -> None:
    oid = _victim(sale)
    first = store.erase(oid, reason="r", operator="o")
    size = store.size
    again = store.erase(oid, reason="another reason", operator="someone else")
    assert again.already and store.size == size
    assert (again.erased_at, again.erasure_id, again.erasure_index, again.erased) == (
        first.erased_at, first.erasure_id, first.erasure_index, first.erased)


def _state(store: Store) -> tuple[Any, ...]:
    db = store.db
    return (store.size, db.execute("SELECT * FROM order_keys ORDER BY order_id").fetchall(),
            db.execute("SELECT public, personal FROM records ORDER BY idx").fetchall(),
            db.execute("SELECT COUNT(*) FROM held_records").fetchone())


@pytest.mark.parametrize("reason,operator,field", [
    ("", "o", "reason"), ("x" * 501, "o", "reason"), ("ok", "a\x07b", "operator"), ("ok", "", "operator"),
])
def test_an_invalid_reason_or_operator_names_the_field_and_erases_nothing(
        store: Store, sale: list[dict[str, Any]], reason: str, operator: str, field: str) -> None:
    oid = _victim(sale)
    before = _state(store)
    with pytest.raises(ValidationError) as err:
        store.erase(oid, reason=reason, operator=operator)
    [p] = err.value.problems
    assert p.field == field and p.record_id == f"{oid}:erasure"
    assert _state(store) == before


def test_an_unknown_order_is_refused(store: Store) -> None:
    before = _state(store)
    with pytest.raises(StoreError, match="'NOPE' has no records in the log: nothing to erase"):
        store.erase("NOPE", reason="r", operator="o")
    assert _state(store) == before


def _action(order_id: str) -> NewAction:
    return NewAction(chain_id=CHAIN_ID, contract="0xesc", order_id=order_id, action="ship",
                     record_id=f"{order_id}:ship2", evidence=b"\x01" * 32, payload={}, sender="0xs",
                     nonce=1, tx_hash=b"\x07" * 32, raw_tx=b"raw")


def _ship(sale: list[dict[str, Any]], oid: str) -> Any:
    ship = next(o for o in sale if o["order_id"] == oid and o["kind"] == "shipment")
    return parse_record(dict(ship, id=f"{oid}:ship2", tracking_number="SF9999999999"))


def test_an_order_with_a_pending_escrow_step_is_refused(store: Store, sale: list[dict[str, Any]]) -> None:
    oid = _victim(sale)
    store.hold([_ship(sale, oid)], _action(oid))
    before = _state(store)
    with pytest.raises(StoreError, match=r"escrow step still pending \(#1 ship, tx 0x0707.*ledger resume"):
        store.erase(oid, reason="r", operator="o")
    assert _state(store) == before


def test_records_held_for_a_failed_step_are_deleted(store: Store, sale: list[dict[str, Any]]) -> None:
    oid = _victim(sale)
    a = store.hold([_ship(sale, oid)], _action(oid))
    store.mark_action(a, "failed", error="reverted")
    store.erase(oid, reason="r", operator="o")
    assert store.db.execute("SELECT COUNT(*) FROM held_records").fetchone()[0] == 0
    assert b"SF9999999999" not in _files(store)


def test_an_order_of_more_records_than_one_erasure_names_is_refused(tmp_path: Path,
                                                                    sale: list[dict[str, Any]]) -> None:
    s = Store(tmp_path / "big.sqlite3", SECRET)
    review = next(o for o in sale if o["kind"] == "review")
    many = [dict(review, id=f"{review['order_id']}:r{i}") for i in range(MAX_ERASED + 1)]
    s.ingest([parse_record(o) for o in many], source="many")
    with pytest.raises(StoreError, match=f"has {MAX_ERASED + 1} records; one erasure erases at most"):
        s.erase(review["order_id"], reason="r", operator="o")
    s.close()


# --------------------------------------------------------------------------- nothing comes back


def test_re_ingesting_the_erased_records_is_refused(store: Store, sale: list[dict[str, Any]]) -> None:
    """The attack: someone still holding the original file ingests it again. Nothing is stored (not
    even the other orders' records of the same file: one ingest is one unit), and each refusal
    names the record, the order and its erasure, never the content."""
    oid = _victim(sale)
    store.erase(oid, reason="r", operator="o", at="2026-12-01T09:00:00Z")
    needles = [r["tracking_number"].encode() for r in sale if r["order_id"] == oid and "tracking_number" in r]
    before = _state(store)
    lines = b"\n".join(canonical.dumps_strict(o) for o in sale)
    with pytest.raises(ConflictError) as err:
        store.ingest(parse_jsonl(lines, source="old.jsonl"), source="old.jsonl")
    mine = [o["id"] for o in sale if o["order_id"] == oid]
    assert [p.record_id for p in err.value.problems] == mine
    for p in err.value.problems:
        assert (p.field, p.source) == ("order_id", "old.jsonl")
        assert p.reason.startswith(f"order {oid!r} was erased on 2026-12-01T09:00:00Z (erasure record "
                                   f"'{oid}:erasure'): its records are never logged again")
    assert not any(n in str(err.value).encode() for n in needles)
    assert _state(store) == before


def test_a_new_record_of_an_erased_order_is_refused_too(store: Store, sale: list[dict[str, Any]]) -> None:
    oid = _victim(sale)
    store.erase(oid, reason="r", operator="o")
    with pytest.raises(ConflictError, match="was erased on"):
        store.ingest([_ship(sale, oid)], source="late.jsonl")
    with pytest.raises(ConflictError, match="was erased on"):
        store.hold([_ship(sale, oid)], _action(oid))
    assert store.actions() == []


def test_an_erasure_record_is_never_ingested(store: Store, sale: list[dict[str, Any]]) -> None:
    oid = _victim(sale)
    forged = {"id": f"{oid}:erasure", "kind": "erasure", "order_id": oid, "merchant_id": "M1001",
              "ts": "2026-12-01T09:00:00Z", "reason": "r", "operator": "o", "key_version": 2,
              "erased": [{"index": 0, "id": f"{oid}:order", "leaf": "00" * 32}]}
    with pytest.raises(ValidationError) as err:  # from a file: an unknown kind, said so
        parse_jsonl(canonical.dumps_strict(forged), source="f.jsonl")
    assert [(p.field, p.reason) for p in err.value.problems] == [
        ("kind", "an erasure record is written by `ledger erase` (which destroys the order's content and "
                 "key), never ingested")]
    with pytest.raises(ConflictError, match="never ingested"):  # through the API: the store refuses it
        store.ingest([parse_record(forged, erasure=True)], source="api")
    assert store.erasure_of(oid) is None


def test_the_erasure_rules_of_the_record_itself() -> None:
    base = {"id": "O1:erasure", "kind": "erasure", "order_id": "O1", "merchant_id": "M1",
            "ts": "2026-12-01T09:00:00Z", "reason": "r", "operator": "o", "key_version": 2,
            "erased": [{"index": 3, "id": "O1:order", "leaf": "ab" * 32},
                       {"index": 5, "id": "O1:pay", "leaf": "cd" * 32}]}
    parse_record(base, erasure=True)
    bad = {
        "erased": (dict(base, erased=list(reversed(base["erased"]))), "strictly increasing"),
        "erased[0].leaf": (dict(base, erased=[{"index": 3, "id": "O1:order", "leaf": "AB" * 32}]), "SHA-256"),
        "key_version": (dict(base, key_version=3), "out of range"),
        "personal.phone": (dict(base, personal={"phone": "1"}), "allowed: none (this kind has no personal"),
    }
    for field, (obj, reason) in bad.items():
        with pytest.raises(ValidationError) as err:
            parse_record(obj, erasure=True)
        assert any(p.field == field and reason in p.reason for p in err.value.problems), err.value.problems


# --------------------------------------------------------------------------- bundles


def test_bundles_of_the_erased_order_and_of_another_verify(store: Store, sale: list[dict[str, Any]]) -> None:
    oid = _victim(sale)
    other = next(o for o in _by_order(sale) if o != oid)
    early_other, _ = export_bundle(store, CHAIN_ID, CONTRACT, order_id=other, disclose_personal=True)
    early_erased, _ = export_bundle(store, CHAIN_ID, CONTRACT, order_id=oid)
    done = store.erase(oid, reason="r", operator="o", at="2026-12-01T09:00:00Z")
    with pytest.raises(Exception, match="is not anchored yet: a bundle shows the erasure only with it"):
        export_bundle(store, CHAIN_ID, CONTRACT, order_id=oid)
    anchor(store, 1)
    bundle, _ = export_bundle(store, CHAIN_ID, CONTRACT, order_id=oid, disclose_personal=True)
    bundle = load_bundle(dumps_bundle(bundle))
    verdict = verify_bundle(bundle, None)
    assert (verdict.status, verdict.completeness) == ("head_unchecked", "proven")
    erased = [(i, rid, "2026-12-01T09:00:00Z", []) for i, rid in done.erased]
    assert [(r.index, r.record_id, r.erased_at, r.failures) for r in verdict.records] == [
        *erased, (done.erasure_index, done.erasure_id, None, [])]
    assert [e.leaf_hash for e in bundle.records[:-1]] == [e.leaf_hash for e in early_erased.records]
    assert all(e.record is None and e.salt is None for e in bundle.records[:-1])
    later_other, _ = export_bundle(store, CHAIN_ID, CONTRACT, order_id=other, disclose_personal=True)
    assert verify_bundle(later_other, None).status == "head_unchecked"
    assert [(e.index, e.leaf_hash, e.record, e.salt, e.personal) for e in later_other.records] == [
        (e.index, e.leaf_hash, e.record, e.salt, e.personal) for e in early_other.records]
    assert later_other.order_keys == early_other.order_keys
    # what was disclosed before cannot be recalled: the earlier bundle still verifies
    assert verify_bundle(early_erased, None).status == "head_unchecked"


class _NoRoomForVacuum:
    """The store's connection, but VACUUM fails as it does when its temporary copy finds no room."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "VACUUM":
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_a_failed_vacuum_is_reported_and_the_erasure_stands(store: Store, sale: list[dict[str, Any]]) -> None:
    oid = _victim(sale)
    real = store.db
    store.db = _NoRoomForVacuum(real)  # type: ignore[assignment]
    done = store.erase(oid, reason="r", operator="o")
    assert not done.forgotten
    assert done.not_forgotten == "SQLite could not rebuild the file (database or disk is full)"
    assert done.to_json()["wal_emptied"] is False and store.erasure_of(oid) is not None
    store.db = real
    again = store.erase(oid, reason="r", operator="o")
    assert again.already and again.forgotten
