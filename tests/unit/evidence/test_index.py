"""The completeness index: the kept index agrees with a naive recomputation from the whole
log at every size, above and below the size it was advanced to."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger._internal.merkle import MerkleTree, verify_inclusion
from ledger.dev.flash_sale import generate_flash_sale
from ledger.evidence.index import (
    DAY_NS,
    SHARDS,
    TopTree,
    key_hash,
    merchant_key,
    order_key,
    root_from_shard,
    shard_of,
)
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.records import parse_record
from ledger.evidence.store import Store

# -- a naive index, written from docs/bundle.md "Completeness" without the module's helpers --


def _sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def _tag(name: str) -> bytes:
    return f"evidence-escrow/index/v1/{name}\0".encode()


def naive_root(rows: list[tuple[int, str, str, int, bytes]]) -> bytes:
    """rows: (index, order_id, merchant_id, ts_ns, leaf) of the log's first N leaves."""
    values: dict[bytes, bytes] = {}
    by_order: dict[str, list[Any]] = defaultdict(list)
    by_merchant: dict[str, dict[int, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for idx, oid, mid, ts, leaf in sorted(rows):
        by_order[oid].append((idx, ts, leaf))
        by_merchant[mid][ts // DAY_NS].append((idx, ts, leaf))

    def chain(d: bytes, entries: list[Any]) -> bytes:
        for idx, ts, leaf in entries:
            d = _sha(d, idx.to_bytes(8, "big"), ts.to_bytes(8, "big"), leaf)
        return d

    for oid, entries in by_order.items():
        kh = _sha(_tag("key"), ("order:" + oid).encode())
        values[kh] = chain(_sha(_tag("order"), kh), entries)
    for mid, days in by_merchant.items():
        kh = _sha(_tag("key"), ("merchant:" + mid).encode())
        directory = b"".join(
            day.to_bytes(4, "big")
            + len(e).to_bytes(8, "big")
            + chain(_sha(_tag("day"), kh, day.to_bytes(4, "big")), e)
            for day, e in sorted(days.items())
        )
        values[kh] = _sha(_tag("directory"), kh, directory)
    shards: dict[int, list[bytes]] = defaultdict(list)
    for kh in sorted(values):
        shards[int.from_bytes(kh[:2], "big")].append(kh + values[kh])
    empty = _sha(_tag("shard"))
    tree = MerkleTree()
    for s in range(SHARDS):
        data = _sha(_tag("shard"), *shards[s]) if s in shards else empty
        tree.append(_sha(b"\x00", data))
    return tree.root()


def _rows(store: Store, size: int) -> list[tuple[int, str, str, int, bytes]]:
    return [
        (i, o, m, t, bytes(lf))
        for i, o, m, t, lf in store.db.execute(
            "SELECT idx, order_id, merchant_id, ts_ns, leaf FROM records WHERE idx < ?", (size,)
        )
    ]


@pytest.fixture(scope="module")
def sale() -> list[dict[str, Any]]:
    return generate_flash_sale(seed=11, orders=40, merchants=3, start="2026-11-11T12:00:00Z")


def _store(tmp_path: Path, name: str = "s") -> Store:
    return Store(tmp_path / f"{name}.sqlite3", MasterSecret.from_hex("c5" * 32))


def test_top_tree_agrees_with_a_full_merkle_tree() -> None:
    shards = {5: b"\x01" * 32, 6: b"\x02" * 32, SHARDS - 1: b"\x03" * 32}
    top = TopTree(shards)
    root, path = top.root_and_path(None, prove=6)
    assert root_from_shard(6, [], path) != root  # the path proves shard 6's hash, not an empty one
    tree = MerkleTree()
    empty = _sha(_tag("shard"))
    for s in range(SHARDS):
        tree.append(_sha(b"\x00", shards.get(s, empty)))
    assert root == tree.root()
    assert path == tree.inclusion_proof(6)
    verify_inclusion(_sha(b"\x00", shards[6]), 6, SHARDS, path, root)
    # an overlay changes nothing in the tree itself
    changed, _ = top.root_and_path({6: b"\x04" * 32})
    assert changed != root and top.root_and_path(None)[0] == root


def test_the_kept_index_agrees_with_the_naive_one_at_every_size(
    tmp_path: Path, sale: list[dict[str, Any]]
) -> None:
    store = _store(tmp_path)
    records = [parse_record(o) for o in sale]
    cuts = [0, 7, 50, 51, len(records) // 2, len(records)]
    for a, b in zip(cuts, cuts[1:], strict=False):
        store.ingest(records[a:b], source=f"part-{a}")
        assert store.index_root(b) == naive_root(_rows(store, b))
    # sizes below the kept one are recomputed, not read from the kept state
    for size in (1, 7, 33, 50, len(records) - 1):
        assert store.index.root(size) == naive_root(_rows(store, size)), size
    # a second store that advances in one step agrees with the naive index of its own leaves (its
    # orders have keys of their own, so its leaves are not the first store's)
    other = _store(tmp_path, "t")
    other.ingest(records, source="all")
    assert other.index_root(len(records)) == naive_root(_rows(other, len(records)))
    assert other.index_root(33) == naive_root(_rows(other, 33))


def test_a_schema_5_store_rebuilds_its_index_from_the_records(
    tmp_path: Path, sale: list[dict[str, Any]]
) -> None:
    """Schema 5 kept one row per key; schema 6 one per shard. The old tables go, the roots stay,
    and the index rebuilt from the records counts every record once (its days are not added to)."""
    path = tmp_path / "old.sqlite3"
    records = [parse_record(o) for o in sale]
    with Store(path, MasterSecret.from_hex("c5" * 32)) as store:
        store.ingest(records, source="all")
        root = store.index_root(len(records))
        store.db.executescript(
            "CREATE TABLE index_keys (key TEXT PRIMARY KEY, keyhash BLOB, shard INTEGER, count INTEGER,"
            " value BLOB); CREATE TABLE index_shards (shard INTEGER PRIMARY KEY, hash BLOB NOT NULL);"
            " INSERT INTO index_shards VALUES (1, x'00'); UPDATE meta SET value = '5' WHERE key = 'schema';"
        )
    with Store(path, MasterSecret.from_hex("c5" * 32)) as store:
        tables = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert not tables & {"index_keys", "index_shards"}
        assert store.index.size == 0
        assert store.db.execute("SELECT COUNT(*) FROM index_days").fetchone()[0] == 0
        assert store.index_root(len(records)) == root == naive_root(_rows(store, len(records)))
        merchant = records[0].merchant_id
        proof = store.index.merchant_proof(merchant, len(records), None, None)
        assert sum(c for _, c, _ in proof.days) == sum(1 for r in records if r.merchant_id == merchant)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_proofs_at_any_size_lead_to_the_root(tmp_path_factory: Any, data: st.DataObject) -> None:
    sale = generate_flash_sale(
        seed=data.draw(st.integers(0, 10**6)), orders=12, merchants=2, start="2026-11-11T23:00:00Z"
    )
    store = _store(tmp_path_factory.mktemp("idx"))
    records = [parse_record(o) for o in sale]
    n = len(records)
    mid = data.draw(st.integers(1, n))
    store.ingest(records[:mid], source="a")
    store.index_root(mid)
    store.ingest(records[mid:], source="b")
    store.index_root(n)
    size = data.draw(st.integers(1, n))
    rows = _rows(store, size)
    root = naive_root(rows)
    order = data.draw(st.sampled_from(sorted({r.order_id for r in records})))
    proof = store.index.order_proof(order, size)
    assert proof.root == root
    assert root_from_shard(proof.shard, proof.pairs, proof.path) == root
    assert [e[0] for e in proof.entries] == [r[0] for r in rows if r[1] == order]
    kh = key_hash(order_key(order))
    assert proof.shard == shard_of(kh)
    assert (kh in dict(proof.pairs)) == bool(proof.entries)
    merchant = data.draw(st.sampled_from(sorted({r.merchant_id for r in records})))
    mproof = store.index.merchant_proof(merchant, size, None, None)
    assert mproof.root == root and root_from_shard(mproof.shard, mproof.pairs, mproof.path) == root
    assert sum(len(e) for e in mproof.day_entries.values()) == sum(1 for r in rows if r[2] == merchant)
    assert (key_hash(merchant_key(merchant)) in dict(mproof.pairs)) == bool(mproof.days)


DOC = Path(__file__).resolve().parents[3] / "docs" / "bundle.md"


def _doc_block(name: str) -> str:
    import re

    m = re.search(rf"<!-- example:{name} -->\s*```[a-z]*\n(.*?)\n```", DOC.read_text(encoding="utf-8"), re.S)
    assert m, f"docs/bundle.md has no example block {name!r}"
    return m.group(1)


def test_the_worked_example_of_docs_bundle_md_with_hashlib_alone() -> None:
    """Follow the doc's recipe (no ledger code) and get every value it states."""
    import json

    key = _doc_block("index-key")
    kh = _sha(b"evidence-escrow/index/v1/key\0", key.encode())
    assert kh.hex() == _doc_block("index-keyhash")
    d = _sha(b"evidence-escrow/index/v1/order\0", kh)
    for idx, ts, leaf in json.loads(_doc_block("index-entries")):
        d = _sha(d, idx.to_bytes(8, "big"), ts.to_bytes(8, "big"), bytes.fromhex(leaf))
    assert d.hex() == _doc_block("index-value")
    shard = _sha(b"evidence-escrow/index/v1/shard\0", kh, d)
    assert shard.hex() == _doc_block("index-shard-hash")
    empty = _sha(b"\0", _sha(b"evidence-escrow/index/v1/shard\0"))
    level = [empty] * SHARDS
    level[int.from_bytes(kh[:2], "big")] = _sha(b"\0", shard)
    while len(level) > 1:
        level = [_sha(b"\1", level[i], level[i + 1]) for i in range(0, len(level), 2)]
    assert level[0].hex() == _doc_block("index-root")
    # and the module agrees
    assert key_hash(key) == kh and TopTree({shard_of(kh): shard}).root_and_path()[0] == level[0]
