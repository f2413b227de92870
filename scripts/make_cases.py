#!/usr/bin/env python3
"""Produce the case library (tests/cases/*.json) by driving the real system.

Every case is a disputed or instructive order played out on the embedded chain through the
platform facade (evidence records logged, escrow transactions sent, the log anchored), with
fraud attempts submitted as real transactions that the escrow rejects on chain, then
exported with `ledger.investigate.case.build_case`. Each file carries the outcome it must replay to
(`expect`); the script replays every case once before writing it and refuses to write one
that does not meet its expectation.

usage: python scripts/make_cases.py [--out tests/cases] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from eth_account.signers.local import LocalAccount

from ledger.chain import rpc
from ledger.chain.keys import labelled_key
from ledger.deploy import deploy_evidence_log
from ledger.dev.flash_sale import generate_flash_sale
from ledger.dev.sandbox import EscrowEnv, make_escrow_env
from ledger.escrow.calls import Call
from ledger.escrow.eip712 import Attestation, Offer, canonical_tracking, escrow_order_id
from ledger.escrow.platform import Platform
from ledger.escrow.types import NATIVE, Ruling
from ledger.evidence.anchor import Anchorer
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store
from ledger.investigate.case import Case, CaseExpect, build_case, dumps_case
from ledger.investigate.overrides import Override, apply_overrides
from ledger.investigate.replay import expectation_problems, replay

DAY = 86400
USD = 10**6


@dataclass
class Run:
    """What a scenario did: its order, attempts sent outside the platform, the outcome the case
    must replay to, and what-if overrides that alter the exported case (a tampered record)."""

    order_id: str
    expect: dict[str, Any]
    attempts: list[bytes] = field(default_factory=list)
    tamper: list[str] = field(default_factory=list)


@dataclass
class World:
    env: EscrowEnv
    platform: Platform
    orders: list[dict[str, Any]]

    def order(self) -> dict[str, Any]:
        """The next unused order record (ts left to the chain's clock)."""
        o = dict(self.orders.pop(0))
        o.pop("ts")
        return o

    def attempt(self, call: Call, sender: Any) -> bytes:
        """Submit a transaction without simulating it (as an attacker would); it must fail."""
        receipt = self.env.chain.send(call.fn, sender, value=call.value, gas=1_000_000)
        if receipt["status"] == 1:
            raise AssertionError("the attempt was expected to revert on chain")
        return bytes(receipt["transactionHash"])

    def attempt_ship(self, oid: str, carrier_code: str, tracking: str, signer: LocalAccount) -> bytes:
        """The merchant submits a shipment attestation signed by `signer`, bypassing the platform."""
        e = self.env
        att = Attestation("Shipment", self.platform.escrow_id(oid),
                          canonical_tracking(carrier_code, tracking),
                          e.chain.timestamp())
        sig = e.client.sign_attestation(signer, att)
        return self.attempt(e.client.calls.ship(att, sig), e.merchant)


def _statement(reason: str, detail: str) -> dict[str, Any]:
    """The buyer's dispute statement: a refund-only ``return`` record with its reason."""
    return {"kind": "return", "amount": 1, "currency": "CNY", "type": "refund_only",
            "reason": reason, "detail": detail}


Scenario = Callable[[World], Run]
SCENARIOS: dict[str, tuple[str, Scenario]] = {}


def scenario(name: str, note: str) -> Callable[[Scenario], Scenario]:
    def wrap(fn: Scenario) -> Scenario:
        SCENARIOS[name] = (note, fn)
        return fn

    return wrap


def _open(w: World, *, token: bool = True, price: int = 25 * USD, ship_within: int = 2 * DAY) -> str:
    e = w.env
    o = w.order()
    w.platform.open_order(o, merchant=e.merchant, buyer=e.buyer, price=price if token else price * 10**9,
                          token=e.token if token else NATIVE, ship_within=ship_within,
                          inspection_window=3 * DAY)
    return str(o["order_id"])


def _ship_deliver(w: World, oid: str, tracking: str, carrier_code: str = "SF") -> None:
    e = w.env
    w.platform.ship(oid, carrier=e.carrier, carrier_code=carrier_code, tracking_number=tracking)
    w.env.chain.time_travel(DAY)
    w.platform.deliver(oid, carrier=e.carrier2, method="locker")


@scenario("non-delivery-after-ship-by",
          "The merchant never ships. After ship-by the buyer's refund is triggered by the platform.")
def _not_shipped(w: World) -> Run:
    oid = _open(w)
    w.env.chain.time_travel(2 * DAY + 60)
    w.platform.refund(oid)
    return Run(oid, {"state": "REFUNDED", "failed": []})


@scenario("shipped-never-delivered",
          "Shipped under a carrier attestation but never delivered within the delivery window: refund.")
def _lost_parcel(w: World) -> Run:
    oid = _open(w)
    w.platform.ship(oid, carrier=w.env.carrier, carrier_code="JD", tracking_number="JD5550001111")
    w.env.chain.time_travel(w.env.client.terms().delivery_window + 60)
    w.platform.refund(oid)
    return Run(oid, {"state": "REFUNDED", "failed": []})


@scenario("empty-parcel-reused-tracking",
          "The merchant 'ships' with a waybill already used by another order (empty parcel): the escrow "
          "refuses it on chain; the order is refunded after ship-by.")
def _empty_parcel(w: World) -> Run:
    e = w.env
    first = _open(w)
    w.platform.ship(first, carrier=e.carrier, carrier_code="SF", tracking_number="SF3141592653")
    oid = _open(w)
    bad = w.attempt_ship(oid, "SF", "sf3141592653", e.carrier)  # the same waybill, in lower case
    e.chain.time_travel(2 * DAY + 60)
    w.platform.refund(oid)
    return Run(oid, {"state": "REFUNDED", "failed": [["ship", "EscrowTrackingReused"]]}, [bad])


@scenario("late-shipment",
          "The carrier's shipment attestation is dated after ship-by: refused; the buyer is refunded.")
def _late(w: World) -> Run:
    e = w.env
    oid = _open(w, ship_within=DAY)
    e.chain.time_travel(DAY + 3600)
    bad = w.attempt_ship(oid, "YTO", "YT0000777001", e.carrier)
    w.platform.refund(oid)
    return Run(oid, {"state": "REFUNDED", "failed": [["ship", "EscrowLateShipment"]]}, [bad])


@scenario("false-non-delivery-claim",
          "The buyer disputes claiming non-delivery; the merchant answers with the carrier's delivery "
          "record; the panel rules release.")
def _false_claim(w: World) -> Run:
    e = w.env
    oid = _open(w)
    _ship_deliver(w, oid, "SF2718281828")
    w.platform.open_dispute(oid, party=e.buyer,
                            statement=_statement("not_received", "nothing was delivered"))
    w.platform.submit_evidence(oid, party=e.merchant, record_id=f"{oid}:dlv")
    for m in e.panel[:2]:
        w.platform.vote(oid, member=m, ruling=int(Ruling.RELEASE))
    return Run(oid, {"state": "RESOLVED", "failed": []})


@scenario("partial-return",
          "The buyer returns part of the order (40%); the return parcel is attested both ways; the "
          "merchant confirms; 40% refunded, the rest released.")
def _partial(w: World) -> Run:
    e = w.env
    oid = _open(w)
    _ship_deliver(w, oid, "SF1618033988")
    w.platform.request_return(oid, buyer=e.buyer, amount=10 * USD, reason="size_fit")
    w.platform.ship_return(oid, carrier=e.carrier, carrier_code="ZTO", tracking_number="ZT9000111222")
    e.chain.time_travel(DAY)
    w.platform.deliver_return(oid, carrier=e.carrier)
    w.platform.confirm_return(oid, merchant=e.merchant)
    return Run(oid, {"state": "RETURNED", "failed": []})


@scenario("merchant-silent-in-dispute",
          "The buyer disputes a counterfeit; the merchant never answers; after the response window "
          "the buyer wins by default.")
def _silent(w: World) -> Run:
    e = w.env
    oid = _open(w)
    _ship_deliver(w, oid, "SF1414213562")
    statement = _statement("counterfeit", "a counterfeit of the product shown on stream")
    w.platform.open_dispute(oid, party=e.buyer, statement=statement)
    e.chain.time_travel(e.client.terms().response_window + 60)
    w.platform.claim_default(oid, opener=e.buyer)
    return Run(oid, {"state": "RESOLVED", "failed": []})


@scenario("forged-carrier-signature",
          "A shipment attestation signed by a key that is not a registered carrier (forged waybill): "
          "refused; the genuine carrier ships later and the order completes.")
def _forged(w: World) -> Run:
    e = w.env
    oid = _open(w)
    bad = w.attempt_ship(oid, "SF", "SF6660006660", labelled_key("case-library forger"))
    _ship_deliver(w, oid, "SF6660006661")
    e.chain.time_travel(3 * DAY + 60)
    w.platform.release(oid)
    return Run(oid, {"state": "RELEASED", "failed": [["ship", "EscrowNotCarrier"]]}, [bad])


@scenario("tampered-evidence-record",
          "The platform's copy of the delivery record was altered after the fact (the locker became "
          "a signed hand-over): the chain's history replays, but the altered record no longer matches "
          "the leaf the escrow cited and the anchored head.")
def _tampered(w: World) -> Run:
    e = w.env
    oid = _open(w)
    _ship_deliver(w, oid, "SF1732050807")
    e.chain.time_travel(3 * DAY + 60)
    w.platform.release(oid)
    return Run(oid, {"state": "RELEASED", "failed": [], "verified": False,
                     "first_verification_failure": "deliver"},
               tamper=[f'record:{oid}:dlv.method="signed"'])


@scenario("double-pledge",
          "The merchant pledges the order's payout to a lender, then tries to pledge it again to a "
          "second lender: refused; the release pays the first lender.")
def _double_pledge(w: World) -> Run:
    e = w.env
    oid = _open(w)
    w.platform.pledge(oid, merchant=e.merchant, lender=e.lender.address)
    second = labelled_key("case-library second lender")
    bad = w.attempt(e.client.calls.pledge(w.platform.escrow_id(oid), second.address), e.merchant)
    _ship_deliver(w, oid, "SF2236067977")
    e.chain.time_travel(3 * DAY + 60)
    w.platform.release(oid)
    return Run(oid, {"state": "RELEASED", "failed": [["pledge", "EscrowAlreadyPledged"]]}, [bad])


@scenario("offer-signature-replayed",
          "The buyer presents the merchant's signature of a cheap order's offer with this order's "
          "terms: refused (the signature is over another order); the genuine offer is funded and the "
          "order completes.")
def _replayed_offer(w: World) -> Run:
    e = w.env
    cheap = _open(w, price=1 * USD)
    o = w.order()
    oid = str(o["order_id"])
    now = e.chain.timestamp()
    cheap_offer = Offer(escrow_order_id(cheap, e.merchant.address), e.merchant.address, e.buyer.address,
                        e.token, 1 * USD, now + 2 * DAY, 3 * DAY, b"\x11" * 32, now + 3600,
                        e.client.current_terms_id())
    stolen = e.client.sign_offer(e.merchant, cheap_offer)
    forged_offer = dataclasses.replace(cheap_offer, order_id=escrow_order_id(oid, e.merchant.address))
    bad = w.attempt(e.client.calls.fund(forged_offer, stolen), e.buyer)
    w.platform.open_order(o, merchant=e.merchant, buyer=e.buyer, price=40 * USD, token=e.token,
                          inspection_window=3 * DAY)
    _ship_deliver(w, oid, "SF1123581321")
    e.chain.time_travel(3 * DAY + 60)
    w.platform.release(oid)
    return Run(oid, {"state": "RELEASED", "failed": [["fund", "EscrowInvalidSignature"]]}, [bad])


@scenario("timeout-release-no-dispute",
          "Delivered under a carrier attestation; nobody disputes; after the inspection window the "
          "platform releases the payout (ETH order).")
def _timeout_release(w: World) -> Run:
    oid = _open(w, token=False)
    _ship_deliver(w, oid, "SF9876543210")
    w.env.chain.time_travel(3 * DAY + 60)
    w.platform.release(oid)
    return Run(oid, {"state": "RELEASED", "failed": []})


@scenario("fraud-ruling-deposit-slashed",
          "A counterfeit: the panel rules fraud; the buyer is refunded and compensated from the "
          "merchant's deposit.")
def _fraud(w: World) -> Run:
    e = w.env
    oid = _open(w)
    _ship_deliver(w, oid, "SF5772156649")
    w.platform.open_dispute(oid, party=e.buyer,
                            statement=_statement("counterfeit", "brand authentication failed"))
    w.platform.submit_evidence(oid, party=e.merchant, record_id=f"{oid}:ship")
    for m in e.panel[:2]:
        w.platform.vote(oid, member=m, ruling=int(Ruling.FRAUD))
    return Run(oid, {"state": "RESOLVED", "failed": []})


def check(case: Case) -> None:
    """Replay the case and hold it to its expectation; raise if it does not meet it."""
    problems = expectation_problems(case, replay(case))
    if problems:
        raise AssertionError(f"case {case.name}: " + "; ".join(problems))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tests/cases")
    ap.add_argument("--only", help="comma-separated scenario names")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(SCENARIOS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chain = rpc.embedded()
    env = make_escrow_env(chain)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "cases.sqlite3", MasterSecret.from_hex("c5" * 32))
        sale = generate_flash_sale(seed=2027, orders=4 * len(SCENARIOS), merchants=1,
                                   start="2026-11-11T20:00:00Z")
        world = World(env, Platform(store, env.client, env.admin), [r for r in sale if r["kind"] == "order"])
        runs = []
        for name in names:
            note, fn = SCENARIOS[name]
            runs.append((name, note, fn(world)))
        log = chain.contract("EvidenceLog", deploy_evidence_log(chain, None).address)
        Anchorer(store, chain, log).anchor()
        for i, (name, note, run) in enumerate(runs, 1):
            case = build_case(store, env.client, run.order_id, log_address=log.address,
                              extra_txs=run.attempts, note=note)
            case = apply_overrides(case, [Override.parse(t) for t in run.tamper])
            case = msgspec.structs.replace(case, name=name, expect=msgspec.convert(run.expect, CaseExpect))
            check(case)
            path = out / f"{i:02d}-{name}.json"
            path.write_text(dumps_case(case))
            print(f"{path}: order {run.order_id}, {len(case.actions)} transactions, "
                  f"expected {run.expect['state']}")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
