"""The signed-transaction outbox: what is signed is stored before it is sent, and finished or
abandoned, never lost, whatever the chain does.

Protocol, shared by the anchorer and the platform (each step durable before the next):

1. Under the sender's nonce lock (`Outbox.signing`: one process at a time per key, and a
   nonce past every one the journals still hold), the caller signs a transaction and stores
   its bytes, with status ``sent``, in its journal, in the same database transaction as
   whatever must exist before the chain can see it (the held evidence records of an escrow
   step; the anchor row of a tree head); then broadcasts it (`Outbox.broadcast`).
2. `finish` drives it until it is settled: mined and confirmed on a canonical block
   (``confirmed``), mined and reverted (``failed``, with the contract's decoded error, which
   it raises), or provably never to be mined (``abandoned``, with the reason). While it is
   not mined it acts on what the node says:

   * the node lost it (a restart, a dropped transaction): the very same bytes are sent again;
   * it bids less than the next block's base fee, or waits unmined past ``bump_after``: it
     is replaced by the same call with the same nonce at a higher fee (`ledger.chain.fees`,
     up to the ceiling), and both hashes are kept, since either may be the one mined;
   * its nonce was taken by another transaction (another process on the key): it can never
     be mined, so the call is simulated again and, if it would still succeed, signed with a
     fresh nonce; a journal may instead declare it superseded (an anchor whose head the chain
     passed), and a call that would now revert is abandoned with the contract's reason.

   Replacing needs the sender's key; without it the row stays ``sent`` and the error names
   the key. When the time runs out the row stays ``sent`` and `StillPending` says why and
   what to run (`ledger resume`).
3. After a crash, `resume` drives every row its journal still has ``sent`` the same way.

A journal is the caller's table seen through the small `Journal` interface: the anchors
table and the escrow actions table are two journals of one outbox protocol.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount

from ledger.chain.fees import FeeCeiling, bumped, fees_of, fresh, gwei, resign
from ledger.chain.rpc import Chain
from ledger.errors import ChainUnavailable, LedgerError

__all__ = ["Journal", "NeedsKey", "Outbox", "Outcome", "Pending", "Settlement", "StillPending"]

_logger = logging.getLogger(__name__)

BUMP_AFTER = 60.0  # seconds a transaction may wait unmined at a sufficient fee before a tip bump
CHECK_EVERY = 1.0  # seconds between looks at the nonce, the mempool and the base fee
MAX_GAP = 8  # missing nonces the outbox fills by itself; more suggests a reset node


class StillPending(ChainUnavailable):
    """A stored transaction was not settled in time; it stays ``sent`` for `ledger resume`."""

    exit_code = 75  # EX_TEMPFAIL: nothing is lost, try again later


class NeedsKey(StillPending):
    """A stored transaction must be replaced, and the sender's key is not at hand."""


@dataclass(frozen=True)
class Pending:
    """A stored signed transaction: its row in the journal, its latest hash and bytes, its
    name, and the hashes of the attempts it replaced."""

    id: int
    tx_hash: bytes
    raw_tx: bytes
    label: str
    earlier: tuple[bytes, ...] = ()

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return (self.tx_hash, *self.earlier)


@dataclass(frozen=True)
class Settlement:
    """How a stored transaction ended, and the facts behind it (`tx_hash`: the attempt mined)."""

    status: str
    block_number: int | None = None
    block_hash: bytes | None = None
    block_timestamp: int | None = None
    gas_used: int | None = None
    error: str | None = None
    tx_hash: bytes | None = None


@dataclass(frozen=True)
class Outcome:
    """What `resume` did with one stored transaction."""

    row: Pending
    status: str  # confirmed | failed | abandoned | sent (still pending)
    detail: str


class Journal(Protocol):
    """Where an outbox's transactions are kept (see the module docstring)."""

    #: what resumes a stored transaction after a failure, for the error that reports it
    resume_hint: str

    def pending(self) -> Sequence[Pending]:
        """The rows still ``sent``, in the order they were stored."""
        ...

    def settle(self, row_id: int, settlement: Settlement) -> None:
        """Record how row `row_id` ended (if it is still ``sent``)."""
        ...

    def superseded(self, row: Pending) -> str | None:
        """Why a row whose nonce was taken must not be signed again, or None."""
        ...

    def replace(self, row: Pending, raw_tx: bytes, tx_hash: bytes, nonce: int, why: str) -> bool:
        """Make (raw_tx, tx_hash, nonce) the row's latest attempt, keeping the earlier ones;
        False if the row is no longer ``sent`` (settled meanwhile: nothing is changed)."""
        ...

    def taken_nonces(self, sender: str) -> Sequence[int]:
        """The nonces of `sender` that stored, unsettled transactions hold."""
        ...


