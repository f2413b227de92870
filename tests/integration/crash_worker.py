"""Child process for the crash test: ingest and anchor in rounds, saying what was acknowledged.

usage: crash_worker.py DATA_DIR RPC_URL CONTRACT MODE [ARBITRATOR ORDER_ID]
MODE: loop               ingest+anchor every batch, printing ACK/ANCHORED lines
      kill-before-send   ingest the next batch, then SIGKILL itself after the signed anchor
                         transaction is stored but before it is broadcast
      kill-after-send    the same, but right after the broadcast, before confirmation
      resume             settle pending anchors and anchor the current head
      escrow-kill-before-send, escrow-kill-after-send
                         the platform ships order ORDER_ID on the escrow CONTRACT (its panel
                         ARBITRATOR), dying at the same two points of the same outbox
      escrow-resume      the platform settles its pending steps
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from ledger.chain import rpc
from ledger.chain.keys import dev_key
from ledger.chain.rpc import Chain
from ledger.dev.flash_sale import generate_flash_sale, to_jsonl
from ledger.escrow.client import EscrowClient
from ledger.escrow.platform import Platform
from ledger.evidence import records as rec
from ledger.evidence.anchor import Anchorer
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store

BATCH = 40


def batches() -> list[list[dict]]:
    sale = generate_flash_sale(seed=5, orders=120, merchants=2, start="2026-11-11T12:00:00Z")
    return [sale[i : i + BATCH] for i in range(0, len(sale), BATCH)]


def die_at(chain: Chain, mode: str) -> None:
    """SIGKILL this process just before (or just after) its next broadcast."""
    original = chain.broadcast

    def broadcast_and_die(raw: bytes) -> bytes:
        if mode.endswith("before-send"):
            os.kill(os.getpid(), signal.SIGKILL)
        h = original(raw)
        os.kill(os.getpid(), signal.SIGKILL)
        return h

    chain.broadcast = broadcast_and_die  # type: ignore[method-assign]


def escrow(data_dir: str, chain: Chain, escrow_address: str, mode: str, arbitrator: str, oid: str) -> None:
    store = Store(Path(data_dir) / "ev.sqlite3", MasterSecret.from_env())
    platform = Platform(store, EscrowClient.at(chain, escrow_address, arbitrator), dev_key(0))
    if mode == "escrow-resume":
        print(f"RESUMED {len(platform.resume())}", flush=True)
        return
    die_at(chain, mode)
    platform.ship(oid, carrier=dev_key(5), carrier_code="SF", tracking_number="SF9000000001")
    raise AssertionError("should have been killed")


def main() -> None:
    data_dir, url, contract, mode = sys.argv[1:5]
    chain = rpc.connect(url)
    chain.poll_interval = 0.01
    if mode.startswith("escrow-"):
        escrow(data_dir, chain, contract, mode, *sys.argv[5:7])
        return
    log = chain.contract("EvidenceLog", contract)
    store = Store(Path(data_dir) / "ev.sqlite3", MasterSecret.from_env())
    anchorer = Anchorer(store, chain, log)
    all_batches = batches()

    def next_batch() -> list[dict] | None:
        have = {r.id for r in store.records_in_range(None, None)}
        for b in all_batches:
            if any(r["id"] not in have for r in b):
                return b
        return None

    if mode == "resume":
        out = anchorer.anchor()
        print(f"RESUMED {out.resumed} HEAD {store.size}", flush=True)
        return
    if mode in ("kill-before-send", "kill-after-send"):
        b = next_batch()
        assert b is not None
        res = store.ingest(rec.parse_jsonl(to_jsonl(b), source="w"), source="w")
        print(f"ACK {res.size}", flush=True)
        if mode == "kill-before-send":
            anchorer.anchor(before_broadcast=lambda _id: os.kill(os.getpid(), signal.SIGKILL))
        else:
            die_at(chain, mode)
            anchorer.anchor()
        raise AssertionError("should have been killed")
    while (b := next_batch()) is not None:
        res = store.ingest(rec.parse_jsonl(to_jsonl(b), source="w"), source="w")
        print(f"ACK {res.size}", flush=True)
        out = anchorer.anchor()
        print(f"ANCHORED {out.head.size if out.head else store.size}", flush=True)
    anchorer.anchor()
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
