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
from ledger.escrow.platform import EscrowStep, Platform
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


@dataclass
class Cast:
    """Everyone who acts in the escrow half, with development keys derived from public labels."""

    admin: LocalAccount
    merchants: list[LocalAccount] = field(default_factory=lambda: [_key("merchant-a"), _key("merchant-b")])
    buyers: list[LocalAccount] = field(default_factory=lambda: [_key(f"buyer-{i}") for i in range(4)])
    carriers: dict[str, LocalAccount] = field(
        default_factory=lambda: {"SF": _key("carrier-sf"), "JD": _key("carrier-jd")})
    panel: list[LocalAccount] = field(default_factory=lambda: [_key(f"panel-{i}") for i in range(3)])
    lender: LocalAccount = field(default_factory=lambda: _key("lender"))

    def everyone(self) -> list[LocalAccount]:
        return [*self.merchants, *self.buyers, *self.carriers.values(), *self.panel, self.lender]


def _set_up(chain: Chain, store: Store, cast: Cast, console: Console) -> tuple[Platform, EscrowDemo]:
    """Step 6: the escrow, its 2-of-3 panel, a test stablecoin, carriers, merchant deposits."""
    admin = cast.admin
    for acct in cast.everyone():
        chain.send_eth(acct.address, 10**20)
    dep = deploy_escrow(chain, None, panel=[p.address for p in cast.panel], threshold=2)
    client = EscrowClient.at(chain, dep.escrow.address, dep.arbitrator.address)
    token = chain.deploy("TestStablecoin", sender=admin)
    client.set_token_allowed(token.address, True, admin)
    for c in cast.carriers.values():
        client.set_carrier(c.address, True, admin)
    for acct in [*cast.merchants, *cast.buyers]:
        chain.transact(token.functions.mint(acct.address, 100_000 * USD), admin)
    for m in cast.merchants:  # security deposits: each order locks 20% of its price
        client.deposit(m.address, token.address, 400 * USD, m)
    out = EscrowDemo(dep.escrow.address, dep.arbitrator.address, token.address)
    console.print(f"[bold]6.[/bold] FulfillmentEscrow at {out.escrow}, panel arbitrator (2 of 3) at "
                  f"{out.arbitrator}; carriers SF and JD registered; merchants deposited 400 TUSD each")
    return Platform(store, client, admin), out


