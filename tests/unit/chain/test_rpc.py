"""The chain connection: time control on dev chains, a node that stops answering."""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from ledger._internal import solc
from ledger.chain import rpc
from ledger.chain.fees import FeeCeiling, fees_of
from ledger.chain.rpc import Chain
from ledger.errors import ChainUnavailable, ConfigError


def test_time_travel_moves_the_clock_exactly(chain: Chain) -> None:
    t0 = chain.timestamp()
    chain.time_travel(3600)
    assert chain.timestamp() == t0 + 3600
    chain.set_next_timestamp(t0 + 7200)
    chain.mine()
    assert chain.timestamp() == t0 + 7200
    with pytest.raises(ConfigError, match="must be after"):
        chain.set_next_timestamp(t0)


def test_embedded_chain_can_start_in_the_past() -> None:
    c = rpc.embedded(genesis_timestamp=1_790_000_000)
    assert c.timestamp() == 1_790_000_000
    c.set_next_timestamp(1_790_000_100)
    c.mine()
    assert c.timestamp() == 1_790_000_100


@pytest.fixture
def resetting_node() -> Iterator[str]:
    """A URL (with an API key in its path) whose server resets every connection."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/v3/SECRET-API-KEY"
    srv.close()


def test_a_node_that_stops_answering_is_chain_unavailable_with_a_hint(anvil_node, resetting_node) -> None:  # type: ignore[no-untyped-def]
    c = rpc.connect(anvil_node.url)
    c.w3.provider.endpoint_uri = resetting_node  # type: ignore[attr-defined]
    with pytest.raises(ChainUnavailable) as err:
        c.timestamp()  # any call: not only those that go through Chain.explain
    message = str(err.value)
    port = resetting_node.split(":")[2].split("/")[0]
    assert re.match(rf"the node at http://127.0.0.1:{port}/… stopped answering during "
                    r"eth_getBlockByNumber \((Connection reset by peer|Remote end closed connection "
                    r"without response)\): check that it is running \(`ledger node`", message), message
    assert "SECRET-API-KEY" not in message


_HOLD_LOCK = """
import fcntl, sys, time
path = sys.argv[1]
with open(path, "a") as fh:
    fcntl.flock(fh, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_the_nonce_lock_makes_a_second_process_on_the_key_wait(chain: Chain, tmp_path: Path) -> None:
    """Two processes on one key: while another holds the key's lock (from choosing a nonce to
    broadcasting), this one waits, and says why; then it proceeds."""
    chain.lock_dir = tmp_path / "locks"
    said: list[str] = []
    chain.progress = said.append
    address = chain.accounts[0].address
    lock = chain.lock_dir / f"{chain.chain_id}-{address.lower()}.lock"
    lock.parent.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(lock), "1.5"], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        start = time.monotonic()
        with chain.nonce_lock(address):
            waited = time.monotonic() - start
        assert waited > 1.0, waited
        assert said == [f"waiting for another process signing as {address} (lock {lock})"]
    finally:
        other.wait(timeout=10)
    start = time.monotonic()
    with chain.nonce_lock(address):  # free now: no wait, nothing said
        pass
    assert time.monotonic() - start < 0.5 and len(said) == 1


def test_a_run_lock_is_its_own_file_and_makes_a_second_run_wait(chain: Chain, tmp_path: Path) -> None:
    """A run lock (one anchoring run per log) is held apart from the key's nonce lock: taking
    the nonce lock inside it never waits on itself; a second process's run waits, and says why."""
    chain.lock_dir = tmp_path / "locks"
    said: list[str] = []
    chain.progress = said.append
    address = chain.accounts[0].address
    with chain.run_lock("anchor-0xlog", "another anchoring run"), chain.nonce_lock(address):
        pass
    assert said == []
    lock = chain.lock_dir / f"{chain.chain_id}-anchor-0xlog.lock"
    other = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(lock), "1.5"], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        with chain.nonce_lock(address):  # another file: not held up
            pass
        start = time.monotonic()
        with chain.run_lock("anchor-0xlog", "another anchoring run"):
            waited = time.monotonic() - start
        assert waited > 1.0, waited
        assert said == [f"waiting for another anchoring run (lock {lock})"]
    finally:
        other.wait(timeout=10)


def test_a_run_lock_without_wait_goes_on_without_it_and_nests_in_one_thread(chain: Chain,
                                                                            tmp_path: Path) -> None:
    """A quick look (`wait=False`) skips what another process is driving instead of waiting;
    the same thread taking a run lock it holds (a step inside a step) does not wait on itself."""
    chain.lock_dir = tmp_path / "locks"
    lock = chain.lock_dir / f"{chain.chain_id}-escrow-x.lock"
    lock.parent.mkdir(parents=True)
    with chain.run_lock("escrow-x", "a step") as held, chain.run_lock("escrow-x", "a step") as again:
        assert held and again
    other = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(lock), "1.5"], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        start = time.monotonic()
        with chain.run_lock("escrow-x", "a step", wait=False) as held:
            assert not held and time.monotonic() - start < 0.5
    finally:
        other.wait(timeout=10)
    with chain.run_lock("escrow-x", "a step", wait=False) as held:
        assert held


def test_every_transaction_the_chain_sends_takes_the_nonce_lock_and_skips_held_nonces(
        chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    """An admin call, a deployment, a transfer (not through an outbox) still take the key's
    nonce lock and never sign a nonce that a stored, unsettled transaction holds."""
    sender = chain.accounts[0]
    locked: list[str] = []
    real_lock = chain.nonce_lock

    def recording(address: str) -> Any:
        locked.append(address)
        return real_lock(address)

    monkeypatch.setattr(chain, "nonce_lock", recording)
    held = chain.pending_nonce(sender.address)
    monkeypatch.setattr(chain, "held_nonces", lambda a: [held] if a == sender.address else [])
    sent: list[bytes] = []
    monkeypatch.setattr(chain, "broadcast", lambda raw: sent.append(raw) or keccak(raw))
    monkeypatch.setattr(chain, "wait", lambda *a, **k: {"status": 1})
    chain.send_eth(chain.accounts[1].address, 1, sender)
    log = chain.w3.eth.contract(abi=solc.artifacts()["EvidenceLog"].abi,
                                bytecode=solc.artifacts()["EvidenceLog"].bytecode)
    chain.send(log.constructor(sender.address), sender)
    assert locked == [sender.address, sender.address]
    assert [fees_of(raw).nonce for raw in sent] == [held + 1, held + 2]


def test_a_new_transaction_never_bids_above_the_fee_ceiling(chain: Chain,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The ceiling (`--max-fee`) caps first sends too, and a chain that asks more than it
    allows is refused before anything is signed or sent."""
    base = int(chain.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
    tip = chain.suggested_tip()
    monkeypatch.setattr(chain, "max_fee", base + tip)
    assert chain._fees() == {"maxPriorityFeePerGas": tip, "maxFeePerGas": base + tip}
    monkeypatch.setattr(chain, "max_fee", max(base + tip - 1, 0))
    before = chain.pending_nonce(chain.accounts[0].address)
    with pytest.raises(FeeCeiling, match="above the ceiling"):
        chain.send_eth(chain.accounts[1].address, 1)
    assert chain.pending_nonce(chain.accounts[0].address) == before
