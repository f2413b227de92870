"""The escrow half of `ledger demo`: a live-stream session settled on evidenced performance.

A second sale day's orders go through the platform facade on the embedded chain, in the
test stablecoin: most are shipped and delivered under carrier attestations and released
after the inspection window; one is partly returned; one is disputed and the panel rules
fraud (the merchant's deposit compensates the buyer); one merchant tries to ship an order
under a waybill already used by another order and is refused; one order's payout is
pledged to a lender and paid to it. Every step's evidence record lands in the same log the
first half anchored, so the final anchor covers the escrow's evidence too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table

from ledger.chain.keys import labelled_key
from ledger.chain.rpc import Chain
from ledger.deploy import deploy_escrow
from ledger.dev.flash_sale import generate_flash_sale
from ledger.errors import ContractRevert
from ledger.escrow.client import EscrowClient
from ledger.escrow.eip712 import order_key
from ledger.escrow.platform import Platform
from ledger.escrow.types import Ruling
from ledger.evidence.store import Store, StoredRecord

DAY = 86400
ESCROW_DAY = "2026-11-12T20:00:00Z"
USD = 10**6  # the test stablecoin has 6 decimals
CNY_PER_USD_X10 = 72  # prices: fen -> micro-USD at 7.2 CNY per USD


@dataclass
class EscrowDemo:
    """What the escrow half did, for the summary."""

    escrow: str
    arbitrator: str
    token: str
    orders: list[dict[str, Any]] = field(default_factory=list)
    rejected: str = ""
    pledged_order: str = ""
    lender: str = ""
    balances: dict[str, int] = field(default_factory=dict)
    gas: dict[str, list[int]] = field(default_factory=dict)


def _key(label: str) -> LocalAccount:
    return labelled_key(f"evidence-escrow demo {label}")


def run_escrow_demo(chain: Chain, store: Store, console: Console, *, orders: int = 10) -> EscrowDemo:
    admin = chain.default_account
    merchants = [_key("merchant-a"), _key("merchant-b")]
    buyers = [_key(f"buyer-{i}") for i in range(4)]
    carriers = {"SF": _key("carrier-sf"), "JD": _key("carrier-jd")}
    panel = [_key(f"panel-{i}") for i in range(3)]
    lender = _key("lender")
    for acct in [*merchants, *buyers, *carriers.values(), *panel, lender]:
        chain.send_eth(acct.address, 10**20)

    dep = deploy_escrow(chain, None, panel=[p.address for p in panel], threshold=2)
    client = EscrowClient.at(chain, dep.escrow.address, dep.arbitrator.address)
    token = chain.deploy("TestStablecoin", sender=admin)
    client.set_token_allowed(token.address, True, admin)
    for c in carriers.values():
        client.set_carrier(c.address, True, admin)
    for acct in [*merchants, *buyers]:
        chain.transact(token.functions.mint(acct.address, 100_000 * USD), admin)
    for m in merchants:  # security deposits: 20% of open exposure is required
        client.deposit(m.address, token.address, 400 * USD, m)
    platform = Platform(store, client, admin)
    out = EscrowDemo(dep.escrow.address, dep.arbitrator.address, token.address)
    console.print(f"[bold]6.[/bold] FulfillmentEscrow at {out.escrow}, panel arbitrator (2 of 3) at "
                  f"{out.arbitrator}; carriers SF and JD registered; merchants deposited 400 TUSD each")

    def gas(step: Any) -> Any:
        out.gas.setdefault(step.action, []).append(step.gas_used)
        return step

    sale = generate_flash_sale(seed=99, orders=orders, merchants=len(merchants), start=ESCROW_DAY)
    recs = [dict(r) for r in sale if r["kind"] == "order"][:orders]
    merchant_of = {}
    for i, r in enumerate(recs):
        r.pop("ts")
        m = merchants[0] if r["merchant_id"] == recs[0]["merchant_id"] else merchants[1]
        merchant_of[r["order_id"]] = m
        price = max(1, r["total"] * 10_000 // CNY_PER_USD_X10)
        gas(platform.open_order(r, merchant=m, buyer=buyers[i % len(buyers)], price=price,
                                token=token.address, ship_within=2 * DAY, inspection_window=3 * DAY))
    ids = [r["order_id"] for r in recs]
    console.print(f"[bold]7.[/bold] {len(ids)} orders funded in escrow (TUSD), each offer signed by its "
                  "merchant over the order record's leaf")

    # The empty-parcel fraud: the last order is "shipped" under the first order's waybill.
    carrier_codes = list(carriers)
    for n, oid in enumerate(ids[:-1]):
        code = carrier_codes[n % 2]
        gas(platform.ship(oid, carrier=carriers[code], carrier_code=code, tracking_number=f"{code}7{n:011d}"))
    fraud = ids[-1]
    try:
        platform.ship(fraud, carrier=carriers["SF"], carrier_code="SF", tracking_number="SF700000000000")
        out.rejected = "ACCEPTED?!"
    except ContractRevert as exc:
        out.rejected = str(exc)
    console.print(f"[bold]8.[/bold] shipped {len(ids) - 1} orders under carrier attestations; order "
                  f"{fraud} re-using order {ids[0]}'s waybill → [red]rejected[/red]: {out.rejected}")

    delivered = ids[:-1]
    for oid in delivered:
        shipped = cast(StoredRecord, store.record_by_id(f"{oid}:ship"))  # stored by platform.ship above
        code = shipped.public["carrier"]
        gas(platform.deliver(oid, carrier=carriers[code], method="locker"))
    returned, disputed, pledged = delivered[1], delivered[2], delivered[3]
    out.pledged_order, out.lender = pledged, lender.address
    info = client.order(order_key(returned))
    buyer_of: dict[str, LocalAccount] = {b.address: b for b in buyers}
    gas(platform.request_return(returned, buyer=buyer_of[info.buyer], amount=info.price // 2,
                                reason="size_fit", detail="one of two items does not fit"))
    gas(platform.ship_return(returned, carrier=carriers["JD"], carrier_code="JD",
                             tracking_number="JD9900000001"))
    gas(platform.deliver_return(returned, carrier=carriers["JD"]))
    gas(platform.confirm_return(returned, merchant=merchant_of[returned]))
    dinfo = client.order(order_key(disputed))
    gas(platform.open_dispute(disputed, party=buyer_of[dinfo.buyer], statement={
        "kind": "return", "amount": 1, "currency": "CNY", "type": "refund_only", "reason": "counterfeit",
        "detail": "the parcel held a counterfeit of the product shown on stream",
    }))  # fmt: skip
    gas(platform.submit_evidence(disputed, party=merchant_of[disputed], record_id=f"{disputed}:dlv"))
    for member in panel[:2]:
        gas(platform.vote(disputed, member=member, ruling=int(Ruling.FRAUD)))
    gas(platform.pledge(pledged, merchant=merchant_of[pledged], lender=lender.address))
    console.print(f"[bold]9.[/bold] order {returned}: half returned and refunded; order {disputed}: "
                  f"disputed, the panel ruled fraud; order {pledged}: payout pledged to lender "
                  f"{lender.address[:10]}…")

    chain.time_travel(3 * DAY + 60)
    for oid in delivered:
        if oid not in (returned, disputed):
            gas(platform.release(oid))
    gas(platform.refund(fraud))  # never validly shipped: refunded after ship-by
    console.print(f"[bold]10.[/bold] inspection windows passed: {len(delivered) - 2} orders released "
                  f"(pledged payout to the lender), order {fraud} refunded on timeout")

    for oid in ids:
        o = client.order(order_key(oid))
        out.orders.append({"order_id": oid, "state": o.state.name, "price": o.price,
                           "lender": o.lender if o.pledged else None})
    t = client.totals(token.address)
    out.balances = {
        "escrow_balance": client.balance(token.address), "escrowed": t.escrowed,
        "deposits": t.deposits, "reserve": t.reserve, "fees": t.fees, "credits": t.credits,
        "lender_credit": client.credit_of(token.address, lender.address),
        **{f"deposit_{n}": client.deposit_of(token.address, m.address)[0]
           for n, m in (("a", merchants[0]), ("b", merchants[1]))},
    }  # fmt: skip
    return out


def escrow_table(demo: EscrowDemo) -> Table:
    table = Table(title="escrow demo (TUSD base units, 6 decimals)")
    for col in ("order", "state", "price", "payout to"):
        table.add_column(col, justify="right" if col == "price" else "left")
    for o in demo.orders:
        to = "lender" if o["lender"] else {"RELEASED": "merchant", "REFUNDED": "buyer",
                                           "RETURNED": "buyer + merchant",
                                           "RESOLVED": "buyer (+ compensation)"}.get(o["state"], "")
        table.add_row(o["order_id"], o["state"], f"{o['price']:,}", to)
    return table
