"""The audit report as a document, the working values it is assembled from, and the text in it.

The report (``"format": "evidence-escrow/audit/v1"``, shape in docs/audit.md) is a tree of
strict msgspec structs (`ledger._internal.jsondoc`): the field names are the JSON keys and
no field has a default, so every key always appears, ``null`` included, and
`AuditReport.from_json` refuses anything else (an unknown or missing field, a wrong type, a
duplicate key) with an `AuditError` naming the field. An order report and a merchant
report share their header, timeline and verdict; the ``report`` key tells them apart, as
``type`` tells a timeline's record entries from its event entries. Event arguments stay
plain JSON values: their names and types are the escrow ABI's, not this document's.

The working values (`Rec`, `Ev`, `Order`) hold what the auditor (``audit``) collected and
verified; the figures (``audit_figures``) are computed from them too, so they live here,
below both. So do the formatters that write text into the report, whoever calls them: the
summaries of records and events and `clip` (the auditor), `how_resolved` (event summaries
and the dispute figures) and `token_label` (event summaries and the renderers). The
renderers (``audit_render``) only lay the finished report out, never write its text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgspec

from ledger._internal import jsondoc
from ledger._internal import rfc3339 as times
from ledger._internal.jsondoc import DocumentStruct
from ledger.chain.abi import jsonable
from ledger.errors import AuditError
from ledger.escrow.types import OrderInfo, OrderState, Resolution
from ledger.evidence.store import StoredRecord

__all__ = [
    # statuses, event names, formatters
    "DEPOSIT_EVENTS", "FAILED", "FORMAT", "NOT_APPLICABLE", "UNANCHORED", "VERIFIED",
    "Opener", "Status", "clip", "event_summary", "how_resolved", "record_summary", "token_label",
    # the document
    "AnchorBlock", "AuditReport", "ChainBlock", "CitedRecord", "Counts", "CoverageItem", "StepEntry",
    "DepositCoverage", "DepositEventRef", "DisputeItem", "Disputes", "EventEntry",
    "FigureSources", "Figures", "Flag", "MerchantBlock", "MerchantReport", "OrderBlock",
    "OrderReport", "OrderRow", "OrdersFigure", "PayoutClaim", "claim_text", "PledgeItem", "PledgeTotals",
    "PledgedReceivables", "RecordEntry", "RefundBucket", "Refunds", "ReturnRate", "SalesTotals",
    "SettledSales", "SourceEvent", "SourceRecord",
    # working values
    "Ev", "OnChain", "Order", "Rec", "rollup",
]

FORMAT = "evidence-escrow/audit/v1"

Status = Literal["verified", "unanchored", "failed", "n/a"]
VERIFIED: Final = "verified"
UNANCHORED: Final = "unanchored"
FAILED: Final = "failed"
NOT_APPLICABLE: Final = "n/a"

Opener = Literal["buyer", "merchant"]  # who opened a dispute

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
    except (KeyError, TypeError, AttributeError):  # fields not of its kind, or erased (`ledger erase`)
        pass
    return clip(k if r.erased is None else f"{k}, erased on {r.erased[0]}")


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


# --------------------------------------------------------------------------- the document: header


class ChainBlock(DocumentStruct):
    """The chain the report was checked against, at the block it was read at."""

    chain_id: int
    escrow: str
    evidence_log: str | None
    block_number: int
    block_time: str


class AnchorBlock(DocumentStruct):
    """The latest confirmed anchored head of the evidence log in the store."""

    tree_size: int
    root: str
    tx_hash: str
    block_number: int | None
    block_time: str | None


class PayoutClaim(DocumentStruct):
    """A way the order's payout can still shrink in its current state (`ledger.escrow.payout`):
    what, who can make it happen, until when (unix seconds, null when it has no deadline)."""

    what: str
    by: str
    until: int | None


class OrderBlock(DocumentStruct):
    """An order report's subject: the order on chain now (chain fields null if never funded),
    and what could still take its payout away."""

    order_id: str
    escrow_order_id: str | None  # None: never funded through the escrow
    merchant_id: str | None
    state: str
    merchant: str | None
    buyer: str | None
    token: str | None
    price: int | None
    lender: str | None
    payout_claims: list[PayoutClaim]


class MerchantBlock(DocumentStruct):
    """A merchant report's subject: the window and the merchant's chain addresses."""

    merchant_id: str
    since: str | None
    until: str | None
    addresses: list[str]


# --------------------------------------------------------------------------- the document: timeline


class CitedRecord(DocumentStruct):
    """The record of the same order whose leaf an event cites."""

    id: str
    index: int


class RecordEntry(DocumentStruct, tag_field="type", tag="record"):
    """A record of the log on the timeline, with its verification outcome."""

    n: int
    time: float
    ts: str
    kind: str
    order_id: str
    id: str
    index: int
    leaf: str
    summary: str
    status: Status
    reasons: list[str]


class EventEntry(DocumentStruct, tag_field="type", tag="event"):
    """An escrow event on the timeline, with the check of the evidence it cites."""

    n: int
    time: float
    ts: str
    kind: str
    order_id: str | None  # None for a merchant's deposit events
    tx_hash: str
    block_number: int
    log_index: int
    args: dict[str, Any]  # decoded with the escrow ABI, as JSON values
    evidence: str | None
    evidence_record: CitedRecord | None
    summary: str
    status: Status
    reasons: list[str]


class Flag(DocumentStruct):
    """A problem: of a timeline entry (its `n`), or of a cross-check (entry None)."""

    entry: int | None
    subject: str
    reason: str


class Counts(DocumentStruct):
    """Timeline entries per status."""

    verified: int
    unanchored: int
    failed: int
    na: int = msgspec.field(name="n/a")

    @classmethod
    def of(cls, statuses: Iterable[Status]) -> Counts:
        n = Counter(statuses)
        return cls(verified=n[VERIFIED], unanchored=n[UNANCHORED], failed=n[FAILED],
                   na=n[NOT_APPLICABLE])

    def items(self) -> list[tuple[Status, int]]:
        """(status, count), best first."""
        return [(VERIFIED, self.verified), (UNANCHORED, self.unanchored), (FAILED, self.failed),
                (NOT_APPLICABLE, self.na)]


# --------------------------------------------------------------------------- the document: figures


class SourceRecord(DocumentStruct):
    id: str
    index: int
    order_id: str
    status: Status


class SourceEvent(DocumentStruct):
    event: str
    order_id: str | None
    tx_hash: str
    block_number: int
    log_index: int
    status: Status


class FigureSources(DocumentStruct):
    """The leaves and transactions a figure rests on, their worst status and why."""

    records: list[SourceRecord]
    events: list[SourceEvent]
    status: Status
    reasons: list[str]


class OrdersFigure(DocumentStruct):
    count: int
    escrowed: int
    sources: FigureSources


class SalesTotals(DocumentStruct):
    """One token's settled sales (summed as the orders are read)."""

    orders: int
    gross: int
    fee: int
    reserve: int
    payout: int


