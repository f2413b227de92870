"""Erased entries of a bundle (docs/bundle.md, "Erased entries"): an erased order's bundle verifies
as "erased on DATE", its existence and position proven; a bundle that calls an entry erased without
the log's erasure record naming that very leaf does not verify, whichever way it tries."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.dev.flash_sale import generate_flash_sale
from ledger.errors import BundleError
from ledger.evidence.bundle import export_bundle, verify_bundle
from ledger.evidence.bundle_format import Bundle, BundleRecord, Erased, dumps_bundle, load_bundle
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.records import parse_record
from ledger.evidence.store import Store
from tests.unit.evidence.bundle_data import CHAIN_ID, CONTRACT
from tests.unit.evidence.bundle_data import paper_anchor as anchor

AT = "2026-12-01T09:00:00Z"


class World:
    def __init__(self, path: Path) -> None:
        self.store = Store(path / "evidence.sqlite3", MasterSecret.from_hex("c5" * 32))
        sale = generate_flash_sale(seed=5, orders=16, merchants=1, start="2026-11-11T22:00:00Z")
        self.store.ingest([parse_record(o) for o in sale], source="sale.jsonl")
        anchor(self.store, 0)
        orders = list(dict.fromkeys(o["order_id"] for o in sale))
        self.victim, self.other = orders[0], orders[1]
        self.merchant = sale[0]["merchant_id"]
        self.done = self.store.erase(self.victim, reason="GDPR art. 17", operator="dpo", at=AT)
        anchor(self.store, 1)

    def export(self, **selection: Any) -> Bundle:
        bundle, left_out = export_bundle(self.store, CHAIN_ID, CONTRACT, **selection)
        assert left_out == []
        return load_bundle(dumps_bundle(bundle))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("erased"))


def _failures(bundle: Bundle) -> tuple[list[str], list[str]]:
    """(every record failure, every completeness failure) after a round trip through the text."""
    v = verify_bundle(load_bundle(dumps_bundle(bundle)), None)
    return [f for r in v.records for f in r.failures], v.completeness_failures or []


def test_the_erased_orders_bundle_verifies_as_erased(world: World) -> None:
    bundle = world.export(order_id=world.victim)
    assert bundle.erasures is None  # its erasure record is one of its records
    v = verify_bundle(bundle, None)
    assert (v.status, v.completeness) == ("head_unchecked", "proven")
    erased = [(r.index, r.record_id, r.erased_at) for r in v.records if r.erased_at]
    assert erased == [(i, rid, AT) for i, rid in world.done.erased]
    out = v.to_json()
    assert [r["erased"] for r in out["records"]] == [AT] * len(world.done.erased) + [None]
    for e in bundle.records[:-1]:
        assert e.erased == Erased(at=AT, record_id=world.done.erasure_id)
        assert (e.record, e.salt, e.personal_commitment, e.personal) == (None, None, None, None)
    doc = json.loads(dumps_bundle(bundle))
    assert set(doc["records"][0]) == {"index", "leaf_hash", "erased"}  # nothing else is written


def test_with_paths_each_erased_leaf_is_proven_in_the_tree_too(world: World) -> None:
    bundle = world.export(order_id=world.victim, paths=True)
    assert verify_bundle(bundle, None).status == "head_unchecked"
    bad = copy.deepcopy(bundle)
    bad.records[0].index += 0
    bad.records[0].inclusion_proof = list(reversed(bad.records[0].inclusion_proof or []))
    assert any("bad inclusion proof" in f for f in _failures(bad)[0])


def test_a_merchant_bundle_carries_the_erasure_record_outside_its_range(world: World) -> None:
    bundle = world.export(merchant_id=world.merchant, since="2026-11-11T00:00:00Z",
                          until="2026-11-30T00:00:00Z")
    assert bundle.erasures is not None and [e.record["id"] for e in bundle.erasures if e.record] == [
        world.done.erasure_id]
    v = verify_bundle(bundle, None)
    assert (v.status, v.completeness) == ("head_unchecked", "proven")
    assert sum(1 for r in v.records if r.erased_at == AT) == len(world.done.erased)
    dropped = copy.deepcopy(bundle)
    dropped.erasures = None
    records, _ = _failures(dropped)
    assert len(records) == len(world.done.erased)
    assert all(f.startswith(f"erased without proof: the bundle holds no erasure record "
                            f"{world.done.erasure_id!r}") for f in records)


def _erase_entry(bundle: Bundle, position: int, record_id: str, at: str = AT) -> None:
    e = bundle.records[position]
    bundle.records[position] = BundleRecord(index=e.index, leaf_hash=e.leaf_hash,
                                            inclusion_proof=e.inclusion_proof,
                                            erased=Erased(at=at, record_id=record_id))


def _with_erasure_of(world: World, bundle: Bundle) -> Bundle:
    """`bundle` with the victim's (true, verifying) erasure record added to `erasures`."""
    erased = world.export(order_id=world.victim, paths=True)
    bundle.erasures = [erased.records[-1]]
    assert bundle.order_keys is not None and erased.order_keys is not None
    bundle.order_keys |= erased.order_keys
    return bundle


