"""Audit reports: an order's verified timeline, a merchant's figures for a lender.

An audit reads two sources and checks one against the other:

* the evidence log (the store): an order's records, each verified by exporting the order's
  evidence bundle and verifying it against the chain (``ledger.bundle``): the record hashes
  to its leaf, its inclusion proof holds against a confirmed anchored head, and that head
  is anchored by the EvidenceLog contract;
* the escrow's event logs, read from the chain (never from the store): every event whose
  indexed order id is ``order_key(order_id)``, decoded with the escrow ABI, with its block
  time and transaction. An event citing evidence (``evidence``, ``orderRecord``, ERC-1497
  ``Evidence`` references) checks out only if the cited hash is the leaf of a record of the
  same order and that record verified.

`Auditor.order_report` merges both into one timeline; `Auditor.merchant_report` computes
the figures a lender asks for (sales, refunds, return rate, disputes, deposit coverage,
pledged receivables), each listing the leaves and transactions behind it. Reports are
plain JSON-able dicts (shape in docs/audit.md); `render_text`, `render_json` and
`render_html` present them. The command line is in ``ledger.cli_audit``.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address
from web3.types import FilterParams

from ledger import records
from ledger.bundle import build_bundle, export_bundle, verify_bundle
from ledger.chain import decode_log, event_topic, jsonable
from ledger.errors import BundleError, LedgerError
from ledger.escrow import RULING_SPLIT_BASE, EscrowClient, OrderState, order_key
from ledger.store import AnchorRow, Store, StoredRecord

__all__ = [
    "FORMAT",
    "AuditError",
    "Auditor",
    "parse_time_ns",
    "render_html",
    "render_json",
    "render_text",
    "text_report",
]

FORMAT = "evidence-escrow/audit/v1"

VERIFIED = "verified"
UNANCHORED = "unanchored"
FAILED = "failed"
NOT_APPLICABLE = "n/a"
STATUSES = (VERIFIED, UNANCHORED, FAILED, NOT_APPLICABLE)

ZERO32 = b"\x00" * 32
BPS = 10_000
LOG_BATCH = 200  # order ids per eth_getLogs topic list

#: events that cite an evidence-log leaf, and the argument holding it
EVIDENCE_ARG = {
    "OrderFunded": "orderRecord",
    "OrderShipped": "evidence",
    "OrderDelivered": "evidence",
    "OrderReleased": "evidence",
    "OrderRefunded": "evidence",
    "ReturnRequested": "evidence",
    "ReturnShipped": "evidence",
    "ReturnDelivered": "evidence",
    "ReturnSettled": "evidence",
    "DisputeOpened": "evidence",
}
#: the events that close an order's books (exactly one per settled order)
SETTLEMENT_EVENTS = ("OrderReleased", "OrderRefunded", "ReturnSettled", "DisputeResolved")
DEPOSIT_EVENTS = ("DepositAdded", "DepositWithdrawn", "DepositSlashed")
RESOLUTIONS = ("ruling", "default", "arbitrator timeout")
RECORD_KINDS = ("order", "payment", "shipment", "delivery", "review", "return")

_LEAF_REF = re.compile(r"leaf:([0-9]{1,20}):([0-9a-fA-F]{64})")
_HEX_REF = re.compile(r"0x([0-9a-fA-F]{64})")

class AuditError(LedgerError, ValueError):
    """An audit cannot be made as asked (unknown order or merchant, a bad time bound)."""


# --------------------------------------------------------------------------- helpers


def parse_time_ns(text: str) -> int:
    """An RFC 3339 time as unix nanoseconds (see `ledger.records.parse_time_ns`)."""
    try:
        return records.parse_time_ns(text)
    except ValueError as exc:
        raise AuditError(str(exc)) from None


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def token_label(token: str) -> str:
    """``ETH`` for the zero address, else the token's address."""
    return "ETH" if int(token, 16) == 0 else token


def buyer_bps_of(ruling: int, split_base: int = RULING_SPLIT_BASE) -> int:
    """The buyer's share of the price, in basis points, that an escrow ruling gives:
    0 refused (50/50), 1 refund and 3 fraud (all), 2 release (none), ``split_base + b``: b."""
    if ruling == 0:
        return BPS // 2
    if ruling in (1, 3):
        return BPS
    if ruling == 2:
        return 0
    return ruling - split_base


def _clip(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _record_summary(r: StoredRecord) -> str:
    p = r.public
    k = r.kind
    try:
        if k == "order":
            items = p.get("items", [])
            titles = ", ".join(str(i.get("title") or i.get("sku")) for i in items[:3])
            more = f" +{len(items) - 3}" if len(items) > 3 else ""
            total = f"total {p['total']} {p['currency']}"
            return _clip(f"{len(items)} item(s): {titles}{more}; {total}")
        if k == "payment":
            return _clip(f"{p['amount']} {p['currency']} by {p['method']}, ref {p['payment_ref']}")
        if k == "shipment":
            return _clip(f"{p['carrier']} {p['tracking_number']}")
        if k == "delivery":
            return _clip(f"{p['carrier']} {p['tracking_number']} ({p['method']})")
        if k == "review":
            return _clip(f"rating {p['rating']}" + (f": {p['text']}" if p.get("text") else ""))
        if k == "return":
            detail = f": {p['detail']}" if p.get("detail") else ""
            return _clip(f"{p['type']} ({p['reason']}) {p['amount']} {p['currency']}{detail}")
    except (KeyError, TypeError, AttributeError):
        pass
    return _clip(k)


def _event_summary(name: str, a: dict[str, Any], token: str | None) -> str:
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
        how = RESOLUTIONS[a["how"]] if 0 <= a["how"] < len(RESOLUTIONS) else str(a["how"])
        return (f"ruling {a['ruling']} by {how}: buyer {a['toBuyer']}{tok}, payout {a['payout']} "
                f"to {a['payee']}, compensation {a['compensation']}")
    if name == "OrderPledged":
        return f"payout pledged to {a['lender']}"
    if name in ("OrderShipped", "ReturnShipped"):
        return f"carrier {a['carrier']}, shipped at {records.rfc3339(int(a['shippedAt']))}"
    if name in ("OrderDelivered", "ReturnDelivered"):
        who = a.get("attester") or a.get("carrier")
        return f"attested by {who}, delivered at {records.rfc3339(int(a['deliveredAt']))}"
    if name == "Evidence":
        return _clip(f"evidence {a['evidence']} from {a['party']}")
    if name in DEPOSIT_EVENTS:
        return f"{a['amount']} {token_label(a['token'])} for merchant {a['merchant']}"
    if name == "ReservePaid":
        return f"reserve paid {a['amount']} {token_label(a['token'])} to {a['buyer']}"
    if name == "DisputeAnswered":
        return f"answered by {a['respondent']}"
    return _clip(", ".join(f"{k}={jsonable(v)}" for k, v in a.items()))


@dataclass
class _Ev:
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
    cited: StoredRecord | None = None
    cited_leaf: bytes | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.block_number, self.log_index)


