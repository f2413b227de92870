"""The platform facade: every escrow step backed by an evidence record, the log first.

Runs on the embedded chain and on anvil (the `chain` fixture)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledger.deploy import deploy_evidence_log, trust_root_path
from ledger.dev.flash_sale import generate_flash_sale
from ledger.errors import ContractRevert, LedgerError, ValidationError
from ledger.escrow.platform import APPROVE, NON_ESCROW_ACTIONS, Platform
from ledger.escrow.types import DAY, OrderState, Ruling
from ledger.evidence.anchor import Anchorer
from ledger.evidence.bundle import export_bundle, verify_bundle
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store
from ledger.evidence.trust import Pin, read_trust_root

START = "2026-11-11T12:00:00Z"


@pytest.fixture(scope="module")
def orders() -> list[dict[str, Any]]:
    sale = generate_flash_sale(seed=21, orders=12, merchants=2, start=START)
    out = []
    for r in sale:
        if r["kind"] == "order":
            o = dict(r)
            o.pop("ts")  # stamped with the chain's clock when the order opens
            out.append(o)
    return out


@pytest.fixture
def platform(escrow_env, tmp_path: Path):  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "ev.sqlite3", MasterSecret.generate())
    yield Platform(store, escrow_env.client, escrow_env.admin)
    store.close()


def _events(platform: Platform, step: Any) -> dict[str, dict[str, Any]]:
    return dict(platform.client.events(step.receipt))


def test_happy_path_every_step_cites_its_record(platform, escrow_env, orders) -> None:  # type: ignore[no-untyped-def]
    e, p = escrow_env, platform
    order = orders[0]
    oid = order["order_id"]
    funded = p.open_order(order, merchant=e.merchant, buyer=e.buyer, price=2_500_000, token=e.token)
    ev = _events(p, funded)["OrderFunded"]
    assert ev["orderRecord"] == p.store.record_by_id(f"{oid}:order").leaf
    payment = p.store.record_by_id(f"{oid}:pay")
    # The payment cites the escrow order (a fee bump may change the funding tx's hash before
    # it is mined; the order id never changes).
    assert payment is not None and payment.public["payment_ref"] == "escrow:0x" + p.escrow_id(oid).hex()

    shipped = p.ship(oid, carrier=e.carrier, carrier_code="SF", tracking_number="SF100200300400")
    assert _events(p, shipped)["OrderShipped"]["evidence"] == p.store.record_by_id(f"{oid}:ship").leaf
    delivered = p.deliver(oid, carrier=e.carrier, method="locker")
    assert _events(p, delivered)["OrderDelivered"]["evidence"] == p.store.record_by_id(f"{oid}:dlv").leaf
    e.chain.time_travel(3 * DAY + 60)
    released = p.release(oid)
    rel = _events(p, released)["OrderReleased"]
    assert rel["payout"] + rel["fee"] + rel["reserve"] == 2_500_000
    assert e.client.state(p.escrow_id(oid)) is OrderState.RELEASED

    approve, *actions = p.store.actions(order_id=oid)
    assert [a.action for a in actions] == ["fund", "ship", "deliver", "release"]
    assert all(a.status == "confirmed" and a.block_timestamp for a in [approve, *actions])
    # The buyer's ERC-20 approval went through the outbox too: stored, then sent, and it is
    # an approval of the price to this escrow on the token, backed by no record.
    tx = e.chain.w3.eth.get_transaction(approve.tx_hash)
    fn, args = e.chain.contract("TestStablecoin", e.token).decode_function_input(tx["input"])
    assert approve.action == APPROVE and approve.record_id is None and approve.evidence is None
    assert tx["to"] == e.token and tx["from"] == e.buyer.address
    assert fn.fn_name == "approve" and args["spender"] == e.client.address and args["value"] == 2_500_000
    # Every evidence hash the chain was given is a leaf of the log, and the log record it
    # names is the one the action row says.
    for a in actions:
        stored = p.store.record_by_leaf(a.evidence)
        assert stored is not None and stored.id == a.record_id and stored.order_id == oid
    status = p.status(oid)
    assert status["state"] == "RELEASED" and len(status["records"]) == 4


def test_refused_step_stores_nothing(platform, escrow_env, orders) -> None:  # type: ignore[no-untyped-def]
    e, p = escrow_env, platform
    a, b = orders[0]["order_id"], orders[1]["order_id"]
    for o in orders[:2]:
        p.open_order(o, merchant=e.merchant, buyer=e.buyer, price=10**6, token=e.token)
    p.ship(a, carrier=e.carrier, carrier_code="SF", tracking_number="SF555000111")
    size, n_actions = p.store.size, len(p.store.actions())
    # The same waybill (in other case) for another order: the empty-parcel fraud.
    with pytest.raises(ContractRevert) as err:
        p.ship(b, carrier=e.carrier, carrier_code="SF", tracking_number="sf555000111")
    assert err.value.error_name == "EscrowTrackingReused"
    assert "reused waybill" in str(err.value)
    # A carrier that is not registered.
    with pytest.raises(ContractRevert, match="EscrowNotCarrier"):
        p.ship(b, carrier=e.stranger, carrier_code="SF", tracking_number="SF555000222")
    assert p.store.size == size and len(p.store.actions()) == n_actions
    assert p.store.record_by_id(f"{b}:ship") is None


def test_crash_before_broadcast_is_resumed_with_the_same_transaction(platform, escrow_env, orders) -> None:  # type: ignore[no-untyped-def]
    e, p = escrow_env, platform
    oid = orders[2]["order_id"]
    p.open_order(orders[2], merchant=e.merchant, buyer=e.buyer, price=10**6)  # ETH

    class Crash(BaseException):
        pass

    real = e.chain.broadcast

    def crash(raw: bytes) -> bytes:
        raise Crash

    e.chain.broadcast = crash  # type: ignore[method-assign]
    try:
        with pytest.raises(Crash):
            p.ship(oid, carrier=e.carrier, carrier_code="JD", tracking_number="JD0099887766")
    finally:
        e.chain.broadcast = real  # type: ignore[method-assign]
    # The record and the signed transaction were stored together before the crash; the record
    # is held out of the log (so no anchor can cover it) until the step is confirmed.
    pending = p.store.actions(status="sent")
    assert [a.action for a in pending] == ["ship"]
    assert p.store.held_ids(pending[0].id) == [f"{oid}:ship"]
    assert p.store.record_by_id(f"{oid}:ship") is None
    size = p.store.size
    assert e.client.state(p.escrow_id(oid)) is OrderState.FUNDED
    assert len(p.resume()) == 1
    done = p.store.actions(order_id=oid)[-1]
    assert done.status == "confirmed" and done.tx_hash == pending[0].tx_hash
    assert e.client.state(p.escrow_id(oid)) is OrderState.SHIPPED
    shipped = p.store.record_by_id(f"{oid}:ship")
    assert shipped is not None and shipped.index == size and shipped.leaf == done.evidence
    assert len(p.resume()) == 0


def test_return_dispute_and_refund_paths(platform, escrow_env, orders) -> None:  # type: ignore[no-untyped-def]
    e, p = escrow_env, platform
    ret, dis, late = (o["order_id"] for o in orders[3:6])
    for o in orders[3:6]:
        p.open_order(o, merchant=e.merchant, buyer=e.buyer, price=4_000_000, token=e.token)
    for n, oid in enumerate((ret, dis)):
        p.ship(oid, carrier=e.carrier, carrier_code="YTO", tracking_number=f"YT77000{n}1234")
        p.deliver(oid, carrier=e.carrier2)

    # Partial return, shipped back and delivered to the merchant, settled by the merchant.
    p.request_return(ret, buyer=e.buyer, amount=1_000_000, reason="size_fit")
    p.ship_return(ret, carrier=e.carrier, carrier_code="YTO", tracking_number="YT9900112233")
    p.deliver_return(ret, carrier=e.carrier)
    settled = _events(p, p.confirm_return(ret, merchant=e.merchant))["ReturnSettled"]
    assert settled["refund"] == 1_000_000
    assert settled["payout"] + settled["fee"] + settled["reserve"] == 3_000_000

    # The buyer disputes with a statement; the merchant answers citing the carrier's record;
    # the panel rules a refund.
    opened = p.open_dispute(dis, party=e.buyer, statement={
        "kind": "return", "amount": 1, "currency": "CNY", "type": "refund_only",
        "reason": "counterfeit", "detail": "the item is a counterfeit",
    })  # fmt: skip
    assert opened.record_id == f"{dis}:dispute-buyer"
    answer = p.submit_evidence(dis, party=e.merchant, record_id=f"{dis}:dlv")
    evidence = _events(p, answer)["Evidence"]["evidence"]
    stored = p.store.record_by_id(f"{dis}:dlv")
    assert evidence == f"leaf:{stored.index}:{stored.leaf.hex()}"
    p.vote(dis, member=e.panel[0], ruling=int(Ruling.REFUND))
    p.vote(dis, member=e.panel[1], ruling=int(Ruling.REFUND))
    assert e.client.state(p.escrow_id(dis)) is OrderState.RESOLVED

    # Never shipped: after ship-by anyone triggers the refund, backed by a refund record.
    with pytest.raises(ContractRevert, match="EscrowTooEarly"):
        p.refund(late)
    e.chain.time_travel(3 * DAY + 60)
    refunded = p.refund(late)
    assert _events(p, refunded)["OrderRefunded"]["amount"] == 4_000_000
    rec = p.store.record_by_id(f"{late}:refund")
    assert rec.public["reason"] == "not_received" and rec.public["type"] == "refund_only"


def test_anchored_escrow_evidence_verifies_in_a_bundle(platform, escrow_env, orders, tmp_path) -> None:  # type: ignore[no-untyped-def]
    e, p = escrow_env, platform
    oid = orders[6]["order_id"]
    p.open_order(orders[6], merchant=e.merchant2, buyer=e.buyer2, price=777_000, token=e.token)
    p.ship(oid, carrier=e.carrier, carrier_code="ZTO", tracking_number="ZT31415926535")
    p.deliver(oid, carrier=e.carrier)
    dep = deploy_evidence_log(e.chain, tmp_path)
    log = e.chain.contract("EvidenceLog", dep.address)
    Anchorer(p.store, e.chain, log).anchor()
    bundle, left_out = export_bundle(p.store, e.chain.chain_id, log.address, order_id=oid)
    assert not left_out and {r.record["kind"] for r in bundle.records} == {
        "order", "payment", "shipment", "delivery"}
    pin = Pin.of(read_trust_root(trust_root_path(tmp_path, e.chain.chain_id)))
    assert verify_bundle(bundle, e.chain.w3, pin=pin).ok
    # The escrow's evidence hashes are exactly the bundle's leaves.
    leaves = {item.leaf_hash for item in bundle.records}
    escrow_steps = [a for a in p.store.actions(order_id=oid) if a.action not in NON_ESCROW_ACTIONS]
    assert {a.evidence.hex() for a in escrow_steps if a.evidence is not None} <= leaves
    assert all(a.evidence is not None for a in escrow_steps)


def test_open_order_rejects_a_non_order_record(platform, escrow_env, orders) -> None:  # type: ignore[no-untyped-def]
    e, p = escrow_env, platform
    bad = {**orders[7], "kind": "payment"}
    with pytest.raises(LedgerError):
        p.open_order(bad, merchant=e.merchant, buyer=e.buyer, price=1)
    assert p.store.size == 0 and p.store.actions() == []


def test_open_order_refuses_an_id_that_is_not_the_orders_own(platform, escrow_env, orders) -> None:  # type: ignore[no-untyped-def]
    """The steps find an order's records by `<order_id>:...` ids, so an order opens with its
    `<order_id>:order` record, under an order id no other order has used."""
    e, p = escrow_env, platform
    first, other = orders[7], orders[8]
    p.open_order(first, merchant=e.merchant, buyer=e.buyer, price=10**6)
    size, actions = p.store.size, len(p.store.actions())
    renamed = {**other, "id": "NEW-1:order"}  # the README's copied line, with only its id changed
    taken = {**other, "order_id": first["order_id"], "id": f"{first['order_id']}:order"}
    for bad, fld, reason in (
        (renamed, "id", f"an order record's id is its order_id followed by ':order', here "
                        f"'{other['order_id']}:order'; to open another order, change both"),
        (taken, "order_id", f"order '{first['order_id']}' already has records in the log "
                            f"({first['order_id']}:pay): it is another order's id"),
    ):
        with pytest.raises(ValidationError) as err:
            p.open_order(bad, merchant=e.merchant, buyer=e.buyer, price=10**6)
        [problem] = err.value.problems
        assert problem.field == fld and problem.reason.startswith(reason), problem.reason
    assert (p.store.size, len(p.store.actions())) == (size, actions)


def test_status_of_an_unknown_order_is_an_error(platform) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LedgerError, match="unknown order 'O-NOBODY': no record of it in the log"):
        platform.status("O-NOBODY")
