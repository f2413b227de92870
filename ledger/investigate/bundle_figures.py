"""A lender's figures from a complete merchant bundle and the chain alone.

`ledger audit --merchant` computes the figures a lender asks for from the platform's store
(docs/audit.md). A lender does not have the store: it has a v2 merchant bundle, proven
complete against the anchored index, and a node. `bundle_figures` runs the same computation
(`ledger.investigate.audit_figures`, through the same `Auditor`) over the bundle's records
instead of the store's, and finds on the chain what the audit takes from the platform's
journal: each order's escrow id and the merchant's addresses, from the ``OrderFunded`` events
that commit to the order record's leaf. So the figures equal the audit's to the unit, and each
one lists the leaves and transactions behind it.

Scope, as in the audit: the orders whose order record is in [since, until), with *all* their
records. The bundle must therefore run to its head (no `until`): a later record of an order
opened in the window (its delivery, its return) is in the bundle only then. A record of such
an order whose ``ts`` is before the bundle's ``since`` is outside the bundle: the lender starts
the bundle early enough (the exporter's ``since``); docs/audit.md says so. An erased record
(``ledger erase``) has no content in a bundle, so the figures leave it out; the audit, which
still knows its kind, may count it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from eth_utils import keccak, to_checksum_address

from ledger._internal import rfc3339 as times
from ledger.errors import AuditError
from ledger.escrow.client import EscrowClient
from ledger.evidence.bundle import Verdict
from ledger.evidence.bundle_format import Bundle, Selection, hex_bytes
from ledger.evidence.journal import ActionRow
from ledger.evidence.store import StoredRecord
from ledger.investigate.audit import Auditor
from ledger.investigate.audit_model import FAILED, VERIFIED, MerchantReport, Order, Rec

__all__ = ["bundle_figures"]

_logger = logging.getLogger(__name__)


class _BundleRecords:
    """The part of a store the auditor reads, over a bundle's disclosed records."""

    def __init__(self, bundle: Bundle) -> None:
        self.records = [
            StoredRecord(r.index, str(r.record["id"]), str(r.record["kind"]), str(r.record["order_id"]),
                         str(r.record["merchant_id"]), str(r.record["ts"]), r.record,
                         None if r.personal_commitment is None else hex_bytes(r.personal_commitment),
                         hex_bytes(r.leaf_hash), None)
            for r in bundle.records if r.record is not None]  # an erased entry has no content to count
        self.by_order: dict[str, list[StoredRecord]] = {}
        self.by_leaf: dict[bytes, StoredRecord] = {}
        for r in self.records:
            self.by_order.setdefault(r.order_id, []).append(r)
            self.by_leaf.setdefault(r.leaf, r)

    def records_for_merchant(self, merchant_id: str) -> list[StoredRecord]:
        return [r for r in self.records if r.merchant_id == merchant_id]

    def records_for_orders(self, order_ids: Any) -> dict[str, list[StoredRecord]]:
        return {oid: self.by_order.get(oid, []) for oid in dict.fromkeys(order_ids)}

    def record_by_leaf(self, leaf: bytes) -> StoredRecord | None:
        return self.by_leaf.get(leaf)

    def actions(self, **_: Any) -> list[ActionRow]:
        return []  # a lender has no platform journal: the chain answers instead

    def held_ids(self, action_id: int) -> list[str]:  # pragma: no cover - needs actions
        return []


class _BundleAuditor(Auditor):
    """The auditor over a verified bundle: its records' statuses are the bundle's verdict, its
    head is the bundle's, and escrow ids and addresses come from ``OrderFunded`` events."""

    def __init__(self, bundle: Bundle, verdict: Verdict, client: EscrowClient, from_block: int) -> None:
        super().__init__(_BundleRecords(bundle), client,  # type: ignore[arg-type]
                         log_address=bundle.anchor.contract, from_block=from_block)
        self.bundle = bundle
        self.failures = {r.index: r.failures for r in verdict.records}
        self.head_failures = verdict.head_failures
        self._funded: dict[str, Any] = {}

    def _anchor(self) -> Any:
        a = self.bundle.anchor
        return SimpleNamespace(size=a.tree_size, root=hex_bytes(a.root), tx_hash=hex_bytes(a.tx_hash),
                               block_number=a.block_number, block_timestamp=a.block_timestamp)

    def _verify(self, recs: Sequence[Rec], anchor: Any, selection: Selection) -> None:
        for r in recs:
            reasons = list(self.head_failures) + self.failures.get(r.record.index, [])
            r.status, r.reasons = (FAILED if reasons else VERIFIED), reasons

    def _funded_events(self) -> list[Any]:
        t = self._topic0["OrderFunded"]
        evs = [self._decode(log, None) for log in self._logs([t])]
        return [e for e in evs if e is not None]

    def _escrow_ids(self, stored: dict[str, list[StoredRecord]],
                    actions: dict[str, list[ActionRow]]) -> dict[str, bytes | None]:
        """The escrow id each order was funded under: the latest ``OrderFunded`` whose order
        record is the order's record leaf and whose id ends with the order id's keccak prefix
        (`ledger.escrow.eip712.escrow_order_id`)."""
        by_leaf: dict[bytes, Any] = {}
        for e in self._funded_events():
            by_leaf[bytes(e.args["orderRecord"])] = e  # chain order: the latest wins
        out: dict[str, bytes | None] = {}
        for oid, recs in stored.items():
            out[oid] = None
            for r in recs:
                e = by_leaf.get(r.leaf) if r.kind == "order" else None
                if e is not None and bytes(e.args["orderId"])[20:] == bytes(keccak(text=oid))[:12]:
                    out[oid] = bytes(e.args["orderId"])
                    self._funded[oid] = e
        return out

    def _addresses(self, actions: dict[str, list[ActionRow]], orders: Sequence[Order]) -> list[str]:
        seen: dict[str, None] = {}
        for o in orders:
            e = self._funded.get(o.order_id)
            if e is not None:
                seen[to_checksum_address(e.args["merchant"])] = None
        return list(seen)


def bundle_figures(bundle: Bundle, verdict: Verdict, client: EscrowClient, *, since: str | None = None,
                   until: str | None = None, from_block: int = 0) -> MerchantReport:
    """The merchant report (figures, orders, timeline) over the orders whose order record is in
    [since, until) (default: the bundle's own `since`, and no end), from a verified, complete
    v2 merchant bundle (`verdict` is its verification on this chain) and the chain."""
    sel = bundle.selection
    if bundle.completeness is None or sel.merchant_id is None:
        raise AuditError("figures need a v2 merchant bundle (`ledger export --merchant ID`): a v1 bundle "
                         "does not prove that no record was left out")
    if verdict.status != "verified" or verdict.completeness != "proven":
        raise AuditError(f"the bundle is {verdict.status.replace('_', ' ')} (completeness "
                         f"{verdict.completeness}): figures are computed only from a verified, complete "
                         "bundle")
    if sel.until is not None:
        raise AuditError(f"the bundle ends at {sel.until}: a later record of an order opened before then "
                         "(a delivery, a return) would be missing; export it without --until")
    since = since or sel.since
    if since is not None and sel.since is not None and \
            times.parse_time_ns(since) < times.parse_time_ns(sel.since):
        raise AuditError(f"--since {since} is before the bundle's start {sel.since}")
    auditor = _BundleAuditor(bundle, verdict, client, from_block)
    report = auditor.merchant_report(sel.merchant_id, since, until)
    _logger.info("figures of merchant %s from a bundle of %d record(s) at head %d", sel.merchant_id,
                 len(bundle.records), bundle.anchor.tree_size)
    return report
