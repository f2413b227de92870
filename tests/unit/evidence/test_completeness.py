"""Completeness (bundle v2): an honest bundle of an order or a merchant's time range is proven
complete offline; every omission, addition, move, substitution and cut range is caught and
named; a later bundle extends an earlier one, and a rewritten history does not."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.dev.flash_sale import generate_flash_sale
from ledger.evidence.bundle import export_bundle, verify_bundle
from ledger.evidence.bundle_format import FORMAT, FORMAT_V2, Bundle, dumps_bundle, load_bundle
from ledger.evidence.completeness import extends_failures
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.records import parse_record
from ledger.evidence.store import Store

CHAIN_ID = 31337
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
START = "2026-11-11T22:00:00Z"  # the sale spans several UTC days


def _anchor(store: Store, *, indexed: bool = True, n: int = 0) -> None:
    """Record the store's whole log as anchored and confirmed (on paper: no chain)."""
    size = store.size
    anchor_id = store.record_sent_anchor(
        chain_id=CHAIN_ID,
        contract=CONTRACT,
        size=size,
        root=store.tree.root(size),
        prev_size=0,
        sender="0x" + "00" * 20,
        nonce=n,
        tx_hash=bytes([n + 1]) * 32,
        raw_tx=b"",
        index_root=store.index_root(size) if indexed else None,
    )
    store.mark_anchor(
        anchor_id,
        "confirmed",
        block_number=5 + n,
        block_hash=bytes([n + 2]) * 32,
        block_timestamp=1795590813 + n,
        gas_used=50_000,
    )


def _store(path: Path, seed: int = 3, orders: int = 16) -> tuple[Store, list[Any]]:
    store = Store(path / "evidence.sqlite3", MasterSecret.from_hex("c5" * 32))
    records = [
        parse_record(o) for o in generate_flash_sale(seed=seed, orders=orders, merchants=2, start=START)
    ]
    return store, records


@pytest.fixture
def anchored(tmp_path: Path) -> Store:
    store, records = _store(tmp_path)
    store.ingest(records, source="sale.jsonl")
    _anchor(store)
    return store


def _busiest_order(store: Store) -> str:
    return str(
        store.db.execute(
            "SELECT order_id FROM records GROUP BY order_id ORDER BY COUNT(*) DESC, order_id LIMIT 1"
        ).fetchone()[0]
    )


def _merchant(store: Store) -> str:
    return str(store.db.execute("SELECT merchant_id FROM records ORDER BY idx LIMIT 1").fetchone()[0])


def _order_bundle(store: Store, order: str | None = None) -> Bundle:
    bundle, _ = export_bundle(store, CHAIN_ID, CONTRACT, order_id=order or _busiest_order(store))
    return bundle


def _merchant_bundle(store: Store, since: str | None = None, until: str | None = None) -> Bundle:
    bundle, _ = export_bundle(
        store, CHAIN_ID, CONTRACT, merchant_id=_merchant(store), since=since, until=until
    )
    return bundle


def _check(bundle: Bundle) -> tuple[str, list[str]]:
    """Offline verification as a reader of the written file would do it: (completeness, all failures)."""
    again = load_bundle(dumps_bundle(bundle).encode(), "b.json")
    v = verify_bundle(again, None)
    failures = list(v.completeness_failures or []) + [f for r in v.records for f in r.failures]
    return v.completeness, failures


def test_honest_order_and_merchant_bundles_are_proven_complete(anchored: Store) -> None:
    for bundle in (
        _order_bundle(anchored),
        _merchant_bundle(anchored),
        _merchant_bundle(anchored, "2026-11-11T23:00:00Z", "2026-11-14T12:00:00Z"),
    ):
        assert bundle.format == FORMAT_V2
        assert all(r.inclusion_proof is None for r in bundle.records)
        assert _check(bundle) == ("proven", [])
    order = _busiest_order(anchored)
    assert [r.index for r in _order_bundle(anchored).records] == [
        r.index for r in anchored.records_for_order(order)
    ]


def test_a_head_anchored_without_an_index_gives_a_v1_bundle_not_proven_complete(tmp_path: Path) -> None:
    store, records = _store(tmp_path)
    store.ingest(records, source="sale.jsonl")
    _anchor(store, indexed=False)
    bundle = _order_bundle(store)
    assert bundle.format == FORMAT and bundle.completeness is None
    assert _check(bundle) == ("not proven", [])


def _without(bundle: Bundle, i: int) -> Bundle:
    return msgspec.structs.replace(bundle, records=[r for j, r in enumerate(bundle.records) if j != i])


def test_a_dropped_record_is_named(anchored: Store) -> None:
    bundle = _order_bundle(anchored)
    dropped = bundle.records[1]
    status, failures = _check(_without(bundle, 1))
    assert status == "failed"
    assert failures == [
        f"record dropped: the committed bucket of 'order:{dropped.record['order_id']}' has leaf "
        f"{dropped.index} ({dropped.leaf_hash}) inside the selection, the bundle does not "
        "disclose it"
    ]


