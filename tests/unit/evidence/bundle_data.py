"""A real bundle export without a chain: a store of a generated flash sale whose head is
recorded as anchored and confirmed (the offline half of verification never asks a chain)."""

from __future__ import annotations

from pathlib import Path

from ledger.dev.flash_sale import generate_flash_sale, to_jsonl
from ledger.evidence import records as rec
from ledger.evidence.bundle import export_bundle
from ledger.evidence.bundle_format import Bundle
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store

CHAIN_ID = 31337
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def anchored_store(path: Path) -> Store:
    """A store of a small flash sale, its whole log anchored (on paper) and confirmed."""
    store = Store(path / "evidence.sqlite3", MasterSecret.from_hex("c5" * 32))
    sale = generate_flash_sale(seed=3, orders=12, merchants=2, start="2026-11-11T12:00:00Z")
    store.ingest(rec.parse_jsonl(to_jsonl(sale), source="sale.jsonl"), source="sale.jsonl")
    anchor_id = store.record_sent_anchor(
        chain_id=CHAIN_ID, contract=CONTRACT, size=store.size, root=store.tree.root(), prev_size=0,
        sender="0x" + "00" * 20, nonce=0, tx_hash=b"\x11" * 32, raw_tx=b"",
    )  # fmt: skip
    store.mark_anchor(anchor_id, "confirmed", block_number=5, block_hash=b"\x22" * 32,
                      block_timestamp=1795590813, gas_used=50_000)
    return store


def paper_anchor(store: Store, n: int) -> None:
    """Record the store's whole log as anchored with its index root and confirmed, the `n`-th such
    anchor (its own transaction, block and time; on paper: no chain)."""
    size = store.size
    anchor_id = store.record_sent_anchor(
        chain_id=CHAIN_ID, contract=CONTRACT, size=size, root=store.tree.root(size), prev_size=0,
        sender="0x" + "00" * 20, nonce=n, tx_hash=bytes([n + 1]) * 32, raw_tx=b"",
        index_root=store.index_root(size))  # fmt: skip
    store.mark_anchor(anchor_id, "confirmed", block_number=5 + n, block_hash=bytes([n + 2]) * 32,
                      block_timestamp=1795590813 + n, gas_used=50_000)


def order_with_personal(store: Store) -> str:
    row = store.db.execute(
        "SELECT order_id FROM records WHERE personal IS NOT NULL ORDER BY idx LIMIT 1"
    ).fetchone()
    return str(row[0])


def export(store: Store, *, disclose_personal: bool = False) -> Bundle:
    """The bundle `ledger export --order` writes for an order with personal fields."""
    bundle, left_out = export_bundle(store, CHAIN_ID, CONTRACT, order_id=order_with_personal(store),
                                     disclose_personal=disclose_personal)
    assert left_out == []
    return bundle
