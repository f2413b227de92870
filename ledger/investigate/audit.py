"""Audit reports: an order's verified timeline, a merchant's figures for a lender.

An audit reads two sources and checks one against the other:

* the evidence log (the store): an order's records, each verified by building the order's
  evidence bundle and verifying it against the chain (``ledger.evidence.bundle``): the record hashes
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
`render_html` present them. The command line is in ``ledger.cli.audit``.
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

from ledger._internal import rfc3339 as times
from ledger.chain.abi import decode_log, event_topic, jsonable
from ledger.errors import AuditError, BundleError
from ledger.escrow.client import EscrowClient
from ledger.escrow.eip712 import order_key
from ledger.escrow.platform import NON_ESCROW_ACTIONS
from ledger.escrow.types import BPS, ZERO32, OrderInfo, OrderState, Resolution, buyer_bps_of
from ledger.evidence.bundle import build_bundle, verify_bundle
from ledger.evidence.store import ActionRow, AnchorRow, Store, StoredRecord

__all__ = [
    "FORMAT",

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

#: platform actions after which the escrow emits nothing for the order: a panel vote that is
#: not the deciding one, a buyer's ERC-20 approval
_SILENT_ACTIONS = frozenset({"vote", *NON_ESCROW_ACTIONS})

_LEAF_REF = re.compile(r"leaf:([0-9]{1,20}):([0-9a-fA-F]{64})")
_HEX_REF = re.compile(r"0x([0-9a-fA-F]{64})")



# --------------------------------------------------------------------------- helpers


def parse_time_ns(text: str) -> int:
    """An RFC 3339 time as unix nanoseconds (see `ledger._internal.rfc3339.parse_time_ns`)."""
    try:
        return times.parse_time_ns(text)
    except ValueError as exc:
        raise AuditError(str(exc)) from None


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def token_label(token: str) -> str:
    """``ETH`` for the zero address, else the token's address."""
    return "ETH" if int(token, 16) == 0 else token


def _how(n: int) -> str:
    """How a dispute was resolved (`ledger.escrow.Resolution`): ``ruling``, ``default``,
    ``arbitrator timeout``; an unknown value as its number."""
    try:
        return Resolution(n).name.lower().replace("_", " ")
    except ValueError:
        return str(n)


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
        return (f"ruling {a['ruling']} by {_how(a['how'])}: buyer {a['toBuyer']}{tok}, payout "
                f"{a['payout']} to {a['payee']}, compensation {a['compensation']}")
    if name == "OrderPledged":
        return f"payout pledged to {a['lender']}"
    if name in ("OrderShipped", "ReturnShipped"):
        return f"carrier {a['carrier']}, shipped at {times.rfc3339(int(a['shippedAt']))}"
    if name in ("OrderDelivered", "ReturnDelivered"):
        who = a.get("attester") or a.get("carrier")
        return f"attested by {who}, delivered at {times.rfc3339(int(a['deliveredAt']))}"
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
class _Rec:
    """One record of the log with its verification outcome."""

    record: StoredRecord
    time_ns: int
    status: str = VERIFIED
    reasons: list[str] = field(default_factory=list)


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
    cited: _Rec | None = None  # the record of the same order whose leaf it cites
    cited_leaf: bytes | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.block_number, self.log_index)


@dataclass
class _Order:
    """Everything about one order: its records, its events, what the chain says now."""

    order_id: str
    records: list[_Rec]
    events: list[_Ev]
    info: OrderInfo | None = None  # `getOrder` now; None while the escrow has no such order

    def first(self, name: str) -> _Ev | None:
        return next((e for e in self.events if e.name == name), None)

    @property
    def funded(self) -> _Ev | None:
        return self.first("OrderFunded")

    @property
    def order_record(self) -> _Rec | None:
        return next((r for r in self.records if r.record.kind == "order"), None)

    def on_chain(self) -> dict[str, Any]:
        """The order's state and terms on chain now (chain fields None if never funded)."""
        i = self.info
        if i is None:
            return {"state": OrderState.NONE.name, "merchant": None, "buyer": None,
                    "token": None, "price": None, "lender": None}
        return {"state": i.state.name, "merchant": i.merchant, "buyer": i.buyer,
                "token": i.token, "price": i.price, "lender": i.lender if i.pledged else None}


