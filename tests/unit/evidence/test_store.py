"""The store's ingestion: several batches are one transaction; conflicts say what differs; an order
belongs to one merchant."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.dev.flash_sale import generate_flash_sale
from ledger.errors import ConflictError
from ledger.evidence.journal import NewAction
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.records import parse_record
from ledger.evidence.store import Batch, Store

SECRET = MasterSecret.from_hex("c5" * 32)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "s.sqlite3", SECRET)


@pytest.fixture(scope="module")
def sale() -> list[dict[str, Any]]:
    return generate_flash_sale(seed=5, orders=8, merchants=1, start="2026-11-11T12:00:00Z")


def _batch(name: str, objs: list[dict[str, Any]]) -> Batch:
    return Batch(name, [parse_record(o) for o in objs])


def _state(store: Store) -> tuple[int, int, list[Any]]:
    batches = store.db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
    return store.size, batches, [r.id for r in store.records_in_range(None, None)]


def test_batches_are_stored_together_with_their_own_counts(store: Store, sale: list[dict[str, Any]]) -> None:
    store.ingest_batches([_batch("a", sale[:5])])
    results = store.ingest_batches([_batch("b", sale[3:10]), _batch("c", sale[8:12])])
    assert [(r.source, r.stored, r.skipped, r.first_index, r.size) for r in results] == [
        ("b", 5, 2, 5, 10), ("c", 2, 2, 10, 12)]
    rows = store.db.execute("SELECT source, first_idx, count, skipped FROM batches ORDER BY id").fetchall()
    assert rows == [("a", 0, 5, 0), ("b", 5, 5, 2), ("c", 10, 2, 2)]
    assert store.tree.size == 12


def test_a_conflict_in_a_later_batch_stores_no_batch(store: Store, sale: list[dict[str, Any]]) -> None:
    store.ingest_batches([_batch("a", sale[:5])])
    before = _state(store)
    tampered = dict(sale[1], ts="2026-11-11T23:59:59Z")
    with pytest.raises(ConflictError) as err:
        store.ingest_batches([_batch("b", sale[5:9]), _batch("c", [tampered, sale[9]])])
    assert _state(store) == before
    [p] = err.value.problems
    assert (p.source, p.record_id) == ("c", sale[1]["id"])
    assert p.reason.startswith("id already in the log with different content (leaf 1, from a; differing: ts)")
    assert "possible tampering" in p.reason and "nothing was stored" in str(err.value)


def test_batches_that_disagree_store_nothing(store: Store, sale: list[dict[str, Any]]) -> None:
    other = dict(sale[0], personal={"buyer_name": "someone else"})
    with pytest.raises(ConflictError) as err:
        store.ingest_batches([_batch("a", sale[:3]), _batch("b", [sale[3], other])])
    [p] = err.value.problems
    assert p.source == "b"
    assert p.reason.startswith("id also in a with different content (differing: personal)")
    assert _state(store) == (0, 0, [])


# -- an order belongs to one merchant ----------------------------------------------------------


def _as(rec: dict[str, Any], merchant: str, **changes: Any) -> dict[str, Any]:
    return {**rec, "merchant_id": merchant, **changes}


def _order_of(sale: list[dict[str, Any]], n: int = 0) -> list[dict[str, Any]]:
    oid = [r for r in sale if r["kind"] == "order"][n]["order_id"]
    return [r for r in sale if r["order_id"] == oid]


def test_a_record_of_another_merchants_logged_order_is_refused(
        store: Store, sale: list[dict[str, Any]]) -> None:
    first, *rest = _order_of(sale)
    store.ingest_batches([_batch("a.jsonl", [first])])
    before = _state(store)
    with pytest.raises(ConflictError) as err:
        store.ingest_batches([_batch("b.jsonl", [_as(r, "M-OTHER") for r in rest])])
    assert _state(store) == before
    assert [(p.source, p.record_id, p.field) for p in err.value.problems] == [
        ("b.jsonl", r["id"], "merchant_id") for r in rest]
    assert err.value.problems[0].reason == (
        f"order {first['order_id']!r} belongs to merchant {first['merchant_id']!r} (record {first['id']!r}, "
        "leaf 0, from a.jsonl); this record says 'M-OTHER': an order belongs to exactly one merchant")
    store.ingest_batches([_batch("b.jsonl", rest)])  # under the order's own merchant: stored
    assert {r.merchant_id for r in store.records_for_order(first["order_id"])} == {first["merchant_id"]}


def test_records_of_one_order_under_two_merchants_in_one_call_are_refused(
        store: Store, sale: list[dict[str, Any]]) -> None:
    first, second, *rest = _order_of(sale, 1)
    other = [_as(r, "M-OTHER") for r in rest]
    with pytest.raises(ConflictError) as err:  # in one file: all after the first merchant seen
        store.ingest_batches([_batch("a.jsonl", [_as(second, "M-OTHER"), first, *other])])
    assert [p.record_id for p in err.value.problems] == [first["id"]]
    assert f"(record {second['id']!r}, from a.jsonl); this record says {first['merchant_id']!r}" in (
        err.value.problems[0].reason)
    with pytest.raises(ConflictError) as err:  # across files: the first file's merchant holds
        elsewhere = [r for r in sale if r["order_id"] != first["order_id"]][:3]
        store.ingest_batches([_batch("a.jsonl", [*elsewhere, first]), _batch("b.jsonl", [second, *other])])
    assert [(p.source, p.record_id) for p in err.value.problems] == [("b.jsonl", r["id"]) for r in rest]
    assert all(f"(record {first['id']!r}, from a.jsonl); this record says 'M-OTHER'" in p.reason
               for p in err.value.problems)
    assert _state(store) == (0, 0, [])


def test_the_first_merchant_holds_across_chunks(store: Store, sale: list[dict[str, Any]],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ledger.evidence.store._CHUNK", 2)
    first, *rest = _order_of(sale, 1)
    with pytest.raises(ConflictError) as err:
        store.ingest_batches([_batch("a.jsonl", [first, *sale[:3], *(_as(r, "M-OTHER") for r in rest)])])
    assert [p.record_id for p in err.value.problems] == [r["id"] for r in rest]
    assert f"(record {first['id']!r}, from a.jsonl)" in err.value.problems[0].reason
    assert _state(store) == (0, 0, [])


def test_every_problem_is_listed_and_nothing_is_stored(store: Store, sale: list[dict[str, Any]]) -> None:
    store.ingest_batches([_batch("a.jsonl", sale[:6])])
    before = _state(store)
    tampered = dict(sale[1], ts="2026-11-11T23:59:59Z")
    pay = next(r for r in sale[6:] if r["kind"] == "payment")
    stray = _as(pay, "M-OTHER", id=pay["order_id"] + ":pay2")
    with pytest.raises(ConflictError) as err:
        store.ingest_batches([_batch("b.jsonl", sale[6:]), _batch("c.jsonl", [tampered]),
                              _batch("d.jsonl", [stray])])
    assert [(p.source, p.record_id, p.field) for p in err.value.problems] == [
        ("c.jsonl", sale[1]["id"], None), ("d.jsonl", stray["id"], "merchant_id")]
    assert "2 conflicting record(s); nothing was stored" in str(err.value)
    assert _state(store) == before


def test_an_identical_re_ingest_is_still_fine(store: Store, sale: list[dict[str, Any]]) -> None:
    store.ingest_batches([_batch("a.jsonl", sale)])
    [again] = store.ingest_batches([_batch("a.jsonl", sale)])
    assert (again.stored, again.skipped) == (0, len(sale))


def _action(order_id: str, action: str = "fund", nonce: int = 7) -> NewAction:
    return NewAction(chain_id=31337, contract="0x" + "11" * 20, order_id=order_id, action=action,
                     record_id=f"{order_id}:{action}", evidence=b"\x01" * 32, payload={},
                     sender="0x" + "ab" * 20, nonce=nonce, tx_hash=bytes([nonce]) * 32, raw_tx=b"raw")


def test_a_record_held_by_a_pending_step_binds_its_order(store: Store, sale: list[dict[str, Any]]) -> None:
    first, second, *_ = _order_of(sale, 2)
    step = store.hold([parse_record(first)], _action(first["order_id"]))
    with pytest.raises(ConflictError) as err:
        store.ingest_batches([_batch("b.jsonl", [_as(second, "M-OTHER")])])
    [p] = err.value.problems
    assert (p.record_id, p.field) == (second["id"], "merchant_id")
    assert (f"belongs to merchant {first['merchant_id']!r} (record {first['id']!r}, from escrow step #{step} "
            "(fund), held until its transaction is confirmed); this record says 'M-OTHER'") in p.reason
    assert _state(store) == (0, 0, [])
    store.mark_action(step, "failed", error="reverted")  # its records never enter the log: no longer binding
    store.ingest_batches([_batch("b.jsonl", [_as(second, "M-OTHER")])])


def test_an_escrow_step_cannot_hold_a_record_of_another_merchants_order(
        store: Store, sale: list[dict[str, Any]]) -> None:
    first, second, *_ = _order_of(sale, 2)
    store.ingest_batches([_batch("a.jsonl", [first])])
    with pytest.raises(ConflictError) as err:
        store.hold([parse_record(_as(second, "M-OTHER"))], _action(first["order_id"]))
    [p] = err.value.problems
    assert (p.source, p.record_id, p.field) == ("escrow:fund", second["id"], "merchant_id")
    assert f"(record {first['id']!r}, leaf 0, from a.jsonl); this record says 'M-OTHER'" in p.reason
    assert store.actions() == [] and store.size == 1
    with pytest.raises(ConflictError):  # nor two records of one order under two merchants in one step
        store.hold([parse_record(r) for r in _order_of(sale, 3)[:1]]
                   + [parse_record(_as(r, "M-OTHER")) for r in _order_of(sale, 3)[1:]], _action("O-4"))
    assert store.actions() == []


_ORDERS, _MERCHANTS = ("O-1", "O-2", "O-3"), ("M-1", "M-2")
_pairs = st.lists(st.tuples(st.sampled_from(_ORDERS), st.sampled_from(_MERCHANTS)), max_size=5)


def _payment(rid: str, order: str, merchant: str) -> dict[str, Any]:
    return {"id": rid, "kind": "payment", "order_id": order, "merchant_id": merchant,
            "ts": "2026-11-11T12:00:00Z", "amount": 100, "currency": "CNY", "method": "alipay",
            "payment_ref": rid}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(owners=st.dictionaries(st.sampled_from(_ORDERS), st.sampled_from(_MERCHANTS)),
       batches=st.lists(_pairs, min_size=1, max_size=3), again=st.booleans())
def test_ingest_succeeds_iff_every_order_keeps_one_merchant(
        owners: dict[str, str], batches: list[list[tuple[str, str]]], again: bool) -> None:
    logged = [_payment(f"L-{o}", o, m) for o, m in owners.items()]
    files = [[_payment(f"R-{b}-{i}", o, m) for i, (o, m) in enumerate(pairs)]
             for b, pairs in enumerate(batches)]
    if again:  # identical records already in the log: skipped, whatever the rest says
        files[0] = logged + files[0]
    first = dict(owners)
    for r in (r for f in files for r in f):
        first.setdefault(r["order_id"], r["merchant_id"])
    refused = [r["id"] for f in files for r in f if r["merchant_id"] != first[r["order_id"]]]
    with tempfile.TemporaryDirectory() as d, Store(Path(d) / "s.sqlite3", SECRET) as store:
        store.ingest_batches([_batch("log.jsonl", logged)])
        before = _state(store)
        try:
            store.ingest_batches([_batch(f"f{i}.jsonl", f) for i, f in enumerate(files)])
        except ConflictError as err:
            assert [(p.record_id, p.field) for p in err.problems] == [(r, "merchant_id") for r in refused]
            assert _state(store) == before
        else:
            assert refused == []
            merchants = {oid: {r.merchant_id for r in rs}
                         for oid, rs in store.records_for_orders(_ORDERS).items()}
            assert all(len(ms) <= 1 for ms in merchants.values()), merchants
