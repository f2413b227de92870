"""End to end through the Python API, on the embedded chain and on anvil:
sale → ingest → anchor in batches → export → verify, and every way a bundle can lie."""

from __future__ import annotations

import copy
import json

import pytest

from ledger.deploy import deploy_evidence_log, trust_root_path
from ledger.dev.flash_sale import generate_flash_sale, to_jsonl
from ledger.errors import ConflictError, StoreError
from ledger.evidence import records as rec
from ledger.evidence.anchor import Anchorer, chain_head
from ledger.evidence.bundle import export_bundle, verify_bundle
from ledger.evidence.bundle_format import dumps_bundle, load_bundle
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store
from ledger.evidence.trust import Pin, read_trust_root

START = "2026-11-11T12:00:00Z"


@pytest.fixture(scope="module")
def sale() -> list[dict]:
    return generate_flash_sale(seed=7, orders=40, merchants=3, start=START)


@pytest.fixture
def setup(chain, tmp_path, sale):  # type: ignore[no-untyped-def]
    dep = deploy_evidence_log(chain, tmp_path)
    log = chain.contract("EvidenceLog", dep.address)
    store = Store(tmp_path / "ev.sqlite3", MasterSecret.generate())
    anchorer = Anchorer(store, chain, log)
    third = len(sale) // 3
    for part in (sale[:third], sale[third : 2 * third], sale[2 * third :]):
        store.ingest(rec.parse_jsonl(to_jsonl(part), source="t.jsonl"), source="t.jsonl")
        outcome = anchorer.anchor()
        assert outcome.head is not None and outcome.head.size == store.size
    yield chain, log, store, anchorer
    store.close()


def _order_with_personal(store: Store) -> str:
    row = store.db.execute(
        "SELECT order_id FROM records WHERE personal IS NOT NULL ORDER BY idx LIMIT 1"
    ).fetchone()
    return str(row[0])


def test_anchored_heads_match_local_tree(setup) -> None:  # type: ignore[no-untyped-def]
    chain, log, store, anchorer = setup
    head = chain_head(chain, log)
    assert head.size == store.size
    assert head.root == store.tree.root()
    confirmed = store.anchors(status="confirmed")
    assert [a.size for a in confirmed] == sorted({a.size for a in confirmed})
    assert len(confirmed) == 3
    for a in confirmed:
        anchored, ts, block = chain.call(log.functions.anchoredAt(a.size, a.root))
        assert anchored and block == a.block_number and ts == a.block_timestamp
    # nothing new: no transaction
    assert anchorer.anchor().head is None


def test_bundle_verifies_and_every_lie_is_named(setup, tmp_path) -> None:  # type: ignore[no-untyped-def]
    chain, log, store, _ = setup
    order = _order_with_personal(store)
    bundle, left_out = export_bundle(store, chain.chain_id, log.address, order_id=order,
                                     disclose_personal=True, paths=True)
    assert left_out == [] and bundle.completeness is not None
    kinds = {item.record["kind"] for item in bundle.records}
    assert {"order", "payment"} <= kinds
    pin = Pin.of(read_trust_root(trust_root_path(tmp_path, chain.chain_id)))
    verdict = verify_bundle(bundle, chain.w3, pin=pin)
    assert verdict.ok and verdict.completeness == "proven", verdict.to_json()
    # round trip through JSON text keeps it valid
    assert verify_bundle(load_bundle(dumps_bundle(bundle)), chain.w3, pin=pin).ok
    # the same bundle without a pin: everything holds, but nothing says the contract is the log's
    assert verify_bundle(bundle, chain.w3).status == "unpinned"

    def check(mutate, expected: str, where: str = "record") -> None:  # type: ignore[no-untyped-def]
        bad = copy.deepcopy(bundle)
        mutate(bad)
        v = verify_bundle(bad, chain.w3, pin=pin)
        assert not v.ok
        texts = v.head_failures if where == "head" else [f for r in v.records for f in r.failures]
        assert any(expected in t for t in texts), texts

    first = lambda b: b.records[0]  # noqa: E731
    check(lambda b: first(b).record.update(ts=first(b).record["ts"].replace("1", "2", 1)),
          "tampered content")
    check(lambda b: setattr(first(b), "salt", "00" * 32), "wrong salt")
    check(lambda b: setattr(first(b), "index", first(b).index + 1), "bad inclusion proof")
    check(lambda b: first(b).inclusion_proof.append("11" * 32), "bad inclusion proof")
    check(lambda b: setattr(first(b), "leaf_hash", "22" * 32), "tampered content")
    personal = next(i for i in bundle.records if i.personal is not None)
    idx = bundle.records.index(personal)
    key = next(iter(personal.personal))
    check(lambda b: b.records[idx].personal.update({key: "someone else"}),
          "tampered personal data")
    check(lambda b: setattr(b.anchor, "chain_id", b.anchor.chain_id + 1), "wrong chain", "head")
    check(lambda b: setattr(b.anchor, "contract", "0x" + "12" * 20), "wrong contract", "head")
    # A real head root of another size is not the anchored head of this size.
    check(lambda b: setattr(b.anchor, "tree_size", b.anchor.tree_size - 1), "head not anchored", "head")
    check(lambda b: setattr(b.anchor, "root", "33" * 32), "head not anchored", "head")


