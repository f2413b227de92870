"""The store's ingestion: several batches are one transaction; conflicts say what differs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledger.dev.flash_sale import generate_flash_sale
from ledger.errors import ConflictError
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.records import parse_record
from ledger.evidence.store import Batch, Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "s.sqlite3", MasterSecret.from_hex("c5" * 32))


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