class SettledSales(DocumentStruct):
    by_token: dict[str, SalesTotals]
    sources: FigureSources


class RefundBucket(DocumentStruct):
    count: int
    by_token: dict[str, int]


class Refunds(DocumentStruct):
    count: int
    by_token: dict[str, int]
    full: RefundBucket
    partial: RefundBucket
    compensation_by_token: dict[str, int]
    sources: FigureSources


class ReturnRate(DocumentStruct):
    returns: int
    delivered: int
    rate: float | None  # None when nothing was delivered
    sources: FigureSources


class DisputeItem(DocumentStruct):
    order_id: str
    opened_tx: str
    opener: Opener
    ruling: int | None
    how: str | None
    buyer_bps: int | None
    outcome: Literal["open", "lost", "won", "even"]
    resolved_tx: str | None


class Disputes(DocumentStruct):
    opened: int
    resolved: int
    lost: int
    won: int
    even: int
    open: int
    items: list[DisputeItem]
    sources: FigureSources


class DepositEventRef(DocumentStruct):
    event: str
    tx_hash: str
    amount: int


class CoverageItem(DocumentStruct):
    merchant: str
    token: str
    deposit: int
    locked: int  # what the merchant's open orders lock of it (each at its terms' ratio)
    coverage: float | None  # deposit / locked; None when nothing is locked
    covered: bool
    events: list[DepositEventRef]


class DepositCoverage(DocumentStruct):
    block_number: int
    items: list[CoverageItem]
    sources: FigureSources


class PledgeTotals(DocumentStruct):
    """One token's pledged receivables (summed as the orders are read)."""

    pledged: int
    outstanding: int
    paid_to_lenders: int


class PledgeItem(DocumentStruct):
    order_id: str
    lender: str
    lender_on_chain: str | None
    state: str
    token: str
    price: int
    outstanding: int
    paid_to_lender: int
    pledge_tx: str
    settlement_tx: str | None
    payout_claims: list[PayoutClaim]  # what could still reduce what the lender is paid


class PledgedReceivables(DocumentStruct):
    count: int
    by_token: dict[str, PledgeTotals]
    items: list[PledgeItem]
    sources: FigureSources


