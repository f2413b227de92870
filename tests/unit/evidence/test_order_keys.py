"""Order keys (`ledger.evidence.order_keys`, docs/records.md "Order keys and their versions"): new
orders get a random version-2 key kept wrapped; the orders of an older store keep version 1 and
their leaves; a key is found again by every later process; the doc's worked example agrees bit for
bit with an implementation written from the doc alone."""

from __future__ import annotations

import hmac
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.dev.flash_sale import generate_flash_sale
from ledger.errors import ConflictError, StoreError
from ledger.evidence.bundle import export_bundle, verify_bundle
from ledger.evidence.leaf import encode
from ledger.evidence.master_secret import MasterSecret, OrderKey
from ledger.evidence.order_keys import WRAP_AAD_PREFIX, unwrap_order_key, wrap_order_key
from ledger.evidence.records import parse_record
from ledger.evidence.store import SCHEMA_VERSION, Store
from tests.unit.evidence.bundle_data import CHAIN_ID, CONTRACT
from tests.unit.evidence.bundle_data import paper_anchor as anchor

DOC = Path(__file__).resolve().parents[3] / "docs" / "records.md"
SECRET = MasterSecret.from_hex("c5" * 32)


def _doc_block(name: str) -> str:
    m = re.search(rf"<!-- example:{name} -->\s*```[a-z]*\n(.*?)\n```", DOC.read_text(encoding="utf-8"), re.S)
    assert m, f"docs/records.md has no example block {name!r}"
    return m.group(1)


def _example() -> tuple[bytes, str, bytes, bytes]:
    """(master secret, order id, order key, nonce) of the doc's version-2 example."""
    master = bytes.fromhex(_doc_block("master-secret"))
    text = DOC.read_text(encoding="utf-8")
    order_id = re.search(r"an order `([^`]+)` whose random key", text)
    nonce = re.search(r"wrapped with the nonce `([0-9a-f]{24})`", text)
    assert order_id and nonce
    return master, order_id.group(1), bytes.fromhex(_doc_block("v2-order-key")), bytes.fromhex(nonce.group(1))


def test_the_version_2_example_of_the_doc_by_an_independent_implementation() -> None:
    """Only hmac and AES-GCM, following the doc's recipe."""
    master, order_id, key, nonce = _example()
    prk = hmac.digest(b"evidence-escrow/v1", master, "sha256")
    wrap_key = hmac.digest(prk, b"order-key-wrap/v2" + b"\x01", "sha256")
    assert wrap_key.hex() == _doc_block("wrap-key")
    aad = b"evidence-escrow/order-key/v2" + b"\x00" + order_id.encode("utf-8")
    wrapped = b"\x02" + nonce + AESGCM(wrap_key).encrypt(nonce, key, aad)
    assert wrapped.hex() == _doc_block("v2-wrapped") and len(wrapped) == 61
    stored = bytes.fromhex(_doc_block("v2-wrapped"))
    assert AESGCM(wrap_key).decrypt(stored[1:13], stored[13:], aad) == key
    salt = hmac.digest(key, b"record:" + f"{order_id}:order".encode() + b"\x01", "sha256")
    assert salt.hex() == _doc_block("v2-record-salt")


def test_the_version_2_example_of_the_doc_with_ledger() -> None:
    master, order_id, key, nonce = _example()
    ms = MasterSecret(master)
    assert ms.wrap_key.hex() == _doc_block("wrap-key")
    assert wrap_order_key(ms.wrap_key, order_id, key, nonce).hex() == _doc_block("v2-wrapped")
    assert unwrap_order_key(AESGCM(ms.wrap_key), order_id, bytes.fromhex(_doc_block("v2-wrapped"))) == key
    assert OrderKey(key).record_salt(f"{order_id}:order").hex() == _doc_block("v2-record-salt")
    assert WRAP_AAD_PREFIX == b"evidence-escrow/order-key/v2\x00"


@settings(max_examples=50, deadline=None)
@given(order_id=st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True),
       key=st.binary(min_size=32, max_size=32), flip=st.integers(min_value=0, max_value=60 * 8 - 1))
