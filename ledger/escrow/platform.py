"""The platform facade: every escrow step backed by an evidence record in the log.

`Platform` is what a platform engineer feeds events into. For each step it

1. builds (or takes) the evidence record of what happened in the world: the order, the
   payment, the carrier's shipment and delivery, the return, the refund, the dispute
   statement; validates it like any ingested record;
2. signs the escrow transaction that cites that record's leaf hash as its ``evidence``, and
   simulates it, so a step the contract would refuse fails here, decoded, with nothing
   stored anywhere;
3. stores the record and the signed transaction in ONE SQLite transaction (the record is
   durable before the chain ever sees its hash), then broadcasts, waits and marks the
   action ``confirmed`` (or ``failed`` with the contract's decoded error).

So the chain never cites evidence the log lacks, and every record that backs a step is
linked to its transaction; a crash between steps 3 and the broadcast is resumed by
`resume`, which re-broadcasts the very same signed bytes (one step, one transaction).
Record ids follow the generator's scheme: ``<order>:order``, ``:pay``, ``:ship``,
``:dlv``, ``:return``, ``:return-ship``, ``:return-dlv``, ``:refund``, ``:cancel``,
``:dispute-buyer``/``:dispute-merchant``.

Times: records are stamped with the chain's clock (the latest block's timestamp), the
clock the escrow's windows run on, so the log and the chain tell the same timeline.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from ledger._internal.rfc3339 import rfc3339
from ledger.chain.outbox import Outbox, Outcome, Pending, StillPending
from ledger.chain.rpc import Chain
from ledger.errors import ChainUnavailable, LedgerError, RecordProblem, ValidationError
from ledger.escrow.calls import Call, is_native
from ledger.escrow.client import EscrowClient
from ledger.escrow.eip712 import Attestation, Offer, canonical_tracking, escrow_order_id, recover_signer
from ledger.escrow.journal import (
    ActionJournal,
    differs,
    drive_pending,
    funded_escrow_id,
    offer_json,
    order_lock,
    step_identity,
)
from ledger.escrow.types import NATIVE, ZERO32, OrderInfo
from ledger.evidence.journal import NewAction
from ledger.evidence.model import Record
from ledger.evidence.records import parse_record
from ledger.evidence.store import Store, StoredRecord

__all__ = ["APPROVE", "NON_ESCROW_ACTIONS", "ActionJournal", "EscrowStep", "Platform", "drive_pending",
           "funded_escrow_id", "order_lock"]

_logger = logging.getLogger(__name__)

#: the action name of an ERC-20 approval the platform sends for a buyer before funding
APPROVE = "approve"
#: actions whose transaction is not a call to the escrow (so the escrow emits nothing for it)
NON_ESCROW_ACTIONS = frozenset({APPROVE})


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


@dataclass(frozen=True)
class EscrowStep:
    """The outcome of one platform step."""

    order_id: str
    action: str
    record_id: str | None  # the evidence record behind it
    evidence: bytes | None  # its leaf hash, as passed on chain
    tx_hash: bytes
    receipt: dict[str, Any]

    @property
    def gas_used(self) -> int:
        return int(self.receipt["gasUsed"])


class Platform:
    """Drives one escrow and one evidence store together (see the module docstring)."""

    def __init__(self, store: Store, client: EscrowClient, relayer: LocalAccount) -> None:
        self.store = store
        self.client = client
        self.chain: Chain = client.chain
        self.calls = client.calls
        self.relayer = relayer  # submits permissionless steps (carrier attestations, timeouts)
        self.journal = ActionJournal(store, self.chain.chain_id, self.chain)
        self.outbox = Outbox(self.chain, self.journal)
        self.confirmations: int | None = None  # per step; None: the chain's default
        self.timeout: float | None = None  # seconds per step; None: the chain's default

    # -- plumbing ------------------------------------------------------------------------
    def now(self) -> int:
        return self.chain.timestamp()

    def _record(self, obj: dict[str, Any]) -> Record:
        return parse_record(obj, source="platform")

    def _base(self, order_id: str, suffix: str, kind: str, ts: int | None = None) -> dict[str, Any]:
        order = self.order_record(order_id)
        return {
            "id": f"{order_id}:{suffix}",
            "kind": kind,
            "order_id": order_id,
            "merchant_id": order.merchant_id,
            "ts": rfc3339(self.now() if ts is None else ts),
        }

    def order_record(self, order_id: str) -> StoredRecord:
        found = [r for r in self.store.records_for_order(order_id) if r.kind == "order"]
        if not found:
            raise LedgerError(f"order {order_id!r} has no order record in the log")
        if found[0].erased is not None:
            raise LedgerError(f"order {order_id!r} was erased on {found[0].erased[0]}: no escrow step can "
                              "cite its evidence any more")
        return found[0]

    def escrow_id(self, order_id: str) -> bytes:
        """The escrow order id this platform funded `order_id` under (from its own ``fund``
        action's signed offer: the id lies in the merchant's namespace, `escrow_order_id`)."""
        found = self.funded_as(order_id)
        if found is None:
            raise LedgerError(f"order {order_id!r} was never funded through escrow {self.client.address}: "
                              "it has no escrow order id (run `ledger order open` first)")
        return found

    def funded_as(self, order_id: str) -> bytes | None:
        """`escrow_id`, or None when the platform never sent a ``fund`` for the order."""
        return funded_escrow_id(self.store.actions(order_id=order_id), self.client.address)

    def _latest(self, order_id: str, *suffixes: str) -> StoredRecord | None:
        wanted = {f"{order_id}:{s}" for s in suffixes}
        hits = [r for r in self.store.records_for_order(order_id) if r.id in wanted]
        return hits[-1] if hits else None

    def _act(
        self,
        order_id: str,
        action: str,
        call: Call,
        sender: LocalAccount,
        *,
        records: Sequence[Record] = (),
        evidence_record: Record | StoredRecord | None = None,
        payload: dict[str, Any] | None = None,
    ) -> EscrowStep:
        """Finish this step if an earlier attempt of it is still pending; else simulate and
        sign it, hold its records with the signed transaction (one SQLite transaction), send
        it from the outbox and drive it to its end (`ledger.chain.outbox`). All under the
        order's run lock: two processes never drive one order's steps at once."""
        with self._order_lock(order_id):
            resumed = self._resume_step(order_id, action, sender.address, evidence_record, payload or {})
            if resumed is not None:
                return resumed
            evidence = record_id = None
            if evidence_record is not None:
                record_id = evidence_record.id
                evidence = (evidence_record.leaf if isinstance(evidence_record, StoredRecord)
                            else self.store.leaf_for(evidence_record))
            with self.outbox.signing(sender) as nonce:
                raw, tx_hash, nonce = self.chain.build_signed(call.fn, sender, value=call.value, nonce=nonce,
                                                              context=action)
                new = NewAction(
                    chain_id=self.chain.chain_id, contract=self.client.address, order_id=order_id,
                    action=action, record_id=record_id, evidence=evidence, payload=payload or {},
                    sender=sender.address, nonce=nonce, tx_hash=tx_hash, raw_tx=raw,
                )  # fmt: skip
                row = Pending(self.store.hold(list(records), new), tx_hash, raw, action)
                _logger.info("order %s: %s by %s, evidence %s", order_id, action, sender.address,
                             record_id or "none")
                self.outbox.broadcast(row)
            receipt = self.outbox.finish(row, self.confirmations, self.timeout)
        return EscrowStep(order_id, action, record_id, evidence, bytes(receipt["transactionHash"]), receipt)

    def _order_lock(self, order_id: str, *, wait: bool = True) -> contextlib.AbstractContextManager[bool]:
        return order_lock(self.chain, self.client.address, order_id, wait=wait)

    def _resume_step(self, order_id: str, action: str, sender: str,
                     evidence_record: Record | StoredRecord | None, payload: dict[str, Any],
                     ) -> EscrowStep | None:
        """An earlier attempt of this very step still ``sent`` (same action, sender, evidence
        record id and call arguments but for the times and signatures a new attempt renews)
        is finished instead of signing a new one (whose records would conflict with the held
        ones); its step once confirmed, or None if it failed or was abandoned (then a new
        attempt goes ahead). A pending step of the order that is NOT this one (another
        member's vote, another tracking number) is never finished in its place: `StillPending`
        says which it is, and `ledger resume` settles it first."""
        record_id = None if evidence_record is None else evidence_record.id
        for a in self.store.actions(order_id=order_id, status="sent", contract=self.client.address):
            if a.action != action:
                continue
            same = (a.sender.lower() == sender.lower() and a.record_id == record_id
                    and step_identity(a.payload) == step_identity(payload))
            if not same:
                raise StillPending(
                    f"order {order_id}: another {action} (by {a.sender}, evidence {a.record_id or 'none'}, "
                    f"tx 0x{a.tx_hash.hex()}) is still pending, and it is not this one (by {sender}, "
                    f"evidence {record_id or 'none'}{differs(a.payload, payload)}): run `ledger resume` "
                    "to settle it first, then this step again if it is still wanted")
            self.chain.say(f"order {order_id}: finishing the pending {action} signed earlier "
                           f"(tx 0x{a.tx_hash.hex()[:12]}…) instead of signing another")
            try:
                receipt = self.outbox.finish(Pending(a.id, a.tx_hash, a.raw_tx, action, a.tx_hashes[1:]),
                                             self.confirmations, self.timeout)
            except ChainUnavailable:  # StillPending included: not settled, so not retried either
                raise
            except LedgerError as exc:  # reverted or abandoned: a new attempt goes ahead
                self.chain.say(f"order {order_id}: the pending {action} did not take effect ({exc}); "
                               "signing it anew")
                continue
            return EscrowStep(order_id, action, a.record_id, a.evidence, bytes(receipt["transactionHash"]),
                              receipt)
        return None

    def resume(self, timeout: float | None = None) -> list[Outcome]:
        """Drive every step left ``sent`` (by a crash, a timeout, a stuck transaction) to its end,
        or as far as `timeout` allows; how each ended (`ledger.chain.outbox`). Steps confirmed
        in recent blocks are checked again first: one whose transaction a reorg or a node reset
        took away is sent again (`ActionJournal.recheck`). Each step is driven under its
        order's run lock and re-read once it is held (another process may have settled it);
        with ``timeout=0`` (a quick look) a step another process is driving is left to it."""
        self.journal.recheck(self.chain, self.client.address)
        return drive_pending(self.store, self.outbox, self.journal, self.confirmations, timeout)

    # -- the order lifecycle ---------------------------------------------------------------
    def open_order(
        self,
        order: dict[str, Any],
        *,
        merchant: LocalAccount,
        buyer: LocalAccount,
        price: int,
        token: str = NATIVE,
        ship_within: int = 3 * 86400,
        inspection_window: int = 3 * 86400,
        offer_ttl: int = 3600,
        payment_method: str = "platform_balance",
        restrict_to_buyer: bool = True,
    ) -> EscrowStep:
        """Log the order, have the merchant sign the offer committing to it, fund the escrow.

        `order` is an ``order`` record (its ``ts`` may be omitted: chain time is used);
        `price` is in the token's base units. The payment record cites the escrow
        order id as its ``payment_ref`` (``escrow:0x…``): the funding
        transaction's hash may change before it is mined (a fee bump), the order id never does.
        """
        order_rec, offer = self.make_offer(
            order, merchant=merchant.address, buyer=buyer.address if restrict_to_buyer else NATIVE,
            price=price, token=token, ship_within=ship_within, inspection_window=inspection_window,
            offer_ttl=offer_ttl)  # fmt: skip
        signature = self.client.sign_offer(merchant, offer)
        return self.fund_offer(order_rec.to_json(), offer, signature, buyer=buyer,
                               payment_method=payment_method)

    def make_offer(
        self, order: dict[str, Any], *, merchant: str, buyer: str, price: int, token: str = NATIVE,
        ship_within: int = 3 * 86400, inspection_window: int = 3 * 86400, offer_ttl: int = 3600,
    ) -> tuple[Record, Offer]:
        """The order record (``ts`` filled in with chain time) and the offer committing to it that
        `merchant` (an address) is to sign, in its own wallet if it likes (`Offer.typed_data`).
        Nothing is stored or sent."""
        obj = dict(order)
        obj.setdefault("ts", rfc3339(self.now()))
        order_rec = self._record(obj)
        self._check_new_order(order_rec)
        now = self.now()
        offer = Offer(
            order_id=escrow_order_id(order_rec.order_id, merchant), merchant=to_checksum_address(merchant),
            buyer=to_checksum_address(buyer), token=token, price=price, ship_by=now + ship_within,
            inspection_window=inspection_window, order_record=self.store.leaf_for(order_rec),
            expires_at=now + offer_ttl, terms_id=self.client.current_terms_id(),
        )  # fmt: skip
        return order_rec, offer

    def fund_offer(self, order: dict[str, Any], offer: Offer, signature: bytes, *, buyer: LocalAccount,
                   payment_method: str = "platform_balance") -> EscrowStep:
        """Log the order record and fund `offer`, signed by its merchant (here or in a wallet of
        its own): the offer must commit to exactly this record and lie in the merchant's
        namespace, and an externally owned merchant's signature must recover to it; the contract
        checks the rest (an ERC-1271 wallet's signature, the terms version, expiry)."""
        order_rec = self._record(order)
        self._check_new_order(order_rec)
        oid = order_rec.order_id
        leaf = self.store.leaf_for(order_rec)
        if offer.order_record != leaf:
            raise LedgerError(f"the signed offer commits to order record leaf {_hex(offer.order_record)}, "
                              f"not {_hex(leaf)} of record {order_rec.id!r} (sign an offer for this record)")
        if offer.order_id != escrow_order_id(oid, offer.merchant):
            raise LedgerError(f"the signed offer's orderId {_hex(offer.order_id)} is not the escrow order id "
                              f"of {oid!r} for merchant {offer.merchant}")
        if not self.chain.w3.eth.get_code(to_checksum_address(offer.merchant)):
            signer = recover_signer(offer.typed_data(self.chain.chain_id, self.client.address), signature)
            if signer != to_checksum_address(offer.merchant):
                raise LedgerError(f"the offer's signature is {signer}'s, not the merchant {offer.merchant}'s "
                                  f"(for escrow {self.client.address} on chain {self.chain.chain_id})")
        now = self.now()
        if not is_native(offer.token):  # the buyer lets the escrow pull the price: a step of its own
            self._act(oid, APPROVE, self.calls.approve(offer.token, offer.price), buyer)
        call = self.calls.fund(offer, signature)
        payment = self._record({
            "id": f"{oid}:pay", "kind": "payment", "order_id": oid,
            "merchant_id": order_rec.merchant_id, "ts": rfc3339(now),
            "amount": order_rec.public["total"], "currency": order_rec.public["currency"],
            "method": payment_method, "payment_ref": f"escrow:{_hex(offer.order_id)}",
        })  # fmt: skip
        payload = {"offer": offer_json(offer), "merchant_signature": _hex(signature)}
        return self._act(oid, "fund", call, buyer, records=[order_rec, payment],
                         evidence_record=order_rec, payload=payload)

    def _check_new_order(self, rec: Record) -> None:
        """An order opens with its ``<order_id>:order`` record, under an order id of its own:
        the steps find the order's records by these ids, and an order id already in use is
        another order's."""
        def refuse(fld: str, reason: str) -> ValidationError:
            return ValidationError([RecordProblem("platform", None, rec.id, fld, reason)])

        if rec.kind != "order":
            raise refuse("kind", f"a {rec.kind!r} record, not an order record")
        if rec.id != f"{rec.order_id}:order":
            raise refuse("id", f"an order record's id is its order_id followed by ':order', here "
                               f"{rec.order_id + ':order'!r}; to open another order, change both "
                               "order_id and id")
        others = [r.id for r in self.store.records_for_order(rec.order_id) if r.id != rec.id]
        if others:
            shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
            raise refuse("order_id", f"order {rec.order_id!r} already has records in the log "
                                     f"({shown}): it is another order's id; a new order needs its "
                                     "own order_id, and the id '<order_id>:order'")

    def ship(
        self,
        order_id: str,
        *,
        carrier: LocalAccount,
        carrier_code: str,
        tracking_number: str,
        shipped_at: int | None = None,
        record: dict[str, Any] | None = None,
    ) -> EscrowStep:
        """The carrier's signed shipment attestation, backed by a ``shipment`` record."""
        at = self.now() if shipped_at is None else shipped_at
        obj = record or {**self._base(order_id, "ship", "shipment", at),
                         "carrier": carrier_code, "tracking_number": tracking_number}
        return self._attested(order_id, "ship", "Shipment", carrier, self._record(obj), at)

    def deliver(
        self,
        order_id: str,
        *,
        carrier: LocalAccount,
        method: str = "doorstep",
        delivered_at: int | None = None,
        record: dict[str, Any] | None = None,
    ) -> EscrowStep:
        """The carrier's signed delivery attestation of the shipped parcel (``delivery`` record)."""
        shipment = self._latest(order_id, "ship")
        if shipment is None:
            raise LedgerError(f"order {order_id!r} has no shipment record to deliver")
        at = self.now() if delivered_at is None else delivered_at
        obj = record or {**self._base(order_id, "dlv", "delivery", at),
                         "carrier": shipment.public["carrier"],
                         "tracking_number": shipment.public["tracking_number"], "method": method}
        return self._attested(order_id, "deliver", "Delivery", carrier, self._record(obj), at)

    def _attested(
        self, order_id: str, action: str, kind: str, carrier: LocalAccount, record: Record, at: int
    ) -> EscrowStep:
        try:
            waybill = canonical_tracking(record.public["carrier"], record.public["tracking_number"])
        except ValueError as exc:
            raise LedgerError(f"record {record.id!r}: {exc}") from None
        # The carrier signs the record's leaf as the step's evidence: nobody relaying the
        # attestation can make the escrow report another.
        att = Attestation(kind, self.escrow_id(order_id), waybill, at, self.store.leaf_for(record))
        sig = self.client.sign_attestation(carrier, att)
        call = self.calls.attested(att, sig)
        payload = {"attestation": {"kind": kind, "order_id": _hex(att.order_id), "tracking": waybill,
                                   "tracking_hash": _hex(att.tracking_hash), "at": at,
                                   "evidence": _hex(att.evidence)},
                   "carrier": carrier.address, "carrier_signature": _hex(sig)}
        return self._act(order_id, action, call, self.relayer, records=[record],
                         evidence_record=record, payload=payload)

    def confirm_delivery(self, order_id: str, *, buyer: LocalAccount) -> EscrowStep:
        """The buyer confirms receipt itself (a ``delivery`` record, method ``signed``)."""
        shipment = self._latest(order_id, "ship")
        if shipment is None:
            raise LedgerError(f"order {order_id!r} has no shipment record")
        record = self._record({**self._base(order_id, "dlv", "delivery"),
                               "carrier": shipment.public["carrier"],
                               "tracking_number": shipment.public["tracking_number"],
                               "method": "signed"})
        call = self.calls.confirm_delivery(self.escrow_id(order_id), self.store.leaf_for(record))
        return self._act(order_id, "confirm_delivery", call, buyer, records=[record],
                         evidence_record=record)

    def release(self, order_id: str, *, sender: LocalAccount | None = None) -> EscrowStep:
        """Release after the inspection window; the evidence is the delivery record."""
        evidence = self._latest(order_id, "dlv") or self.order_record(order_id)
        call = self.calls.release(self.escrow_id(order_id), evidence.leaf)
        return self._act(order_id, "release", call, sender or self.relayer, evidence_record=evidence)

    def refund(self, order_id: str, *, sender: LocalAccount | None = None) -> EscrowStep:
        """Timeout refund (not shipped in time, or not delivered in time): a ``return`` record."""
        order = self.order_record(order_id)
        shipped = self._latest(order_id, "ship") is not None
        record = self._record({
            **self._base(order_id, "refund", "return"), "amount": order.public["total"],
            "currency": order.public["currency"], "type": "refund_only",
            "reason": "late_delivery" if shipped else "not_received",
            "detail": ("not delivered within the delivery window" if shipped
                       else "not shipped by the agreed ship-by time"),
        })  # fmt: skip
        call = self.calls.refund(self.escrow_id(order_id), self.store.leaf_for(record))
        return self._act(order_id, "refund", call, sender or self.relayer, records=[record],
                         evidence_record=record)

    def cancel(self, order_id: str, *, merchant: LocalAccount,
               detail: str = "cancelled by the merchant") -> EscrowStep:
        """A full refund by consent: `merchant` signs it, which once the payout is pledged must be
        the lender's key (the contract refuses the merchant's then)."""
        order = self.order_record(order_id)
        record = self._record({
            **self._base(order_id, "cancel", "return"), "amount": order.public["total"],
            "currency": order.public["currency"], "type": "refund_only", "reason": "other",
            "detail": detail,
        })  # fmt: skip
        call = self.calls.cancel(self.escrow_id(order_id), self.store.leaf_for(record))
        return self._act(order_id, "cancel", call, merchant, records=[record], evidence_record=record)

    def request_return(
        self,
        order_id: str,
        *,
        buyer: LocalAccount,
        amount: int,
        record_amount: int | None = None,
        reason: str = "not_as_described",
        return_type: str = "return_and_refund",
        detail: str | None = None,
    ) -> EscrowStep:
        """The buyer asks for `amount` (token units) back; the ``return`` record states it in
        the order's currency (`record_amount`, default proportional to the escrowed price)."""
        order = self.order_record(order_id)
        info = self.client.order(self.escrow_id(order_id))
        if record_amount is None:
            record_amount = max(1, order.public["total"] * amount // max(info.price, 1))
        obj = {**self._base(order_id, "return", "return"), "amount": record_amount,
               "currency": order.public["currency"], "type": return_type, "reason": reason}
        if detail:
            obj["detail"] = detail
        record = self._record(obj)
        call = self.calls.request_return(self.escrow_id(order_id), amount, self.store.leaf_for(record))
        return self._act(order_id, "request_return", call, buyer, records=[record],
                         evidence_record=record, payload={"amount": amount})

    def ship_return(
        self, order_id: str, *, carrier: LocalAccount, carrier_code: str, tracking_number: str,
        shipped_at: int | None = None,
    ) -> EscrowStep:
        at = self.now() if shipped_at is None else shipped_at
        obj = {**self._base(order_id, "return-ship", "shipment", at), "carrier": carrier_code,
               "tracking_number": tracking_number}
        return self._attested(order_id, "ship_return", "ReturnShipment", carrier, self._record(obj), at)

    def deliver_return(
        self, order_id: str, *, carrier: LocalAccount, delivered_at: int | None = None,
        method: str = "signed",
    ) -> EscrowStep:
        shipment = self._latest(order_id, "return-ship")
        if shipment is None:
            raise LedgerError(f"order {order_id!r} has no return shipment record")
        at = self.now() if delivered_at is None else delivered_at
        obj = {**self._base(order_id, "return-dlv", "delivery", at),
               "carrier": shipment.public["carrier"],
               "tracking_number": shipment.public["tracking_number"], "method": method}
        return self._attested(order_id, "deliver_return", "ReturnDelivery", carrier, self._record(obj), at)

    def confirm_return(self, order_id: str, *, merchant: LocalAccount) -> EscrowStep:
        """The merchant's side accepts the return: `merchant` signs it, which once the payout is
        pledged must be the lender's key."""
        evidence = self._latest(order_id, "return-dlv", "return") or self.order_record(order_id)
        call = self.calls.confirm_return(self.escrow_id(order_id), evidence.leaf)
        return self._act(order_id, "confirm_return", call, merchant, evidence_record=evidence)

    def settle_return(self, order_id: str, *, sender: LocalAccount | None = None) -> EscrowStep:
        evidence = (self._latest(order_id, "return-dlv", "return-ship", "return")
                    or self.order_record(order_id))
        call = self.calls.settle_return(self.escrow_id(order_id), evidence.leaf)
        return self._act(order_id, "settle_return", call, sender or self.relayer, evidence_record=evidence)

    def pledge(self, order_id: str, *, merchant: LocalAccount, lender: str) -> EscrowStep:
        call = self.calls.pledge(self.escrow_id(order_id), lender)
        return self._act(order_id, "pledge", call, merchant, payload={"lender": lender})

    # -- disputes ------------------------------------------------------------------------------
    def open_dispute(
        self,
        order_id: str,
        *,
        party: LocalAccount,
        statement: dict[str, Any] | None = None,
        evidence_record_id: str | None = None,
    ) -> EscrowStep:
        """Open a dispute citing an evidence record: an existing one (`evidence_record_id`,
        e.g. the carrier's delivery record) or a new statement (`statement`, a record dict,
        e.g. a ``return`` record with the buyer's reason and photo hashes)."""
        info = self.client.order(self.escrow_id(order_id))
        who = "buyer" if party.address == info.buyer else "merchant"
        records: list[Record] = []
        evidence: Record | StoredRecord
        if statement is not None:
            obj = {**self._base(order_id, f"dispute-{who}", statement.get("kind", "return")), **statement}
            evidence = self._record(obj)
            records.append(evidence)
        else:
            if evidence_record_id is None:
                raise LedgerError("open_dispute needs a statement record or an evidence record id")
            found = self.store.record_by_id(evidence_record_id)
            if found is None:
                raise LedgerError(f"no record {evidence_record_id!r} in the log")
            evidence = found
        leaf = evidence.leaf if isinstance(evidence, StoredRecord) else self.store.leaf_for(evidence)
        cost = self.client.arbitration_cost(self.escrow_id(order_id))
        call = self.calls.open_dispute(self.escrow_id(order_id), leaf, cost)
        return self._act(order_id, "open_dispute", call, party, records=records,
                         evidence_record=evidence, payload={"opener": who})

    def submit_evidence(self, order_id: str, *, party: LocalAccount, record_id: str) -> EscrowStep:
        """ERC-1497 evidence citing a log record: ``leaf:<index>:<leaf hash hex>``."""
        found = self.store.record_by_id(record_id)
        if found is None:
            raise LedgerError(f"no record {record_id!r} in the log")
        uri = f"leaf:{found.index}:{found.leaf.hex()}"
        call = self.calls.submit_evidence(self.escrow_id(order_id), uri)
        return self._act(order_id, "submit_evidence", call, party, evidence_record=found,
                         payload={"evidence": uri})

    def vote(self, order_id: str, *, member: LocalAccount, ruling: int) -> EscrowStep:
        dispute = self.client.dispute_of(self.escrow_id(order_id))
        call = self.calls.vote(dispute.dispute_id, ruling)
        return self._act(order_id, "vote", call, member,
                         payload={"dispute_id": dispute.dispute_id, "ruling": ruling})

    def claim_default(self, order_id: str, *, opener: LocalAccount) -> EscrowStep:
        call = self.calls.claim_default(self.escrow_id(order_id))
        return self._act(order_id, "claim_default", call, opener)

    def timeout_dispute(self, order_id: str, *, sender: LocalAccount | None = None) -> EscrowStep:
        call = self.calls.timeout_dispute(self.escrow_id(order_id))
        return self._act(order_id, "timeout_dispute", call, sender or self.relayer)

    # -- views ---------------------------------------------------------------------------------
    def status(self, order_id: str) -> dict[str, Any]:
        """The order on chain, its evidence records and the escrow actions taken."""
        key = self.funded_as(order_id)
        records = self.store.records_for_order(order_id)
        actions = self.store.actions(order_id=order_id)
        if key is None and not records and not actions:
            raise LedgerError(f"unknown order {order_id!r}: no record of it in the log and no "
                              f"order funded through escrow {self.client.address}")
        info: OrderInfo = self.client.order(key or ZERO32)
        return {
            "order_id": order_id,
            "escrow_order_id": _hex(key) if key else None,
            "state": info.state.name,
            "price": info.price,
            "token": info.token,
            "merchant": info.merchant,
            "buyer": info.buyer,
            "lender": info.lender if info.pledged else None,
            "deadline": info.deadline,
            "records": [{"index": r.index, "id": r.id, "kind": r.kind, "ts": r.ts,
                         "leaf": r.leaf.hex()} for r in records],
            "actions": [{"action": a.action, "status": a.status, "tx": _hex(a.tx_hash),
                         "record_id": a.record_id, "gas_used": a.gas_used, "error": a.error,
                         "block": a.block_number, "time": a.block_timestamp}
                        for a in actions],
        }  # fmt: skip
