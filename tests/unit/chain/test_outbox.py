"""The outbox: stored signed bytes are sent, settled, and resumed after a crash with the same bytes.

A journal that keeps rows in memory stands in for the store's tables, so each protocol point
is tried directly: a normal send, a revert (decoded and recorded), a transaction the node
lost (re-sent, same hash), one it still knows (awaited, not re-sent), one superseded (never
re-sent), and one whose nonce another transaction took (signed again with a fresh nonce if the
call still succeeds, else abandoned with the contract's reason, not raised). The faults of a
real node (stuck, underpriced, replaced, reorganised) are tried on anvil in
tests/integration/test_chain_faults.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from ledger.chain.outbox import Outbox, Pending, Settlement, StillPending
from ledger.chain.rpc import Chain
from ledger.errors import ChainUnavailable, ContractRevert, LedgerError


@dataclass
class MemoryJournal:
    resume_hint = "resume it in the test"
    rows: dict[int, Pending] = field(default_factory=dict)
    outcomes: dict[int, Settlement] = field(default_factory=dict)
    stale: set[int] = field(default_factory=set)
    replaced: list[str] = field(default_factory=list)

    def add(self, chain: Chain, fn, label: str, sender=None, nonce: int | None = None) -> Pending:  # type: ignore[no-untyped-def]
        raw, tx_hash, _ = chain.build_signed(fn, sender, nonce=nonce, context=label, gas=200_000)
        row = Pending(len(self.rows) + 1, tx_hash, raw, label)
        self.rows[row.id] = row
        return row

    def pending(self) -> Sequence[Pending]:
        return [r for i, r in self.rows.items() if i not in self.outcomes]

    def settle(self, row_id: int, settlement: Settlement) -> None:
        assert row_id not in self.outcomes, "a row is settled once"
        self.outcomes[row_id] = settlement

    def superseded(self, row: Pending) -> str | None:
        return "superseded in the test" if row.id in self.stale else None

    def replace(self, row: Pending, raw_tx: bytes, tx_hash: bytes, nonce: int, why: str) -> bool:
        if row.id in self.outcomes:
            return False
        self.rows[row.id] = Pending(row.id, tx_hash, raw_tx, row.label, row.hashes)
        self.replaced.append(why)
        return True

    def taken_nonces(self, sender: str) -> Sequence[int]:
        return []


def _log(chain: Chain):  # type: ignore[no-untyped-def]
    return chain.deploy("EvidenceLog", chain.accounts[0].address)


def _anchor_fn(log, size: int):  # type: ignore[no-untyped-def]
    return log.functions.anchor(size, bytes([size]) * 32, [])


def test_submit_sends_and_records_confirmation(chain: Chain) -> None:
    log, journal = _log(chain), MemoryJournal()
    outbox = Outbox(chain, journal)
    row = journal.add(chain, _anchor_fn(log, 1), "anchor")
    receipt = outbox.submit(row)
    assert bytes(receipt["transactionHash"]) == row.tx_hash
    s = journal.outcomes[row.id]
    assert (s.status, s.block_number, s.gas_used) == ("confirmed", receipt["blockNumber"], receipt["gasUsed"])
    assert s.block_hash == bytes(receipt["blockHash"]) and s.block_timestamp and s.error is None


def test_a_revert_is_recorded_decoded_and_raised(chain: Chain) -> None:
    log, journal = _log(chain), MemoryJournal()
    outbox = Outbox(chain, journal)
    outbox.submit(journal.add(chain, _anchor_fn(log, 2), "anchor"))
    # Signed before the first one was mined would pass simulation; build it with a fixed gas
    # (no simulation) for a smaller size, which the log refuses: it only grows.
    row = journal.add(chain, _anchor_fn(log, 1), "anchor")
    with pytest.raises(ContractRevert) as err:
        outbox.submit(row)
    assert err.value.error_name == "EvidenceLogNotExtending"
    s = journal.outcomes[row.id]
    assert s.status == "failed" and "EvidenceLogNotExtending" in (s.error or "") and s.block_number


def test_resume_resends_lost_bytes_and_awaits_known_ones(chain: Chain) -> None:
    journal = MemoryJournal()
    outbox = Outbox(chain, journal)
    known = journal.add(chain, _anchor_fn(_log(chain), 1), "anchor")
    chain.broadcast(known.raw_tx)  # sent before the "crash"; the node has it
    lost = journal.add(chain, _anchor_fn(_log(chain), 2), "anchor")  # stored, never sent
    assert len(outbox.resume()) == 2
    assert [journal.outcomes[r.id].status for r in (known, lost)] == ["confirmed", "confirmed"]
    for r in (known, lost):  # the very transactions that were signed, nothing new
        assert bytes(chain.receipt(r.tx_hash)["transactionHash"]) == r.tx_hash
    assert len(outbox.resume()) == 0


def test_resume_never_resends_a_superseded_row(chain: Chain) -> None:
    log, journal = _log(chain), MemoryJournal()
    row = journal.add(chain, _anchor_fn(log, 1), "anchor")
    journal.stale.add(row.id)
    assert len(Outbox(chain, journal).resume()) == 1
    assert journal.outcomes[row.id] == Settlement("abandoned", error="superseded in the test")
    assert chain.receipt(row.tx_hash) is None


def test_a_nonce_taken_by_another_transaction_is_signed_again_if_the_call_still_succeeds(
        chain: Chain) -> None:
    log, other, journal = _log(chain), _log(chain), MemoryJournal()
    outbox = Outbox(chain, journal)
    sender = chain.accounts[0]
    nonce = int(chain.w3.eth.get_transaction_count(sender.address))
    row = journal.add(chain, _anchor_fn(log, 2), "anchor", sender, nonce=nonce)
    chain._nonces.clear()  # another process on the key (its own nonce cache) used that nonce
    chain.transact(_anchor_fn(other, 1), sender)
    [outcome] = outbox.resume()
    assert outcome.status == "confirmed" and journal.outcomes[row.id].status == "confirmed"
    assert chain.receipt(row.tx_hash) is None  # the original can never be mined
    [why] = journal.replaced
    assert why == f"nonce {nonce} was used by another transaction; signed again with nonce {nonce + 1}"
    assert journal.outcomes[row.id].tx_hash == journal.rows[row.id].tx_hash != row.tx_hash
    assert chain.call(log.functions.latestHead())[0] == 2


def test_a_nonce_taken_by_another_transaction_is_abandoned_if_the_call_would_now_fail(
        chain: Chain) -> None:
    log, journal = _log(chain), MemoryJournal()
    outbox = Outbox(chain, journal)
    sender = chain.accounts[0]
    nonce = int(chain.w3.eth.get_transaction_count(sender.address))
    row = journal.add(chain, _anchor_fn(log, 1), "anchor", sender, nonce=nonce)
    chain._nonces.clear()  # another process on the key took the nonce, and the head
    chain.transact(_anchor_fn(log, 3), sender)
    [outcome] = outbox.resume()  # recorded, not raised: the run goes on
    s = journal.outcomes[row.id]
    assert outcome.status == s.status == "abandoned"
    assert (s.error or "").startswith(f"its nonce {nonce} was used by another transaction, and the call "
                                      "would now fail: ") and "EvidenceLogNotExtending" in (s.error or "")
    assert chain.receipt(row.tx_hash) is None and journal.replaced == []


def test_a_node_lost_after_broadcast_leaves_the_row_pending_and_says_how_to_resume(
        chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    log, journal = _log(chain), MemoryJournal()
    row = journal.add(chain, _anchor_fn(log, 1), "anchor")

    def gone(*args: object, **kw: object) -> None:
        raise ChainUnavailable("the node at http://127.0.0.1:1 stopped answering during "
                               "eth_getTransactionReceipt (Connection reset by peer)")

    monkeypatch.setattr(chain, "await_receipts", gone)
    with pytest.raises(StillPending) as err:  # exit 75 (EX_TEMPFAIL): stored, try again later
        Outbox(chain, journal).submit(row)
    assert err.value.exit_code == 75
    assert str(err.value).endswith(f"\nThe signed anchor transaction 0x{row.tx_hash.hex()} is stored: "
                                   "resume it in the test")
    assert journal.pending() == [row]  # not settled: the next run resumes it
    monkeypatch.undo()
    assert len(Outbox(chain, journal).resume()) == 1 and journal.outcomes[row.id].status == "confirmed"


def test_a_nonce_gap_is_filled_and_the_stored_transaction_mined_as_signed(chain: Chain) -> None:
    """A transaction signed past a nonce that no transaction holds (the one before it was lost
    for good) is neither mined nor signed again lower (its original could surface and mine the
    step twice): the gap is filled with a zero-value transfer to itself, then it is mined."""
    log, journal = _log(chain), MemoryJournal()
    sender = chain.accounts[0]
    nonce = chain.pending_nonce(sender.address)
    row = journal.add(chain, _anchor_fn(log, 1), "anchor", sender, nonce=nonce + 1)
    try:
        chain.broadcast(row.raw_tx)  # anvil queues it behind the gap; the embedded chain refuses it
    except LedgerError:
        pass
    [outcome] = Outbox(chain, journal).resume(timeout=30)
    assert outcome.status == "confirmed" and journal.replaced == []
    assert bytes(chain.receipt(row.tx_hash)["transactionHash"]) == row.tx_hash  # the very bytes signed
    gap_txs = [t for b in range(1, chain.w3.eth.block_number + 1)
               for t in chain.w3.eth.get_block(b, True)["transactions"]
               if t["from"] == sender.address and t["nonce"] == nonce]
    assert [(t["to"], t["value"]) for t in gap_txs] == [(sender.address, 0)]


def test_resume_reports_a_row_it_cannot_drive_and_goes_on_with_the_others(
        chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    """One stored transaction that cannot be driven now (the node refuses it for a reason the
    outbox cannot fix) stays ``sent`` and is reported; the rows after it are still settled."""
    logs, journal = (_log(chain), _log(chain)), MemoryJournal()
    first, second = (journal.add(chain, _anchor_fn(log, 1), "anchor") for log in logs)
    outbox = Outbox(chain, journal)
    real = outbox._drive

    def drive(row: Pending, *a: object) -> object:
        if row.id == first.id:
            raise LedgerError("the node refuses it: some reason")
        chain.broadcast(first.raw_tx)  # (so that the second, its successor in nonce, can be mined)
        chain.broadcast(row.raw_tx)
        return real(row, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(outbox, "_drive", drive)
    outcomes = outbox.resume()
    assert [(o.row.id, o.status) for o in outcomes] == [(first.id, "sent"), (second.id, "confirmed")]
    assert outcomes[0].detail == "not settled: the node refuses it: some reason"
    assert first.id not in journal.outcomes and journal.outcomes[second.id].status == "confirmed"