def test_an_entry_called_erased_that_no_erasure_names_is_refused(world: World) -> None:
    """The attack: withhold a record that was never erased, calling it erased, citing a real
    erasure record of the log (another order's). The leaf and the completeness still match; the
    erasure record does not name that leaf."""
    bundle = _with_erasure_of(world, world.export(order_id=world.other))
    _erase_entry(bundle, 1, world.done.erasure_id)
    records, completeness = _failures(bundle)
    assert records == [
        f"erased without proof: erasure record {world.done.erasure_id!r} does not name leaf "
        f"{bundle.records[1].index}",
        f"outside the selection: the erasure record's order_id is {world.victim!r}, selection.order_id is "
        f"{world.other!r}"]
    assert completeness == []


LIES: dict[str, tuple[Callable[[World, Bundle], Any], str]] = {
    "no such erasure record": (lambda w, b: _erase_entry(b, 1, "O9:erasure"),
                               "erased without proof: the bundle holds no erasure record 'O9:erasure'"),
    "another erasure time": (
        lambda w, b: setattr(b.records[0].erased, "at", "2026-12-01T09:00:01Z"),
        "wrong erasure time: erased.at 2026-12-01T09:00:01Z is not the erasure record's ts"),
    "the same time spelt otherwise": (
        lambda w, b: setattr(b.records[0].erased, "at", "2026-12-01T10:00:00+01:00"), "wrong erasure time"),
    "another leaf hash": (lambda w, b: setattr(b.records[0], "leaf_hash", "ab" * 32),
                          "erased without proof: erasure record"),
    "an edited erasure record": (lambda w, b: b.records[-1].record["erased"].append(
                                     {"index": 2, "id": "x", "leaf": "ab" * 32}),
                                 "tampered content"),
    "an erasure record with another salt": (lambda w, b: setattr(b.records[-1], "salt", "00" * 32),
                                            "wrong salt"),
}


@pytest.mark.parametrize("name", LIES)
def test_every_lie_about_an_erasure_is_named(world: World, name: str) -> None:
    change, expected = LIES[name]
    bundle = world.export(order_id=world.victim)
    change(world, bundle)
    records, completeness = _failures(bundle)
    assert any(expected in f for f in records + completeness), (records, completeness)


def test_citing_a_record_that_is_not_an_erasure_is_refused(world: World) -> None:
    bundle = world.export(order_id=world.other)
    first = bundle.records[0].record
    assert first is not None
    _erase_entry(bundle, 1, first["id"])
    records, _ = _failures(bundle)
    assert records == [f"erased without proof: {first['id']!r} is a {first['kind']!r} record, not an erasure "
                       "record"]


def test_a_forged_erasure_record_does_not_verify(world: World) -> None:
    """An erasure record made up for the occasion (naming the other order's leaf) is not a leaf of
    the log: its inclusion path fails, and the entry it erases fails with it."""
    bundle = _with_erasure_of(world, world.export(order_id=world.other))
    assert bundle.erasures is not None and bundle.erasures[0].record is not None
    target = bundle.records[1]
    forged = bundle.erasures[0].record
    forged["order_id"], forged["id"] = world.other, f"{world.other}:erasure"
    forged["erased"] = [{"index": target.index, "id": target.record["id"] if target.record else "",
                         "leaf": target.leaf_hash}]
    _erase_entry(bundle, 1, f"{world.other}:erasure")
    records, _ = _failures(bundle)
    assert any(f"its erasure record '{world.other}:erasure'" in f and "does not verify" in f for f in records)


def test_dropping_the_erasure_record_is_caught_twice(world: World) -> None:
    bundle = world.export(order_id=world.victim)
    bundle.records.pop()
    records, completeness = _failures(bundle)
    assert len(records) == len(world.done.erased)
    assert [f for f in completeness if f.startswith("record dropped")]


