"""Audit reports: an order's verified timeline, a merchant's figures for a lender.

An audit reads two sources and checks one against the other:

* the evidence log (the store): an order's records, each verified by building the order's
  evidence bundle and verifying it against the chain (``ledger.evidence.bundle``): the record hashes
  to its leaf, its inclusion proof holds against a confirmed anchored head, and that head
  is anchored by the EvidenceLog contract;
* the escrow's event logs, read from the chain (never from the store): every event whose
  indexed order id is the order's escrow order id (the one the platform's ``fund`` offer
  named, in the merchant's namespace; its OrderFunded must cite the order record), decoded
  with the escrow ABI, with its block time and transaction. An event citing evidence
  (``evidence``, ``orderRecord``, ERC-1497 ``Evidence`` references) checks out only if the
  cited hash is the leaf of a record of the same order and that record verified.

`Auditor.order_report` merges both into one timeline; `Auditor.merchant_report` adds the
figures a lender asks for (sales, refunds, return rate, disputes, deposit coverage, pledged
receivables; ``audit_figures``), each listing the leaves and transactions behind it. This
module collects, verifies and assembles; the report is a typed document
(``audit_model``, shape in docs/audit.md) and its renderers, `render_text`, `render_json`
and `render_html` (``audit_render``), are re-exported here with the rest of the audit API.
The command line is in ``ledger.cli.audit``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address
from web3.types import FilterParams

from ledger._internal import rfc3339 as times
from ledger.chain.abi import decode_log, event_topic, jsonable
from ledger.errors import AuditError, BundleError
from ledger.escrow.client import EscrowClient
from ledger.escrow.platform import funded_escrow_id
from ledger.escrow.types import ZERO32, OrderState
from ledger.evidence.anchor_check import recheck_anchors
from ledger.evidence.bundle import build_bundle, verify_bundle
from ledger.evidence.bundle_format import Selection
from ledger.evidence.journal import ActionRow, AnchorRow
from ledger.evidence.store import Store, StoredRecord
from ledger.evidence.trust import Pin
from ledger.investigate.audit_figures import compute_figures, payout_claims
from ledger.investigate.audit_model import (
    DEPOSIT_EVENTS,
    FAILED,
    FORMAT,
    NOT_APPLICABLE,
    UNANCHORED,
    VERIFIED,
    AnchorBlock,
    ChainBlock,
    CitedRecord,
    Counts,
    Ev,
    EventEntry,
    Flag,
    MerchantBlock,
    MerchantReport,
    Order,
    OrderBlock,
    OrderReport,
    OrderRow,
    Rec,
    RecordEntry,
    clip,
    event_summary,
    record_summary,
    rollup,
)
from ledger.investigate.audit_render import render_html, render_json, render_text, text_report
from ledger.investigate.audit_steps import (
    EVIDENCE_ARG,
    HEX_REF,
    LEAF_REF,
    SILENT_ACTIONS,
    uncited_records,
    unsettled_steps,
)

__all__ = [
    "FORMAT",
    "Auditor",
    "parse_time_ns",
    "render_html",
    "render_json",
    "render_text",
    "text_report",
]

_logger = logging.getLogger(__name__)

LOG_BATCH = 200  # order ids per eth_getLogs topic list

# --------------------------------------------------------------------------- helpers


def parse_time_ns(text: str) -> int:
    """An RFC 3339 time as unix nanoseconds (see `ledger._internal.rfc3339.parse_time_ns`)."""
    try:
        return times.parse_time_ns(text)
    except ValueError as exc:
        raise AuditError(str(exc)) from None


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


# --------------------------------------------------------------------------- the auditor


class Auditor:
    """Builds audit reports from one store, one escrow and one evidence log on one chain.

    `log_address` is the EvidenceLog whose anchored heads the records are checked against
    (None: nothing is anchored, every record is reported unanchored). `from_block` is
    where the escrow's logs are read from (its deployment block).
    """

    def __init__(
        self,
        store: Store,
        client: EscrowClient,
        *,
        log_address: str | None,
        from_block: int = 0,
    ) -> None:
        self.store = store
        self.client = client
        self.chain = client.chain
        self.w3 = client.chain.w3
        self.log_address = to_checksum_address(log_address) if log_address else None
        self.from_block = from_block
        self._block_times: dict[int, int] = {}
        self._topic0: dict[str, str] = {}
        # web3 types ABI entries as a union of TypedDicts; they are the artifact's plain JSON objects.
        abi: list[dict[str, Any]] = list(cast(Sequence[dict[str, Any]], client.escrow.abi))
        for item in abi:
            if item.get("type") == "event":
                self._topic0[str(item["name"])] = _hex(event_topic(item))

    # -- chain reads ---------------------------------------------------------------------
    def _block_time(self, number: int) -> int:
        if number not in self._block_times:
            self._block_times[number] = int(self.w3.eth.get_block(number)["timestamp"])
            _logger.debug("block %d: timestamp %d", number, self._block_times[number])
        return self._block_times[number]

    def _logs(self, topics: list[Any]) -> list[Any]:
        query: FilterParams = {"address": cast(ChecksumAddress, self.client.address),
                               "fromBlock": self.from_block, "toBlock": "latest", "topics": topics}
        try:
            logs = list(self.w3.eth.get_logs(query))
        except Exception as exc:  # noqa: BLE001 - the node's own error, reported
            raise AuditError(f"cannot read the escrow's event logs from the chain: {exc}") from None
        _logger.debug("eth_getLogs from block %d, %d topic position(s): %d log(s)",
                      self.from_block, len(topics), len(logs))
        return logs

    def _decode(self, log: Any, order_id: str | None) -> Ev | None:
        decoded = decode_log(self.client.escrow, log)
        if decoded is None:
            return None
        name, args = decoded
        block = int(log["blockNumber"])
        return Ev(name=name, args=args, order_id=order_id,
                  tx_hash=_hex(bytes(log["transactionHash"])), block_number=block,
                  log_index=int(log["logIndex"]), time=self._block_time(block))

    def order_events(self, escrow_ids: dict[str, bytes | None]) -> dict[str, list[Ev]]:
        """Every escrow event of these orders, from the chain, in chain order.

        The order id is an indexed topic: first for the lifecycle events, second for
        ``Evidence`` and ``ReservePaid``, third for ``DepositSlashed``.
        """
        keys = {_hex(k): o for o, k in escrow_ids.items() if k is not None}
        out: dict[str, dict[tuple[int, int], Ev]] = {o: {} for o in escrow_ids}
        hexkeys = list(keys)
        t = self._topic0
        for i in range(0, len(hexkeys), LOG_BATCH):
            part = hexkeys[i : i + LOG_BATCH]
            queries: list[tuple[int, list[Any]]] = [
                (1, [None, part]),
                (2, [[t["Evidence"], t["ReservePaid"]], None, part]),
                (3, [[t["DepositSlashed"]], None, None, part]),
            ]
            for pos, topics in queries:
                for log in self._logs(topics):
                    topic = _hex(bytes(log["topics"][pos]))
                    oid = keys.get(topic)
                    if oid is None:
                        continue
                    ev = self._decode(log, oid)
                    if ev is not None:
                        out[oid][ev.key] = ev
        return {o: [evs[k] for k in sorted(evs)] for o, evs in out.items()}

    def deposit_events(self, merchants: Sequence[str]) -> list[Ev]:
        """DepositAdded / DepositWithdrawn / DepositSlashed of these merchant addresses."""
        if not merchants:
            return []
        topics = [[self._topic0[n] for n in DEPOSIT_EVENTS],
                  ["0x" + "00" * 12 + to_checksum_address(m)[2:].lower() for m in merchants]]
        evs = [self._decode(log, None) for log in self._logs(topics)]
        return sorted((e for e in evs if e is not None), key=lambda e: e.key)

    def _anchor(self) -> AnchorRow | None:
        """The anchor records are verified against: the latest still confirmed once the store's
        anchors are re-checked against the chain as it is now (a reorg or a reset may have
        taken one away, or moved it)."""
        if self.log_address is None:
            return None
        for c in recheck_anchors(self.store, self.chain, self.log_address).changes:
            _logger.warning("%s", c.text())
        return self.store.latest_confirmed(self.chain.chain_id, self.log_address)

    def _chain_info(self, anchor: AnchorRow | None) -> tuple[ChainBlock, AnchorBlock | None]:
        block = self.w3.eth.get_block("latest")
        _logger.debug("latest block %d", int(block["number"]))
        chain = ChainBlock(
            chain_id=self.chain.chain_id,
            escrow=self.client.address,
            evidence_log=self.log_address,
            block_number=int(block["number"]),
            block_time=times.rfc3339(int(block["timestamp"])),
        )
        head = None if anchor is None else AnchorBlock(
            tree_size=anchor.size, root=anchor.root.hex(), tx_hash=_hex(anchor.tx_hash),
            block_number=anchor.block_number,
            block_time=(None if anchor.block_timestamp is None
                        else times.rfc3339(anchor.block_timestamp)),
        )  # fmt: skip
        return chain, head

    # -- verification --------------------------------------------------------------------
    def _verify(self, recs: Sequence[Rec], anchor: AnchorRow | None,
                selection: Selection) -> None:
        """Set each record's status: unanchored, or the verdict of its bundle on the chain."""
        size = anchor.size if anchor is not None else 0
        covered = []
        for r in recs:
            if r.record.index >= size:
                r.status = UNANCHORED
                why = (f"(latest anchored size {size})" if anchor
                       else "(nothing anchored on this log yet)")
                r.reasons = [f"leaf {r.record.index} is not yet covered by an anchored head {why}"]
            else:
                covered.append(r)
        if not covered:
            return
        assert anchor is not None
        try:
            bundle = build_bundle(self.store, [r.record for r in covered], anchor,
                                  selection=selection)
        except BundleError as exc:
            for r in covered:
                r.status, r.reasons = FAILED, [f"cannot export the bundle: {exc}"]
            return
        _logger.debug("verifying %d record(s) against the anchored head of size %d",
                      len(covered), anchor.size)
        # The auditor chose this EvidenceLog (--log, or the deployment manifest): it is the pin.
        verdict = verify_bundle(bundle, self.w3, pin=Pin(self.chain.chain_id, self.log_address))
        by_index = {v.index: v for v in verdict.records}
        for r in covered:
            v = by_index.get(r.record.index)
            reasons = list(verdict.head_failures)
            reasons += v.failures if v is not None else ["missing from the exported bundle"]
            r.status = FAILED if reasons else VERIFIED
            r.reasons = reasons

    def _check_event(self, ev: Ev, by_leaf: dict[bytes, Rec]) -> None:
        """Does the evidence the event cites check out? Sets ev.status and ev.reasons."""
        leaf: bytes | None
        stated_index = None
        if ev.name == "Evidence":
            ref = str(ev.args.get("evidence", ""))
            m = LEAF_REF.fullmatch(ref)
            h = HEX_REF.fullmatch(ref)
            if m:
                stated_index, leaf = int(m.group(1)), bytes.fromhex(m.group(2))
            elif h:
                leaf = bytes.fromhex(h.group(1))
            else:
                ev.status = FAILED
                ev.reasons = [f"evidence reference {clip(ref, 80)!r} names no log leaf "
                              "(expected leaf:<index>:<hash> or 0x<hash>)"]
                return
        elif ev.name in EVIDENCE_ARG:
            leaf = bytes(ev.args[EVIDENCE_ARG[ev.name]])
        else:
            ev.status = NOT_APPLICABLE
            return
        ev.cited_leaf = leaf
        if leaf == ZERO32:
            ev.status, ev.reasons = FAILED, ["cites no evidence (zero hash)"]
            return
        rec = by_leaf.get(leaf)
        if rec is None:
            other = self.store.record_by_leaf(leaf)
            ev.status = FAILED
            if other is None:
                ev.reasons = [f"cites {leaf.hex()}, which is not the leaf of any record in the log"]
            else:
                ev.reasons = [f"cites record {other.id!r} (leaf {other.index}) of order "
                              f"{other.order_id!r}, not a record of this order"]
            return
        ev.cited = rec
        reasons = []
        if ev.name == "OrderFunded" and rec.record.kind != "order":
            reasons.append(f"the offer commits to record {rec.record.id!r}, a {rec.record.kind} "
                           "record, not the order record")
        if stated_index is not None and stated_index != rec.record.index:
            reasons.append(f"the reference names leaf {stated_index}, but record {rec.record.id!r} "
                           f"is leaf {rec.record.index}")
        if rec.status == FAILED:
            reasons.append(f"cites record {rec.record.id!r} (leaf {rec.record.index}), which fails "
                           "verification")
        if reasons:
            ev.status, ev.reasons = FAILED, reasons
        elif rec.status == UNANCHORED:
            ev.status = UNANCHORED
            ev.reasons = [f"cites record {rec.record.id!r} (leaf {rec.record.index}), "
                          "not yet anchored"]
        else:
            ev.status, ev.reasons = VERIFIED, []

    # -- assembling orders -----------------------------------------------------------------
    def _orders(
        self,
        stored: dict[str, list[StoredRecord]],
        actions: dict[str, list[ActionRow]],
        anchor: AnchorRow | None,
        selection: Selection,
    ) -> tuple[list[Order], list[Flag]]:
        """Verify and cross-check these orders (their stored records and the platform's
        actions on them, by order id); returns them and the general flags."""
        ids = self._escrow_ids(stored, actions)
        events = self.order_events(ids)
        orders = [Order(oid, [Rec(r, times.ts_ns(r.ts)) for r in recs], events[oid], escrow_id=ids[oid])
                  for oid, recs in stored.items()]
        self._verify([r for o in orders for r in o.records], anchor, selection)
        flags: list[Flag] = []
        for o in orders:
            flags += self._cross_check(o, actions.get(o.order_id, []))
            by_leaf = {r.record.leaf: r for r in o.records}
            for ev in o.events:
                self._check_event(ev, by_leaf)
            if o.escrow_id is None:
                continue
            info = self.client.order(o.escrow_id)
            _logger.debug("getOrder(%s): %s", _hex(o.escrow_id), info.state.name)
            o.info = None if info.state is OrderState.NONE else info
        return orders, flags

    def _escrow_ids(self, stored: dict[str, list[StoredRecord]],
                    actions: dict[str, list[ActionRow]]) -> dict[str, bytes | None]:
        """Each order's escrow order id: the one the platform's own ``fund`` action offered."""
        return {oid: funded_escrow_id(actions.get(oid, []), self.client.address) for oid in stored}

    def _addresses(self, actions: dict[str, list[ActionRow]], orders: Sequence[Order]) -> list[str]:
        """The merchant's chain addresses: those its fund offers name."""
        return _offered_addresses(actions)

    def _cross_check(self, o: Order, actions: Sequence[ActionRow]) -> list[Flag]:
        """The store against itself and the chain: merchant ids, fund offers, actions."""
        flags: list[Flag] = []
        subject = f"order {o.order_id}"
        order_rec = o.order_record
        if o.records and order_rec is None:
            flags.append(Flag(entry=None, subject=subject, reason="the log has records of this "
                              "order but no order record"))
        if order_rec is not None:
            for r in o.records:
                if r.record.merchant_id != order_rec.record.merchant_id:
                    r.status = FAILED
                    r.reasons.append(f"merchant_id {r.record.merchant_id!r} differs from the order "
                                     f"record's {order_rec.record.merchant_id!r}")
        funded = o.funded
        tx_with_events = {e.tx_hash for e in o.events}
        for a in actions:
            tx = _hex(a.tx_hash)
            if a.action == "fund" and funded is not None:
                offered = str((a.payload.get("offer") or {}).get("merchant", ""))
                if offered.lower() != str(funded.args["merchant"]).lower():
                    flags.append(Flag(entry=None, subject=subject, reason=(
                        f"the platform's offer names merchant {offered}, but the chain's "
                        f"OrderFunded names {funded.args['merchant']}")))
            if a.status == "confirmed" and a.action not in SILENT_ACTIONS and tx not in tx_with_events:
                flags.append(Flag(entry=None, subject=subject, reason=(
                    f"the store records action {a.action!r} as confirmed in tx {tx}, but the "
                    "escrow emitted no event for this order in it")))
        return flags + uncited_records(self.store, o, actions)

    def _actions(self, order_id: str) -> list[ActionRow]:
        return self.store.actions(order_id=order_id, contract=self.client.address)

    # -- the order report ---------------------------------------------------------------------
    def order_report(self, order_id: str) -> OrderReport:
        """One order's records and escrow events on one timeline, each checked."""
        if not order_id:
            raise AuditError("an order id is needed")
        _logger.info("auditing order %s", order_id)
        anchor = self._anchor()
        actions = self._actions(order_id)
        orders, flags = self._orders({order_id: self.store.records_for_order(order_id)},
                                     {order_id: actions}, anchor, Selection(order_id=order_id))
        o = orders[0]
        if not o.records and not o.events:
            raise AuditError(f"order {order_id!r}: no record in the log and no escrow event on "
                             f"chain {self.chain.chain_id} at {self.client.address}")
        chain, head = self._chain_info(anchor)
        order_rec = o.order_record
        c = o.on_chain()
        timeline = _timeline(orders)
        counts, flags = _checked(timeline, flags, f"order {order_id}")
        report = OrderReport(
            format=FORMAT, generated_at=times.rfc3339(), chain=chain, anchor=head,
            order=OrderBlock(
                order_id=order_id, escrow_order_id=_hex(o.escrow_id) if o.escrow_id else None,
                merchant_id=order_rec.record.merchant_id if order_rec else None,
                state=c.state, merchant=c.merchant, buyer=c.buyer, token=c.token, price=c.price,
                lender=c.lender, payout_claims=payout_claims(self.client, o.escrow_id)),
            timeline=timeline, counts=counts, flags=flags, ok=not flags,
            steps=unsettled_steps(self.store, actions, self.client.chain),
        )  # fmt: skip
        _log_done(f"order {order_id}", orders, report)
        return report

    # -- the merchant report -----------------------------------------------------------------
    def merchant_report(
        self, merchant_id: str, since: str | None = None, until: str | None = None
    ) -> MerchantReport:
        """The figures a lender asks for, over the merchant's orders opened in [since, until)."""
        lo = parse_time_ns(since) if since else None
        hi = parse_time_ns(until) if until else None
        if lo is not None and hi is not None and hi <= lo:
            raise AuditError(f"--until {until} is not after --since {since}")
        _logger.info("auditing merchant %s, orders opened in [%s, %s)", merchant_id,
                     since or "-inf", until or "+inf")
        mine = self.store.records_for_merchant(merchant_id)
        if not mine:
            raise AuditError(f"merchant {merchant_id!r} has no records in the log")
        opened: dict[str, int] = {}  # the merchant's orders (those with an order record): its time
        for r in mine:
            if r.kind == "order" and r.order_id not in opened:
                opened[r.order_id] = times.ts_ns(r.ts)
        # Every record of an order in scope, whatever its merchant_id (a record filed under
        # another merchant is this order's record all the same, and `_cross_check` flags it).
        in_scope = self.store.records_for_orders(
            oid for oid, t in opened.items() if (lo is None or t >= lo) and (hi is None or t < hi))
        actions = {oid: self._actions(oid) for oid in opened}
        anchor = self._anchor()
        orders, flags = self._orders(in_scope, actions, anchor, Selection(audit="merchant"))
        addresses = self._addresses(actions, orders)
        for o in orders:
            if o.funded is None:
                continue
            funded_by = to_checksum_address(o.funded.args["merchant"])
            if funded_by not in addresses:
                flags.append(Flag(entry=None, subject=f"order {o.order_id}", reason=(
                    f"funded on chain for merchant {funded_by}, which is not an address the "
                    "platform's offers for this merchant name")))
        deposits = self.deposit_events(addresses)
        chain, head = self._chain_info(anchor)
        figures = compute_figures(orders, deposits, self.client, addresses, chain.block_number)
        timeline = _timeline(orders, deposits)
        counts, flags = _checked(timeline, flags, f"merchant {merchant_id}")
        report = MerchantReport(
            format=FORMAT, generated_at=times.rfc3339(), chain=chain, anchor=head,
            merchant=MerchantBlock(merchant_id=merchant_id, since=since, until=until,
                                   addresses=addresses),
            figures=figures, orders=[_order_row(o) for o in orders],
            timeline=timeline, counts=counts, flags=flags, ok=not flags,
        )  # fmt: skip
        _log_done(f"merchant {merchant_id}", orders, report)
        return report