def test_one_byte_anywhere_in_a_record_is_caught(setup) -> None:  # type: ignore[no-untyped-def]
    chain, log, store, _ = setup
    order = _order_with_personal(store)
    bundle, _ = export_bundle(store, chain.chain_id, log.address, order_id=order)
    item = bundle.records[0]
    text = json.dumps(item.record, sort_keys=True, ensure_ascii=False)
    caught = 0
    for pos in range(len(text)):
        for repl in ("x", "7"):
            if text[pos] == repl:
                continue
            mutated = text[:pos] + repl + text[pos + 1 :]
            try:
                obj = json.loads(mutated)
            except ValueError:
                continue  # not a record any more: a verifier cannot even parse it
            if obj == item.record:
                continue
            bad = copy.deepcopy(bundle)
            bad.records[0].record = obj
            from ledger.evidence.bundle import verify_records

            verdicts, _, _ = verify_records(bad)
            assert not verdicts[0].ok, (pos, repl)
            failures = verdicts[0].failures
            if obj.get("id") == item.record["id"] and obj.get("order_id") == item.record["order_id"]:
                assert any("tampered content" in f or "reserved" in f for f in failures), failures
            else:  # the salt is derived from these two: the salt check names it first
                assert any("wrong salt" in f or "tampered content" in f for f in failures), failures
            caught += 1
    assert caught > len(text)  # the loop really exercised mutations


def test_reingest_is_idempotent_and_conflicts_store_nothing(setup, sale) -> None:  # type: ignore[no-untyped-def]
    chain, log, store, _ = setup
    size = store.size
    res = store.ingest(rec.parse_jsonl(to_jsonl(sale[:10]), source="again"), source="again")
    assert (res.stored, res.skipped, store.size) == (0, 10, size)
    changed = [dict(r) for r in sale[:3]]
    new_one = dict(sale[0], id=sale[0]["id"] + "-new")
    changed[1] = dict(changed[1], ts="2026-11-11T23:59:59Z")
    with pytest.raises(ConflictError) as err:
        store.ingest(rec.parse_jsonl(to_jsonl(changed + [new_one]), source="evil"), source="evil")
    assert err.value.problems[0].record_id == changed[1]["id"]
    assert "possible tampering" in str(err.value)
    assert store.size == size and store.record_by_id(new_one["id"]) is None


def test_local_log_altered_is_refused(setup, tmp_path) -> None:  # type: ignore[no-untyped-def]
    chain, log, store, anchorer = setup
    store.db.execute("UPDATE records SET leaf = ? WHERE idx = 0", (b"\x01" * 32,))
    store._tree = None
    store.ingest(rec.parse_jsonl(to_jsonl([
        dict(generate_flash_sale(seed=99, orders=1, merchants=1, start=START)[0], id="late-1")
    ]), source="x"), source="x")
    with pytest.raises(StoreError, match="altered"):
        anchorer.anchor()


def test_store_refuses_another_master_secret(tmp_path) -> None:
    path = tmp_path / "s.sqlite3"
    Store(path, MasterSecret.generate()).close()
    with pytest.raises(StoreError, match="different master secret"):
        Store(path, MasterSecret.generate())


def test_deploy_is_idempotent(chain, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = deploy_evidence_log(chain, tmp_path)
    again = deploy_evidence_log(chain, tmp_path)
    assert not first.reused and again.reused and again.address == first.address
    manifest = json.loads((tmp_path / "deployments" / f"{chain.chain_id}.json").read_text())
    entry = manifest["contracts"]["EvidenceLog"]
    assert entry["address"] == first.address and entry["block_number"] == first.block_number
    assert entry["runtime_sha256"] == first.runtime_sha256 and entry["compiler"] == "solc 0.8.37"


def test_store_refuses_another_data_key_and_reads_its_own(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.sqlite3"
    secret = MasterSecret.generate()
    monkeypatch.setenv("LEDGER_DATA_KEY", "11" * 32)
    sale = generate_flash_sale(seed=8, orders=2, merchants=1, start=START)
    with Store(path, secret) as store:
        store.ingest(rec.parse_jsonl(to_jsonl(sale), source="s"), source="s")
        with_personal = [r for r in store.records_in_range(None, None) if r.personal_blob]
        assert with_personal and store.personal(with_personal[0])
    monkeypatch.setenv("LEDGER_DATA_KEY", "22" * 32)
    with pytest.raises(StoreError, match="different personal-data key"):
        Store(path, secret)
    monkeypatch.delenv("LEDGER_DATA_KEY")
    with pytest.raises(StoreError, match="different personal-data key"):
        Store(path, secret)