def _rollup(recs: Iterable[_Rec], evs: Iterable[_Ev]) -> str:
    """The worst status of these records and of those of these events that cite evidence:
    failed, else unanchored, else verified; n/a when there is nothing to check."""
    s = {r.status for r in recs} | {e.status for e in evs if e.status != NOT_APPLICABLE}
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
            "block_time": times.rfc3339(int(block["timestamp"])),
        }
        head = None if anchor is None else {
            "tree_size": anchor.size, "root": anchor.root.hex(), "tx_hash": _hex(anchor.tx_hash),
            "block_number": anchor.block_number,
            "block_time": (None if anchor.block_timestamp is None
                           else times.rfc3339(anchor.block_timestamp)),
        }  # fmt: skip
        return chain, head

    # -- verification --------------------------------------------------------------------
    def _verify(self, recs: Sequence[_Rec], anchor: AnchorRow | None,
                selection: dict[str, Any]) -> None:
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
        selection: dict[str, Any],
    ) -> tuple[list[_Order], list[dict[str, Any]]]:
        """Verify and cross-check these orders (their stored records and the platform's
        actions on them, by order id); returns them and the general flags."""
        events = self.order_events(list(stored))
        orders = [_Order(oid, [_Rec(r, times.ts_ns(r.ts)) for r in recs], events[oid])
                  for oid, recs in stored.items()]
        self._verify([r for o in orders for r in o.records], anchor, selection)
        flags: list[dict[str, Any]] = []
        for o in orders:
            flags += self._cross_check(o, actions.get(o.order_id, []))
            by_leaf = {r.record.leaf: r for r in o.records}
            for ev in o.events:
                self._check_event(ev, by_leaf)
            info = self.client.order(order_key(o.order_id))
            o.info = None if info.state is OrderState.NONE else info
        return orders, flags

    def _cross_check(self, o: _Order, actions: Sequence[ActionRow]) -> list[dict[str, Any]]:
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
        funded = o.funded
        tx_with_events = {e.tx_hash for e in o.events}
        for a in actions:
            tx = _hex(a.tx_hash)
            if a.action == "fund" and funded is not None:
                offered = str((a.payload.get("offer") or {}).get("merchant", ""))
                if offered.lower() != str(funded.args["merchant"]).lower():
                    flags.append({"subject": f"order {o.order_id}", "reason": (
                        f"the platform's offer names merchant {offered}, but the chain's "
                        f"OrderFunded names {funded.args['merchant']}")})
            if a.status == "confirmed" and a.action not in _SILENT_ACTIONS and tx not in tx_with_events:
                flags.append({"subject": f"order {o.order_id}", "reason": (
                    f"the store records action {a.action!r} as confirmed in tx {tx}, but the "
                    "escrow emitted no event for this order in it")})
        return flags

    def _actions(self, order_id: str) -> list[ActionRow]:
        return self.store.actions(order_id=order_id, contract=self.client.address)

    # -- entries -------------------------------------------------------------------------------
    @staticmethod
    def _timeline(orders: Sequence[_Order], extra: Sequence[_Ev] = ()) -> list[dict[str, Any]]:
        items: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        tokens = {o.order_id: o.info.token for o in orders if o.info is not None}
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
            cited = None if ev.cited is None else ev.cited.record
            items.append(((ev.time * 10**9, 1, ev.block_number, ev.log_index), {
                "type": "event", "time": float(ev.time), "ts": times.rfc3339(ev.time), "kind": ev.name,
                "order_id": ev.order_id, "tx_hash": ev.tx_hash, "block_number": ev.block_number,
                "log_index": ev.log_index,
                "args": {k: jsonable(v) for k, v in ev.args.items()},
                "evidence": None if ev.cited_leaf is None else ev.cited_leaf.hex(),
                "evidence_record": None if cited is None else {"id": cited.id, "index": cited.index},
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
        orders, flags = self._orders({order_id: self.store.records_for_order(order_id)},
                                     {order_id: self._actions(order_id)}, anchor,
                                     {"order_id": order_id})
        o = orders[0]
        if not o.records and not o.events:
            raise AuditError(f"order {order_id!r}: no record in the log and no escrow event on "
                             f"chain {self.chain.chain_id} at {self.client.address}")
        chain, head = self._chain_info(anchor)
        order_rec = o.order_record
        report: dict[str, Any] = {
            "format": FORMAT,
            "report": "order",
            "generated_at": times.rfc3339(),
            "chain": chain,
            "anchor": head,
            "order": {
                "order_id": order_id, "escrow_order_id": _hex(order_key(order_id)),
                "merchant_id": order_rec.record.merchant_id if order_rec else None,
                **o.on_chain(),
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
        orders, flags = self._orders(in_scope, actions, anchor, {"audit": "merchant"})

        # The merchant's chain addresses: those named by the offers it signed (the fund
        # actions' payloads) for any of its orders, in the window or not.
        addresses: list[str] = []
        for acts in actions.values():
            for a in acts:
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
        figures = _Figures(orders, deposits, self.client, addresses, chain["block_number"]).compute()
        report: dict[str, Any] = {
            "format": FORMAT,
            "report": "merchant",
            "generated_at": times.rfc3339(),
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
    chain = o.on_chain()
    return {
        "order_id": o.order_id,
        "ts": rec.record.ts if rec else None,
        "index": rec.record.index if rec else None,
        **{k: chain[k] for k in ("state", "token", "price", "lender")},
        "records": len(o.records),
        "events": len(o.events),
        "status": _rollup(o.records, o.events),
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

    def ev(self, e: _Ev | None) -> None:
        """An event, and the record it cites."""
        if e is not None:
            self.events[e.key] = e
            self.rec(e.cited)

    def to_json(self) -> dict[str, Any]:
        recs = [self.records[i] for i in sorted(self.records)]
        evs = [self.events[k] for k in sorted(self.events)]
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
            "status": _rollup(recs, evs),
            "reasons": reasons,
        }


class _Figures:
    def __init__(self, orders: Sequence[_Order], deposits: Sequence[_Ev], client: EscrowClient,
                 addresses: Sequence[str], block_number: int) -> None:
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
                src.ev(o.funded)
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
            if ev is None or ev.name == "OrderRefunded" or o.info is None:
                continue
            payout, fee, reserve = (int(ev.args[k]) for k in ("payout", "fee", "reserve"))
            gross = payout + fee + reserve
            if gross == 0:
                continue
            t = by_token.setdefault(
                o.info.token, {"orders": 0, "gross": 0, "fee": 0, "reserve": 0, "payout": 0})
            t["orders"] += 1
            t["gross"] += gross
            t["fee"] += fee
            t["reserve"] += reserve
            t["payout"] += payout
            src.rec(o.order_record)
            src.ev(ev)
        return {"by_token": by_token, "sources": src.to_json()}

    def refunds(self) -> dict[str, Any]:
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
                src.ev(dlv)
            req = o.first("ReturnRequested")
            if req is not None:
                returns += 1
                src.ev(req)
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
            src.ev(opened)
            buyer = o.info.buyer if o.info is not None else None
            opener = ("buyer" if buyer and str(opened.args["opener"]).lower() == buyer.lower()
                      else "merchant")
            item: dict[str, Any] = {"order_id": o.order_id, "opened_tx": opened.tx_hash,
                                    "opener": opener, "ruling": None, "how": None,
                                    "buyer_bps": None, "outcome": "open", "resolved_tx": None}
            resolved = o.first("DisputeResolved")
            if resolved is None:
                counts["open"] += 1
            else:
                counts["resolved"] += 1
                src.ev(resolved)
                ruling = int(resolved.args["ruling"])
                try:
                    bps = buyer_bps_of(ruling)
                except ValueError as exc:  # the deployed escrow cannot emit it (same build)
                    raise AuditError(f"order {o.order_id}: DisputeResolved in tx "
                                     f"{resolved.tx_hash}: {exc}") from None
                outcome = "lost" if bps > BPS // 2 else "won" if bps < BPS // 2 else "even"
                counts[outcome] += 1
                item.update(ruling=ruling, buyer_bps=bps, outcome=outcome,
                            resolved_tx=resolved.tx_hash, how=_how(int(resolved.args["how"])))
            src.rec(o.order_record)
            items.append(item)
        return {**counts, "items": items, "sources": src.to_json()}

    def deposit_coverage(self) -> dict[str, Any]:
        src = _Sources()
        items = []
        # (merchant, token) -> its deposit events, in chain order; both checksummed
        deposits: dict[tuple[str, str], list[_Ev]] = defaultdict(list)
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
                deposit, exposure, required = self.client.deposit_of(tok, addr)
                evs = deposits.get((addr, tok), [])
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
            t = by_token.setdefault(info.token, {"pledged": 0, "outstanding": 0, "paid_to_lenders": 0})
            t["pledged"] += info.price
            t["outstanding"] += outstanding
            t["paid_to_lenders"] += paid
            src.rec(o.order_record)
            src.ev(pledge)
            src.ev(settlement)
            items.append({
                "order_id": o.order_id, "lender": lender,
                "lender_on_chain": info.lender if info.pledged else None,
                "state": info.state.name, "token": info.token, "price": info.price,
                "outstanding": outstanding, "paid_to_lender": paid, "pledge_tx": pledge.tx_hash,
                "settlement_tx": settlement.tx_hash if settlement else None,
            })  # fmt: skip
        return {"count": len(items), "by_token": by_token, "items": items, "sources": src.to_json()}


# --------------------------------------------------------------------------- rendering: JSON


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- rendering: tables

_FIGURE_TITLES = {
    "orders": "orders",
    "settled_sales": "settled sales (payout)",
    "refunds": "refunds",
    "return_rate": "return rate",
    "disputes": "disputes",
    "deposit_coverage": "deposit coverage",
    "pledged_receivables": "pledged receivables",
}


@dataclass(frozen=True)
class _Cell:
    """One table cell, for both back ends: its text, how it is shown, reasons under it."""

    text: str
    style: str = ""  # "mono" (a hash or address), "status", "bad" (a failure), "reason"
    notes: tuple[str, ...] = ()


def _c(value: Any, style: str = "", notes: Iterable[str] = ()) -> _Cell:
    return _Cell("-" if value is None else str(value), style, tuple(notes))


#: (title, column headers, rows)
_Table = tuple[str, Sequence[str], list[list[_Cell]]]


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


def _figure_tables(report: dict[str, Any]) -> list[_Table]:
    """A merchant report's tables: figures with their sources, then the details."""
    f = report["figures"]
    figures = []
    for key, value in _figure_values(f).items():
        s = f[key]["sources"]
        figures.append([
            _c(_FIGURE_TITLES[key]), _c(value),
            _c(", ".join(f"{r['index']} {r['id']}" for r in s["records"]) or "-", "mono"),
            _c("\n".join(e["tx_hash"] for e in s["events"]) or "-", "mono"),
            _c(s["status"], "status"), _c("; ".join(s["reasons"]), "reason"),
        ])  # fmt: skip
    money = ("orders", "gross", "fee", "reserve", "payout")
    r = f["refunds"]
    return [
        ("Figures", ("figure", "value", "leaves (index, record id)", "transactions", "status",
                     "problems"), figures),
        ("Settled sales by token", ("token", *money),
         [[_c(token_label(tok), "mono"), *(_c(f"{v[k]:,}") for k in money)]
          for tok, v in f["settled_sales"]["by_token"].items()]),
        ("Refunds", ("", "count", "amount"), [
            [_c("full"), _c(r["full"]["count"]), _c(_money(r["full"]["by_token"]))],
            [_c("partial"), _c(r["partial"]["count"]), _c(_money(r["partial"]["by_token"]))],
            [_c("fraud compensation"), _c(""), _c(_money(r["compensation_by_token"]))],
        ]),
        ("Disputes", ("order", "opener", "ruling", "how", "buyer share", "outcome", "opened in",
                      "resolved in"),
         [[_c(i["order_id"]), _c(i["opener"]), _c(i["ruling"]), _c(i["how"]),
           _c("-" if i["buyer_bps"] is None else f"{i['buyer_bps'] / 100:.2f}%"),
           _c(i["outcome"], "bad" if i["outcome"] == "lost" else ""),
           _c(i["opened_tx"], "mono"), _c(i["resolved_tx"], "mono")]
          for i in f["disputes"]["items"]]),
        ("Deposit coverage (now, from the chain)",
         ("merchant address", "token", "deposit", "open exposure", "required", "coverage"),
         [[_c(i["merchant"], "mono"), _c(token_label(i["token"]), "mono"),
           _c(f"{i['deposit']:,}"), _c(f"{i['exposure']:,}"), _c(f"{i['required']:,}"),
           _c(_coverage(i), "" if i["covered"] else "bad")]
          for i in f["deposit_coverage"]["items"]]),
        ("Pledged receivables", ("order", "lender", "state", "token", "price", "outstanding",
                                 "paid to lender", "pledge tx"),
         [[_c(i["order_id"]), _c(i["lender"], "mono"), _c(i["state"]),
           _c(token_label(i["token"]), "mono"), _c(f"{i['price']:,}"),
           _c(f"{i['outstanding']:,}"), _c(f"{i['paid_to_lender']:,}"), _c(i["pledge_tx"], "mono")]
          for i in f["pledged_receivables"]["items"]]),
        ("Orders", ("order", "opened", "order leaf", "state", "token", "price", "checks"),
         [[_c(o["order_id"]), _c(o["ts"]), _c(o["index"]), _c(o["state"]),
           _c(token_label(o["token"]) if o["token"] else None, "mono"),
           _c(None if o["price"] is None else f"{o['price']:,}"), _c(o["status"], "status")]
          for o in report["orders"]]),
    ]


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


def _entries_table(report: dict[str, Any], title: str, short: bool) -> _Table:
    """Every timeline entry (hashes shortened if `short`), its reasons under its summary."""
    rows = []
    for e in report["timeline"]:
        ref, leaf = _entry_refs(e, short)
        rows.append([_c(e["n"]), _c(e["ts"]), _c(e["type"]), _c(e["kind"]), _c(ref, "mono"),
                     _c(leaf, "mono"), _c(e["status"], "status"),
                     _c(e["summary"], notes=e["reasons"])])
    return (title, ("#", "time (UTC)", "entry", "kind", "record / transaction", "leaf", "status",
                    "detail"), rows)


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


# --------------------------------------------------------------------------- rendering: text

_STATUS_STYLE = {VERIFIED: "green", UNANCHORED: "yellow", FAILED: "bold red", NOT_APPLICABLE: "dim"}


def render_text(report: dict[str, Any]) -> Any:
    """The report as rich renderables (tables); report values are never parsed as markup."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def text(cell: _Cell) -> Text:
        style = (_STATUS_STYLE.get(cell.text, "") if cell.style == "status"
                 else "red" if cell.style in ("bad", "reason") else "")
        out = Text(cell.text, style=style)
        for note in cell.notes:
            out.append(f"\n! {note}", style="red")
        return out

    def table(title: str, headers: Sequence[str], rows: list[list[_Cell]]) -> Table:
        tab = Table(title=title, title_justify="left", title_style="bold")
        for h in headers:
            tab.add_column(h, overflow="fold")
        for row in rows:
            tab.add_row(*(text(c) for c in row))
        return tab

    title, lines = _header_lines(report)
    parts: list[Any] = [Text(title, style="bold"), *(Text(x, style="dim") for x in lines)]
    if report["report"] == "merchant":
        parts += [table(*t) for t in _figure_tables(report)]
    parts.append(table(*_entries_table(report, "Timeline", short=True)))
    parts.append(Text(_verdict(report), style="bold green" if report["ok"] else "bold red"))
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


def _html_cell(c: _Cell) -> str:
    if c.style == "status":
        cls = "st-na" if c.text == NOT_APPLICABLE else f"st-{c.text}"
    else:
        cls = {"mono": "mono", "bad": "st-failed", "reason": "reason"}.get(c.style, "")
    attr = f' class="{cls}"' if cls else ""
    notes = "".join(f'<div class="reason">{_e(n)}</div>' for n in c.notes)
    return f"<td{attr}>{_e(c.text)}{notes}</td>"


def _html_table(title: str, headers: Sequence[str], rows: list[list[_Cell]]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(f"<tr>{''.join(_html_cell(c) for c in r)}</tr>" for r in rows)
    return (f"<h2>{_e(title)}</h2>\n"
            f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>")


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page: inline CSS and JS, the report embedded as JSON, no
    external resources (its Content-Security-Policy forbids any). Every value is escaped."""
    title, lines = _header_lines(report)
    lines.append(f"generated {report['generated_at']}")
    flags = "".join(f"<li><b>{_e(f['subject'])}</b>: {_e(f['reason'])}</li>"
                    for f in report["flags"])
    tables = _figure_tables(report) if report["report"] == "merchant" else []
    body = [
        f"<h1>{_e(title)}</h1>",
        *(f'<p class="meta">{_e(x)}</p>' for x in lines),
        f'<div class="verdict {"ok" if report["ok"] else "bad"}">{_e(_verdict(report))}</div>',
        "<h2>Timeline</h2>",
        '<div id="timeline-chart"><noscript>The chart needs JavaScript; the table of entries '
        "below lists every one.</noscript></div>",
        '<ul id="legend"></ul>',
        *(_html_table(*t) for t in tables),
        "<h2>Problems</h2>" + (f'<ul class="flags">{flags}</ul>' if flags else "<p>none</p>"),
        _html_table(*_entries_table(report, "Entries", short=False)),
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