# --------------------------------------------------------------------------- assembling


def _offered_addresses(actions: dict[str, list[ActionRow]]) -> list[str]:
    """The merchant's chain addresses: those named by the offers it signed (the fund
    actions' payloads) for any of its orders, in the window or not; in first-seen order."""
    addresses: list[str] = []
    for acts in actions.values():
        for a in acts:
            if a.action == "fund" and isinstance(a.payload.get("offer"), dict):
                addr = str(to_checksum_address(str(a.payload["offer"]["merchant"])))
                if addr not in addresses:
                    addresses.append(addr)
    return addresses


def _order_row(o: Order) -> OrderRow:
    rec = o.order_record
    c = o.on_chain()
    return OrderRow(
        order_id=o.order_id,
        ts=rec.record.ts if rec else None,
        index=rec.record.index if rec else None,
        state=c.state, token=c.token, price=c.price, lender=c.lender,
        records=len(o.records),
        events=len(o.events),
        status=rollup(o.records, o.events),
    )


def _record_entry(n: int, r: Rec) -> RecordEntry:
    rec = r.record
    return RecordEntry(
        n=n, time=r.time_ns / 1e9, ts=rec.ts, kind=rec.kind, order_id=rec.order_id, id=rec.id,
        index=rec.index, leaf=rec.leaf.hex(), summary=record_summary(rec), status=r.status,
        reasons=list(r.reasons),
    )