class Outbox:
    """Sends a journal's stored transactions on one chain (see the module docstring)."""

    def __init__(self, chain: Chain, journal: Journal, signers: Mapping[str, LocalAccount] | None = None,
                 ) -> None:
        self.chain = chain
        self.journal = journal
        self.signers = {a.address.lower(): a for a in chain.accounts}
        self.signers.update({k.lower(): v for k, v in (signers or {}).items()})
        self.bump_after = BUMP_AFTER
        chain.held_nonces = journal.taken_nonces  # the chain's other transactions skip them too

    # -- sending -------------------------------------------------------------------------
    @contextlib.contextmanager
    def signing(self, sender: LocalAccount) -> Iterator[int]:
        """Hold `sender`'s nonce lock and yield the nonce to sign with; store and broadcast
        before leaving the block."""
        self.signers.setdefault(sender.address.lower(), sender)
        with self.chain.nonce_lock(sender.address):
            yield self.chain._next_nonce(sender.address, self.journal.taken_nonces(sender.address),
                                         reserve=False)

    def broadcast(self, row: Pending) -> None:
        """Send a stored transaction. A node that does not answer is an error that says the
        transaction is stored; a node that refuses it (a fee too low, a nonce taken) is left
        to `finish`, which replaces it."""
        _logger.info("sending %s tx 0x%s", row.label, row.tx_hash.hex())
        try:
            self.chain.broadcast(row.raw_tx)
        except ChainUnavailable as exc:
            raise StillPending(f"{exc}\nThe signed {row.label} transaction 0x{row.tx_hash.hex()} "
                               f"is stored: {self.journal.resume_hint}") from None
        except LedgerError as exc:
            _logger.warning("the node refused %s tx 0x%s: %s", row.label, row.tx_hash.hex(), exc)

    def submit(self, row: Pending, confirmations: int | None = None, timeout: float | None = None,
               ) -> dict[str, Any]:
        """`broadcast`, then `finish`."""
        self.broadcast(row)
        return self.finish(row, confirmations, timeout)

    def finish(self, row: Pending, confirmations: int | None = None, timeout: float | None = None,
               ) -> dict[str, Any]:
        """Drive a stored transaction until it is settled (see the module docstring); its
        receipt. Raises its decoded error if it reverted, `LedgerError` if it was abandoned,
        `StillPending` if it is not settled in time."""
        try:
            outcome, receipt, error = self._drive(row, confirmations, timeout)
        except StillPending:
            raise
        except ChainUnavailable as exc:  # stored, so nothing is lost: try again later
            raise StillPending(f"{exc}\nThe signed {row.label} transaction 0x{row.tx_hash.hex()} "
                               f"is stored: {self.journal.resume_hint}") from None
        if error is not None:
            raise error
        if receipt is None:
            raise LedgerError(f"the {row.label} transaction was abandoned: {outcome.detail}")
        return receipt

    def resume(self, confirmations: int | None = None, timeout: float | None = None) -> list[Outcome]:
        """Drive every row an earlier (possibly killed) run left ``sent``; how each ended. A
        row that is still not settled in time, or that cannot be driven now (its key is
        missing, the node refuses it), stays ``sent`` and is reported, not raised, unless the
        node stops answering."""
        return [self.resume_row(row, confirmations, timeout) for row in list(self.journal.pending())]

    def resume_row(self, row: Pending, confirmations: int | None = None, timeout: float | None = None,
                   ) -> Outcome:
        """`resume` for one row."""
        _logger.info("resuming %s tx 0x%s", row.label, row.tx_hash.hex())
        try:
            outcome, _, _ = self._drive(row, confirmations, timeout)
        except StillPending as exc:
            return Outcome(row, "sent", str(exc))
        except ChainUnavailable:
            raise
        except LedgerError as exc:
            return Outcome(row, "sent", f"not settled: {exc}")
        return outcome

    # -- driving -------------------------------------------------------------------------
    def _drive(self, row: Pending, confirmations: int | None, timeout: float | None,
               ) -> tuple[Outcome, dict[str, Any] | None, LedgerError | None]:
        limit = self.chain.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        sent_at = time.monotonic()
        last_check = 0.0

        def stop() -> bool:
            nonlocal last_check
            if time.monotonic() - last_check < CHECK_EVERY:
                return False
            last_check = time.monotonic()
            return self._trouble(row, time.monotonic() - sent_at) is not None

        while True:
            left = max(deadline - time.monotonic(), 0.0)
            receipt = self.chain.await_receipts(row.hashes, confirmations, left, stop=stop)
            if receipt is not None:
                return self._settle(row, receipt)
            trouble = self._trouble(row, time.monotonic() - sent_at)
            if trouble is not None:
                new = self._act_on(row, trouble)
                if isinstance(new, Outcome):
                    return new, None, None
                if new is not row:
                    row, sent_at = new, time.monotonic()
                last_check = time.monotonic()
            if time.monotonic() >= deadline:
                raise StillPending(self._stuck_message(row, limit))

    def _trouble(self, row: Pending, waited: float) -> str | None:
        """Why `row` (not yet mined) needs the outbox to act, or None while waiting is right:
        ``taken`` (its nonce is used), ``gap`` (a lower nonce of the sender is neither pending
        nor held by a stored transaction), ``lost`` (the node does not know it),
        ``underpriced`` (it bids under the next base fee), ``slow`` (unmined past `bump_after`)."""
        fees = fees_of(row.raw_tx)
        mined = self.chain.confirmed_nonce(fees.sender)
        if mined > fees.nonce:
            if any(self.chain.receipt(h) is not None for h in row.hashes):
                return None  # ours was mined: the wait picks it up
            return "taken"
        if self._missing_nonces(fees.sender, fees.nonce):
            return "gap"  # held in a queue (or refused) until nonces no stored transaction holds exist
        known = self.chain.known(row.tx_hash)
        if fees.max_fee < self.chain.next_base_fee():
            return "underpriced"  # held or dropped alike: only a higher fee gets it mined
        if not known:
            return "lost"
        # Behind an earlier transaction of the sender that is not mined, a higher fee cannot help.
        return "slow" if waited > self.bump_after and mined == fees.nonce else None

    def _act_on(self, row: Pending, trouble: str) -> Pending | Outcome:
        """Do what `trouble` asks; the row to wait for next (itself, or its replacement), or
        the outcome if it was abandoned."""
        fees = fees_of(row.raw_tx)
        if trouble in ("lost", "taken", "gap"):
            why = self.journal.superseded(row)
            if why is not None:
                return self._abandon(row, why)
        signer = self.signers.get(fees.sender.lower())
        if trouble == "gap":
            filled = self._on_gap(row, signer)
            if filled is not None:
                return filled
            trouble = "lost"
        if trouble == "lost":
            _logger.warning("%s tx 0x%s unknown to the node: sending the same bytes again", row.label,
                            row.tx_hash.hex())
            try:
                self.chain.broadcast(row.raw_tx)
                return row
            except ChainUnavailable:
                raise
            except LedgerError as exc:
                if self._trouble(row, 0.0) == "taken":
                    return row  # the next look signs it again
                if fees.max_fee >= self.chain.next_base_fee():
                    raise StillPending(f"the node refuses the stored {row.label} transaction 0x"
                                       f"{row.tx_hash.hex()}: {exc}. {self.journal.resume_hint}") from None
                # A node that evicts what bids under the base fee (anvil does) refuses it back:
                # it is replaced at a higher fee, as if it were still pending.
                trouble = "underpriced"
        if trouble == "taken":
            if signer is None:
                raise NeedsKey(f"the {row.label} transaction 0x{row.tx_hash.hex()} can never be mined: its "
                               f"nonce {fees.nonce} was used by another transaction of {fees.sender}. "
                               f"Signing it again needs that key: {self.journal.resume_hint}")
            return self._resign(row, signer, fees.nonce)
        if signer is None:
            raise NeedsKey(f"the {row.label} transaction 0x{row.tx_hash.hex()} is not being mined "
                           f"({self._why_unmined(row)}); replacing it at a higher fee needs the key of "
                           f"{fees.sender}: {self.journal.resume_hint}")
        return self._bump(row, signer, trouble)

    def _on_gap(self, row: Pending, signer: LocalAccount | None) -> Pending | Outcome | None:
        """A lower nonce of the sender is missing: abandon the row if its call would now fail
        (a reset node may hold another contract at that address), else fill the gap (a few
        nonces at most: more suggests a reset); the row to wait for, its outcome, or None if
        it must be sent again."""
        fees = fees_of(row.raw_tx)
        missing = self._missing_nonces(fees.sender, fees.nonce)
        if signer is None:
            raise NeedsKey(f"the {row.label} transaction 0x{row.tx_hash.hex()} waits for nonce(s) {missing} "
                           f"of {fees.sender}, which no transaction holds; filling them needs that key: "
                           f"{self.journal.resume_hint}")
        try:
            self.chain.simulate(row.raw_tx, row.label)
        except ChainUnavailable:
            raise
        except LedgerError as exc:
            return self._abandon(row, f"nonce(s) {missing} of {fees.sender} before it are missing (was "
                                      f"the node reset?), and the call would now fail: {exc}")
        if len(missing) > MAX_GAP:
            raise StillPending(f"the {row.label} transaction 0x{row.tx_hash.hex()} has nonce "
                               f"{fees.nonce}, {len(missing)} past the chain's next nonce of "
                               f"{fees.sender}: was the node reset? Filling more than {MAX_GAP} nonces "
                               f"is left to you. {self.journal.resume_hint}")
        self._fill_gap(signer, fees.nonce)
        return row if self.chain.known(row.tx_hash) else None  # queued behind the gap: mined now

    def _fill_gap(self, signer: LocalAccount, nonce: int) -> None:
        """The node's next nonce for `signer` is below `nonce` and no stored transaction of ours
        holds the ones between (they would be pending): fill each with a zero-value transfer to
        itself, so the stored transaction can be mined as it was signed. (Signing it again at a
        lower nonce instead could mine the step twice, should the original surface later.)"""
        for n in self._missing_nonces(signer.address, nonce):
            max_fee, tip = self._fresh_fees(f"filling nonce {n} of {signer.address}")
            tx: Any = {"to": signer.address, "value": 0, "gas": 21_000, "chainId": self.chain.chain_id,
                       "nonce": n, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}
            self.chain.say(f"nonce {n} of {signer.address} is missing (a transaction lost before it): "
                           "filling it with a zero-value transfer to itself")
            self.chain.broadcast(bytes(signer.sign_transaction(tx).raw_transaction))

    def _missing_nonces(self, sender: str, nonce: int) -> list[int]:
        """The nonces of `sender` below `nonce` that the node has neither mined nor pending and
        that no stored, unsettled transaction holds (those are resumed in their turn)."""
        below = range(self.chain.pending_nonce(sender), nonce)
        if not below:
            return []
        taken = set(self.journal.taken_nonces(sender))
        return [n for n in below if n not in taken]

    def _abandon(self, row: Pending, why: str) -> Outcome:
        _logger.warning("%s tx 0x%s abandoned: %s", row.label, row.tx_hash.hex(), why)
        self.chain.say(f"{row.label} tx 0x{row.tx_hash.hex()[:12]}… abandoned: {why}")
        self.journal.settle(row.id, Settlement("abandoned", error=why))
        return Outcome(row, "abandoned", why)

    def _resign(self, row: Pending, signer: LocalAccount, old_nonce: int) -> Pending | Outcome:
        """Sign the call again with a fresh nonce, if it would still succeed."""
        try:
            self.chain.simulate(row.raw_tx, row.label)
        except ChainUnavailable:
            raise
        except LedgerError as exc:
            return self._abandon(row, f"its nonce {old_nonce} was used by another transaction, and the "
                                      f"call would now fail: {exc}")
        max_fee, tip = self._fresh_fees(f"signing the {row.label} transaction again")
        with self.signing(signer) as nonce:
            raw, tx_hash, nonce = resign(row.raw_tx, signer, nonce=nonce, max_fee=max_fee, tip=tip)
            why = f"nonce {old_nonce} was used by another transaction; signed again with nonce {nonce}"
            return self._replace(row, raw, tx_hash, nonce, why)

    def _fresh_fees(self, what: str) -> tuple[int, int]:
        """Fees for a transaction the outbox signs anew, under the chain's fee ceiling."""
        try:
            return fresh(self.chain.next_base_fee(), self.chain.suggested_tip(), self.chain.max_fee)
        except FeeCeiling as exc:
            raise StillPending(f"{what}: {exc}. Raise the ceiling, or wait for fees to fall: "
                               f"{self.journal.resume_hint}") from None

    def _bump(self, row: Pending, signer: LocalAccount, trouble: str) -> Pending:
        fees = fees_of(row.raw_tx)
        base = self.chain.next_base_fee()
        try:
            max_fee, tip = bumped(fees, base, self.chain.suggested_tip(), self.chain.max_fee)
        except FeeCeiling as exc:
            raise StillPending(f"the {row.label} transaction 0x{row.tx_hash.hex()} is not being mined and "
                               f"{exc}. Raise the ceiling, or wait for fees to fall: "
                               f"{self.journal.resume_hint}") from None
        with self.signing(signer):
            raw, tx_hash, nonce = resign(row.raw_tx, signer, max_fee=max_fee, tip=tip)
            cause = (f"its max fee {gwei(fees.max_fee)} was below the base fee {gwei(base)}"
                     if trouble == "underpriced" else f"unmined for {self.bump_after:.0f}s")
            why = f"replaced ({cause}): max fee {gwei(max_fee)}, tip {gwei(tip)}"
            return self._replace(row, raw, tx_hash, nonce, why)

    def _replace(self, row: Pending, raw: bytes, tx_hash: bytes, nonce: int, why: str) -> Pending:
        if not self.journal.replace(row, raw, tx_hash, nonce, why):
            raise LedgerError(f"the {row.label} transaction 0x{row.tx_hash.hex()} was settled by another "
                              "process meanwhile: not replaced (its stored status says how it ended)")
        new = Pending(row.id, tx_hash, raw, row.label, row.hashes)
        self.chain.say(f"{row.label} tx 0x{row.tx_hash.hex()[:12]}… {why}: now tx 0x{tx_hash.hex()[:12]}…")
        self.broadcast(new)
        return new

    def _why_unmined(self, row: Pending) -> str:
        fees = fees_of(row.raw_tx)
        base = self.chain.next_base_fee()
        if fees.max_fee < base:
            return f"it bids a max fee of {gwei(fees.max_fee)}, below the next base fee {gwei(base)}"
        if not self.chain.known(row.tx_hash):
            return "the node no longer has it"
        mined = self.chain.confirmed_nonce(fees.sender)
        if mined < fees.nonce:
            return (f"it waits behind {fees.nonce - mined} earlier transaction(s) of {fees.sender} that "
                    f"are not mined (from nonce {mined}: `ledger resume` finishes the stored ones)")
        return f"the node holds it pending at a max fee of {gwei(fees.max_fee)}, tip {gwei(fees.tip)}"

    def _stuck_message(self, row: Pending, limit: float) -> str:
        return (f"the {row.label} transaction 0x{row.tx_hash.hex()} was not settled within {limit:.0f}s on "
                f"{self.chain.describe()}: {self._why_unmined(row)}. It is stored: "
                f"{self.journal.resume_hint} (--timeout SECONDS waits longer; --max-fee GWEI allows a "
                "higher replacement fee)")

    def _settle(self, row: Pending, receipt: dict[str, Any],
                ) -> tuple[Outcome, dict[str, Any], LedgerError | None]:
        """Record how the mined attempt ended; (outcome, receipt, decoded error or None)."""
        mined_hash = bytes(receipt["transactionHash"])
        block = self.chain.w3.eth.get_block(receipt["blockNumber"])
        mined = Settlement("confirmed", block_number=int(receipt["blockNumber"]),
                           block_hash=bytes(receipt["blockHash"]), block_timestamp=int(block["timestamp"]),
                           gas_used=int(receipt["gasUsed"]), tx_hash=mined_hash)
        if receipt["status"] != 1:
            error = self.chain.failure(mined_hash, row.label)
            _logger.warning("%s tx 0x%s reverted: %s", row.label, mined_hash.hex(), error)
            self.journal.settle(row.id, replace(mined, status="failed", error=str(error)))
            return Outcome(row, "failed", str(error)), receipt, error
        _logger.info("%s tx 0x%s confirmed in block %s (gas %s)", row.label, mined_hash.hex(),
                     mined.block_number, mined.gas_used)
        self.journal.settle(row.id, mined)
        return Outcome(row, "confirmed", f"block {mined.block_number}"), receipt, None