class _Day:
    """The escrow half's steps 7 to 10 on one platform; `gas` notes every step's gas."""

    def __init__(self, platform: Platform, cast: Cast, out: EscrowDemo, console: Console) -> None:
        self.p, self.cast, self.out, self.console = platform, cast, out, console
        self.client = platform.client
        self.merchant_of: dict[str, LocalAccount] = {}
        self.buyer_of: dict[str, LocalAccount] = {b.address: b for b in cast.buyers}

    def gas(self, step: EscrowStep) -> EscrowStep:
        self.out.gas.setdefault(step.action, []).append(step.gas_used)
        return step

    def open_orders(self, orders: int) -> list[str]:
        """Step 7: each order funded in the stablecoin under its merchant's signed offer."""
        merchants = self.cast.merchants
        sale = generate_flash_sale(seed=99, orders=orders, merchants=len(merchants), start=ESCROW_DAY)
        recs = [dict(r) for r in sale if r["kind"] == "order"][:orders]
        for i, r in enumerate(recs):
            r.pop("ts")
            m = merchants[0] if r["merchant_id"] == recs[0]["merchant_id"] else merchants[1]
            self.merchant_of[r["order_id"]] = m
            price = max(1, r["total"] * 10_000 // CNY_PER_USD_X10)
            self.gas(self.p.open_order(r, merchant=m, buyer=self.cast.buyers[i % len(self.cast.buyers)],
                                       price=price, token=self.out.token, ship_within=2 * DAY,
                                       inspection_window=3 * DAY))
        ids = [r["order_id"] for r in recs]
        self.console.print(f"[bold]7.[/bold] {len(ids)} orders funded in escrow (TUSD), each offer signed "
                           "by its merchant over the order record's leaf")
        return ids

    def ship(self, ids: list[str]) -> None:
        """Step 8: carrier-attested shipments; the last order tries the first one's waybill."""
        carriers = self.cast.carriers
        codes = list(carriers)
        for n, oid in enumerate(ids[:-1]):
            code = codes[n % 2]
            self.gas(self.p.ship(oid, carrier=carriers[code], carrier_code=code,
                                 tracking_number=f"{code}7{n:011d}"))
        fraud = ids[-1]
        try:  # the empty-parcel fraud: shipped under another order's waybill
            self.p.ship(fraud, carrier=carriers["SF"], carrier_code="SF", tracking_number="SF700000000000")
            self.out.rejected = "ACCEPTED?!"
        except ContractRevert as exc:
            self.out.rejected = str(exc)
        self.console.print(f"[bold]8.[/bold] shipped {len(ids) - 1} orders under carrier attestations; "
                           f"order {fraud} re-using order {ids[0]}'s waybill → [red]rejected[/red]: "
                           f"{self.out.rejected}")

    def deliver_return_dispute_pledge(self, delivered: list[str]) -> tuple[str, str]:
        """Step 9: deliveries, a partial return, a dispute ruled fraud, a pledged payout."""
        p, carriers = self.p, self.cast.carriers
        for oid in delivered:
            shipped = cast(StoredRecord, p.store.record_by_id(f"{oid}:ship"))  # stored by ship above
            self.gas(p.deliver(oid, carrier=carriers[shipped.public["carrier"]], method="locker"))
        returned, disputed, pledged = delivered[1], delivered[2], delivered[3]
        self.out.pledged_order, self.out.lender = pledged, self.cast.lender.address
        info = self.client.order(p.escrow_id(returned))
        self.gas(p.request_return(returned, buyer=self.buyer_of[info.buyer], amount=info.price // 2,
                                  reason="size_fit", detail="one of two items does not fit"))
        self.gas(p.ship_return(returned, carrier=carriers["JD"], carrier_code="JD",
                               tracking_number="JD9900000001"))
        self.gas(p.deliver_return(returned, carrier=carriers["JD"]))
        self.gas(p.confirm_return(returned, merchant=self.merchant_of[returned]))
        dinfo = self.client.order(p.escrow_id(disputed))
        self.gas(p.open_dispute(disputed, party=self.buyer_of[dinfo.buyer], statement={
            "kind": "return", "amount": 1, "currency": "CNY", "type": "refund_only", "reason": "counterfeit",
            "detail": "the parcel held a counterfeit of the product shown on stream",
        }))  # fmt: skip
        self.gas(p.submit_evidence(disputed, party=self.merchant_of[disputed], record_id=f"{disputed}:dlv"))
        for member in self.cast.panel[:2]:
            self.gas(p.vote(disputed, member=member, ruling=int(Ruling.FRAUD)))
        self.gas(p.pledge(pledged, merchant=self.merchant_of[pledged], lender=self.cast.lender.address))
        self.console.print(f"[bold]9.[/bold] order {returned}: half returned and refunded; order "
                           f"{disputed}: disputed, the panel ruled fraud; order {pledged}: payout pledged "
                           f"to lender {self.cast.lender.address[:10]}…")
        return returned, disputed

    def settle(self, ids: list[str], delivered: list[str], skip: tuple[str, str]) -> None:
        """Step 10: after the inspection windows, releases and a timeout refund."""
        self.p.chain.time_travel(3 * DAY + 60)
        for oid in delivered:
            if oid not in skip:
                self.gas(self.p.release(oid))
        self.gas(self.p.refund(ids[-1]))  # never validly shipped: refunded after ship-by
        self.console.print(f"[bold]10.[/bold] inspection windows passed: {len(delivered) - 2} orders "
                           f"released (pledged payout to the lender), order {ids[-1]} refunded on timeout")

    def books(self, ids: list[str]) -> None:
        """Every order's final state, and the escrow's books in the stablecoin."""
        c, token = self.client, self.out.token
        for oid in ids:
            o = c.order(self.p.escrow_id(oid))
            self.out.orders.append({"order_id": oid, "state": o.state.name, "price": o.price,
                                    "lender": o.lender if o.pledged else None})
        t = c.totals(token)
        self.out.balances = {
            "escrow_balance": c.balance(token), "escrowed": t.escrowed,
            "deposits": t.deposits, "reserve": t.reserve, "fees": t.fees, "credits": t.credits,
            "lender_credit": c.credit_of(token, self.cast.lender.address),
            **{f"deposit_{n}": c.deposit_of(token, m.address)[0]
               for n, m in (("a", self.cast.merchants[0]), ("b", self.cast.merchants[1]))},
        }  # fmt: skip


def run_escrow_demo(chain: Chain, store: Store, console: Console, *, orders: int = 10) -> EscrowDemo:
    """The escrow half of the demo (steps 6 to 10); see the module docstring."""
    cast_ = Cast(admin=chain.default_account)
    platform, out = _set_up(chain, store, cast_, console)
    day = _Day(platform, cast_, out, console)
    ids = day.open_orders(orders)
    day.ship(ids)
    delivered = ids[:-1]
    returned, disputed = day.deliver_return_dispute_pledge(delivered)
    day.settle(ids, delivered, (returned, disputed))
    day.books(ids)
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