def _event_entry(n: int, ev: Ev, token: str | None) -> EventEntry:
    """`token` is the order's token on chain (None if the order is not on chain)."""
    cited = None if ev.cited is None else ev.cited.record
    return EventEntry(
        n=n, time=float(ev.time), ts=times.rfc3339(ev.time), kind=ev.name, order_id=ev.order_id,
        tx_hash=ev.tx_hash, block_number=ev.block_number, log_index=ev.log_index,
        args={k: jsonable(v) for k, v in ev.args.items()},
        evidence=None if ev.cited_leaf is None else ev.cited_leaf.hex(),
        evidence_record=None if cited is None else CitedRecord(id=cited.id, index=cited.index),
        summary=event_summary(ev.name, ev.args, token), status=ev.status,
        reasons=list(ev.reasons),
    )


def _timeline(orders: Sequence[Order], extra: Sequence[Ev] = ()) -> list[RecordEntry | EventEntry]:
    """The orders' records and events (and `extra` events) in time order, numbered from 0: a
    record by its ts, an event by its block time; at equal times records first, records in
    leaf order, events in chain order."""
    items: list[tuple[tuple[int, int, int, int], Rec | Ev]] = []
    for o in orders:
        items += [((r.time_ns, 0, r.record.index, 0), r) for r in o.records]
    seen: set[tuple[int, int]] = set()
    for ev in [e for o in orders for e in o.events] + list(extra):
        if ev.key not in seen:
            seen.add(ev.key)
            items.append(((ev.time * 10**9, 1, ev.block_number, ev.log_index), ev))
    items.sort(key=lambda x: x[0])
    tokens = {o.order_id: o.info.token for o in orders if o.info is not None}
    return [_record_entry(n, x) if isinstance(x, Rec)
            else _event_entry(n, x, tokens.get(x.order_id or ""))
            for n, (_, x) in enumerate(items)]


