"""kill -9 at any instant: no acknowledged record lost, no head anchored twice, no escrow step
sent twice, and a restart resumes what was pending (the outbox of ledger.chain.outbox, for
the anchorer and the platform alike). Runs against a real anvil node in separate processes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger.chain import rpc
from ledger.deploy import deploy_evidence_log
from ledger.dev.flash_sale import generate_flash_sale
from ledger.dev.sandbox import make_escrow_env
from ledger.escrow.platform import Platform, funded_escrow_id
from ledger.escrow.types import OrderState
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store

WORKER = Path(__file__).with_name("crash_worker.py")


def _worker_batches() -> list[list[dict]]:
    from tests.integration.crash_worker import batches

    return batches()


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )


def _acks(out: str) -> list[int]:
    return [int(line.split()[1]) for line in out.splitlines() if line.startswith("ACK ")]


def _check_invariants(chain, log, store: Store, acked: list[int]) -> None:  # type: ignore[no-untyped-def]
    # 1. every acknowledged record survived
    assert store.size >= max(acked, default=0)
    # 2. on chain: every anchored head is a distinct, growing size whose root is our tree's
    events = log.events.HeadAnchored().get_logs(from_block=0)
    sizes = [int(e["args"]["size"]) for e in events]
    assert sizes == sorted(set(sizes)), sizes
    for e in events:
        assert bytes(e["args"]["root"]) == store.tree.root(int(e["args"]["size"]))
    # 3. locally: nothing left pending, one confirmed row per anchored head, and every
    #    anchor transaction we ever signed for a head is that head's only transaction
    rows = store.anchors(chain.chain_id, log.address)
    assert not [r for r in rows if r.status == "sent"]
    confirmed = sorted(r.size for r in rows if r.status == "confirmed")
    assert confirmed == sizes
    tx_hashes = {bytes(e["transactionHash"]) for e in events}
    assert tx_hashes == {r.tx_hash for r in rows if r.status == "confirmed"}
    per_size: dict[int, set[bytes]] = {}
    for r in rows:
        per_size.setdefault(r.size, set()).add(r.tx_hash)
    mined = [r for r in rows if r.status == "failed" and chain.receipt(r.tx_hash) is not None]
    assert not [r for r in mined if chain.receipt(r.tx_hash)["status"] == 1]


@pytest.mark.slow
def test_kill_minus_nine_at_any_instant(tmp_path: Path, anvil_node) -> None:  # type: ignore[no-untyped-def]
    chain = rpc.connect(anvil_node.url)
    dep = deploy_evidence_log(chain, None)
    log = chain.contract("EvidenceLog", dep.address)
    secret_hex = MasterSecret.generate_hex()
    env = dict(os.environ, LEDGER_MASTER_SECRET=secret_hex)
    args = [str(tmp_path), anvil_node.url, dep.address]
    acked: list[int] = []

    # Exact protocol points first: stored-but-not-broadcast, broadcast-but-not-confirmed.
    for mode in ("kill-before-send", "kill-after-send"):
        p = _spawn([*args, mode], env)
        out, err = p.communicate(timeout=120)
        assert p.returncode == -signal.SIGKILL, err
        acked += _acks(out)
        with Store(tmp_path / "ev.sqlite3", MasterSecret.from_hex(secret_hex)) as store:
            assert [r.status for r in store.anchors()][-1] == "sent"
        p = _spawn([*args, "resume"], env)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "RESUMED 1" in out

    # Then random instants.
    rng = random.Random(20261125)
    for _ in range(5):
        p = _spawn([*args, "loop"], env)
        time.sleep(rng.uniform(0.8, 3.0))
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate(timeout=60)
        acked += _acks(out)
    p = _spawn([*args, "loop"], env)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    acked += _acks(out)
    assert "DONE" in out

    with Store(tmp_path / "ev.sqlite3", MasterSecret.from_hex(secret_hex)) as store:
        _check_invariants(chain, log, store, acked)
        # the final run completed the whole sale: every record exactly once
        expected = [r["id"] for b in _worker_batches() for r in b]
        stored = [r.id for r in store.records_in_range(None, None)]
        assert sorted(stored) == sorted(expected) and len(set(stored)) == len(stored)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["escrow-kill-before-send", "escrow-kill-after-send"])
def test_escrow_step_survives_kill_minus_nine(tmp_path: Path, anvil_node, mode: str) -> None:  # type: ignore[no-untyped-def]
    """The platform dies between storing a step and its confirmation: the step's record and
    signed transaction were stored together, and resuming sends those very bytes (or awaits
    them), so the order is shipped exactly once and the record is not orphaned."""
    chain = rpc.connect(anvil_node.url)
    chain.poll_interval = 0.01
    env_ = make_escrow_env(chain)
    secret_hex = MasterSecret.generate_hex()
    sale = generate_flash_sale(seed=8, orders=3, merchants=1, start="2026-11-11T12:00:00Z")
    order = next(dict(r) for r in sale if r["kind"] == "order")
    order.pop("ts")
    oid = order["order_id"]
    with Store(tmp_path / "ev.sqlite3", MasterSecret.from_hex(secret_hex)) as store:
        Platform(store, env_.client, env_.admin).open_order(
            order, merchant=env_.merchant, buyer=env_.buyer, price=10**6, token=env_.token)
    env = dict(os.environ, LEDGER_MASTER_SECRET=secret_hex)
    args = [str(tmp_path), anvil_node.url, env_.client.address]
    extra = [env_.client.arbitrator.address, oid]
    p = _spawn([*args, mode, *extra], env)
    _, err = p.communicate(timeout=120)
    assert p.returncode == -signal.SIGKILL, err
    with Store(tmp_path / "ev.sqlite3", MasterSecret.from_hex(secret_hex)) as store:
        pending = store.actions(order_id=oid, status="sent")
        assert [a.action for a in pending] == ["ship"]
        # Stored with its transaction, held out of the log (and so out of every anchored head)
        # until the step is confirmed.
        assert store.held_ids(pending[0].id) == [f"{oid}:ship"]
        assert store.record_by_id(f"{oid}:ship") is None
        tx = pending[0].tx_hash
    assert (chain.receipt(tx) is None) == (mode == "escrow-kill-before-send")
    p = _spawn([*args, "escrow-resume", *extra], env)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert "RESUMED 1" in out
    with Store(tmp_path / "ev.sqlite3", MasterSecret.from_hex(secret_hex)) as store:
        ship = [a for a in store.actions(order_id=oid) if a.action == "ship"]
        assert [(a.status, a.tx_hash) for a in ship] == [("confirmed", tx)]
        assert ship[0].evidence == store.record_by_id(f"{oid}:ship").leaf
        escrow_id = funded_escrow_id(store.actions(order_id=oid), env_.client.address)
    assert escrow_id is not None and env_.client.state(escrow_id) is OrderState.SHIPPED
    shipped = env_.client.escrow.events.OrderShipped().get_logs(
        from_block=0, argument_filters={"orderId": escrow_id})
    assert [bytes(e["transactionHash"]) for e in shipped] == [tx]