def test_a_record_added_from_another_order_is_named(anchored: Store) -> None:
    bundle = _order_bundle(anchored)
    other = _order_bundle(
        anchored,
        next(
            r.order_id
            for r in anchored.records_in_range(None, None)
            if r.order_id != bundle.selection.order_id
        ),
    )
    extra = other.records[0]
    records = sorted([*bundle.records, extra], key=lambda r: r.index)
    status, failures = _check(msgspec.structs.replace(bundle, records=records))
    assert status == "failed"
    assert any(f.startswith(f"record added from elsewhere: leaf {extra.index}") for f in failures)


def test_an_emptied_bucket_and_an_altered_shard_do_not_lead_to_the_anchored_index(anchored: Store) -> None:
    bundle = _order_bundle(anchored)
    c = bundle.completeness
    assert c is not None and c.entries is not None
    # the platform hides the order: no records, no entries
    hidden = msgspec.structs.replace(bundle, records=[], completeness=msgspec.structs.replace(c, entries=[]))
    status, failures = _check(hidden)
    assert status == "failed" and failures[0].startswith("index proof: the bucket of 'order:")
    # ... and also drops the key from its shard: the listing no longer leads to the anchored root
    kh = [p for p in c.shard]
    shard = [p for p in kh if p != next(p for p in kh if p[1] != "00" * 32)]
    status, failures = _check(
        msgspec.structs.replace(hidden, completeness=msgspec.structs.replace(c, entries=[], shard=shard))
    )
    assert status == "failed" and failures[0].startswith("index proof: the shard of 'order:")


def test_a_record_replaced_by_another_version_is_named(anchored: Store) -> None:
    bundle = _order_bundle(anchored)
    first, second = bundle.records[0], bundle.records[1]
    # the platform shows the second record's content under the first one's position
    swapped = msgspec.structs.replace(second, index=first.index)
    status, failures = _check(msgspec.structs.replace(bundle, records=[swapped, *bundle.records[2:]]))
    assert status == "failed"
    assert any(f.startswith(f"record replaced: leaf {first.index} is {first.leaf_hash}") for f in failures)
    assert any(
        f.startswith(
            f"record dropped: the committed bucket of 'order:{first.record['order_id']}' has leaf "
            f"{second.index}"
        )
        for f in failures
    )


def test_a_record_moved_to_another_position_is_named(anchored: Store) -> None:
    bundle = _order_bundle(anchored)
    last = bundle.records[-1]
    moved = msgspec.structs.replace(last, index=anchored.size - 1 if last.index != anchored.size - 1 else 0)
    records = sorted([*bundle.records[:-1], moved], key=lambda r: r.index)
    status, failures = _check(msgspec.structs.replace(bundle, records=records))
    assert status == "failed"
    assert any(f.startswith(f"record moved: {last.record['id']!r} is at leaf {last.index}") for f in failures)


def test_a_range_cut_short_at_either_end_is_named(anchored: Store) -> None:
    bundle = _merchant_bundle(anchored, "2026-11-11T23:00:00Z", "2026-11-14T12:00:00Z")
    c = bundle.completeness
    assert c is not None and c.days is not None and len(c.days) >= 2
    first, last = sorted(c.days)[0], sorted(c.days)[-1]
    for cut in (first, last):
        days = {d: e for d, e in c.days.items() if d != cut}
        kept = {e[0] for es in days.values() for e in es}
        shorter = msgspec.structs.replace(
            bundle,
            records=[r for r in bundle.records if r.index in kept],
            completeness=msgspec.structs.replace(c, days=days),
        )
        status, failures = _check(shorter)
        assert status == "failed"
        assert failures[0].startswith(f"range cut short: day {cut} (")


def test_a_later_bundle_extends_an_earlier_one_and_a_rewrite_is_caught(tmp_path: Path) -> None:
    store, records = _store(tmp_path)
    half = len(records) // 2
    store.ingest(records[:half], source="a.jsonl")
    _anchor(store)
    order = _busiest_order(store)
    early_o, early_m = _order_bundle(store, order), _merchant_bundle(store)
    store.ingest(records[half:], source="b.jsonl")
    _anchor(store, n=1)
    late_o, late_m = _order_bundle(store, order), _merchant_bundle(store)
    assert late_o.anchor.tree_size > early_o.anchor.tree_size
    assert extends_failures(early_o, late_o) == [] and extends_failures(early_m, late_m) == []
    assert _check(late_o) == ("proven", []) and _check(early_o) == ("proven", [])
    # a history where an early entry changed: the later bundle no longer extends the earlier one
    forged = copy.deepcopy(late_o)
    assert forged.completeness is not None and forged.completeness.entries
    i, ts, _leaf = forged.completeness.entries[0]
    forged.completeness.entries[0] = (i, ts, "ab" * 32)
    assert extends_failures(early_o, forged)[0].startswith(f"order:{order}: leaf {i} (")
    assert extends_failures(late_o, early_o)[0].startswith("the later bundle's head")


