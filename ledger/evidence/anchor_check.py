"""Re-check stored anchors against the chain as it is now.

"Confirmed" means confirmed on the chain *as it is now*, not when the anchor was awaited: a
reorg can drop the anchoring transaction or re-mine it in another block, and a test node
can be reset (its state, the EvidenceLog included, gone). Every command that reports an
anchor (`ledger anchor`, `status`, `export`, `audit`, `resume`) first re-checks the
store's anchors of that EvidenceLog here:

* the contract still has code (none: the node was reset; every anchor of it is *lost*);
* the receipt of the anchor's transaction (any hash it was signed as) exists, succeeded,
  and its block is canonical now (the chain's block at that number has the receipt's
  block hash). No receipt: *lost* (or *sent* again, when the node holds the transaction
  pending: a reorg put it back in the mempool, and the outbox awaits it); reverted:
  *failed*; mined in another block than stored: *moved* (the stored block number, hash
  and time are updated, it stays confirmed); a lost anchor mined again: *restored*.

Cost: the confirmed anchors are read from the latest stored block down, one block header
each, and the first whose stored block (number and hash) is still the chain's block at that
number ends the walk: a block hash commits to the block's transactions and to its parent's
hash, so that block and every block before it are unchanged, and so is every anchor mined in
them. Only the anchors above it (those a reorg or a reset touched) cost a receipt lookup, as
does each anchor already lost of a head larger than any confirmed (it may be mined again).
On an unchanged chain a re-check is
three calls: the head's number, the contract's code and one header. No window of "recent"
blocks is trusted: a reorg or a revert of any depth is found.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from ledger.chain.rpc import Chain
from ledger.evidence.journal import AnchorRow
from ledger.evidence.store import Store

__all__ = ["AnchorChange", "Recheck", "recheck_anchors", "recheck_chain"]

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnchorChange:
    """What the re-check found changed about one stored anchor."""

    kind: str  # "moved" | "lost" | "failed" | "restored"
    row: AnchorRow  # as the store holds it now (status lost, failed, sent or confirmed)
    was_block: int | None  # the block the store named before
    reason: str

    def to_json(self) -> dict[str, Any]:
        r = self.row
        return {"kind": self.kind, "status": r.status, "size": r.size, "root": r.root.hex(),
                "chain_id": r.chain_id, "contract": r.contract, "tx_hash": "0x" + r.tx_hash.hex(),
                "block_number": r.block_number, "was_block_number": self.was_block, "reason": self.reason}

    def text(self) -> str:
        r = self.row
        what = f"head size {r.size} anchored in tx 0x{r.tx_hash.hex()}"
        if self.kind == "moved":
            return (f"the chain reorganised: {what} moved from block {self.was_block} to block "
                    f"{r.block_number} (the store now says block {r.block_number})")
        if self.kind == "restored":
            return f"{what} is on chain again, in block {r.block_number}"
        if self.kind == "failed":
            return f"the chain reorganised: {what} now reverts: {self.reason}"
        why = self.reason if self.reason.startswith("no longer") else f"no longer on chain: {self.reason}"
        return f"the chain went back: {what} (block {self.was_block}) is {why}"


@dataclass(frozen=True)
class Recheck:
    """One re-check of a contract's anchors."""

    chain_id: int
    contract: str
    head_block: int  # the chain's latest block when checked
    checked: int  # anchors whose receipt was looked up
    changes: tuple[AnchorChange, ...]


def recheck_chain(store: Store, chain: Chain, *, full: bool = False) -> list[Recheck]:
    """Re-check the anchors of every EvidenceLog the store has anchored on this chain."""
    contracts = sorted({a.contract for a in store.anchors(chain.chain_id)
                        if a.status in ("confirmed", "lost")})
    return [recheck_anchors(store, chain, c, full=full) for c in contracts]


def recheck_anchors(store: Store, chain: Chain, contract: str, *, full: bool = False) -> Recheck:
    """Re-check the store's confirmed (and lost) anchors of `contract` against the chain as it
    is now, and record what changed (see the module's doc). `full` looks up every receipt,
    even below a block the chain still holds."""
    rows = [a for a in store.anchors(chain.chain_id, contract) if a.status in ("confirmed", "lost")]
    head = int(chain.w3.eth.block_number)
    if not rows:
        return Recheck(chain.chain_id, contract, head, 0, ())
    if not bytes(chain.w3.eth.get_code(to_checksum_address(contract))):
        reason = (f"the EvidenceLog at {contract} has no code on chain {chain.chain_id} as of block "
                  f"{head}: the node was reset or lost its state. Run `ledger deploy --redeploy`, then "
                  "`ledger anchor` to anchor the log into the new deployment")
        reset = [_mark(store, a, "lost", "lost", reason) for a in rows if a.status == "confirmed"]
        return _done(Recheck(chain.chain_id, contract, head, 0, tuple(reset)))
    checker = _Checker(store, chain, head)
    changes: list[AnchorChange | None] = []
    confirmed = sorted((a for a in rows if a.status == "confirmed"),
                       key=lambda a: (a.block_number if a.block_number is not None else head + 1, a.id))
    for a in reversed(confirmed):  # the latest block first
        if not full and checker.intact(a):
            break  # its block is the chain's, and so is every block before it (each names its parent)
        changes.append(checker.check(a))
    # A lost anchor may be mined again; one of a head no larger than a confirmed one no longer
    # matters to what is reported, and is left alone (lost rows only ever accumulate).
    top = store.latest_confirmed(chain.chain_id, contract)
    changes += [checker.check(a) for a in rows if a.status == "lost" and (top is None or a.size > top.size)]
    found = tuple(c for c in changes if c is not None)
    return _done(Recheck(chain.chain_id, contract, head, checker.looked_up, found))


