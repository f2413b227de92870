"""The merchant figures a lender asks for, each with the leaves and transactions behind it.

Computed from the orders the auditor (``audit``) has already collected and verified, plus
the merchant addresses' deposit events; the only chain read here is each deposit as it is
now (``depositOf``). Every figure lists its sources, deduplicated and in log and chain
order, with their worst status: a lender can check each number against the chain.
Definitions are in docs/audit.md.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence

from eth_utils import to_checksum_address

from ledger.errors import AuditError
from ledger.escrow import payout
from ledger.escrow.client import EscrowClient
from ledger.escrow.types import BPS, buyer_bps_of
from ledger.investigate.audit_model import (
    FAILED,
    UNANCHORED,
    VERIFIED,
    CoverageItem,
    DepositCoverage,
    DepositEventRef,
    DisputeItem,
    Disputes,
    Ev,
    Figures,
    FigureSources,
    Opener,
    Order,
    OrdersFigure,
    PayoutClaim,
    PledgedReceivables,
    PledgeItem,
    PledgeTotals,
    Rec,
    RefundBucket,
    Refunds,
    ReturnRate,
    SalesTotals,
    SettledSales,
    SourceEvent,
    SourceRecord,
    how_resolved,
    rollup,
)

__all__ = ["SETTLEMENT_EVENTS", "compute_figures", "payout_claims"]

_logger = logging.getLogger(__name__)

#: the events that close an order's books (exactly one per settled order)
SETTLEMENT_EVENTS = ("OrderReleased", "OrderRefunded", "ReturnSettled", "DisputeResolved")


def compute_figures(orders: Sequence[Order], deposits: Sequence[Ev], client: EscrowClient,
                    addresses: Sequence[str], block_number: int) -> Figures:
    """The figures over these (verified and checked) orders of one merchant, whose chain
    addresses are `addresses`; deposits are read from the chain at `block_number`."""
    return _Figures(orders, deposits, client, addresses, block_number).compute()


class _Sources:
    """The records and events a figure was computed from (deduplicated, in log/chain order)."""

    def __init__(self) -> None:
        self.records: dict[int, Rec] = {}
        self.events: dict[tuple[int, int], Ev] = {}

    def rec(self, r: Rec | None) -> None:
        if r is not None:
            self.records[r.record.index] = r

    def ev(self, e: Ev | None) -> None:
        """An event, and the record it cites."""
        if e is not None:
            self.events[e.key] = e
            self.rec(e.cited)

    def block(self) -> FigureSources:
        recs = [self.records[i] for i in sorted(self.records)]
        evs = [self.events[k] for k in sorted(self.events)]
        reasons = [f"record {r.record.id} (leaf {r.record.index}): {why}" for r in recs
                   if r.status != VERIFIED for why in r.reasons]
        reasons += [f"{e.name} in tx {e.tx_hash}: {why}" for e in evs
                    if e.status in (FAILED, UNANCHORED) for why in e.reasons]
        return FigureSources(
            records=[SourceRecord(id=r.record.id, index=r.record.index, order_id=r.record.order_id,
                                  status=r.status) for r in recs],
            events=[SourceEvent(event=e.name, order_id=e.order_id, tx_hash=e.tx_hash,
                                block_number=e.block_number, log_index=e.log_index,
                                status=e.status) for e in evs],
            status=rollup(recs, evs),
            reasons=reasons,
        )


class _Figures:
    def __init__(self, orders: Sequence[Order], deposits: Sequence[Ev], client: EscrowClient,
                 addresses: Sequence[str], block_number: int) -> None:
        self.orders = orders
        self.deposits = deposits
        self.client = client
        self.addresses = addresses
        self.block_number = block_number

    def compute(self) -> Figures:
        return Figures(
            orders=self.order_count(),
            settled_sales=self.settled_sales(),
            refunds=self.refunds(),
            return_rate=self.return_rate(),
            disputes=self.disputes(),
            deposit_coverage=self.deposit_coverage(),
            pledged_receivables=self.pledged(),
        )

    def order_count(self) -> OrdersFigure:
        src = _Sources()
        escrowed = 0
        for o in self.orders:
            src.rec(o.order_record)
            if o.funded is not None:
                escrowed += 1
                src.ev(o.funded)
        return OrdersFigure(count=sum(1 for o in self.orders if o.order_record is not None),
                            escrowed=escrowed, sources=src.block())

    @staticmethod
    def _settlement(o: Order) -> Ev | None:
        return next((e for e in o.events if e.name in SETTLEMENT_EVENTS), None)

    @staticmethod
    def _to_buyer(ev: Ev) -> int:
        arg = {"OrderRefunded": "amount", "ReturnSettled": "refund", "DisputeResolved": "toBuyer"}
        return int(ev.args[arg[ev.name]]) if ev.name in arg else 0

    def settled_sales(self) -> SettledSales:
        src = _Sources()
        by_token: dict[str, SalesTotals] = {}
        for o in self.orders:
            ev = self._settlement(o)
            if ev is None or ev.name == "OrderRefunded" or o.info is None:
                continue
            payout, fee, reserve = (int(ev.args[k]) for k in ("payout", "fee", "reserve"))
            gross = payout + fee + reserve
            if gross == 0:
                continue
            t = by_token.setdefault(
                o.info.token, SalesTotals(orders=0, gross=0, fee=0, reserve=0, payout=0))
            t.orders += 1
            t.gross += gross
            t.fee += fee
            t.reserve += reserve
            t.payout += payout
            src.rec(o.order_record)
            src.ev(ev)
        return SettledSales(by_token=by_token, sources=src.block())

    def refunds(self) -> Refunds:
        src = _Sources()
        counts = {"full": 0, "partial": 0}
        amounts: dict[str, dict[str, int]] = {"full": defaultdict(int), "partial": defaultdict(int)}
        total: dict[str, int] = defaultdict(int)
        compensation: dict[str, int] = defaultdict(int)
        for o in self.orders:
            ev = self._settlement(o)
            if ev is None or o.info is None:
                continue
            amount = self._to_buyer(ev)
            if amount <= 0:
                continue
            token = o.info.token
            bucket = "full" if amount >= o.info.price else "partial"
            counts[bucket] += 1
            amounts[bucket][token] += amount
            total[token] += amount
            if ev.name == "DisputeResolved" and int(ev.args["compensation"]):
                compensation[token] += int(ev.args["compensation"])
            src.rec(o.order_record)
            src.ev(ev)
            for r in o.records:
                if r.record.kind == "return":
                    src.rec(r)
        return Refunds(
            count=counts["full"] + counts["partial"],
            by_token=dict(total),
            full=RefundBucket(count=counts["full"], by_token=dict(amounts["full"])),
            partial=RefundBucket(count=counts["partial"], by_token=dict(amounts["partial"])),
            compensation_by_token=dict(compensation),
            sources=src.block(),
        )

    def return_rate(self) -> ReturnRate:
        src = _Sources()
        returns = delivered = 0
        for o in self.orders:
            dlv = o.first("OrderDelivered")
            if dlv is not None:
                delivered += 1
                src.ev(dlv)
            req = o.first("ReturnRequested")
            if req is not None:
                returns += 1
                src.ev(req)
        return ReturnRate(returns=returns, delivered=delivered,
                          rate=(returns / delivered) if delivered else None, sources=src.block())

    def disputes(self) -> Disputes:
        src = _Sources()
        items = []
        for o in self.orders:
            opened = o.first("DisputeOpened")
            if opened is None:
                continue
            resolved = o.first("DisputeResolved")
            src.ev(opened)
            src.ev(resolved)
            src.rec(o.order_record)
            items.append(self._dispute(o, opened, resolved))
        outcomes = Counter(i.outcome for i in items)
        return Disputes(opened=len(items), resolved=len(items) - outcomes["open"],
                        lost=outcomes["lost"], won=outcomes["won"], even=outcomes["even"],
                        open=outcomes["open"], items=items, sources=src.block())

    @staticmethod
    def _dispute(o: Order, opened: Ev, resolved: Ev | None) -> DisputeItem:
        """Who opened the order's dispute and, once resolved, who lost it."""
        buyer = o.info.buyer if o.info is not None else None
        opener: Opener = ("buyer" if buyer and str(opened.args["opener"]).lower() == buyer.lower()
                  else "merchant")
        if resolved is None:
            return DisputeItem(order_id=o.order_id, opened_tx=opened.tx_hash, opener=opener,
                               ruling=None, how=None, buyer_bps=None, outcome="open",
                               resolved_tx=None)
        ruling = int(resolved.args["ruling"])
        try:
            bps = buyer_bps_of(ruling)
        except ValueError as exc:  # the deployed escrow cannot emit it (same build)
            raise AuditError(f"order {o.order_id}: DisputeResolved in tx "
                             f"{resolved.tx_hash}: {exc}") from None
        return DisputeItem(
            order_id=o.order_id, opened_tx=opened.tx_hash, opener=opener, ruling=ruling,
            how=how_resolved(int(resolved.args["how"])), buyer_bps=bps,
            outcome="lost" if bps > BPS // 2 else "won" if bps < BPS // 2 else "even",
            resolved_tx=resolved.tx_hash)

    def deposit_coverage(self) -> DepositCoverage:
        src = _Sources()
        items = []
        # (merchant, token) -> its deposit events, in chain order; both checksummed
        deposits: dict[tuple[str, str], list[Ev]] = defaultdict(list)
        for e in self.deposits:
            key = (to_checksum_address(e.args["merchant"]), to_checksum_address(e.args["token"]))
            deposits[key].append(e)
        order_tokens: dict[str, list[str]] = defaultdict(list)  # merchant -> its orders' tokens
        for o in self.orders:
            if o.info is not None:
                tokens = order_tokens[to_checksum_address(o.info.merchant)]
                if o.info.token not in tokens:
                    tokens.append(o.info.token)
        for addr in self.addresses:
            tokens = list(order_tokens.get(addr, []))
            tokens += [tok for merchant, tok in deposits if merchant == addr and tok not in tokens]
            for tok in tokens:
                deposit, locked = self.client.deposit_of(tok, addr)
                _logger.debug("depositOf(%s, %s): deposit %d, locked %d", tok, addr, deposit, locked)
                evs = deposits.get((addr, tok), [])
                for e in evs:
                    src.ev(e)
                items.append(CoverageItem(
                    merchant=addr, token=tok, deposit=deposit, locked=locked,
                    coverage=(deposit / locked) if locked else None, covered=deposit >= locked,
                    events=[DepositEventRef(event=e.name, tx_hash=e.tx_hash,
                                            amount=int(e.args["amount"])) for e in evs],
                ))  # fmt: skip
        return DepositCoverage(block_number=self.block_number, items=items, sources=src.block())

    def pledged(self) -> PledgedReceivables:
        src = _Sources()
        items = []
        by_token: dict[str, PledgeTotals] = {}
        for o in self.orders:
            pledge = o.first("OrderPledged")
            if pledge is None or o.info is None:
                continue
            info = o.info
            lender = str(pledge.args["lender"])
            settlement = self._settlement(o)
            paid = 0
            if settlement is not None and "payee" in settlement.args:
                if str(settlement.args["payee"]).lower() == lender.lower():
                    paid = int(settlement.args["payout"])
            outstanding = 0 if info.state.terminal else info.price
            t = by_token.setdefault(
                info.token, PledgeTotals(pledged=0, outstanding=0, paid_to_lenders=0))
            t.pledged += info.price
            t.outstanding += outstanding
            t.paid_to_lenders += paid
            src.rec(o.order_record)
            src.ev(pledge)
            src.ev(settlement)
            items.append(PledgeItem(
                order_id=o.order_id, lender=lender,
                lender_on_chain=info.lender if info.pledged else None,
                state=info.state.name, token=info.token, price=info.price,
                outstanding=outstanding, paid_to_lender=paid, pledge_tx=pledge.tx_hash,
                settlement_tx=settlement.tx_hash if settlement else None,
                payout_claims=payout_claims(self.client, o.escrow_id),
            ))  # fmt: skip
        return PledgedReceivables(count=len(items), by_token=by_token, items=items,
                                  sources=src.block())


def payout_claims(client: EscrowClient, escrow_id: bytes | None) -> list[PayoutClaim]:
    """What could still reduce the order's payout, from the chain now (empty once settled, or
    when the order was never funded)."""
    if escrow_id is None:
        return []
    return [PayoutClaim(what=k.what, by=k.by, until=k.until) for k in payout.claims(client, escrow_id)]
