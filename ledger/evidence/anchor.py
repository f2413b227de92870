"""Anchor the log's tree head on chain, crash-safely.

Protocol (each step durable before the next):
1. Read the chain's latest head; check that the local tree has exactly that root at that
   size (otherwise the local log and the chain disagree: stop, never paper over it).
2. Build and sign ``anchor(size, root, consistencyProof)`` with an explicit nonce; store the
   signed transaction (status ``sent``) and commit, *then* broadcast it.
3. Wait for the configured confirmations on a canonical block; mark it ``confirmed``.

A restart resumes every ``sent`` row first: if the transaction is known it is awaited; if
the node lost it, the very same signed bytes are re-broadcast (same nonce, same hash), so
one head never produces two transactions. A head is reported anchored only once confirmed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from web3.contract import Contract

from ledger.chain.rpc import Chain
from ledger.errors import ChainUnavailable, ContractRevert, StoreError
from ledger.evidence.store import AnchorRow, Store


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


def chain_head(chain: Chain, log: Contract) -> Head:
    size, root, _, _ = chain.call(log.functions.latestHead())
    return Head(int(size), bytes(root))


class Anchorer:
    """Anchors a store's tree heads on one EvidenceLog contract."""

    def __init__(self, store: Store, chain: Chain, log: Contract) -> None:
        self.store = store
        self.chain = chain
        self.log = log
        self.contract = log.address

    def anchor(
        self,
        *,
        confirmations: int | None = None,
        before_broadcast: Callable[[AnchorRow | int], None] | None = None,
    ) -> AnchorOutcome:
        """Anchor the current tree head (after settling anything pending)."""
        resumed = self.resume(confirmations=confirmations)
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
            return AnchorOutcome(None, previous, resumed, None, None, None)
        root = tree.root(size)
        proof = tree.consistency_proof(previous.size, size) if previous.size else []
        fn = self.log.functions.anchor(size, root, proof)
        sender = self.chain.default_account
        raw, tx_hash, nonce = self.chain.build_signed(fn, sender, context="anchor")
        anchor_id = self.store.record_sent_anchor(
            chain_id=self.chain.chain_id,
            contract=self.contract,
            size=size,
            root=root,
            prev_size=previous.size,
            sender=sender.address,
            nonce=nonce,
            tx_hash=tx_hash,
            raw_tx=raw,
        )
        if before_broadcast is not None:
            before_broadcast(anchor_id)
        self.chain.broadcast(raw)
        receipt = self._settle(anchor_id, tx_hash, confirmations)
        return AnchorOutcome(
            Head(size, root), previous, resumed, int(receipt["gasUsed"]), tx_hash,
            int(receipt["blockNumber"]),
        )

    def resume(self, *, confirmations: int | None = None) -> int:
        """Settle anchors left `sent` by an earlier (possibly killed) run."""
        pending = self.store.anchors(self.chain.chain_id, self.contract, "sent")
        for row in pending:
            if self.chain.receipt(row.tx_hash) is None:
                head = chain_head(self.chain, self.log)
                if head.size >= row.size:
                    # Another transaction already moved the head past this one; ours can
                    # only revert now. Its nonce may also be spent: mark it superseded.
                    self.store.mark_anchor(row.id, "failed", error="superseded by a later head")
                    continue
                try:
                    self.chain.broadcast(row.raw_tx)
                except ChainUnavailable:
                    raise
                except Exception as exc:  # noqa: BLE001 - e.g. nonce already used
                    self.store.mark_anchor(row.id, "failed", error=f"re-broadcast failed: {exc}")
                    continue
            with contextlib.suppress(ContractRevert):  # _settle marks a reverted one failed
                self._settle(row.id, row.tx_hash, confirmations)
        return len(pending)

    def _settle(self, anchor_id: int, tx_hash: bytes, confirmations: int | None) -> dict[str, Any]:
        receipt = self.chain.wait(tx_hash, confirmations)
        if receipt["status"] != 1:
            self.store.mark_anchor(anchor_id, "failed", error="reverted on chain",
                                   block_number=int(receipt["blockNumber"]))
            raise ContractRevert("Unknown", {}, f"anchor transaction 0x{tx_hash.hex()} reverted")
        block = self.chain.w3.eth.get_block(receipt["blockNumber"])
        self.store.mark_anchor(
            anchor_id,
            "confirmed",
            block_number=int(receipt["blockNumber"]),
            block_hash=bytes(receipt["blockHash"]),
            block_timestamp=int(block["timestamp"]),
            gas_used=int(receipt["gasUsed"]),
        )
        return receipt
