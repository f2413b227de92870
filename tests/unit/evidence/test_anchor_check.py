"""Re-checking stored anchors against the chain as it is now, on the embedded chain.

A snapshot reverted models a reorg that drops the anchor (or a reset, when the snapshot
predates the EvidenceLog); the same signed bytes sent again after the revert land in another
block (a reorg that moves it). Attacks tried: reporting as confirmed a head whose
transaction the chain no longer holds, citing a stale block for one it re-mined, and lost
anchors buried under many new blocks taken on trust.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.chain import rpc
from ledger.chain.outbox import Pending
from ledger.chain.rpc import Chain
from ledger.dev.flash_sale import generate_flash_sale, to_jsonl
from ledger.evidence import records as rec
from ledger.evidence.anchor import Anchorer, AnchorJournal, chain_head
from ledger.evidence.anchor_check import recheck_anchors, recheck_chain
from ledger.evidence.journal import AnchorRow
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store


@pytest.fixture(scope="module")
def sale() -> list[dict[str, Any]]:
    return generate_flash_sale(seed=21, orders=6, merchants=1, start="2026-11-11T12:00:00Z")


class World:
    def __init__(self, tmp: Path, sale: list[dict[str, Any]]) -> None:
        self.chain: Chain = rpc.embedded()
        self.genesis = self.chain.snapshot()
        self.log = self.chain.deploy("EvidenceLog", self.chain.accounts[0].address)
        self.store = Store(tmp / "s.sqlite3", MasterSecret.generate())
        self.anchorer = Anchorer(self.store, self.chain, self.log)
        self.sale = sale

    def ingest(self, part: list[dict[str, Any]]) -> None:
        self.store.ingest(rec.parse_jsonl(to_jsonl(part), source="t"), source="t")

    def anchor(self, part: list[dict[str, Any]]) -> AnchorRow:
        self.ingest(part)
        assert self.anchorer.anchor().head is not None
        return self.latest()

    def latest(self) -> AnchorRow:
        row = self.store.latest_confirmed(self.chain.chain_id, self.log.address)
        assert row is not None
        return row

    def row(self, anchor_id: int) -> AnchorRow:
        [row] = [a for a in self.store.anchors() if a.id == anchor_id]
        return row

    def recheck(self, **kw: Any) -> Any:
        return recheck_anchors(self.store, self.chain, self.log.address, **kw)


@pytest.fixture
def world(tmp_path: Path, sale: list[dict[str, Any]]) -> Iterator[World]:
    w = World(tmp_path, sale)
    yield w
    w.store.close()


def test_an_anchor_the_chain_holds_is_left_as_it_is(world: World) -> None:
    first = world.anchor(world.sale[:10])
    result = world.recheck()
    assert result.changes == () and result.checked == 0  # its block is intact: no receipt needed
    assert world.recheck(full=True).changes == () and world.row(first.id) == first


def test_a_dropped_anchor_is_lost_and_anchored_again_from_the_chains_head(world: World) -> None:
    first = world.anchor(world.sale[:10])
    snap = world.chain.snapshot()
    second = world.anchor(world.sale[10:])
    world.chain.revert_to(snap)  # the second anchor's block is gone
    [change] = world.recheck().changes
    assert change.kind == "lost" and change.row.status == "lost" and change.was_block == second.block_number
    assert "no longer on chain" in (change.row.error or "") and "no longer on chain" in change.text()
    assert world.latest() == first  # the surviving anchor is the one reported
    assert world.recheck().changes == ()  # said once
    outcome = world.anchorer.anchor()
    assert outcome.head is not None and outcome.previous.size == first.size
    again = world.latest()
    assert again.size == second.size and again.id != second.id
    # Re-signed with the same nonce, call and fee it may be the very same transaction: the lost
    # row is not restored beside the new one.
    assert world.recheck().changes == () and world.row(second.id).status == "lost"


def test_ledger_anchor_reports_what_it_found_and_re_anchors(world: World) -> None:
    world.ingest(world.sale)
    snap = world.chain.snapshot()
    lost = world.anchorer.anchor()
    world.chain.revert_to(snap)  # back to a chain whose head is empty: size 0
    outcome = world.anchorer.anchor()
    assert [c.kind for c in outcome.rechecked] == ["lost"]
    assert outcome.head is not None and outcome.previous.size == 0 and lost.head is not None
    assert chain_head(world.chain, world.log).size == world.store.size


def test_a_re_mined_anchor_moves_to_its_new_block(world: World) -> None:
    world.ingest(world.sale)
    snap = world.chain.snapshot()
    world.anchorer.anchor()
    row = world.latest()
    world.chain.revert_to(snap)
    world.chain.mine(2)
    world.chain.broadcast(row.raw_tx)  # the same signed bytes, two blocks later
    [change] = world.recheck().changes
    assert change.kind == "moved" and change.was_block == row.block_number
    now = world.row(row.id)
    block = world.chain.w3.eth.get_block(now.block_number or 0)
    assert now.status == "confirmed" and now.block_number == (row.block_number or 0) + 2
    assert now.block_hash == bytes(block["hash"]) and now.block_timestamp == int(block["timestamp"])
    assert f"moved from block {row.block_number} to block {now.block_number}" in change.text()
    outcome = world.anchorer.anchor()  # nothing new, and the moved facts are what is stored
    assert outcome.head is None and outcome.rechecked == () and world.latest() == now


def test_a_lost_anchor_mined_again_is_restored(world: World) -> None:
    world.ingest(world.sale)
    snap = world.chain.snapshot()
    world.anchorer.anchor()
    row = world.latest()
    world.chain.revert_to(snap)
    assert [c.kind for c in world.recheck().changes] == ["lost"]
    world.chain.broadcast(row.raw_tx)
    [change] = world.recheck().changes
    assert change.kind == "restored" and change.row.status == "confirmed" and change.row.error is None
    assert world.latest().id == row.id


def test_a_reset_node_loses_every_anchor_and_says_to_deploy_again(world: World) -> None:
    world.anchor(world.sale[:10])
    world.anchor(world.sale[10:])
    world.chain.revert_to(world.genesis)  # the EvidenceLog itself is gone
    [result] = recheck_chain(world.store, world.chain)
    assert {c.kind for c in result.changes} == {"lost"} and len(result.changes) == 2
    assert all("ledger deploy --redeploy" in (c.row.error or "") for c in result.changes)
    assert world.store.latest_confirmed(world.chain.chain_id, world.log.address) is None


def test_an_unchanged_chain_costs_no_receipt_lookup(world: World) -> None:
    world.anchor(world.sale[:6])
    world.anchor(world.sale[6:12])
    world.anchor(world.sale[12:])
    world.chain.mine(5)
    result = world.recheck()
    assert result.changes == () and result.checked == 0  # the latest anchor's block is intact
    assert world.recheck(full=True).checked == 3


def test_a_chain_gone_back_any_depth_is_found(world: World) -> None:
    first = world.anchor(world.sale[:6])
    snap = world.chain.snapshot()
    second = world.anchor(world.sale[6:12])
    third = world.anchor(world.sale[12:])
    world.chain.revert_to(snap)
    world.chain.mine(300)  # the lost anchors' blocks are long buried under new ones
    result = world.recheck()
    assert sorted(c.row.id for c in result.changes) == [second.id, third.id]
    assert result.checked == 2 and world.latest() == first  # the first one's block is intact


def _signed_anchor(world: World, contract: Any, size: int) -> tuple[int, Any]:
    """A stored, signed, unbroadcast anchor of the local head at `size` on `contract`."""
    root = world.store.tree.root(size)
    raw, tx_hash, nonce = world.chain.build_signed(contract.functions.anchor(size, root, []),
                                                   world.chain.accounts[0], context="anchor")
    anchor_id = world.store.record_sent_anchor(
        chain_id=world.chain.chain_id, contract=contract.address, size=size, root=root, prev_size=0,
        sender=world.chain.accounts[0].address, nonce=nonce, tx_hash=tx_hash, raw_tx=raw)
    return anchor_id, Pending(anchor_id, tx_hash, raw, "anchor")


def test_a_displaced_anchor_is_judged_by_its_own_stored_size(world: World) -> None:
    """Whether an anchor whose nonce was taken is superseded depends on ITS head's size, read
    from the store, even in a run that never listed the pending rows (an anchor displaced
    while `ledger anchor` drives it): not "covers size 0", which would abandon every one."""
    world.ingest(world.sale[:10])
    size = world.store.size
    _, row = _signed_anchor(world, world.log, size)
    journal = AnchorJournal(world.store, world.chain, world.log)
    assert journal.superseded(row) is None  # the chain's head (0) does not cover it: sign again
    world.chain.wait(world.chain.broadcast(row.raw_tx))
    assert journal.superseded(row) == f"superseded: the chain's head (size {size}) already covers size {size}"


def test_an_anchor_left_pending_on_an_earlier_log_is_still_driven(world: World) -> None:
    """A redeploy moved the log while an anchor on the old one was pending: it still holds a
    nonce of the key, so it is resumed (or abandoned with the reason), never left to block."""
    world.ingest(world.sale[:10])
    new_log = world.chain.deploy("EvidenceLog", world.chain.accounts[0].address)
    old_id, _ = _signed_anchor(world, world.log, world.store.size)  # signed before the move, say
    journal = AnchorJournal(world.store, world.chain, new_log)
    assert [p.id for p in journal.pending()] == [old_id]
    [outcome] = Anchorer(world.store, world.chain, new_log).resume()
    assert outcome.status == "confirmed" and world.row(old_id).status == "confirmed"
    assert chain_head(world.chain, world.log).size == world.store.size  # on the old log, as signed
    gone = world.chain.w3.eth.contract(address="0x" + "33" * 20, abi=world.log.abi)
    _, row = _signed_anchor_to(world, gone)
    assert "has no code on chain" in (journal.superseded(row) or "")


def _signed_anchor_to(world: World, contract: Any) -> tuple[int, Any]:
    """A stored anchor row on a contract address with no code (signed with a fixed gas)."""
    size = world.store.size
    root = world.store.tree.root(size)
    raw, tx_hash, nonce = world.chain.build_signed(contract.functions.anchor(size, root, []),
                                                   world.chain.accounts[0], gas=100_000, context="anchor")
    anchor_id = world.store.record_sent_anchor(
        chain_id=world.chain.chain_id, contract=contract.address, size=size, root=root, prev_size=0,
        sender=world.chain.accounts[0].address, nonce=nonce, tx_hash=tx_hash, raw_tx=raw)
    return anchor_id, Pending(anchor_id, tx_hash, raw, "anchor")
