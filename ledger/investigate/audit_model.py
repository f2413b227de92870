"""The audit report's statuses, the working values an audit is assembled from, and the text in it.

The working values (`Rec`, `Ev`, `Order`) hold what the auditor (``audit``) collected and
verified; the figures (``audit_figures``) are computed from them too, so they live here,
below both. So do the formatters that write text into the report, whoever calls them: the
summaries of records and events and `clip` (the auditor), `how_resolved` (event summaries
and the dispute figures) and `token_label` (event summaries and the renderers). The
renderers (``audit_render``) only lay the finished report out, never write its text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger._internal import rfc3339 as times
from ledger.chain.abi import jsonable
from ledger.escrow.types import OrderInfo, OrderState, Resolution
from ledger.evidence.store import StoredRecord

__all__ = [
    "DEPOSIT_EVENTS", "FAILED", "FORMAT", "NOT_APPLICABLE", "STATUSES", "UNANCHORED", "VERIFIED",
    "Ev", "Order", "Rec", "clip", "event_summary", "how_resolved", "record_summary", "rollup",
    "token_label",
]

FORMAT = "evidence-escrow/audit/v1"

VERIFIED = "verified"
UNANCHORED = "unanchored"
FAILED = "failed"
NOT_APPLICABLE = "n/a"
STATUSES = (VERIFIED, UNANCHORED, FAILED, NOT_APPLICABLE)

#: the escrow events of a merchant's deposit (indexed by merchant address, not order)
DEPOSIT_EVENTS = ("DepositAdded", "DepositWithdrawn", "DepositSlashed")


# --------------------------------------------------------------------------- formatters


def token_label(token: str) -> str:
    """``ETH`` for the zero address, else the token's address."""
    return "ETH" if int(token, 16) == 0 else token


def how_resolved(n: int) -> str:
    """How a dispute was resolved (`ledger.escrow.Resolution`): ``ruling``, ``default``,
    ``arbitrator timeout``; an unknown value as its number."""
    try:
        return Resolution(n).name.lower().replace("_", " ")
    except ValueError:
        return str(n)


def clip(text: str, n: int = 160) -> str:
    """`text` on one line, cut to `n` characters (record fields can hold anything)."""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def record_summary(r: StoredRecord) -> str:
    """A record's public fields in a line; a record whose fields do not fit its kind, as its kind."""
    p = r.public
    k = r.kind
    try:
        if k == "order":
            items = p.get("items", [])
            titles = ", ".join(str(i.get("title") or i.get("sku")) for i in items[:3])
            more = f" +{len(items) - 3}" if len(items) > 3 else ""
            total = f"total {p['total']} {p['currency']}"
            return clip(f"{len(items)} item(s): {titles}{more}; {total}")
        if k == "payment":
            return clip(f"{p['amount']} {p['currency']} by {p['method']}, ref {p['payment_ref']}")
        if k == "shipment":
            return clip(f"{p['carrier']} {p['tracking_number']}")
        if k == "delivery":
            return clip(f"{p['carrier']} {p['tracking_number']} ({p['method']})")
        if k == "review":
            return clip(f"rating {p['rating']}" + (f": {p['text']}" if p.get("text") else ""))
        if k == "return":
            detail = f": {p['detail']}" if p.get("detail") else ""
            return clip(f"{p['type']} ({p['reason']}) {p['amount']} {p['currency']}{detail}")
    except (KeyError, TypeError, AttributeError):
        pass
    return clip(k)


