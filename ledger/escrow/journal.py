"""The platform's escrow steps as the outbox's journal (`ledger.chain.outbox`), and the small
helpers that read the platform's stored actions.

"Confirmed" means confirmed on the chain as it is now: `ActionJournal.recheck` walks the
confirmed steps from the latest stored block down, as the anchors' re-check does
(`ledger.evidence.anchor_check`), and stops at the first whose stored block is still the
chain's block at that number (a block hash commits to its parent: everything below is
unchanged); no window of "recent" blocks is trusted. One
whose block a reorg replaced but whose transaction the chain still holds gets its new block;
one whose transaction vanished goes back to ``sent``, with a note in ``error``, and the outbox
sends the very same bytes again (or signs them again if their nonce was taken). Its records
stay in the log (they entered it when it was first confirmed); until it is mined again the
audit flags them as cited by no escrow event.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from typing import Any

from eth_utils import to_checksum_address

from ledger.chain.outbox import Outbox, Outcome, Pending, Settlement
from ledger.chain.rpc import Chain
from ledger.escrow.eip712 import Offer
from ledger.evidence.journal import ActionRow
from ledger.evidence.store import Store

__all__ = ["ActionJournal", "differs", "drive_pending", "funded_escrow_id", "offer_json", "order_lock",
           "step_identity"]

_ACTION_FACTS = ("block_number", "block_hash", "block_timestamp", "gas_used", "error", "tx_hash")


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


class ActionJournal:
    """The store's escrow actions on one chain, as the outbox's journal."""

    resume_hint = ("run `ledger resume` (or the same escrow command again) once the node answers: it "
                   "finishes the step with the same bytes, so one step is never sent as two transactions")

    def __init__(self, store: Store, chain_id: int, chain: Chain | None = None) -> None:
        self.store = store
        self.chain_id = chain_id
        self.chain = chain

    def pending(self) -> Sequence[Pending]:
        return [Pending(a.id, a.tx_hash, a.raw_tx, a.action, a.tx_hashes[1:])
                for a in self.store.actions(status="sent", chain_id=self.chain_id)]

    def replace(self, row: Pending, raw_tx: bytes, tx_hash: bytes, nonce: int, why: str) -> bool:
        return self.store.replace_attempt("escrow_actions", row.id, tx_hash=tx_hash, raw_tx=raw_tx,
                                          nonce=nonce, why=why)

    def taken_nonces(self, sender: str) -> Sequence[int]:
        return self.store.pending_nonces(self.chain_id, sender)

    def settle(self, row_id: int, settlement: Settlement) -> None:
        facts = {k: getattr(settlement, k) for k in _ACTION_FACTS if getattr(settlement, k) is not None}
        self.store.mark_action(row_id, settlement.status, expect="sent", **facts)

    def superseded(self, row: Pending) -> str | None:
        """None while the step is wanted (it is sent again, or signed again if its call still
        succeeds); a reason when the escrow it was signed for is gone from this chain (a node
        reset): the step can never take effect there, and must not be re-sent, nor its nonce
        gap filled, on whatever chain now answers."""
        found = self.store.actions(tx_hash=row.tx_hash)
        if self.chain is None or not found:
            return None
        escrow = found[0].contract
        if self.chain.w3.eth.get_code(to_checksum_address(escrow)):
            return None
        return (f"the escrow {escrow} it was signed for has no code on chain {self.chain_id} any more (the "
                "node was reset, or the chain is another): the step can never take effect; deploy again "
                "(`ledger deploy`) and take the order anew")

    def recheck(self, chain: Chain, contract: str) -> list[str]:
        """Check the confirmed steps on `contract` against the chain as it is now (see the
        module docstring); what changed, in words."""
        head = int(chain.w3.eth.block_number)
        notes = []
        confirmed = self.store.actions(status="confirmed", chain_id=self.chain_id, contract=contract)
        for a in sorted(confirmed, key=lambda r: (r.block_number or -1, r.id), reverse=True):
            if a.block_number is None or a.block_hash is None:
                break  # stored before blocks were kept (schema 2): nothing to compare below
            if a.block_number <= head and \
                    bytes(chain.w3.eth.get_block(a.block_number)["hash"]) == a.block_hash:
                break  # this block, and so every block before it, is unchanged
            receipt = chain.receipt(a.tx_hash)
            what = f"{a.action} of order {a.order_id} (tx {_hex(a.tx_hash)})"
            if receipt is not None and receipt.get("blockHash") is not None:
                notes += self._moved(chain, a, receipt, what)
                continue
            why = (f"its transaction vanished from block {a.block_number} (a reorg or a node reset; the "
                   f"head is now block {head}): sent again")
            self.store.mark_action(a.id, "sent", error=why)
            notes.append(f"{what}: {why}")
        for note in notes:
            chain.say(f"escrow step {note}")
        return notes

    def _moved(self, chain: Chain, a: ActionRow, receipt: dict[str, Any], what: str) -> list[str]:
        """A confirmed step the chain holds in another block than the store says: its new
        block, or ``failed`` if it reverted there (a reorg may put it before what it needs)."""
        number, block_hash = int(receipt["blockNumber"]), bytes(receipt["blockHash"])
        if (number, block_hash) == (a.block_number, a.block_hash):
            return []
        facts: dict[str, Any] = {"block_number": number, "block_hash": block_hash,
                                 "gas_used": int(receipt["gasUsed"]),
                                 "block_timestamp": int(chain.w3.eth.get_block(number)["timestamp"])}
        if receipt["status"] == 1:
            self.store.mark_action(a.id, "confirmed", **facts)
            return [f"{what} was moved by a reorg from block {a.block_number} to block {number}"]
        error = f"a reorg moved it to block {number}, where it reverted: {chain.failure(a.tx_hash, a.action)}"
        self.store.mark_action(a.id, "failed", error=error, **facts)
        return [f"{what}: {error}"]


#: what a new attempt of the same step renews (chain times, the signatures over them, the
#: leaf of a record stamped anew), left out when two attempts are compared
_RENEWED = {"": {"carrier_signature", "merchant_signature"}, "attestation": {"at", "evidence"},
            "offer": {"ship_by", "expires_at", "order_record"}}


def step_identity(payload: dict[str, Any]) -> dict[str, Any]:
    """A step's call arguments without what a new attempt of it renews (`_RENEWED`)."""
    out = {}
    for k, v in payload.items():
        if k in _RENEWED[""]:
            continue
        out[k] = {kk: vv for kk, vv in v.items() if kk not in _RENEWED[k]} \
            if isinstance(v, dict) and k in _RENEWED else v
    return out


