"""The signed-transaction outbox: what is signed is stored before it is sent, and resumed after a crash.

Protocol, shared by the anchorer and the platform (each step durable before the next):

1. The caller builds and signs a transaction with an explicit nonce and stores its signed
   bytes, with status ``sent``, in its journal, in the same database transaction as
   whatever must exist before the chain can see it (the evidence record an escrow step
   cites; the anchor row of a tree head). Only then does it call `Outbox.submit`.
2. `submit` broadcasts the stored bytes, waits for the confirmations on a canonical block,
   and marks the row ``confirmed``, or ``failed`` with the contract's decoded error (which it
   then raises).
3. After a crash, `resume` settles every row its journal still has ``sent``: a transaction
   the node knows is awaited; one the node lost is re-broadcast with the very same bytes
   (same nonce, same hash, so one step never becomes two transactions), unless the journal
   says it was superseded; one the node refuses (its nonce taken by another transaction) is
   marked ``failed`` with the node's reason.

A journal is the caller's table seen through the small `Journal` interface: the anchors
table and the escrow actions table are two journals of one outbox protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ledger.chain.rpc import Chain
from ledger.errors import ChainUnavailable, LedgerError

__all__ = ["Journal", "Outbox", "Pending", "Settlement"]

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pending:
    """A stored signed transaction: its row in the journal, its hash, its bytes, its name."""

    id: int
    tx_hash: bytes
    raw_tx: bytes
    label: str


@dataclass(frozen=True)
class Settlement:
    """How a stored transaction ended: ``confirmed`` or ``failed``, and the facts behind it."""

    status: str
    block_number: int | None = None
    block_hash: bytes | None = None
    block_timestamp: int | None = None
    gas_used: int | None = None
    error: str | None = None


class Journal(Protocol):
    """Where an outbox's transactions are kept (see the module docstring)."""

    #: what resumes a stored transaction after a failure, for the error that reports it
    resume_hint: str

    def pending(self) -> Sequence[Pending]:
        """The rows still ``sent``, in the order they were stored."""
        ...

    def settle(self, row_id: int, settlement: Settlement) -> None:
        """Record how row `row_id` ended."""
        ...

    def superseded(self, row: Pending) -> str | None:
        """Why a row the node no longer knows must not be re-broadcast, or None."""
        ...


class Outbox:
    """Sends a journal's stored transactions on one chain (see the module docstring)."""

    def __init__(self, chain: Chain, journal: Journal) -> None:
        self.chain = chain
        self.journal = journal

    def submit(self, row: Pending, confirmations: int | None = None) -> dict[str, Any]:
        """Broadcast a stored transaction and settle it; raises its decoded error if it reverted."""
        _logger.info("sending %s tx 0x%s", row.label, row.tx_hash.hex())
        try:
            self.chain.broadcast(row.raw_tx)
            receipt, error = self._settle(row, confirmations)
        except ChainUnavailable as exc:
            raise ChainUnavailable(f"{exc}\nThe signed {row.label} transaction 0x{row.tx_hash.hex()} "
                                   f"is stored: {self.journal.resume_hint}") from None
        if error is not None:
            raise error
        return receipt

    def resume(self, confirmations: int | None = None) -> int:
        """Settle the rows an earlier (possibly killed) run left ``sent``; returns how many."""
        pending = list(self.journal.pending())
        for row in pending:
            _logger.info("resuming %s tx 0x%s", row.label, row.tx_hash.hex())
            if self.chain.receipt(row.tx_hash) is None and not self._rebroadcast(row):
                continue
            self._settle(row, confirmations)  # a revert is recorded, not raised: it is history
        return len(pending)

    def _rebroadcast(self, row: Pending) -> bool:
        """Send a lost transaction again with the same bytes; False if it must not or cannot be."""
        why = self.journal.superseded(row)
        if why is not None:
            _logger.warning("%s tx 0x%s not re-sent: %s", row.label, row.tx_hash.hex(), why)
            self.journal.settle(row.id, Settlement("failed", error=why))
            return False
        try:
            self.chain.broadcast(row.raw_tx)
        except ChainUnavailable:
            raise
        except LedgerError as exc:  # e.g. its nonce was taken by another transaction
            _logger.warning("%s tx 0x%s could not be re-sent: %s", row.label, row.tx_hash.hex(), exc)
            self.journal.settle(row.id, Settlement("failed", error=f"re-broadcast failed: {exc}"))
            return False
        return True

    def _settle(self, row: Pending, confirmations: int | None) -> tuple[dict[str, Any], LedgerError | None]:
        """Wait for the row's transaction, record how it ended; (receipt, decoded error or None)."""
        receipt = self.chain.wait(row.tx_hash, confirmations)
        block = self.chain.w3.eth.get_block(receipt["blockNumber"])
        mined = Settlement("confirmed", block_number=int(receipt["blockNumber"]),
                           block_hash=bytes(receipt["blockHash"]), block_timestamp=int(block["timestamp"]),
                           gas_used=int(receipt["gasUsed"]))
        if receipt["status"] != 1:
            error = self.chain.failure(row.tx_hash, row.label)
            _logger.warning("%s tx 0x%s reverted: %s", row.label, row.tx_hash.hex(), error)
            self.journal.settle(row.id, replace(mined, status="failed", error=str(error)))
            return receipt, error
        _logger.info("%s tx 0x%s confirmed in block %s (gas %s)", row.label, row.tx_hash.hex(),
                     mined.block_number, mined.gas_used)
        self.journal.settle(row.id, mined)
        return receipt, None