def _checked(
    timeline: Sequence[RecordEntry | EventEntry], flags: list[Flag], subject: str
) -> tuple[Counts, list[Flag]]:
    """The entries per status, and every flag: one per reason of each failed entry, then
    `flags` (the cross-checks), then one if evidence awaits anchoring and none is verified:
    an audit that verified nothing does not pass (docs/audit.md)."""
    entry_flags = []
    for e in timeline:
        if e.status == FAILED:
            what = (f"record {e.id} (leaf {e.index})" if isinstance(e, RecordEntry)
                    else f"event {e.kind} in tx {e.tx_hash} (log {e.log_index})")
            entry_flags += [Flag(entry=e.n, subject=what, reason=r) for r in e.reasons]
    counts = Counts.of(e.status for e in timeline)
    if counts.unanchored and not counts.verified:
        flags = [*flags, Flag(entry=None, subject=subject, reason=(
            f"nothing was verified: the {counts.unanchored} entries that are or cite evidence are "
            "not yet anchored; anchor the log (`ledger anchor`) and audit again"))]
    return counts, entry_flags + flags


def _log_done(subject: str, orders: Sequence[Order], report: OrderReport | MerchantReport) -> None:
    """The end of an audit, in counts: entries quote records, which the log must not."""
    records = sum(1 for e in report.timeline if isinstance(e, RecordEntry))
    _logger.info("audit of %s done: %d order(s), %d record(s), %d event(s), %d flag(s)", subject,
                 len(orders), records, len(report.timeline) - records, len(report.flags))