def event_summary(name: str, a: dict[str, Any], token: str | None) -> str:
    """A decoded escrow event in a line; `token` is its order's token (None if unknown)."""
    tok = f" {token_label(token)}" if token else ""
    if name == "OrderFunded":
        return (f"price {a['price']} {token_label(a['token'])}, merchant {a['merchant']}, "
                f"buyer {a['buyer']}")
    if name == "OrderReleased":
        return f"payout {a['payout']}{tok} to {a['payee']} (fee {a['fee']}, reserve {a['reserve']})"
    if name == "OrderRefunded":
        return f"refund {a['amount']}{tok} to {a['buyer']}"
    if name == "ReturnRequested":
        return f"return of {a['amount']}{tok} requested"
    if name == "ReturnSettled":
        return (f"refund {a['refund']}{tok}; payout {a['payout']} to {a['payee']} "
                f"(fee {a['fee']}, reserve {a['reserve']})")
    if name == "DisputeOpened":
        return f"dispute {a['disputeId']} opened by {a['opener']}"
    if name == "DisputeResolved":
        return (f"ruling {a['ruling']} by {how_resolved(a['how'])}: buyer {a['toBuyer']}{tok}, "
                f"payout {a['payout']} to {a['payee']}, compensation {a['compensation']}")
    if name == "OrderPledged":
        return f"payout pledged to {a['lender']}"
    if name in ("OrderShipped", "ReturnShipped"):
        return f"carrier {a['carrier']}, shipped at {times.rfc3339(int(a['shippedAt']))}"
    if name in ("OrderDelivered", "ReturnDelivered"):
        who = a.get("attester") or a.get("carrier")
        return f"attested by {who}, delivered at {times.rfc3339(int(a['deliveredAt']))}"
    if name == "Evidence":
        return clip(f"evidence {a['evidence']} from {a['party']}")
    if name in DEPOSIT_EVENTS:
        return f"{a['amount']} {token_label(a['token'])} for merchant {a['merchant']}"
    if name == "ReservePaid":
        return f"reserve paid {a['amount']} {token_label(a['token'])} to {a['buyer']}"
    if name == "DisputeAnswered":
        return f"answered by {a['respondent']}"
    return clip(", ".join(f"{k}={jsonable(v)}" for k, v in a.items()))


# --------------------------------------------------------------------------- working values


@dataclass
class Rec:
    """One record of the log with its verification outcome."""

    record: StoredRecord
    time_ns: int
    status: str = VERIFIED
    reasons: list[str] = field(default_factory=list)


@dataclass
class Ev:
    """One escrow event read from the chain."""

    name: str
    args: dict[str, Any]
    order_id: str | None  # the evidence-log order id (None for merchant-level events)
    tx_hash: str
    block_number: int
    log_index: int
    time: int
    status: str = NOT_APPLICABLE
    reasons: list[str] = field(default_factory=list)
    cited: Rec | None = None  # the record of the same order whose leaf it cites
    cited_leaf: bytes | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.block_number, self.log_index)


@dataclass
class Order:
    """Everything about one order: its records, its events, what the chain says now."""

    order_id: str
    records: list[Rec]
    events: list[Ev]
    info: OrderInfo | None = None  # `getOrder` now; None while the escrow has no such order

    def first(self, name: str) -> Ev | None:
        return next((e for e in self.events if e.name == name), None)

    @property
    def funded(self) -> Ev | None:
        return self.first("OrderFunded")

    @property
    def order_record(self) -> Rec | None:
        return next((r for r in self.records if r.record.kind == "order"), None)

    def on_chain(self) -> dict[str, Any]:
        """The order's state and terms on chain now (chain fields None if never funded)."""
        i = self.info
        if i is None:
            return {"state": OrderState.NONE.name, "merchant": None, "buyer": None,
                    "token": None, "price": None, "lender": None}
        return {"state": i.state.name, "merchant": i.merchant, "buyer": i.buyer,
                "token": i.token, "price": i.price, "lender": i.lender if i.pledged else None}


def rollup(recs: Iterable[Rec], evs: Iterable[Ev]) -> str:
    """The worst status of these records and of those of these events that cite evidence:
    failed, else unanchored, else verified; n/a when there is nothing to check."""
    s = {r.status for r in recs} | {e.status for e in evs if e.status != NOT_APPLICABLE}
    if FAILED in s:
        return FAILED
    if UNANCHORED in s:
        return UNANCHORED
    return VERIFIED if s else NOT_APPLICABLE