@pytest.mark.parametrize("change,message", [
    (lambda d: d["records"][0].update(record={"id": "x"}), "an erased entry has no record"),
    (lambda d: d["records"][0].update(salt="00" * 32), "an erased entry has no record"),
    (lambda d: d["records"][0]["erased"].update(at="yesterday"), "erased.at"),
    (lambda d: d["records"][0]["erased"].pop("record_id"), "record_id"),
    (lambda d: d.update(erasures=[dict(d["records"][-1])]), "carries its inclusion_proof"),
    (lambda d: d["records"][-1].pop("record"), "`record` and `salt` are required"),
])
def test_a_malformed_erased_entry_is_refused_as_a_document(
        world: World, change: Callable[[dict[str, Any]], Any], message: str) -> None:
    doc = json.loads(dumps_bundle(world.export(order_id=world.victim)))
    change(doc)
    with pytest.raises(BundleError, match=message):
        load_bundle(json.dumps(doc))


# --------------------------------------------------------------------------- the page, independently


def _v1_bundles(tmp: Path) -> list[bytes]:
    """v1 bundles with erased entries (heads anchored without an index, as `ledger anchor` does
    today): an order's, and a merchant range's that carries the erasure record in `erasures`."""
    store = Store(tmp / "v1.sqlite3", MasterSecret.from_hex("c6" * 32))
    sale = generate_flash_sale(seed=6, orders=6, merchants=1, start="2026-11-11T22:00:00Z")
    store.ingest([parse_record(o) for o in sale], source="sale.jsonl")
    victim = sale[0]["order_id"]
    store.erase(victim, reason="r", operator="o", at=AT)
    size = store.size
    anchor_id = store.record_sent_anchor(
        chain_id=CHAIN_ID, contract=CONTRACT, size=size, root=store.tree.root(size), prev_size=0,
        sender="0x" + "00" * 20, nonce=0, tx_hash=b"\x01" * 32, raw_tx=b"")  # fmt: skip
    store.mark_anchor(anchor_id, "confirmed", block_number=5, block_hash=b"\x02" * 32,
                      block_timestamp=1795590813, gas_used=1)
    out = []
    for selection in ({"order_id": victim},
                      {"merchant_id": sale[0]["merchant_id"], "until": "2026-11-30T00:00:00Z"}):
        bundle, _ = export_bundle(store, CHAIN_ID, CONTRACT, **selection)  # type: ignore[arg-type]
        assert bundle.format == "evidence-escrow/bundle/v1"
        out.append(dumps_bundle(bundle).encode())
    store.close()
    return out


def _mutants(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every member of every erased entry, of the erasure record's entry and of `erasures`, changed
    every way; and the entries themselves dropped, moved or duplicated."""
    out: list[dict[str, Any]] = []

    def each(path: list[Any]) -> None:
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        value = parent[path[-1]]
        changes: list[Any] = [None, "x", 0, 1.5, True, [], {}]
        if isinstance(value, str):
            changes += [value[:-1] + ("0" if value[-1] != "0" else "1"), value.upper(), value + " "]
        if isinstance(value, int) and not isinstance(value, bool):
            changes += [value + 1, value - 1, str(value)]
        for new in changes:
            m = json.loads(json.dumps(doc))
            target = m
            for p in path[:-1]:
                target = target[p]
            target[path[-1]] = new
            out.append(m)
        if isinstance(parent, dict):
            m = json.loads(json.dumps(doc))
            target = m
            for p in path[:-1]:
                target = target[p]
            del target[path[-1]]
            out.append(m)
        if isinstance(value, dict):
            for k in value:
                each([*path, k])
        if isinstance(value, list):
            for i in range(len(value)):
                each([*path, i])

    lists = [("records", i) for i, e in enumerate(doc["records"])
             if "erased" in e or e["record"].get("kind") == "erasure"]
    lists += [("erasures", i) for i in range(len(doc.get("erasures", [])))]
    for where, i in lists:
        each([where, i])
        for drop in (True, False):
            m = json.loads(json.dumps(doc))
            entry = m[where].pop(i)
            if not drop:  # moved to the other list
                m.setdefault("erasures" if where == "records" else "records", []).append(entry)
            out.append(m)
    return out


def test_the_reference_verifier_agrees_on_every_mutant_of_erased_bundles(tmp_path: Path) -> None:
    from tests.unit.evidence import reference_verifier

    seen: set[str] = set()
    for text in _v1_bundles(tmp_path):
        doc = json.loads(text)
        for m in [doc, *_mutants(doc)]:
            data = json.dumps(m).encode()
            try:
                v = verify_bundle(load_bundle(data), None)
                ours = (v.status, frozenset(i for i, r in enumerate(v.records) if r.failures))
            except BundleError:
                ours = ("malformed", frozenset())
            ref = reference_verifier.verify(data, None)
            theirs = (ref.status, frozenset(ref.failed_records) if ref.status != "malformed" else frozenset())
            assert ours == theirs, (json.dumps(m)[:2000], ours, theirs)
            seen.add(ours[0])
    assert seen == {"malformed", "not_verified", "head_unchecked"}
