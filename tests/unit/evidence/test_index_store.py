"""The kept index's overlay: changed shards stay in memory until enough records are covered
or the store closes. Whatever is persisted is always one consistent size; an overlay lost to
a crash is recomputed; another process's newer state is never written over; a rolled-back
transaction leaves nothing half-kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledger.dev.flash_sale import generate_flash_sale
from ledger.evidence.index_store import LogIndex
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.records import Record, parse_record
from ledger.evidence.store import Store
from tests.unit.evidence.test_index import naive_root

SECRET = MasterSecret.from_hex("c5" * 32)


@pytest.fixture(scope="module")
def records() -> list[Record]:
    sale = generate_flash_sale(seed=12, orders=40, merchants=3, start="2026-11-11T23:00:00Z")
    return [parse_record(o) for o in sale]


def _naive(store: Store, size: int) -> bytes:
    return naive_root([
        (i, o, m, t, bytes(lf))
        for i, o, m, t, lf in store.db.execute(
            "SELECT idx, order_id, merchant_id, ts_ns, leaf FROM records WHERE idx < ?", (size,)
        )
    ])


def _persisted(store: Store) -> int:
    row = store.db.execute("SELECT value FROM meta WHERE key = 'index_size'").fetchone()
    return 0 if row is None else int(row[0])


def _ingest_in_parts(store: Store, records: list[Record], cuts: list[int]) -> None:
    for a, b in zip(cuts, cuts[1:], strict=False):
        store.ingest(records[a:b], source=f"part-{a}")
        store.index_root(b)


@pytest.mark.parametrize("flush_records", [1, 30, LogIndex.FLUSH_RECORDS])
def test_any_flush_cadence_gives_the_naive_roots_and_proofs(
    tmp_path: Path, records: list[Record], monkeypatch: pytest.MonkeyPatch, flush_records: int
) -> None:
    monkeypatch.setattr(LogIndex, "FLUSH_RECORDS", flush_records)
    n = len(records)
    cuts = [0, 9, 20, 41, 70, n]
    persisted = 0  # the overlay is written once it covers flush_records records
    for c in cuts[1:]:
        persisted = c if c - persisted >= flush_records else persisted
    with Store(tmp_path / "s.sqlite3", SECRET) as store:
        _ingest_in_parts(store, records, cuts)
        assert _persisted(store) == persisted and store.index.size == n
        for size in (1, 9, 33, 70, n):
            assert store.index.root(size) == _naive(store, size), size
        order = records[-1].order_id
        proof = store.index.order_proof(order, n)
        assert proof.root == _naive(store, n)
        assert [e[0] for e in proof.entries] == [i for i, r in enumerate(records) if r.order_id == order]
    with Store(tmp_path / "s.sqlite3", SECRET) as store:  # closing persisted the overlay
        assert _persisted(store) == n
        assert store.index_root(n) == _naive(store, n)


def test_an_overlay_lost_to_a_crash_is_recomputed(tmp_path: Path, records: list[Record]) -> None:
    n = len(records)
    path = tmp_path / "s.sqlite3"
    crashed = Store(path, SECRET)
    _ingest_in_parts(crashed, records, [0, 25, n])
    assert crashed.index.size == n and _persisted(crashed) == 0  # all of it in memory
    crashed.db.close()  # as after kill -9: the overlay is gone, never written
    with Store(path, SECRET) as store:
        assert store.index.size == 0
        assert store.index_root(n) == _naive(store, n)
        assert store.index.root(25) == _naive(store, 25)


def test_a_stale_overlay_never_overwrites_a_newer_persisted_state(
    tmp_path: Path, records: list[Record]
) -> None:
    """Two processes on one file: A keeps an overlay at 30 on persisted 0; B persists 60. A's
    overlay is dropped, not written (it would mix shards at 30 with B's at 60)."""
    path = tmp_path / "s.sqlite3"
    a, b = Store(path, SECRET), Store(path, SECRET)
    a.ingest(records[:60], source="first")
    assert a.index_root(30) == _naive(a, 30)
    assert b.index_root(60) == _naive(b, 60)
    b.close()
    assert _persisted(a) == 60
    # A notices before answering, and answers from the newer state
    assert a.index.root(45) == _naive(a, 45)
    a.ingest(records[60:], source="rest")
    assert a.index_root(len(records)) == _naive(a, len(records))
    a.close()
    with Store(path, SECRET) as c:
        for size in (30, 60, len(records)):
            assert c.index.root(size) == _naive(c, size), size


def test_a_stale_overlay_is_dropped_when_it_would_be_flushed(tmp_path: Path, records: list[Record]) -> None:
    path = tmp_path / "s.sqlite3"
    a, b = Store(path, SECRET), Store(path, SECRET)
    a.ingest(records, source="all")
    a.index_root(30)
    b.index_root(60)
    b.close()
    a.close()  # its flush finds 60 persisted, not the 0 its overlay is on: nothing written
    with Store(path, SECRET) as c:
        assert _persisted(c) == 60
        assert c.index_root(len(records)) == _naive(c, len(records))


def test_a_rolled_back_flush_leaves_the_persisted_state_and_the_answers_right(
    tmp_path: Path, records: list[Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LogIndex, "FLUSH_RECORDS", 1)
    n = len(records)
    with Store(tmp_path / "s.sqlite3", SECRET) as store:
        store.ingest(records, source="all")
        store.index_root(20)
        assert _persisted(store) == 20

        def fail(*_: Any) -> None:
            raise RuntimeError("the transaction fails after the index wrote its overlay")

        original = store.index._keep

        def keep_then_fail(*args: Any) -> None:
            original(*args)
            fail()

        monkeypatch.setattr(store.index, "_keep", keep_then_fail)
        with pytest.raises(RuntimeError):
            store.index_root(50)
        monkeypatch.setattr(store.index, "_keep", original)
        assert _persisted(store) == 20  # rolled back, and the index knows it
        assert store.index.root(50) == _naive(store, 50)
        assert store.index_root(n) == _naive(store, n)