def test_a_wrapped_key_opens_for_its_order_only_and_any_changed_bit_is_refused(order_id: str, key: bytes,
                                                                               flip: int) -> None:
    aead = AESGCM(SECRET.wrap_key)
    wrapped = wrap_order_key(SECRET.wrap_key, order_id, key)
    assert unwrap_order_key(aead, order_id, wrapped) == key
    with pytest.raises(StoreError, match="does not unwrap"):
        unwrap_order_key(aead, order_id + "x", wrapped)
    damaged = bytearray(wrapped)
    damaged[1 + flip // 8] ^= 1 << (flip % 8)  # any bit after the version byte
    with pytest.raises(StoreError, match=f"of order {re.escape(repr(order_id))}"):
        unwrap_order_key(aead, order_id, bytes(damaged))


@pytest.fixture(scope="module")
def sale() -> list[dict[str, Any]]:
    return generate_flash_sale(seed=21, orders=12, merchants=2, start="2026-11-11T12:00:00Z")


def test_new_orders_get_random_wrapped_keys_that_every_later_process_finds(
        tmp_path: Path, sale: list[dict[str, Any]]) -> None:
    path = tmp_path / "s.sqlite3"
    with Store(path, SECRET) as store:
        store.ingest([parse_record(o) for o in sale], source="sale")
        rows = store.db.execute("SELECT order_id, version, length(wrapped), erased_at FROM order_keys"
                                ).fetchall()
        leaves = {r.id: r.leaf for r in store.records_in_range(None, None)}
    assert {r[0] for r in rows} == {o["order_id"] for o in sale}
    assert {r[1:] for r in rows} == {(2, 61, None)}
    with Store(path, SECRET) as again:
        for o in sale:
            rec = parse_record(o)
            assert again.leaf_for(rec) == leaves[rec.id]
            v1 = SECRET.salts(rec.order_id, rec.id)
            assert encode(rec, *v1).leaf_hash != leaves[rec.id]  # not the version-1 salts
        keys = {k.key.key for k in again.keys.states({o["order_id"] for o in sale}, create=False).values()}
        assert len(keys) == len({o["order_id"] for o in sale})  # one random key per order
    with pytest.raises(StoreError, match="created with a different master secret"):
        Store(path, MasterSecret.from_hex("c6" * 32))


def test_the_leaf_an_offer_signs_is_the_leaf_stored_later(tmp_path: Path, sale: list[dict[str, Any]]) -> None:
    """`leaf_for` of a new order's record (an escrow offer commits to it) creates the key at once, so
    another process storing the record later stores that very leaf."""
    rec = parse_record(sale[0])
    with Store(tmp_path / "s.sqlite3", SECRET) as one:
        offered = one.leaf_for(rec)
    with Store(tmp_path / "s.sqlite3", SECRET) as two:
        two.ingest([rec], source="later")
        stored = two.record_by_id(rec.id)
    assert stored is not None and stored.leaf == offered


def test_a_key_made_in_a_rolled_back_ingest_is_not_used_later(tmp_path: Path,
                                                              sale: list[dict[str, Any]]) -> None:
    store = Store(tmp_path / "s.sqlite3", SECRET)
    first = [parse_record(o) for o in sale[:4]]
    store.ingest(first, source="a")
    new = parse_record(sale[5])
    clash = parse_record(dict(sale[0], ts="2027-01-01T00:00:00Z"))  # a conflict rolls the batch back
    with pytest.raises(ConflictError):
        store.ingest([new, clash], source="b")
    assert store.record_by_id(new.id) is None
    store.ingest([new], source="c")
    stored = store.record_by_id(new.id)
    assert stored is not None and stored.leaf == store.leaf_for(new)
    store.close()
    with Store(tmp_path / "s.sqlite3", SECRET) as again:
        assert again.leaf_for(new) == stored.leaf


def test_a_schema_4_store_keeps_version_1_for_its_orders(tmp_path: Path, sale: list[dict[str, Any]]) -> None:
    """An older store's orders were salted from the master secret: after the upgrade they keep
    those keys (their leaves, anchors and bundles stay true); orders first seen later get version 2."""
    path = tmp_path / "old.sqlite3"
    old = [parse_record(o) for o in sale if o["order_id"] != sale[-1]["order_id"]]
    with Store(path, SECRET) as s:  # write as the previous version did: version-1 salts, schema 4
        s.db.executemany("INSERT INTO order_keys(order_id, version) VALUES (?, 1)",
                         [(oid,) for oid in {r.order_id for r in old}])
        s.ingest(old, source="old")
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE order_keys; UPDATE meta SET value = '4' WHERE key = 'schema';")
    db.close()
    with Store(path, SECRET) as s:
        schema = s.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]
        assert schema == str(SCHEMA_VERSION)
        for r in old:
            stored = s.record_by_id(r.id)
            assert stored is not None and stored.leaf == encode(r, *SECRET.salts(r.order_id, r.id)).leaf_hash
        late = [parse_record(o) for o in sale if o["order_id"] == sale[-1]["order_id"]]
        s.ingest(late, source="late")
        versions = dict(s.db.execute("SELECT order_id, version FROM order_keys").fetchall())
        assert versions == {**{r.order_id: 1 for r in old}, late[0].order_id: 2}
        anchor(s, 0)
        bundle, _ = export_bundle(s, CHAIN_ID, CONTRACT, order_id=old[0].order_id)
        assert bundle.order_keys == {old[0].order_id: SECRET.order_key(old[0].order_id).hex()}
        assert verify_bundle(bundle, None).status == "head_unchecked"
        done = s.erase(old[0].order_id, reason="r", operator="o")
        assert done.key_version == 1  # said plainly: the master secret still derives that key