def _done(result: Recheck) -> Recheck:
    for c in result.changes:  # each command reports them in its own words: logged as info
        _logger.info("anchor recheck on chain %d at %s: %s", result.chain_id, result.contract, c.text())
    _logger.info("rechecked %d anchor(s) of %s at block %d: %d changed", result.checked, result.contract,
                 result.head_block, len(result.changes))
    return result


def _mark(store: Store, a: AnchorRow, kind: str, status: str, reason: str,
          **facts: Any) -> AnchorChange:
    store.mark_anchor(a.id, status, **({"error": reason} if status != "confirmed" else {}), **facts)
    [now] = [r for r in store.anchors(a.chain_id, a.contract) if r.id == a.id]
    return AnchorChange(kind, now, a.block_number, reason)


class _Checker:
    """Checks one anchor at a time against the chain, sharing block lookups."""

    def __init__(self, store: Store, chain: Chain, head: int) -> None:
        self.store, self.chain, self.head = store, chain, head
        self.blocks: dict[int, Any] = {}
        self.looked_up = 0

    def _block(self, n: int) -> Any:
        if n not in self.blocks:
            self.blocks[n] = self.chain.w3.eth.get_block(n)
        return self.blocks[n]

    def _receipt(self, hashes: Sequence[bytes]) -> dict[str, Any] | None:
        self.looked_up += 1
        return next((r for r in map(self.chain.receipt, hashes) if r is not None), None)

    def check(self, a: AnchorRow) -> AnchorChange | None:
        receipt = self._receipt(a.tx_hashes)
        block = None if receipt is None else self._canonical(receipt)
        if receipt is None or block is None:
            return None if a.status == "lost" else self._gone(a)
        n, block_hash = int(receipt["blockNumber"]), bytes(block["hash"])
        tx = bytes(receipt["transactionHash"])
        facts = {"block_number": n, "block_hash": block_hash, "block_timestamp": int(block["timestamp"]),
                 "gas_used": int(receipt["gasUsed"]), "tx_hash": tx}
        if int(receipt["status"]) != 1:
            why = (f"mined again in block {n} as of block {self.head}, it reverted: another transaction "
                   "changed the log's head first")
            return _mark(self.store, a, "failed", "failed", why, **facts)
        if a.status == "lost" and self._stands_for(a, tx):
            return None  # anchored again by the very same transaction (same nonce, call and fee)
        if a.status == "lost":
            return _mark(self.store, a, "restored", "confirmed", f"mined again in block {n}", error=None,
                         **facts)
        if (a.block_number, a.block_hash, a.tx_hash) == (n, block_hash, tx):
            return None
        return _mark(self.store, a, "moved", "confirmed", f"a reorg re-mined it in block {n}", **facts)

    def _stands_for(self, a: AnchorRow, tx_hash: bytes) -> bool:
        """Does another confirmed anchor already stand for this transaction?"""
        return any(r.id != a.id and r.status == "confirmed" and tx_hash in r.tx_hashes
                   for r in self.store.anchors(a.chain_id, a.contract, "confirmed"))

    def intact(self, a: AnchorRow) -> bool:
        """Is the block the store names for `a` (number and hash) still the chain's block at
        that number? One header lookup; a block hash commits to its transactions."""
        if a.block_number is None or a.block_hash is None or a.block_number > self.head:
            return False
        return bytes(self._block(a.block_number)["hash"]) == a.block_hash

    def _canonical(self, receipt: dict[str, Any]) -> Any | None:
        """The receipt's block if it is the chain's block at that number now, else None."""
        block = self._block(int(receipt["blockNumber"]))
        return block if bytes(block["hash"]) == bytes(receipt["blockHash"]) else None

    def _gone(self, a: AnchorRow) -> AnchorChange:
        if any(self.chain.known(h) for h in a.tx_hashes):
            why = (f"its block was reorganised away as of block {self.head}, and the node holds it pending "
                   "again: `ledger anchor` or `ledger resume` waits for it to be mined again")
            return _mark(self.store, a, "lost", "sent", why)
        why = (f"no longer on chain as of block {self.head}: a reorg dropped it, or the node was reset "
               "(no receipt for it)")
        return _mark(self.store, a, "lost", "lost", why)