@dataclass
class _Rec:
    """One record of the log with its verification outcome."""

    record: StoredRecord
    time_ns: int
    status: str = VERIFIED
    reasons: list[str] = field(default_factory=list)


@dataclass
class _Order:
    """Everything about one order: its records, its events, what the chain says now."""

    order_id: str
    records: list[_Rec]
    events: list[_Ev]
    funded: _Ev | None = None
    state: str = "NONE"
    token: str | None = None
    price: int | None = None
    lender: str | None = None
    merchant_address: str | None = None
    buyer: str | None = None

    def first(self, name: str) -> _Ev | None:
        return next((e for e in self.events if e.name == name), None)

    def all(self, *names: str) -> list[_Ev]:
        return [e for e in self.events if e.name in names]

    @property
    def order_record(self) -> _Rec | None:
        return next((r for r in self.records if r.record.kind == "order"), None)


def _worst(statuses: Iterable[str]) -> str:
    s = set(statuses)
    if FAILED in s:
        return FAILED
    if UNANCHORED in s:
        return UNANCHORED
    return VERIFIED if s else NOT_APPLICABLE


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
        return self._block_times[number]

    def _logs(self, topics: list[Any]) -> list[Any]:
        query: FilterParams = {"address": cast(ChecksumAddress, self.client.address),
                               "fromBlock": self.from_block, "toBlock": "latest", "topics": topics}
        try:
            return list(self.w3.eth.get_logs(query))
        except Exception as exc:  # noqa: BLE001 - the node's own error, reported
            raise AuditError(f"cannot read the escrow's event logs from the chain: {exc}") from None

    def _decode(self, log: Any, order_id: str | None) -> _Ev | None:
        decoded = decode_log(self.client.escrow, log)
        if decoded is None:
            return None
        name, args = decoded
        block = int(log["blockNumber"])
        return _Ev(name=name, args=args, order_id=order_id,
                   tx_hash=_hex(bytes(log["transactionHash"])), block_number=block,
                   log_index=int(log["logIndex"]), time=self._block_time(block))

    def order_events(self, order_ids: Sequence[str]) -> dict[str, list[_Ev]]:
        """Every escrow event of these orders, from the chain, in chain order.

        The order id is an indexed topic: first for the lifecycle events, second for
        ``Evidence`` and ``ReservePaid``, third for ``DepositSlashed``.
        """
        keys = {_hex(order_key(o)): o for o in order_ids}
        out: dict[str, dict[tuple[int, int], _Ev]] = {o: {} for o in order_ids}
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

    def deposit_events(self, merchants: Sequence[str]) -> list[_Ev]:
        """DepositAdded / DepositWithdrawn / DepositSlashed of these merchant addresses."""
        if not merchants:
            return []
        topics = [[self._topic0[n] for n in DEPOSIT_EVENTS],
                  ["0x" + "00" * 12 + to_checksum_address(m)[2:].lower() for m in merchants]]
        evs = [self._decode(log, None) for log in self._logs(topics)]
        return sorted((e for e in evs if e is not None), key=lambda e: e.key)

    def _split_base(self) -> int:
        """The deployed escrow's first split ruling (its public constant; the client's
        mirror if the contract does not expose it)."""
        try:
            return int(self.client.escrow.functions.RULING_SPLIT_BASE().call())
        except Exception:  # noqa: BLE001 - an older build without the getter
            return RULING_SPLIT_BASE

    def _anchor(self) -> AnchorRow | None:
        if self.log_address is None:
            return None
        return self.store.latest_confirmed(self.chain.chain_id, self.log_address)

    def _chain_info(self, anchor: AnchorRow | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        block = self.w3.eth.get_block("latest")
        chain = {
            "chain_id": self.chain.chain_id,
            "escrow": self.client.address,
            "evidence_log": self.log_address,
            "block_number": int(block["number"]),
            "block_time": records.rfc3339(int(block["timestamp"])),
        }
        head = None if anchor is None else {
            "tree_size": anchor.size, "root": anchor.root.hex(), "tx_hash": _hex(anchor.tx_hash),
            "block_number": anchor.block_number,
            "block_time": (None if anchor.block_timestamp is None
                           else records.rfc3339(anchor.block_timestamp)),
        }  # fmt: skip
        return chain, head

    # -- verification --------------------------------------------------------------------
    def _verify(self, recs: Sequence[_Rec], anchor: AnchorRow | None, order_id: str | None) -> None:
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
        assert anchor is not None and self.log_address is not None
        try:
            if order_id is not None:
                bundle, _ = export_bundle(self.store, self.chain.chain_id, self.log_address,
                                          order_id=order_id)
            else:
                bundle = build_bundle(self.store, [r.record for r in covered], anchor,
                                      selection={"audit": "merchant"})
        except BundleError as exc:
            for r in covered:
                r.status, r.reasons = FAILED, [f"cannot export the bundle: {exc}"]
            return
        verdict = verify_bundle(bundle, self.w3)
        by_index = {v.index: v for v in verdict.records}
        for r in covered:
            v = by_index.get(r.record.index)
            reasons = list(verdict.head_failures)
            reasons += v.failures if v is not None else ["missing from the exported bundle"]
            r.status = FAILED if reasons else VERIFIED
            r.reasons = reasons

    def _check_event(self, ev: _Ev, by_leaf: dict[bytes, _Rec]) -> None:
        """Does the evidence the event cites check out? Sets ev.status and ev.reasons."""
        leaf: bytes | None
        stated_index = None
        if ev.name == "Evidence":
            ref = str(ev.args.get("evidence", ""))
            m = _LEAF_REF.fullmatch(ref)
            h = _HEX_REF.fullmatch(ref)
            if m:
                stated_index, leaf = int(m.group(1)), bytes.fromhex(m.group(2))
            elif h:
                leaf = bytes.fromhex(h.group(1))
            else:
                ev.status = FAILED
                ev.reasons = [f"evidence reference {_clip(ref, 80)!r} names no log leaf "
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
        ev.cited = rec.record
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
    def _orders(self, order_ids: Sequence[str], anchor: AnchorRow | None,
                *, single: bool) -> tuple[list[_Order], list[dict[str, Any]]]:
        """Read, verify and cross-check these orders; returns them and the general flags."""
        events = self.order_events(order_ids)
        orders: list[_Order] = []
        all_recs: list[_Rec] = []
        flags: list[dict[str, Any]] = []
        for oid in order_ids:
            recs = [_Rec(r, parse_time_ns(r.ts)) for r in self.store.records_for_order(oid)]
            o = _Order(oid, recs, events[oid])
            orders.append(o)
            all_recs += recs
        if single:
            self._verify(all_recs, anchor, order_ids[0])
        else:
            self._verify(all_recs, anchor, None)
        for o in orders:
            flags += self._cross_check(o)
            by_leaf = {r.record.leaf: r for r in o.records}
            for ev in o.events:
                self._check_event(ev, by_leaf)
            info = self.client.order(order_key(o.order_id))
            o.state = info.state.name
            if info.state is not OrderState.NONE:
                o.token, o.price = info.token, info.price
                o.merchant_address, o.buyer = info.merchant, info.buyer
                o.lender = info.lender if info.pledged else None
            o.funded = o.first("OrderFunded")
        return orders, flags

    def _cross_check(self, o: _Order) -> list[dict[str, Any]]:
        """The store against itself and the chain: merchant ids, fund offers, actions."""
        flags: list[dict[str, Any]] = []
        order_rec = o.order_record
        if o.records and order_rec is None:
            flags.append({"subject": f"order {o.order_id}", "reason": "the log has records of this "
                          "order but no order record"})
        if order_rec is not None:
            for r in o.records:
                if r.record.merchant_id != order_rec.record.merchant_id:
                    r.status = FAILED
                    r.reasons.append(f"merchant_id {r.record.merchant_id!r} differs from the order "
                                     f"record's {order_rec.record.merchant_id!r}")
        funded = o.first("OrderFunded")
        tx_with_events = {e.tx_hash for e in o.events}
        for a in self.store.actions(order_id=o.order_id, contract=self.client.address):
            tx = _hex(a.tx_hash)
            if a.action == "fund" and funded is not None:
                offered = str((a.payload.get("offer") or {}).get("merchant", ""))
                if offered.lower() != str(funded.args["merchant"]).lower():
                    flags.append({"subject": f"order {o.order_id}", "reason": (
                        f"the platform's offer names merchant {offered}, but the chain's "
                        f"OrderFunded names {funded.args['merchant']}")})
            if a.status == "confirmed" and a.action != "vote" and tx not in tx_with_events:
                flags.append({"subject": f"order {o.order_id}", "reason": (
                    f"the store records action {a.action!r} as confirmed in tx {tx}, but the "
                    "escrow emitted no event for this order in it")})
        return flags

    # -- entries -------------------------------------------------------------------------------
    @staticmethod
    def _timeline(orders: Sequence[_Order], extra: Sequence[_Ev] = ()) -> list[dict[str, Any]]:
        items: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        tokens = {o.order_id: o.token for o in orders}
        for o in orders:
            for r in o.records:
                rec = r.record
                items.append(((r.time_ns, 0, rec.index, 0), {
                    "type": "record", "time": r.time_ns / 1e9, "ts": rec.ts, "kind": rec.kind,
                    "order_id": rec.order_id, "id": rec.id, "index": rec.index,
                    "leaf": rec.leaf.hex(), "summary": _record_summary(rec),
                    "status": r.status, "reasons": list(r.reasons),
                }))  # fmt: skip
        seen: set[tuple[int, int]] = set()
        for ev in [e for o in orders for e in o.events] + list(extra):
            if ev.key in seen:
                continue
            seen.add(ev.key)
            items.append(((ev.time * 10**9, 1, ev.block_number, ev.log_index), {
                "type": "event", "time": float(ev.time), "ts": records.rfc3339(ev.time), "kind": ev.name,
                "order_id": ev.order_id, "tx_hash": ev.tx_hash, "block_number": ev.block_number,
                "log_index": ev.log_index,
                "args": {k: jsonable(v) for k, v in ev.args.items()},
                "evidence": None if ev.cited_leaf is None else ev.cited_leaf.hex(),
                "evidence_record": None if ev.cited is None else {
                    "id": ev.cited.id, "index": ev.cited.index},
                "summary": _event_summary(ev.name, ev.args, tokens.get(ev.order_id or "")),
                "status": ev.status, "reasons": list(ev.reasons),
            }))  # fmt: skip
        items.sort(key=lambda x: x[0])
        out = []
        for n, (_, entry) in enumerate(items):
            entry["n"] = n
            out.append(entry)
        return out

    @staticmethod
    def _finish(report: dict[str, Any], flags: list[dict[str, Any]]) -> dict[str, Any]:
        timeline = report["timeline"]
        counts = {s: 0 for s in STATUSES}
        entry_flags = []
        for e in timeline:
            counts[e["status"]] += 1
            if e["status"] == FAILED:
                subject = (f"record {e['id']} (leaf {e['index']})" if e["type"] == "record"
                           else f"event {e['kind']} in tx {e['tx_hash']} (log {e['log_index']})")
                entry_flags += [{"entry": e["n"], "subject": subject, "reason": r}
                                for r in e["reasons"]]
        report["counts"] = counts
        report["flags"] = entry_flags + [{"entry": None, **f} for f in flags]
        report["ok"] = not report["flags"]
        return report

    # -- the order report ---------------------------------------------------------------------
    def order_report(self, order_id: str) -> dict[str, Any]:
        """One order's records and escrow events on one timeline, each checked."""
        if not order_id:
            raise AuditError("an order id is needed")
        anchor = self._anchor()
        orders, flags = self._orders([order_id], anchor, single=True)
        o = orders[0]
        if not o.records and not o.events:
            raise AuditError(f"order {order_id!r}: no record in the log and no escrow event on "
                             f"chain {self.chain.chain_id} at {self.client.address}")
        chain, head = self._chain_info(anchor)
        order_rec = o.order_record
        report: dict[str, Any] = {
            "format": FORMAT,
            "report": "order",
            "generated_at": records.rfc3339(),
            "chain": chain,
            "anchor": head,
            "order": {
                "order_id": order_id, "escrow_order_id": _hex(order_key(order_id)),
                "merchant_id": order_rec.record.merchant_id if order_rec else None,
                "state": o.state, "merchant": o.merchant_address, "buyer": o.buyer,
                "token": o.token, "price": o.price, "lender": o.lender,
            },
            "timeline": self._timeline(orders),
        }  # fmt: skip
        return self._finish(report, flags)

    # -- the merchant report -----------------------------------------------------------------
    def merchant_report(
        self, merchant_id: str, since: str | None = None, until: str | None = None
    ) -> dict[str, Any]:
        """The figures a lender asks for, over the merchant's orders opened in [since, until)."""
        lo = parse_time_ns(since) if since else None
        hi = parse_time_ns(until) if until else None
        if lo is not None and hi is not None and hi <= lo:
            raise AuditError(f"--until {until} is not after --since {since}")
        order_ids: list[str] = []
        every_order: dict[str, None] = {}  # insertion-ordered set
        for r in self.store.records_for_merchant(merchant_id):
            if r.kind != "order" or r.order_id in every_order:
                continue
            every_order[r.order_id] = None
            t = parse_time_ns(r.ts)
            if (lo is None or t >= lo) and (hi is None or t < hi):
                order_ids.append(r.order_id)
        if not every_order and not self.store.records_for_merchant(merchant_id):
            raise AuditError(f"merchant {merchant_id!r} has no records in the log")
        anchor = self._anchor()
        orders, flags = self._orders(order_ids, anchor, single=False) if order_ids else ([], [])

        # The merchant's chain addresses: those named by the offers it signed (the fund
        # actions' payloads) for any of its orders, in the window or not.
        addresses: list[str] = []
        for oid in every_order:
            for a in self.store.actions(order_id=oid, contract=self.client.address):
                if a.action == "fund" and isinstance(a.payload.get("offer"), dict):
                    addr = str(to_checksum_address(str(a.payload["offer"]["merchant"])))
                    if addr not in addresses:
                        addresses.append(addr)
        for o in orders:
            if o.funded is None:
                continue
            funded_by = to_checksum_address(o.funded.args["merchant"])
            if funded_by not in addresses:
                flags.append({"subject": f"order {o.order_id}", "reason": (
                    f"funded on chain for merchant {funded_by}, which is not an address the "
                    "platform's offers for this merchant name")})
        deposits = self.deposit_events(addresses)
        chain, head = self._chain_info(anchor)
        figures = _Figures(orders, deposits, self.client, addresses, chain["block_number"],
                           self._split_base()).compute()
        report: dict[str, Any] = {
            "format": FORMAT,
            "report": "merchant",
            "generated_at": records.rfc3339(),
            "chain": chain,
            "anchor": head,
            "merchant": {"merchant_id": merchant_id, "since": since, "until": until,
                         "addresses": addresses},
            "figures": figures,
            "orders": [_order_row(o) for o in orders],
            "timeline": self._timeline(orders, deposits),
        }
        return self._finish(report, flags)


def _order_row(o: _Order) -> dict[str, Any]:
    rec = o.order_record
    statuses = [r.status for r in o.records]
    statuses += [e.status for e in o.events if e.status != NOT_APPLICABLE]
    return {
        "order_id": o.order_id,
        "ts": rec.record.ts if rec else None,
        "index": rec.record.index if rec else None,
        "state": o.state,
        "token": o.token,
        "price": o.price,
        "lender": o.lender,
        "records": len(o.records),
        "events": len(o.events),
        "status": _worst(statuses),
    }


# --------------------------------------------------------------------------- figures


class _Sources:
    """The records and events a figure was computed from (deduplicated, in log/chain order)."""

    def __init__(self) -> None:
        self.records: dict[int, _Rec] = {}
        self.events: dict[tuple[int, int], _Ev] = {}

    def rec(self, r: _Rec | None) -> None:
        if r is not None:
            self.records[r.record.index] = r

    def ev(self, e: _Ev | None, order: _Order | None = None) -> None:
        if e is None:
            return
        self.events[e.key] = e
        if e.cited is not None and order is not None:
            self.rec(next((r for r in order.records if r.record.index == e.cited.index), None))

    def to_json(self) -> dict[str, Any]:
        recs = [self.records[i] for i in sorted(self.records)]
        evs = [self.events[k] for k in sorted(self.events)]
        statuses = [r.status for r in recs] + [e.status for e in evs if e.status != NOT_APPLICABLE]
        reasons = [f"record {r.record.id} (leaf {r.record.index}): {why}" for r in recs
                   if r.status != VERIFIED for why in r.reasons]
        reasons += [f"{e.name} in tx {e.tx_hash}: {why}" for e in evs
                    if e.status in (FAILED, UNANCHORED) for why in e.reasons]
        return {
            "records": [{"id": r.record.id, "index": r.record.index, "order_id": r.record.order_id,
                         "status": r.status} for r in recs],
            "events": [{"event": e.name, "order_id": e.order_id, "tx_hash": e.tx_hash,
                        "block_number": e.block_number, "log_index": e.log_index,
                        "status": e.status} for e in evs],
            "status": _worst(statuses),
            "reasons": reasons,
        }


class _Figures:
    def __init__(self, orders: Sequence[_Order], deposits: Sequence[_Ev], client: EscrowClient,
                 addresses: Sequence[str], block_number: int, split_base: int) -> None:
        self.split_base = split_base
        self.orders = orders
        self.deposits = deposits
        self.client = client
        self.addresses = addresses
        self.block_number = block_number

    def compute(self) -> dict[str, Any]:
        return {
            "orders": self.order_count(),
            "settled_sales": self.settled_sales(),
            "refunds": self.refunds(),
            "return_rate": self.return_rate(),
            "disputes": self.disputes(),
            "deposit_coverage": self.deposit_coverage(),
            "pledged_receivables": self.pledged(),
        }

    def order_count(self) -> dict[str, Any]:
        src = _Sources()
        escrowed = 0
        for o in self.orders:
            src.rec(o.order_record)
            if o.funded is not None:
                escrowed += 1
                src.ev(o.funded, o)
        return {"count": sum(1 for o in self.orders if o.order_record is not None),
                "escrowed": escrowed, "sources": src.to_json()}

    @staticmethod
    def _settlement(o: _Order) -> _Ev | None:
        return next((e for e in o.events if e.name in SETTLEMENT_EVENTS), None)

    @staticmethod
    def _to_buyer(ev: _Ev) -> int:
        arg = {"OrderRefunded": "amount", "ReturnSettled": "refund", "DisputeResolved": "toBuyer"}
        return int(ev.args[arg[ev.name]]) if ev.name in arg else 0

    def settled_sales(self) -> dict[str, Any]:
        src = _Sources()
        by_token: dict[str, dict[str, int]] = {}
        for o in self.orders:
            ev = self._settlement(o)
            if ev is None or ev.name == "OrderRefunded" or o.token is None:
                continue
            payout, fee, reserve = (int(ev.args[k]) for k in ("payout", "fee", "reserve"))
            gross = payout + fee + reserve
            if gross == 0:
                continue
            t = by_token.setdefault(
                o.token, {"orders": 0, "gross": 0, "fee": 0, "reserve": 0, "payout": 0})
            t["orders"] += 1
            t["gross"] += gross
            t["fee"] += fee
            t["reserve"] += reserve
            t["payout"] += payout
            src.rec(o.order_record)
            src.ev(ev, o)
        return {"by_token": by_token, "sources": src.to_json()}

    def refunds(self) -> dict[str, Any]:
        src = _Sources()
        counts = {"full": 0, "partial": 0}
        amounts: dict[str, dict[str, int]] = {"full": defaultdict(int), "partial": defaultdict(int)}
        total: dict[str, int] = defaultdict(int)
        compensation: dict[str, int] = defaultdict(int)
        for o in self.orders:
            ev = self._settlement(o)
            if ev is None or o.token is None or o.price is None:
                continue
            amount = self._to_buyer(ev)
            if amount <= 0:
                continue
            bucket = "full" if amount >= o.price else "partial"
            counts[bucket] += 1
            amounts[bucket][o.token] += amount
            total[o.token] += amount
            if ev.name == "DisputeResolved" and int(ev.args["compensation"]):
                compensation[o.token] += int(ev.args["compensation"])
            src.rec(o.order_record)
            src.ev(ev, o)
            for r in o.records:
                if r.record.kind == "return":
                    src.rec(r)
        return {
            "count": counts["full"] + counts["partial"],
            "by_token": dict(total),
            "full": {"count": counts["full"], "by_token": dict(amounts["full"])},
            "partial": {"count": counts["partial"], "by_token": dict(amounts["partial"])},
            "compensation_by_token": dict(compensation),
            "sources": src.to_json(),
        }

    def return_rate(self) -> dict[str, Any]:
        src = _Sources()
        returns = delivered = 0
        for o in self.orders:
            dlv = o.first("OrderDelivered")
            if dlv is not None:
                delivered += 1
                src.ev(dlv, o)
            req = o.first("ReturnRequested")
            if req is not None:
                returns += 1
                src.ev(req, o)
        return {"returns": returns, "delivered": delivered,
                "rate": (returns / delivered) if delivered else None, "sources": src.to_json()}

    def disputes(self) -> dict[str, Any]:
        src = _Sources()
        items = []
        counts = {"opened": 0, "resolved": 0, "lost": 0, "won": 0, "even": 0, "open": 0}
        for o in self.orders:
            opened = o.first("DisputeOpened")
            if opened is None:
                continue
            counts["opened"] += 1
            src.ev(opened, o)
            opener = ("buyer" if o.buyer and str(opened.args["opener"]).lower() == o.buyer.lower()
                      else "merchant")
            item: dict[str, Any] = {"order_id": o.order_id, "opened_tx": opened.tx_hash,
                                    "opener": opener, "ruling": None, "how": None,
                                    "buyer_bps": None, "outcome": "open", "resolved_tx": None}
            resolved = o.first("DisputeResolved")
            if resolved is None:
                counts["open"] += 1
            else:
                counts["resolved"] += 1
                src.ev(resolved, o)
                ruling = int(resolved.args["ruling"])
                bps = buyer_bps_of(ruling, self.split_base)
                outcome = "lost" if bps > BPS // 2 else "won" if bps < BPS // 2 else "even"
                counts[outcome] += 1
                how = int(resolved.args["how"])
                item.update(ruling=ruling, buyer_bps=bps, outcome=outcome,
                            resolved_tx=resolved.tx_hash,
                            how=RESOLUTIONS[how] if 0 <= how < len(RESOLUTIONS) else str(how))
            src.rec(o.order_record)
            items.append(item)
        return {**counts, "items": items, "sources": src.to_json()}

    def deposit_coverage(self) -> dict[str, Any]:
        src = _Sources()
        items = []
        for addr in self.addresses:
            tokens: list[str] = []
            for o in self.orders:
                mine_order = (o.merchant_address or "").lower() == addr.lower()
                if o.token is not None and mine_order and o.token not in tokens:
                    tokens.append(o.token)
            mine = [e for e in self.deposits if str(e.args["merchant"]).lower() == addr.lower()]
            for e in mine:
                tok = str(to_checksum_address(e.args["token"]))
                if tok not in tokens:
                    tokens.append(tok)
            for tok in tokens:
                deposit, exposure, required = self.client.deposit_of(tok, addr)
                evs = [e for e in mine if to_checksum_address(e.args["token"]) == tok]
                for e in evs:
                    src.ev(e)
                items.append({
                    "merchant": addr, "token": tok, "deposit": deposit, "exposure": exposure,
                    "required": required, "coverage": (deposit / required) if required else None,
                    "covered": deposit >= required,
                    "events": [{"event": e.name, "tx_hash": e.tx_hash,
                                "amount": int(e.args["amount"])} for e in evs],
                })  # fmt: skip
        return {"block_number": self.block_number, "items": items, "sources": src.to_json()}

    def pledged(self) -> dict[str, Any]:
        src = _Sources()
        items = []
        by_token: dict[str, dict[str, int]] = {}
        for o in self.orders:
            pledge = o.first("OrderPledged")
            if pledge is None or o.token is None or o.price is None:
                continue
            lender = str(pledge.args["lender"])
            settlement = self._settlement(o)
            terminal = settlement is not None
            paid = 0
            if settlement is not None and "payee" in settlement.args:
                if str(settlement.args["payee"]).lower() == lender.lower():
                    paid = int(settlement.args["payout"])
            outstanding = 0 if terminal else o.price
            t = by_token.setdefault(o.token, {"pledged": 0, "outstanding": 0, "paid_to_lenders": 0})
            t["pledged"] += o.price
            t["outstanding"] += outstanding
            t["paid_to_lenders"] += paid
            src.rec(o.order_record)
            src.ev(pledge, o)
            src.ev(settlement, o)
            items.append({
                "order_id": o.order_id, "lender": lender, "lender_on_chain": o.lender,
                "state": o.state, "token": o.token, "price": o.price, "outstanding": outstanding,
                "paid_to_lender": paid, "pledge_tx": pledge.tx_hash,
                "settlement_tx": settlement.tx_hash if settlement else None,
            })  # fmt: skip
        return {"count": len(items), "by_token": by_token, "items": items, "sources": src.to_json()}


# --------------------------------------------------------------------------- rendering: JSON


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- rendering: text

_STATUS_STYLE = {VERIFIED: "green", UNANCHORED: "yellow", FAILED: "bold red", NOT_APPLICABLE: "dim"}
_FIGURE_TITLES = {
    "orders": "orders",
    "settled_sales": "settled sales (payout)",
    "refunds": "refunds",
    "return_rate": "return rate",
    "disputes": "disputes",
    "deposit_coverage": "deposit coverage",
    "pledged_receivables": "pledged receivables",
}


def _short(h: str | None, n: int = 10) -> str:
    if not h:
        return "-"
    return h if len(h) <= 2 * n + 1 else f"{h[:n]}…{h[-4:]}"


def _money(by_token: dict[str, int]) -> str:
    if not by_token:
        return "0"
    return "; ".join(f"{v:,} {token_label(t)}" for t, v in by_token.items())


def _coverage(item: dict[str, Any]) -> str:
    return f"{item['coverage']:.2f}×" if item["coverage"] is not None else "no requirement"


def _figure_values(f: dict[str, Any]) -> dict[str, str]:
    """One line per figure, for the summary tables."""
    rate, d, r = f["return_rate"], f["disputes"], f["refunds"]
    pledged = f["pledged_receivables"]
    return {
        "orders": f"{f['orders']['count']} ({f['orders']['escrowed']} escrowed)",
        "settled_sales": _money({tok: v["payout"]
                                 for tok, v in f["settled_sales"]["by_token"].items()}),
        "refunds": (f"{r['count']} ({r['full']['count']} full, {r['partial']['count']} partial): "
                    f"{_money(r['by_token'])}"),
        "return_rate": ((f"{rate['rate']:.2%}" if rate["rate"] is not None else "n/a")
                        + f" ({rate['returns']} returns / {rate['delivered']} delivered)"),
        "disputes": (f"{d['opened']} opened, {d['lost']} lost, {d['won']} won, {d['even']} even, "
                     f"{d['open']} open"),
        "deposit_coverage": "; ".join(
            f"{token_label(i['token'])}: {_coverage(i)}" for i in f["deposit_coverage"]["items"]
        ) or "-",
        "pledged_receivables": f"{pledged['count']} order(s)" + "".join(
            f"; {v['outstanding']:,} outstanding, {v['paid_to_lenders']:,} paid to lenders "
            f"({token_label(t)})" for t, v in pledged["by_token"].items()),
    }


def _header_lines(report: dict[str, Any]) -> tuple[str, list[str]]:
    c, a = report["chain"], report["anchor"]
    if report["report"] == "order":
        o = report["order"]
        title = f"Audit of order {o['order_id']}"
        token = token_label(o["token"]) if o["token"] else "-"
        lines = [f"state {o['state']}; merchant {o['merchant_id']} ({o['merchant']}); "
                 f"buyer {o['buyer']}",
                 f"price {o['price']} {token}; pledged to {o['lender'] or 'nobody'}"]
    else:
        m = report["merchant"]
        title = f"Audit of merchant {m['merchant_id']}"
        lines = [f"orders opened in [{m['since'] or '-∞'}, {m['until'] or '+∞'})",
                 f"chain addresses: {', '.join(m['addresses']) or 'none (no escrowed orders)'}"]
    lines.append(f"chain {c['chain_id']} at block {c['block_number']} ({c['block_time']}); "
                 f"escrow {c['escrow']}; evidence log {c['evidence_log']}")
    lines.append(f"anchored head size {a['tree_size']}, root {a['root']}, tx {a['tx_hash']} "
                 f"(block {a['block_number']})" if a else "nothing anchored on this log")
    return title, lines


def _verdict(report: dict[str, Any]) -> str:
    head = ("all checks passed" if report["ok"]
            else f"{len(report['flags'])} problem(s) flagged")
    counts = ", ".join(f"{n} {s}" for s, n in report["counts"].items())
    return f"{head}: {len(report['timeline'])} entries ({counts})"


def _entry_refs(e: dict[str, Any], short: bool) -> tuple[str, str]:
    """(record id or transaction, leaf) columns of a timeline entry."""
    if e["type"] == "record":
        return e["id"], f"{e['index']} {e['leaf'][:12] + '…' if short else e['leaf']}"
    tx = _short(e["tx_hash"]) if short else e["tx_hash"]
    ref = f"{e['order_id'] or ''} {tx} log {e['log_index']}".strip()
    er = e["evidence_record"]
    if er:
        return ref, f"cites {er['index']} {er['id']}"
    return ref, ("cites " + (e["evidence"][:12] + "…" if short else e["evidence"])
                 if e["evidence"] else "-")


def render_text(report: dict[str, Any]) -> Any:
    """The report as rich renderables (tables); report values are never parsed as markup."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def t(value: Any, style: str | None = None) -> Text:
        return Text("-" if value is None else str(value), style=style or "")

    def status(s: str) -> Text:
        return Text(s, style=_STATUS_STYLE.get(s, ""))

    def table(title: str, cols: Sequence[str]) -> Table:
        tab = Table(title=title, title_justify="left", title_style="bold")
        for col in cols:
            tab.add_column(col, overflow="fold")
        return tab

    title, lines = _header_lines(report)
    parts: list[Any] = [t(title, "bold"), *(t(x, "dim") for x in lines)]
    if report["report"] == "merchant":
        f = report["figures"]
        ft = table("Figures", ("figure", "value", "leaves", "transactions", "status"))
        for key, value in _figure_values(f).items():
            s = f[key]["sources"]
            ft.add_row(t(_FIGURE_TITLES[key]), t(value),
                       t(", ".join(str(r["index"]) for r in s["records"]) or "-"),
                       t("\n".join(e["tx_hash"] for e in s["events"]) or "-"), status(s["status"]))
        parts.append(ft)
        st = table("Settled sales by token",
                   ("token", "orders", "gross", "fee", "reserve", "payout"))
        for tok, v in f["settled_sales"]["by_token"].items():
            st.add_row(t(token_label(tok)),
                       *(t(f"{v[k]:,}") for k in ("orders", "gross", "fee", "reserve", "payout")))
        parts.append(st)
        dt = table("Disputes", ("order", "opener", "ruling", "how", "buyer share", "outcome"))
        for i in f["disputes"]["items"]:
            share = "-" if i["buyer_bps"] is None else f"{i['buyer_bps'] / 100:.2f}%"
            dt.add_row(t(i["order_id"]), t(i["opener"]), t(i["ruling"]), t(i["how"]), t(share),
                       t(i["outcome"], "red" if i["outcome"] == "lost" else None))
        parts.append(dt)
        ct = table("Deposit coverage (now, from the chain)",
                   ("merchant address", "token", "deposit", "open exposure", "required",
                    "coverage"))
        for i in f["deposit_coverage"]["items"]:
            ct.add_row(t(i["merchant"]), t(token_label(i["token"])), t(f"{i['deposit']:,}"),
                       t(f"{i['exposure']:,}"), t(f"{i['required']:,}"),
                       t(_coverage(i), None if i["covered"] else "red"))
        parts.append(ct)
        pt = table("Pledged receivables", ("order", "lender", "state", "token", "price",
                                           "outstanding", "paid to lender"))
        for i in f["pledged_receivables"]["items"]:
            pt.add_row(t(i["order_id"]), t(i["lender"]), t(i["state"]), t(token_label(i["token"])),
                       t(f"{i['price']:,}"), t(f"{i['outstanding']:,}"),
                       t(f"{i['paid_to_lender']:,}"))
        parts.append(pt)
        ot = table("Orders", ("order", "opened", "order leaf", "state", "token", "price", "checks"))
        for o in report["orders"]:
            ot.add_row(t(o["order_id"]), t(o["ts"]), t(o["index"]), t(o["state"]),
                       t(token_label(o["token"]) if o["token"] else None),
                       t(None if o["price"] is None else f"{o['price']:,}"), status(o["status"]))
        parts.append(ot)

    tl = table("Timeline", ("#", "time (UTC)", "entry", "kind", "record / tx", "leaf", "status",
                            "detail"))
    for e in report["timeline"]:
        ref, leaf = _entry_refs(e, short=True)
        detail = e["summary"] + "".join(f"\n! {r}" for r in e["reasons"])
        tl.add_row(t(e["n"]), t(e["ts"]), t(e["type"]), t(e["kind"]), t(ref), t(leaf),
                   status(e["status"]), t(detail, "red" if e["status"] == FAILED else None))
    parts.append(tl)
    parts.append(t(_verdict(report), "bold green" if report["ok"] else "bold red"))
    for flag in report["flags"]:
        parts.append(Text.assemble(("FLAG ", "bold red"), f"{flag['subject']}: {flag['reason']}"))
    return Group(*parts)


def text_report(report: dict[str, Any], width: int = 160) -> str:
    """The text rendering as a plain string (no colour)."""
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, highlight=False)
    console.print(render_text(report))
    return buf.getvalue()


# --------------------------------------------------------------------------- rendering: HTML

_CSS = """
:root { --fg: #1d2330; --muted: #667085; --line: #e4e7ec; --ok: #067647; --warn: #b54708;
        --bad: #d40000; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: #fff; margin: 0; padding: 16px 24px 48px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.meta { color: var(--muted); margin: 2px 0; word-break: break-all; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 10px; font-weight: 600;
           margin: 8px 0; }
.verdict.ok { background: #ecfdf3; color: var(--ok); }
.verdict.bad { background: #fef3f2; color: var(--bad); }
#timeline-chart { border: 1px solid var(--line); border-radius: 6px; padding: 8px;
                  min-height: 120px; }
#timeline-chart svg { display: block; }
#legend { margin: 6px 0 0; padding: 0; list-style: none; display: flex; flex-wrap: wrap;
          gap: 4px 14px; color: var(--muted); font-size: 12px; }
#legend .sw { display: inline-block; width: 10px; height: 10px; margin-right: 4px;
              border-radius: 2px; vertical-align: -1px; border: 1px solid #667085; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
         vertical-align: top; }
th { background: #f9fafb; font-weight: 600; }
td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px;
          word-break: break-all; }
.st-verified { color: var(--ok); }
.st-unanchored { color: var(--warn); }
.st-failed { color: var(--bad); font-weight: 600; }
.st-na { color: var(--muted); }
.reason { color: var(--bad); }
ul.flags li { color: var(--bad); }
"""

# Builds the timeline chart from the report embedded as JSON. Report text reaches the DOM
# only through textContent and setAttribute, never as markup.
_JS = r"""
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("audit-data").textContent);
  var entries = data.timeline || [];
  var host = document.getElementById("timeline-chart");
  var PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#bcbd22", "#ff7f0e",
                 "#8c564b", "#7f7f7f", "#3366cc", "#0b8043", "#6a3d9a", "#00838f",
                 "#b8860b", "#5d4037", "#1565c0", "#558b2f", "#4527a0", "#00695c"];
  var FAIL = "#d40000";
  var RECORD_KINDS = ["order", "payment", "shipment", "delivery", "review", "return"];
  function el(name, attrs) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    return node;
  }
  var lanes = [], laneOf = {};
  function addLane(type, kind) {
    var key = type + ":" + kind;
    if (!(key in laneOf)) { laneOf[key] = lanes.length; lanes.push({type: type, kind: kind}); }
  }
  RECORD_KINDS.forEach(function (k) {
    var used = entries.some(function (e) { return e.type === "record" && e.kind === k; });
    if (used) addLane("record", k);
  });
  entries.forEach(function (e) { addLane(e.type, e.kind); });
  var colour = {};
  lanes.forEach(function (l, i) { colour[l.type + ":" + l.kind] = PALETTE[i % PALETTE.length]; });

  var W = Math.max(640, Math.floor(host.clientWidth - 18) || 1100);
  var left = 170, right = 24, top = 16, laneH = 26, axisH = 40;
  var H = top + Math.max(lanes.length, 1) * laneH + axisH;
  var times = entries.map(function (e) { return e.time; });
  var t0 = times.length ? Math.min.apply(null, times) : 0;
  var t1 = times.length ? Math.max.apply(null, times) : 1;
  if (t1 - t0 < 60) { t0 -= 30; t1 += 30; }
  var pad = (t1 - t0) * 0.03;
  t0 -= pad; t1 += pad;
  function x(t) { return left + (t - t0) / (t1 - t0) * (W - left - right); }

  var svg = el("svg", {width: W, height: H, viewBox: "0 0 " + W + " " + H, id: "timeline-svg",
                       role: "img", "aria-label": "timeline of records and escrow events"});
  svg.appendChild(el("rect", {x: 0, y: 0, width: W, height: H, fill: "#ffffff"}));
  lanes.forEach(function (l, i) {
    var y = top + i * laneH;
    if (i % 2 === 0) {
      svg.appendChild(el("rect", {x: left, y: y, width: W - left - right, height: laneH,
                                  fill: "#f6f7f9"}));
    }
    var label = el("text", {x: left - 8, y: y + laneH / 2 + 4, "text-anchor": "end",
                            "font-size": 11, fill: "#475467", "font-family": "sans-serif"});
    label.textContent = (l.type === "record" ? "record: " : "") + l.kind;
    svg.appendChild(label);
  });
  var axisY = top + Math.max(lanes.length, 1) * laneH + 4;
  svg.appendChild(el("line", {x1: left, x2: W - right, y1: axisY, y2: axisY, stroke: "#98a2b3"}));
  for (var k = 0; k <= 5; k++) {
    var tt = t0 + (t1 - t0) * k / 5, xx = x(tt);
    svg.appendChild(el("line", {x1: xx, x2: xx, y1: axisY, y2: axisY + 5, stroke: "#98a2b3"}));
    var iso = new Date(tt * 1000).toISOString();
    var anchor = k === 0 ? "start" : (k === 5 ? "end" : "middle");
    var lab = el("text", {x: xx, y: axisY + 18, "text-anchor": anchor, "font-size": 10,
                          fill: "#475467", "font-family": "sans-serif"});
    lab.textContent = iso.slice(0, 10) + " " + iso.slice(11, 19);
    svg.appendChild(lab);
  }
  var stack = {}, count = 0;
  entries.forEach(function (e) {
    var key = e.type + ":" + e.kind, lane = laneOf[key], cx = x(e.time);
    var slot = lane + ":" + Math.round(cx / 6);
    var n = stack[slot] = (stack[slot] || 0) + 1;
    var dy = n === 1 ? 0 : (n % 2 === 0 ? -1 : 1) * Math.min(9, 3 * Math.floor(n / 2));
    var cy = top + lane * laneH + laneH / 2 + dy;
    var failed = e.status === "failed", unanchored = e.status === "unanchored";
    var m = e.type === "record"
      ? el("circle", {cx: cx.toFixed(1), cy: cy.toFixed(1), r: failed ? 7 : 6})
      : el("rect", {x: (cx - 6).toFixed(1), y: (cy - 6).toFixed(1), width: 12, height: 12, rx: 2});
    m.setAttribute("fill", failed ? FAIL : (unanchored ? "#ffffff" : colour[key]));
    m.setAttribute("stroke", failed ? "#7a0000" : colour[key]);
    m.setAttribute("stroke-width", unanchored ? 2 : 1);
    if (unanchored) m.setAttribute("stroke-dasharray", "3 2");
    m.setAttribute("class", "marker marker-" + e.type + " status-" + e.status.replace("/", ""));
    m.setAttribute("data-n", String(e.n));
    m.setAttribute("data-kind", e.kind);
    var lines = [e.ts + "  " + e.type + " " + e.kind + "  [" + e.status + "]"];
    if (e.type === "record") {
      lines.push(e.id + " (leaf " + e.index + ")");
    } else {
      lines.push("tx " + e.tx_hash + " log " + e.log_index +
                 (e.order_id ? ", order " + e.order_id : ""));
    }
    if (e.evidence_record) {
      lines.push("cites " + e.evidence_record.id + " (leaf " + e.evidence_record.index + ")");
    }
    if (e.summary) lines.push(e.summary);
    (e.reasons || []).forEach(function (r) { lines.push("! " + r); });
    var title = el("title", {});
    title.textContent = lines.join("\n");
    m.appendChild(title);
    svg.appendChild(m);
    count++;
  });
  host.textContent = "";
  host.appendChild(svg);
  svg.setAttribute("data-markers", String(count));
  var legend = document.getElementById("legend");
  function legendItem(text, fill) {
    var li = document.createElement("li"), sw = document.createElement("span");
    sw.className = "sw";
    sw.style.background = fill;
    li.appendChild(sw);
    li.appendChild(document.createTextNode(text));
    legend.appendChild(li);
  }
  lanes.forEach(function (l) {
    var name = (l.type === "record" ? "record " : "event ") + l.kind;
    legendItem(name, colour[l.type + ":" + l.kind]);
  });
  legendItem("failed check", FAIL);
  legendItem("not yet anchored (outline)", "#ffffff");
  var r = svg.getBoundingClientRect();
  svg.setAttribute("data-bbox", [Math.round(r.left + window.scrollX),
                                 Math.round(r.top + window.scrollY),
                                 Math.round(r.width), Math.round(r.height)].join(","));
})();
"""

_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "img-src data:; base-uri 'none'; form-action 'none'")


def _e(v: Any) -> str:
    return html.escape("-" if v is None else str(v), quote=True)


def _script_json(report: dict[str, Any]) -> str:
    """JSON that can neither end its <script> element nor open a comment inside it."""
    text = json.dumps(report, ensure_ascii=False, sort_keys=True)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _td(v: Any, cls: str = "") -> str:
    return f'<td class="{cls}">{_e(v)}</td>' if cls else f"<td>{_e(v)}</td>"


def _st(s: str) -> str:
    return _td(s, "st-na" if s == NOT_APPLICABLE else f"st-{s}")


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """`rows` hold cells already rendered (and escaped) by `_td` / `_st`."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _html_figures(report: dict[str, Any]) -> str:
    f = report["figures"]
    rows = []
    for key, value in _figure_values(f).items():
        s = f[key]["sources"]
        recs = ", ".join(f"{r['index']} {r['id']}" for r in s["records"]) or "-"
        txs = " ".join(e["tx_hash"] for e in s["events"]) or "-"
        rows.append([_td(_FIGURE_TITLES[key]), _td(value), _td(recs, "mono"), _td(txs, "mono"),
                     _st(s["status"]), _td("; ".join(s["reasons"]), "reason")])
    out = ["<h2>Figures</h2>", _table(["figure", "value", "leaves (index, record id)",
                                        "transactions", "status", "problems"], rows)]
    money = ("orders", "gross", "fee", "reserve", "payout")
    out += ["<h2>Settled sales by token</h2>", _table(
        ["token", *money],
        [[_td(token_label(tok), "mono"), *(_td(f"{v[k]:,}") for k in money)]
         for tok, v in f["settled_sales"]["by_token"].items()])]
    r = f["refunds"]
    out += ["<h2>Refunds</h2>", _table(["", "count", "amount"], [
        [_td("full"), _td(r["full"]["count"]), _td(_money(r["full"]["by_token"]))],
        [_td("partial"), _td(r["partial"]["count"]), _td(_money(r["partial"]["by_token"]))],
        [_td("fraud compensation"), _td(""), _td(_money(r["compensation_by_token"]))],
    ])]
    out += ["<h2>Disputes</h2>", _table(
        ["order", "opener", "ruling", "how", "buyer share", "outcome", "opened in", "resolved in"],
        [[_td(i["order_id"]), _td(i["opener"]), _td(i["ruling"]), _td(i["how"]),
          _td("-" if i["buyer_bps"] is None else f"{i['buyer_bps'] / 100:.2f}%"),
          _td(i["outcome"], "st-failed" if i["outcome"] == "lost" else ""),
          _td(i["opened_tx"], "mono"), _td(i["resolved_tx"], "mono")]
         for i in f["disputes"]["items"]])]
    out += ["<h2>Deposit coverage (now, from the chain)</h2>", _table(
        ["merchant address", "token", "deposit", "open exposure", "required", "coverage"],
        [[_td(i["merchant"], "mono"), _td(token_label(i["token"]), "mono"),
          _td(f"{i['deposit']:,}"), _td(f"{i['exposure']:,}"), _td(f"{i['required']:,}"),
          _td(_coverage(i), "" if i["covered"] else "st-failed")]
         for i in f["deposit_coverage"]["items"]])]
    out += ["<h2>Pledged receivables</h2>", _table(
        ["order", "lender", "state", "token", "price", "outstanding", "paid to lender",
         "pledge tx"],
        [[_td(i["order_id"]), _td(i["lender"], "mono"), _td(i["state"]),
          _td(token_label(i["token"]), "mono"), _td(f"{i['price']:,}"),
          _td(f"{i['outstanding']:,}"), _td(f"{i['paid_to_lender']:,}"),
          _td(i["pledge_tx"], "mono")] for i in f["pledged_receivables"]["items"]])]
    out += ["<h2>Orders</h2>", _table(
        ["order", "opened", "order leaf", "state", "token", "price", "checks"],
        [[_td(o["order_id"]), _td(o["ts"]), _td(o["index"]), _td(o["state"]),
          _td(token_label(o["token"]) if o["token"] else None, "mono"),
          _td(None if o["price"] is None else f"{o['price']:,}"), _st(o["status"])]
         for o in report["orders"]])]
    return "\n".join(out)


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page: inline CSS and JS, the report embedded as JSON, no
    external resources (its Content-Security-Policy forbids any). Every value is escaped."""
    title, lines = _header_lines(report)
    lines.append(f"generated {report['generated_at']}")
    rows = []
    for e in report["timeline"]:
        ref, leaf = _entry_refs(e, short=False)
        reasons = "".join(f'<div class="reason">{_e(r)}</div>' for r in e["reasons"])
        rows.append([_td(e["n"]), _td(e["ts"]), _td(e["type"]), _td(e["kind"]), _td(ref, "mono"),
                     _td(leaf, "mono"), _st(e["status"]), f"<td>{_e(e['summary'])}{reasons}</td>"])
    flags = "".join(f"<li><b>{_e(f['subject'])}</b>: {_e(f['reason'])}</li>"
                    for f in report["flags"])
    body = [
        f"<h1>{_e(title)}</h1>",
        *(f'<p class="meta">{_e(x)}</p>' for x in lines),
        f'<div class="verdict {"ok" if report["ok"] else "bad"}">{_e(_verdict(report))}</div>',
        "<h2>Timeline</h2>",
        '<div id="timeline-chart"><noscript>The chart needs JavaScript; the table of entries '
        "below lists every one.</noscript></div>",
        '<ul id="legend"></ul>',
        _html_figures(report) if report["report"] == "merchant" else "",
        "<h2>Problems</h2>" + (f'<ul class="flags">{flags}</ul>' if flags else "<p>none</p>"),
        "<h2>Entries</h2>",
        _table(["#", "time (UTC)", "entry", "kind", "record / transaction", "leaf", "status",
                "detail"], rows),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + f'\n<script type="application/json" id="audit-data">{_script_json(report)}</script>'
        + f"\n<script>{_JS}</script>\n</body></html>\n"
    )