_MUTATIONS = ("drop", "add", "move", "replace", "none")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10**6),
    mutation=st.sampled_from(_MUTATIONS),
    pick=st.integers(0, 10**6),
    merchant=st.booleans(),
)
def test_every_omission_addition_move_or_substitution_is_caught(
    tmp_path_factory: Any, seed: int, mutation: str, pick: int, merchant: bool
) -> None:
    store, records = _store(tmp_path_factory.mktemp("c"), seed=seed, orders=8)
    store.ingest(records, source="sale.jsonl")
    _anchor(store)
    bundle = _merchant_bundle(store) if merchant else _order_bundle(store)
    every, _ = export_bundle(store, CHAIN_ID, CONTRACT)  # v1, every record of the log
    rs = list(bundle.records)
    i = pick % len(rs)
    outside = [r for r in every.records if r.index not in {x.index for x in rs}]
    if mutation == "drop":
        del rs[i]
    elif mutation == "add" and outside:
        rs = sorted([*rs, outside[pick % len(outside)]], key=lambda r: r.index)
    elif mutation == "move" and len(rs) > 1:
        j = (i + 1) % len(rs)
        rs[i], rs[j] = (
            msgspec.structs.replace(rs[j], index=rs[i].index),
            msgspec.structs.replace(rs[i], index=rs[j].index),
        )
    elif mutation == "replace" and outside:
        rs[i] = msgspec.structs.replace(outside[pick % len(outside)], index=rs[i].index)
        rs = sorted({r.index: r for r in rs}.values(), key=lambda r: r.index)
    else:
        mutation = "none"
    status, failures = _check(msgspec.structs.replace(bundle, records=rs))
    if mutation == "none":
        assert (status, failures) == ("proven", [])
    else:
        assert status == "failed" and failures, mutation


def test_an_erased_orders_v2_bundle_is_complete_and_says_erased(tmp_path: Path) -> None:
    """Erasure keeps the leaves, so the index is unchanged: the order's bundle still proves that
    its entries are all there, each erased one shown as erased, and other orders are untouched."""
    store, records = _store(tmp_path)
    store.ingest(records, source="sale.jsonl")
    _anchor(store)
    order = _busiest_order(store)
    other = next(r.order_id for r in records if r.order_id != order)
    before = store.index_root(store.size)
    store.erase(order, reason="GDPR art. 17 request 1", operator="dpo@example.com")
    assert store.index.root(store.size - 1) == before  # the erasure record is appended, nothing else moves
    _anchor(store, n=1)
    bundle = _order_bundle(store, order)
    assert bundle.format == FORMAT_V2
    erased = [r for r in bundle.records if r.erased is not None]
    assert erased and all(r.record is None for r in erased)
    again = load_bundle(dumps_bundle(bundle).encode(), "b.json")
    v = verify_bundle(again, None)
    assert v.completeness == "proven" and v.completeness_failures == []
    assert all(r.ok for r in v.records) and sum(r.erased_at is not None for r in v.records) == len(erased)
    assert _check(_order_bundle(store, other)) == ("proven", [])
    # dropping an erased entry is still a dropped record
    status, failures = _check(msgspec.structs.replace(bundle, records=[r for r in bundle.records
                                                                       if r is not erased[0]]))
    assert status == "failed" and failures[0].startswith("record dropped")


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda d: d["completeness"].update(shard_path=d["completeness"]["shard_path"][:15]), "shard_path"),
    (lambda d: d["completeness"].update(key="order:someone-else"), "is not the selection's"),
    (lambda d: d["completeness"].update(key="shop:x"), "neither 'order:<id>' nor 'merchant:<id>'"),
    (lambda d: d["completeness"].update(directory=[]), "an order key has `entries`"),
    (lambda d: d["completeness"]["entries"][0].__setitem__(2, "XY" * 32), "completeness.entries"),
    (lambda d: d.pop("completeness"), "a v2 bundle has `completeness` and `anchor.index_root`"),
    (lambda d: d["anchor"].pop("index_root"), "a v2 bundle has `completeness` and `anchor.index_root`"),
    (lambda d: d.update(format="evidence-escrow/bundle/v1"), "is required in a v1 bundle"),  # no paths
    (lambda d: d["selection"].pop("order_id"), "is not the selection's"),
])
def test_a_malformed_v2_bundle_is_refused_naming_the_part(anchored: Store, edit: Any, needle: str) -> None:
    import json

    from ledger.errors import BundleError

    doc = json.loads(dumps_bundle(_order_bundle(anchored)))
    edit(doc)
    with pytest.raises(BundleError) as caught:
        load_bundle(json.dumps(doc).encode(), "b.json")
    assert needle in str(caught.value)