def differs(old: dict[str, Any], new: dict[str, Any]) -> str:
    a, b = step_identity(old), step_identity(new)
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return "; it differs in " + ", ".join(keys) if keys else ""


def order_lock(chain: Chain, escrow: str, order_id: str, *, wait: bool = True,
               ) -> contextlib.AbstractContextManager[bool]:
    """The run lock over one order's steps on `escrow` (`Chain.run_lock`; orders share one of
    256 lock files by the hash of their id, so the lock directory stays small)."""
    bucket = hashlib.sha256(order_id.encode()).hexdigest()[:2]
    return chain.run_lock(f"escrow-{escrow.lower()}-{bucket}",
                          f"another process driving a step of order {order_id!r}", wait=wait)


def drive_pending(store: Store, outbox: Outbox, journal: ActionJournal, confirmations: int | None,
                  timeout: float | None) -> list[Outcome]:
    """Drive the journal's ``sent`` steps, each under its order's run lock and re-read once
    the lock is held (another process may have settled it meanwhile); with ``timeout=0`` (a
    quick look) a step another process is driving is left to it."""
    outcomes = []
    for row in journal.pending():
        stored = store.action_row(row.id)
        if stored is None:  # pragma: no cover - rows are never deleted
            continue
        with order_lock(outbox.chain, stored.contract, stored.order_id, wait=timeout != 0) as held:
            now = store.action_row(row.id)
            if not held or now is None or now.status != "sent":
                continue
            fresh = Pending(now.id, now.tx_hash, now.raw_tx, now.action, now.tx_hashes[1:])
            outcomes.append(outbox.resume_row(fresh, confirmations, timeout))
    return outcomes


def funded_escrow_id(actions: Sequence[ActionRow], escrow: str) -> bytes | None:
    """The escrow order id of the latest ``fund`` action among `actions` sent to `escrow` that
    is confirmed or still pending (the order id of its signed offer), or None: a fund that
    failed or was abandoned funded nothing."""
    for row in reversed(actions):
        live = row.status in ("sent", "confirmed")
        if row.action == "fund" and row.contract.lower() == escrow.lower() and live:
            return bytes.fromhex(str(row.payload["offer"]["order_id"]).removeprefix("0x"))
    return None


def offer_json(offer: Offer) -> dict[str, Any]:
    return {
        "order_id": _hex(offer.order_id), "merchant": offer.merchant, "buyer": offer.buyer,
        "token": offer.token, "price": offer.price, "ship_by": offer.ship_by,
        "inspection_window": offer.inspection_window, "order_record": _hex(offer.order_record),
        "expires_at": offer.expires_at, "terms_id": offer.terms_id,
    }  # fmt: skip