def test_a_key_row_moved_to_another_order_is_refused(tmp_path: Path, sale: list[dict[str, Any]]) -> None:
    with Store(tmp_path / "s.sqlite3", SECRET) as s:
        s.ingest([parse_record(o) for o in sale], source="sale")
        a, b = sorted({o["order_id"] for o in sale})[:2]
        s.db.execute("UPDATE order_keys SET wrapped = (SELECT wrapped FROM order_keys WHERE order_id = ?)"
                     " WHERE order_id = ?", (a, b))
        anchor(s, 0)
        s.keys = type(s.keys)(s.db, SECRET, s._txn)  # a fresh process: nothing cached
        with pytest.raises(StoreError, match=f"stored key of order '{b}' does not unwrap"):
            export_bundle(s, CHAIN_ID, CONTRACT, order_id=b)
        with pytest.raises(StoreError, match="does not unwrap"):
            late = next(o for o in sale if o["order_id"] == b)
            s.ingest([parse_record(dict(late, id=f"{b}:x"))], source="x")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["ingest", "erase"]), st.integers(0, 11)), min_size=1,
                max_size=12))
def test_any_mix_of_ingests_and_erasures_keeps_every_head_and_every_other_order(
        tmp_path_factory: pytest.TempPathFactory, sale: list[dict[str, Any]],
        steps: list[tuple[str, int]]) -> None:
    """Whatever orders are ingested and erased in whatever order: every root the log ever had is
    still its root at that size, a record keeps its leaf whether or not its order is erased, and an
    erased order takes no record again."""
    orders = sorted({o["order_id"] for o in sale})
    store = Store(tmp_path_factory.mktemp("mix") / "s.sqlite3", SECRET)
    roots: dict[int, bytes] = {}
    leaves: dict[str, bytes] = {}
    erased: set[str] = set()
    for what, n in steps:
        oid = orders[n]
        if what == "ingest":
            recs = [parse_record(o) for o in sale if o["order_id"] == oid]
            if oid in erased:
                with pytest.raises(ConflictError, match="was erased on"):
                    store.ingest(recs, source="again")
            else:
                store.ingest(recs, source="s")
        elif store.records_for_order(oid):
            done = store.erase(oid, reason="r", operator="o")
            assert done.already == (oid in erased)
            erased.add(oid)
        roots[store.size] = store.tree.root(store.size) if store.size else b""
        for r in store.records_in_range(None, None):
            assert leaves.setdefault(r.id, r.leaf) == r.leaf
            assert (r.erased is not None) == (r.order_id in erased and r.kind != "erasure")
    for size, root in roots.items():
        if size:
            assert store.tree.root(size) == root
    store.close()


def test_hkdf_expand_of_the_wrap_key_is_what_the_master_secret_says() -> None:
    prk = hmac.digest(b"evidence-escrow/v1", bytes(32), "sha256")
    assert MasterSecret(bytes(32)).wrap_key == hmac.digest(prk, b"order-key-wrap/v2\x01", "sha256")
    assert MasterSecret(bytes(32)).wrap_key != MasterSecret(bytes(32)).data_key
