"""Anchor the log's tree head on chain, crash-safely.

Protocol (each step durable before the next):
1. Read the chain's latest head; check that the local tree has exactly that root at that
   size (otherwise the local log and the chain disagree: stop, never paper over it).
2. Build and sign ``anchorIndexed(size, root, indexRoot, consistencyProof)`` (the head and the
   root of the log's verifiable index at that size, `Store.index_root`; plain ``anchor`` on an
   EvidenceLog deployed before anchorIndexed existed, with a warning) with an explicit nonce;
   store the signed transaction (status ``sent``) and commit, *then* broadcast it.
3. Wait for the configured confirmations on a canonical block; mark it ``confirmed``.

Steps 2 and 3, and the resumption of a ``sent`` row after a crash (await it, or re-broadcast
the very same signed bytes, so one head never produces two transactions), are the outbox's
(`ledger.chain.outbox`); the anchors table is its journal. A lost anchor whose head the
chain has already passed is superseded, not re-sent. A head is reported anchored only once
confirmed, and only while the chain still holds it: each run first re-checks the stored
anchors (`ledger.evidence.anchor_check`), so a head a reorg or a node reset took away is
anchored again from whatever head the chain has now.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from web3.contract import Contract

from ledger.chain.outbox import Outbox, Outcome, Pending, Settlement, StillPending
from ledger.chain.rpc import Chain
from ledger.errors import StoreError
from ledger.evidence.anchor_check import AnchorChange, recheck_anchors
from ledger.evidence.journal import AnchorRow
from ledger.evidence.store import Store

__all__ = ["INDEXED_LOG_INTERFACE_ID", "AnchorJournal", "AnchorOutcome", "Anchorer", "Head", "chain_head",
           "has_anchor_indexed"]

_logger = logging.getLogger(__name__)

_ANCHOR_FACTS = ("block_number", "block_hash", "block_timestamp", "gas_used", "error", "tx_hash")

#: ERC-165 id of IEvidenceLog since anchorIndexed (the XOR of its function selectors; the tests
#: recompute it from the build). An EvidenceLog deployed before answers false for it.
INDEXED_LOG_INTERFACE_ID = bytes.fromhex("79d98ad8")


@dataclass(frozen=True)
class Head:
    size: int
    root: bytes


@dataclass(frozen=True)
class AnchorOutcome:
    """What one `anchor()` call did."""

    head: Head | None  # the head confirmed by this call, None if nothing new
    previous: Head
    resumed: int  # pending transactions from an earlier run that were settled
    gas_used: int | None
    tx_hash: bytes | None
    block_number: int | None
    settled: tuple[AnchorRow, ...] = ()  # those resumed anchors, as they ended
    rechecked: tuple[AnchorChange, ...] = ()  # stored anchors the chain no longer holds as stored


def chain_head(chain: Chain, log: Contract) -> Head:
    size, root, _, _ = chain.call(log.functions.latestHead())
    return Head(int(size), bytes(root))


def has_anchor_indexed(chain: Chain, log: Contract) -> bool:
    """Whether the EvidenceLog at `log` has anchorIndexed (ERC-165: it supports the current
    IEvidenceLog), as opposed to one deployed by an older version, which only has anchor."""
    return bool(chain.call(log.functions.supportsInterface(INDEXED_LOG_INTERFACE_ID)))


class AnchorJournal:
    """The store's anchors on one EvidenceLog, as the outbox's journal."""

    resume_hint = ("run `ledger resume` (or `ledger anchor` again) once the node answers: it finishes "
                   "the anchor with the stored bytes, so the head is never anchored twice")

    def __init__(self, store: Store, chain: Chain, log: Contract) -> None:
        self.store = store
        self.chain = chain
        self.log = log

    def pending(self) -> Sequence[Pending]:
        """The anchors still ``sent`` on this chain, of this log and of any earlier one (a
        redeploy moved the log): each holds a nonce of its sender until it is settled."""
        rows = self.store.anchors(self.chain.chain_id, status="sent")
        return [Pending(a.id, a.tx_hash, a.raw_tx, "anchor", a.tx_hashes[1:]) for a in rows]

    def replace(self, row: Pending, raw_tx: bytes, tx_hash: bytes, nonce: int, why: str) -> bool:
        return self.store.replace_attempt("anchors", row.id, tx_hash=tx_hash, raw_tx=raw_tx, nonce=nonce,
                                          why=why)

    def taken_nonces(self, sender: str) -> Sequence[int]:
        return self.store.pending_nonces(self.chain.chain_id, sender)

    def settle(self, row_id: int, settlement: Settlement) -> None:
        facts = {k: getattr(settlement, k) for k in _ANCHOR_FACTS if getattr(settlement, k) is not None}
        self.store.mark_anchor(row_id, settlement.status, expect="sent", **facts)

    def superseded(self, row: Pending) -> str | None:
        """Why an anchor whose transaction cannot be mined as signed must not be signed again:
        another transaction already moved its log's head to its size or past it (it would
        only revert), or its log has no code any more. None: sign it again."""
        stored = self.store.anchor_row(row.id)
        if stored is None:  # pragma: no cover - rows are never deleted
            return None
        log = self.log
        if stored.contract.lower() != self.log.address.lower():
            if not self.chain.w3.eth.get_code(to_checksum_address(stored.contract)):
                return (f"its EvidenceLog {stored.contract} has no code on chain {self.chain.chain_id} any "
                        "more (the node was reset, or the log was redeployed on another chain)")
            log = self.chain.w3.eth.contract(address=to_checksum_address(stored.contract), abi=self.log.abi)
        head = chain_head(self.chain, log)
        return (f"superseded: the chain's head (size {head.size}) already covers size {stored.size}"
                if head.size >= stored.size else None)


class Anchorer:
    """Anchors a store's tree heads on one EvidenceLog contract."""

    def __init__(self, store: Store, chain: Chain, log: Contract) -> None:
        self.store = store
        self.chain = chain
        self.log = log
        self.contract = log.address
        self.outbox = Outbox(chain, AnchorJournal(store, chain, log))

    def anchor(
        self,
        *,
        confirmations: int | None = None,
        timeout: float | None = None,
        before_broadcast: Callable[[int], None] | None = None,
    ) -> AnchorOutcome:
        """Anchor the current tree head, after re-checking the stored anchors against the chain
        as it is now (`ledger.evidence.anchor_check`: one a reorg or a reset took away is no
        longer confirmed, so the head is anchored again from the chain's own latest head) and
        settling anything pending."""
        with self._exclusive():
            changes = recheck_anchors(self.store, self.chain, self.contract).changes
            settled = self._resume(confirmations, timeout)
            previous = chain_head(self.chain, self.log)
            tree = self.store.tree
            size = tree.size
            if previous.size > size:
                raise StoreError(
                    f"the chain's head (size {previous.size}) is ahead of the local log "
                    f"(size {size}): this store is not the log anchored at {self.contract}"
                )
            if previous.size and tree.root(previous.size) != previous.root:
                raise StoreError(
                    f"the local log's root at size {previous.size} is {tree.root(previous.size).hex()}"
                    f" but the chain anchored {previous.root.hex()}: the local log was altered or "
                    "belongs to another contract"
                )
            if size == previous.size:
                return AnchorOutcome(None, previous, len(settled), None, None, None, settled, changes)
            root = tree.root(size)
            proof = tree.consistency_proof(previous.size, size) if previous.size else []
            fn, index_root = self._anchor_call(size, root, proof)
            sender = self.chain.default_account
            with self.outbox.signing(sender) as nonce:
                raw, tx_hash, nonce = self.chain.build_signed(fn, sender, nonce=nonce, context="anchor")
                anchor_id = self.store.record_sent_anchor(
                    chain_id=self.chain.chain_id, contract=self.contract, size=size, root=root,
                    prev_size=previous.size, sender=sender.address, nonce=nonce, tx_hash=tx_hash, raw_tx=raw,
                    index_root=index_root,
                )  # fmt: skip
                _logger.info("anchoring head size %d root %s (from size %d)", size, root.hex(), previous.size)
                if before_broadcast is not None:
                    before_broadcast(anchor_id)
                row = Pending(anchor_id, tx_hash, raw, "anchor")
                self.outbox.broadcast(row)
            receipt = self.outbox.finish(row, confirmations, timeout)
            tx_hash = bytes(receipt["transactionHash"])
            return AnchorOutcome(
                Head(size, root), previous, len(settled), int(receipt["gasUsed"]), tx_hash,
                int(receipt["blockNumber"]), settled, changes,
            )

    def _anchor_call(self, size: int, root: bytes, proof: list[bytes]) -> tuple[Any, bytes | None]:
        """The call that anchors (size, root) and the index root it commits: anchorIndexed with the
        index root of that size, or, on an EvidenceLog too old to have it, anchor (the head alone,
        with a warning; None)."""
        if has_anchor_indexed(self.chain, self.log):
            index_root = self.store.index_root(size)
            _logger.info("committing index root %s with head size %d", index_root.hex(), size)
            return self.log.functions.anchorIndexed(size, root, index_root, proof), index_root
        _logger.warning(
            "the EvidenceLog at %s has no anchorIndexed (deployed by an older version): head size %d is "
            "anchored with anchor(), without the root of its index, so completeness proofs are not "
            "possible for this log until it is redeployed (`ledger deploy --redeploy EvidenceLog "
            "--move-log`)", self.contract, size)
        return self.log.functions.anchor(size, root, proof), None

    def _exclusive(self) -> contextlib.AbstractContextManager[bool]:
        """One anchoring run per log at a time across processes on this data directory: a
        second `ledger anchor` (or `ledger resume`) waits for the first, then finds its head
        anchored, instead of sending the same head again (a transaction that would revert)."""
        return self.chain.run_lock(f"anchor-{self.contract.lower()}",
                                   f"another process anchoring on {self.contract}")

    def resume(self, *, confirmations: int | None = None, timeout: float | None = None) -> list[Outcome]:
        """Drive the anchors left `sent` by an earlier run (killed, timed out, stuck) to their end,
        or as far as `timeout` allows; how each ended."""
        with self._exclusive():
            return self.outbox.resume(confirmations, timeout)

    def _resume(self, confirmations: int | None, timeout: float | None) -> tuple[AnchorRow, ...]:
        """Settle the anchors left `sent`, and return them as they ended (so that a run that
        only completes a pending anchor can say so). One still pending stops the run: a new
        head cannot be anchored behind it (its nonce comes first)."""
        pending = {a.id for a in self.store.anchors(self.chain.chain_id, self.contract, "sent")}
        for outcome in self.outbox.resume(confirmations, timeout):
            if outcome.status == "sent":
                raise StillPending(outcome.detail)
        return tuple(a for a in self.store.anchors(self.chain.chain_id, self.contract) if a.id in pending)