class Figures(DocumentStruct):
    """The figures a lender asks for (definitions in docs/audit.md)."""

    orders: OrdersFigure
    settled_sales: SettledSales
    refunds: Refunds
    return_rate: ReturnRate
    disputes: Disputes
    deposit_coverage: DepositCoverage
    pledged_receivables: PledgedReceivables


class OrderRow(DocumentStruct):
    """One order of a merchant report: its order record, its state on chain, its checks."""

    order_id: str
    ts: str | None
    index: int | None
    state: str
    token: str | None
    price: int | None
    lender: str | None
    records: int
    events: int
    status: Status


# --------------------------------------------------------------------------- the document: reports


class AuditReport(DocumentStruct, tag_field="report"):
    """What both reports hold; `OrderReport` and `MerchantReport` add their subject."""

    format: str
    generated_at: str
    chain: ChainBlock
    anchor: AnchorBlock | None
    timeline: list[RecordEntry | EventEntry]
    counts: Counts
    flags: list[Flag]
    ok: bool  # no flags

    @staticmethod
    def from_json(text: str | bytes, source: str) -> OrderReport | MerchantReport:
        """Parse a report written by `to_json` (or ``ledger audit --json``), strictly."""
        report: OrderReport | MerchantReport = jsondoc.load(
            text, _REPORTS, source=source, what="an audit report", fmt=FORMAT, error=AuditError)
        return report

    def to_json(self) -> str:
        """The report as the JSON text ``ledger audit --json`` prints (keys sorted, UTF-8)."""
        return jsondoc.dumps(self, ensure_ascii=False)


class StepEntry(DocumentStruct):
    """A platform step on the order that the chain has not taken (pending, abandoned, failed):
    listed, never claimed; its records are held out of the log."""

    action: str
    status: str
    tx_hash: str
    record_ids: list[str]
    error: str | None
    #: a ``sent`` step whose transaction the chain has mined meanwhile: the block (the store
    #: settles it on `ledger resume` or the next escrow command; until then it is not claimed)
    mined_in_block: int | None


class OrderReport(AuditReport, tag="order"):
    order: OrderBlock
    steps: list[StepEntry]  # the platform's steps on the order the chain has not taken


class MerchantReport(AuditReport, tag="merchant"):
    merchant: MerchantBlock
    figures: Figures
    orders: list[OrderRow]


# msgspec picks the member by the "report" tag; `jsondoc.load` is typed for one class only.
_REPORTS: Any = OrderReport | MerchantReport


# --------------------------------------------------------------------------- working values


@dataclass
class Rec:
    """One record of the log with its verification outcome."""

    record: StoredRecord
    time_ns: int
    status: Status = VERIFIED
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
    status: Status = NOT_APPLICABLE
    reasons: list[str] = field(default_factory=list)
    cited: Rec | None = None  # the record of the same order whose leaf it cites
    cited_leaf: bytes | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.block_number, self.log_index)


@dataclass(frozen=True)
class OnChain:
    """An order's state and terms on chain now (all but the state None if never funded)."""

    state: str
    merchant: str | None
    buyer: str | None
    token: str | None
    price: int | None
    lender: str | None  # None unless pledged


@dataclass
class Order:
    """Everything about one order: its records, its events, what the chain says now."""

    order_id: str
    records: list[Rec]
    events: list[Ev]
    info: OrderInfo | None = None  # `getOrder` now; None while the escrow has no such order
    escrow_id: bytes | None = None  # the escrow order id the platform funded it under, if any

    def first(self, name: str) -> Ev | None:
        return next((e for e in self.events if e.name == name), None)

    @property
    def funded(self) -> Ev | None:
        return self.first("OrderFunded")

    @property
    def order_record(self) -> Rec | None:
        return next((r for r in self.records if r.record.kind == "order"), None)

    def on_chain(self) -> OnChain:
        i = self.info
        if i is None:
            return OnChain(OrderState.NONE.name, None, None, None, None, None)
        return OnChain(i.state.name, i.merchant, i.buyer, i.token, i.price,
                       i.lender if i.pledged else None)


def rollup(recs: Iterable[Rec], evs: Iterable[Ev]) -> Status:
    """The worst status of these records and of those of these events that cite evidence:
    failed, else unanchored, else verified; n/a when there is nothing to check."""
    s = {r.status for r in recs} | {e.status for e in evs if e.status != NOT_APPLICABLE}
    if FAILED in s:
        return FAILED
    if UNANCHORED in s:
        return UNANCHORED
    return VERIFIED if s else NOT_APPLICABLE


def claim_text(claim: PayoutClaim) -> str:
    """One line for a payout claim: what, by whom, until when."""
    until = f" until {times.rfc3339(claim.until)}" if claim.until is not None else ""
    return f"{claim.what} ({claim.by}{until})"
