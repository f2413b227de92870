"""Escrow steps when the chain misbehaves (issue 9): a stuck transaction replaced at a higher
fee, one the node dropped, a nonce another sender took, two processes on one key, a node
that dies between the store and the broadcast, a reorg that takes a confirmed step away, and
confirmations on a node that mines on demand. Each runs on a private anvil node (the faults
change its mining and its history), and asserts that until the step is confirmed on chain its
record stays held out of the log (so out of every anchored head), the status and the audit
do not claim it, and that it then completes, or is abandoned with the contract's reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3.types import RPCEndpoint

from ledger.chain import rpc
from ledger.chain.anvil import AnvilProcess
from ledger.chain.outbox import StillPending
from ledger.chain.rpc import Chain
from ledger.deploy import deploy_evidence_log
from ledger.dev.flash_sale import generate_flash_sale
from ledger.dev.sandbox import EscrowEnv, make_escrow_env
from ledger.escrow.platform import Platform
from ledger.escrow.types import OrderState
from ledger.evidence.anchor import Anchorer
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store
from ledger.investigate.audit import Auditor, text_report

pytestmark = pytest.mark.anvil

START = "2026-11-11T12:00:00Z"
GWEI = 10**9


def _orders(n: int = 3, seed: int = 90) -> list[dict[str, Any]]:
    sale = generate_flash_sale(seed=seed, orders=n + 2, merchants=1, start=START)
    return [{k: v for k, v in r.items() if k != "ts"} for r in sale if r["kind"] == "order"][:n]


def _rpc(chain: Chain, method: str, *params: Any) -> Any:
    out = chain.w3.provider.make_request(RPCEndpoint(method), list(params))
    assert "error" not in out, out
    return out.get("result")


class World:
    """A private anvil node with a deployed escrow and evidence log, a store and a platform."""

    def __init__(self, node: AnvilProcess, tmp_path: Path, relayer: str = "stranger") -> None:
        self.node = node
        self.chain = rpc.connect(node.url)
        self.chain.poll_interval = 0.01
        self.chain.lock_dir = tmp_path / "locks"
        self.env: EscrowEnv = make_escrow_env(self.chain)
        self.log = self.chain.contract("EvidenceLog", deploy_evidence_log(self.chain, None).address)
        self.store = Store(tmp_path / "ev.sqlite3", MasterSecret.generate())
        # The platform relays from a key of its own (the anchorer signs with the admin's): a
        # stuck step would hold up every later transaction of its key.
        self.platform = Platform(self.store, self.env.client, getattr(self.env, relayer))

    def open(self, order: dict[str, Any]) -> str:
        self.platform.open_order(order, merchant=self.env.merchant, buyer=self.env.buyer, price=10**6,
                                 token=self.env.token)
        return str(order["order_id"])

    def ship(self, oid: str, tracking: str = "SF1234567890") -> Any:
        return self.platform.ship(oid, carrier=self.env.carrier, carrier_code="SF", tracking_number=tracking)

    def state(self, oid: str) -> OrderState:
        return self.env.client.state(self.platform.escrow_id(oid))

    def audit(self, oid: str) -> Any:
        return Auditor(self.store, self.env.client, log_address=self.log.address).order_report(oid)

    def anchor_while_mining(self) -> Any:
        """`ledger anchor` on a node that may not automine: a helper mines until it is done."""
        done = threading.Event()
        miner = rpc.connect(self.node.url)

        def mine() -> None:
            while not done.wait(0.2):
                _rpc(miner, "evm_mine")

        t = threading.Thread(target=mine)
        t.start()
        try:
            return Anchorer(self.store, self.chain, self.log).anchor()
        finally:
            done.set()
            t.join()


@pytest.fixture
def world(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    with AnvilProcess() as node:
        w = World(node, tmp_path, getattr(request, "param", "stranger"))
        try:
            yield w
        finally:
            w.store.close()


def _ship_row(w: World, oid: str) -> Any:
    (row,) = [a for a in w.store.actions(order_id=oid) if a.action == "ship"]
    return row


def assert_not_claimed(w: World, oid: str) -> Any:
    """The step is stored and pending: its record is held out of the log, the status and the
    audit do not claim it, and the chain agrees."""
    row = _ship_row(w, oid)
    assert row.status == "sent"
    assert w.store.held_ids(row.id) == [f"{oid}:ship"]
    assert w.store.record_by_id(f"{oid}:ship") is None
    assert w.state(oid) is OrderState.FUNDED
    status = w.platform.status(oid)
    assert status["state"] == "FUNDED"
    assert "shipment" not in {r["kind"] for r in status["records"]}
    assert [a["status"] for a in status["actions"] if a["action"] == "ship"] == ["sent"]
    report = w.audit(oid)
    assert not [e for e in report.timeline if getattr(e, "record_id", None) == f"{oid}:ship"]
    assert [(s.action, s.status) for s in report.steps] == [("ship", "sent")]
    assert f"step ship not taken on chain: sent (tx 0x{row.tx_hash.hex()}); its record(s) {oid}:ship are " \
        "held out of the log" in text_report(report, width=400)
    return row


def assert_logged_once(w: World, oid: str, tx_hash: bytes) -> None:
    row = _ship_row(w, oid)
    assert (row.status, row.tx_hash) == ("confirmed", tx_hash)
    assert w.state(oid) is OrderState.SHIPPED
    ships = [r for r in w.store.records_for_order(oid) if r.id == f"{oid}:ship"]
    assert len(ships) == 1 and ships[0].leaf == row.evidence
    w.anchor_while_mining()
    report = w.audit(oid)
    assert report.flags == [] and report.steps == []


# --- a. stuck, then replaced at a higher fee ------------------------------------------------

def test_stuck_step_is_replaced_at_a_higher_fee_and_logged_once_confirmed(world: World) -> None:
    w = world
    oid = w.open(_orders(1)[0])
    _rpc(w.chain, "anvil_setAutomine", False)
    w.platform.timeout = 1
    with pytest.raises(StillPending) as err:
        w.ship(oid)
    assert "not settled within 1s" in str(err.value) and "ledger resume" in str(err.value)
    row = assert_not_claimed(w, oid)

    # The base fee jumps: the stored transaction bids too little to be mined.
    _rpc(w.chain, "anvil_setNextBlockBaseFeePerGas", hex(100 * GWEI))
    _rpc(w.chain, "evm_mine")
    assert w.chain.receipt(row.tx_hash) is None
    # An anchor run meanwhile covers the log, which does not hold the step's record.
    out = w.anchor_while_mining()
    assert out.head is not None and out.head.size == w.store.size
    assert_not_claimed(w, oid)

    # A fee ceiling below what the network asks: still pending, and it says what is needed.
    w.chain.max_fee = GWEI
    (o,) = w.platform.resume(timeout=1)
    assert o.status == "sent" and "needs at least" in o.detail and "above the ceiling of 1 gwei" in o.detail
    assert _ship_row(w, oid).tx_hash == row.tx_hash
    w.chain.max_fee = 500 * GWEI

    (o,) = w.platform.resume(timeout=1)  # replaced (same nonce, higher fee); not yet mined
    assert o.status == "sent"
    bumped = _ship_row(w, oid)
    assert bumped.tx_hash != row.tx_hash and bumped.nonce == row.nonce
    assert [a.tx_hash for a in bumped.attempts] == [row.tx_hash]
    assert "below the base fee" in bumped.attempts[0].why
    assert_not_claimed(w, oid)
    _rpc(w.chain, "evm_mine")
    (o,) = w.platform.resume(timeout=5)
    assert o.status == "confirmed"
    assert w.chain.receipt(row.tx_hash) is None
    assert_logged_once(w, oid, bumped.tx_hash)


# --- b. dropped by the node ---------------------------------------------------------------

def test_dropped_step_is_sent_again_with_the_same_bytes(world: World) -> None:
    w = world
    oid = w.open(_orders(1)[0])
    _rpc(w.chain, "anvil_setAutomine", False)
    w.platform.timeout = 1
    with pytest.raises(StillPending):
        w.ship(oid)
    row = assert_not_claimed(w, oid)
    _rpc(w.chain, "anvil_dropTransaction", "0x" + row.tx_hash.hex())
    assert not w.chain.known(row.tx_hash)
    (o,) = w.platform.resume(timeout=1)
    assert o.status == "sent"
    assert w.chain.known(row.tx_hash)  # the very same bytes, back in the node's pool
    assert_not_claimed(w, oid)
    _rpc(w.chain, "evm_mine")
    (o,) = w.platform.resume(timeout=5)
    assert o.status == "confirmed" and _ship_row(w, oid).attempts == ()
    assert_logged_once(w, oid, row.tx_hash)


# --- c. nonce taken by another sender on the same key -------------------------------------

def _steal_nonce(w: World, nonce: int, fn: Any = None) -> bytes:
    """A transaction signed outside the tool with the platform key's nonce `nonce`, mined."""
    key = w.platform.relayer
    base = w.chain.next_base_fee()
    tx: dict[str, Any] = {"from": key.address, "nonce": nonce, "chainId": w.chain.chain_id, "gas": 200_000,
                          "maxFeePerGas": 3 * base + 2 * GWEI, "maxPriorityFeePerGas": 2 * GWEI}
    if fn is None:
        tx.update(to=key.address, value=1, gas=21_000)
    else:
        tx = fn.build_transaction(tx)
    raw = bytes(key.sign_transaction(tx).raw_transaction)
    h = w.chain.broadcast(raw)
    _rpc(w.chain, "evm_mine")
    assert w.chain.receipt(h) is not None
    return h


def test_step_whose_nonce_was_taken_is_signed_again(world: World) -> None:
    w = world
    oid = w.open(_orders(1)[0])
    _rpc(w.chain, "anvil_setAutomine", False)
    w.platform.timeout = 1
    with pytest.raises(StillPending):
        w.ship(oid)
    row = assert_not_claimed(w, oid)
    _rpc(w.chain, "anvil_dropTransaction", "0x" + row.tx_hash.hex())
    _steal_nonce(w, row.nonce)
    assert_not_claimed(w, oid)
    (o,) = w.platform.resume(timeout=1)
    assert o.status == "sent"
    again = _ship_row(w, oid)
    assert again.nonce == row.nonce + 1 and [a.tx_hash for a in again.attempts] == [row.tx_hash]
    assert "was used by another transaction" in again.attempts[0].why
    _rpc(w.chain, "evm_mine")
    (o,) = w.platform.resume(timeout=5)
    assert o.status == "confirmed"
    assert_logged_once(w, oid, again.tx_hash)


@pytest.mark.parametrize("world", ["admin"], indirect=True)
def test_step_whose_nonce_was_taken_and_that_would_now_fail_is_abandoned(world: World) -> None:
    w = world
    oid = w.open(_orders(1)[0])
    _rpc(w.chain, "anvil_setAutomine", False)
    w.platform.timeout = 1
    with pytest.raises(StillPending):
        w.ship(oid)
    row = assert_not_claimed(w, oid)
    _rpc(w.chain, "anvil_dropTransaction", "0x" + row.tx_hash.hex())
    # The other sender on the key deregisters the carrier with that nonce: the attestation
    # the step relays would now be refused.
    _steal_nonce(w, row.nonce, w.env.client.escrow.functions.setCarrier(w.env.carrier.address, False))
    (o,) = w.platform.resume(timeout=2)
    assert o.status == "abandoned" and "EscrowNotCarrier" in o.detail and f"nonce {row.nonce}" in o.detail
    gone = _ship_row(w, oid)
    assert gone.status == "abandoned" and "EscrowNotCarrier" in (gone.error or "")
    # Its held record never enters the log; the audit lists the step without claiming it.
    assert w.store.record_by_id(f"{oid}:ship") is None and w.store.held_ids(gone.id) == [f"{oid}:ship"]
    assert [(s.action, s.status) for s in w.audit(oid).steps] == [("ship", "abandoned")]
    assert w.state(oid) is OrderState.FUNDED

    # The carrier is registered again and the step re-run: a new record is accepted.
    _rpc(w.chain, "anvil_setAutomine", True)
    w.env.client.set_carrier(w.env.carrier.address, True, w.env.admin)
    step = w.ship(oid, tracking="SF1234567891")
    assert w.state(oid) is OrderState.SHIPPED
    rec = w.store.record_by_id(f"{oid}:ship")
    assert rec is not None and rec.leaf == step.evidence and rec.public["tracking_number"] == "SF1234567891"
    ships = [a.status for a in w.store.actions(order_id=oid) if a.action == "ship"]
    assert ships == ["abandoned", "confirmed"]
    w.anchor_while_mining()
    report = w.audit(oid)
    assert report.flags == [] and [(s.action, s.status) for s in report.steps] == [("ship", "abandoned")]


# --- e. the node dies between the store and the broadcast ----------------------------------

def test_node_killed_between_store_and_broadcast_then_restarted_with_its_state(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    node = AnvilProcess(state_file=state).start()
    try:
        w = World(node, tmp_path)
        oid = w.open(_orders(1)[0])
        real = w.chain.broadcast

        def node_dies(raw: bytes) -> bytes:
            node.stop()  # SIGINT: anvil dumps its state and exits
            return real(raw)

        w.chain.broadcast = node_dies  # type: ignore[method-assign]
        with pytest.raises(StillPending) as err:  # exit 75, as README says: nothing is lost
            w.ship(oid)
        w.chain.broadcast = real  # type: ignore[method-assign]
        assert "stopped answering" in str(err.value) and "is stored" in str(err.value)
        assert "ledger resume" in str(err.value)
        row = _ship_row(w, oid)
        assert row.status == "sent" and w.store.record_by_id(f"{oid}:ship") is None

        node = AnvilProcess(port=node.port, state_file=state).start()
        assert not w.chain.known(row.tx_hash)  # the restarted node never saw it
        assert_not_claimed(w, oid)
        (o,) = w.platform.resume(timeout=10)
        assert o.status == "confirmed"
        assert_logged_once(w, oid, row.tx_hash)
        fund = [a for a in w.store.actions(order_id=oid) if a.action == "fund"]
        assert [a.status for a in fund] == ["confirmed"]  # the restart kept the history
    finally:
        node.stop()


# --- f. a reorg takes a confirmed step away ----------------------------------------------

def test_reorg_dropping_a_confirmed_step_is_flagged_and_the_step_sent_again(world: World) -> None:
    w = world
    oid = w.open(_orders(1)[0])
    w.anchor_while_mining()
    snap = _rpc(w.chain, "evm_snapshot")
    step = w.ship(oid)
    assert w.store.record_by_id(f"{oid}:ship") is not None and w.state(oid) is OrderState.SHIPPED
    _rpc(w.chain, "evm_revert", snap)  # the chain goes back: the ship never happened
    assert w.chain.receipt(step.tx_hash) is None and w.state(oid) is OrderState.FUNDED
    assert _ship_row(w, oid).status == "confirmed"  # what the store believed until it looks again

    reasons = [f.reason for f in w.audit(oid).flags]
    assert any("as confirmed in tx" in r and "emitted no event" in r for r in reasons), reasons
    assert any(f"record '{oid}:ship'" in r and "no escrow event of this order on the chain cites it" in r
               for r in reasons), reasons

    (o,) = w.platform.resume(timeout=10)
    assert o.status == "confirmed"
    row = _ship_row(w, oid)
    assert "vanished from block" in (row.error or "")
    assert_logged_once(w, oid, step.tx_hash)  # the same bytes, mined again; the record logged once


# --- through the CLI: separate processes on one data directory -------------------------------

class Cli:
    """`ledger` commands on a private node, one data directory, deployed once per module."""

    def __init__(self, node: AnvilProcess, home: Path) -> None:
        self.node, self.home = node, home
        self.secret = MasterSecret.generate_hex()
        self.env = dict(os.environ, LEDGER_HOME=str(home), LEDGER_MASTER_SECRET=self.secret,
                        LEDGER_RPC=node.url, COLUMNS="200")
        for k in ("LEDGER_PRIVATE_KEY", "LEDGER_KEYSTORE", "LEDGER_CONFIRMATIONS", "LEDGER_TX_TIMEOUT"):
            self.env.pop(k, None)
        self.chain = rpc.connect(node.url)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "ledger", *args], capture_output=True, text=True,
                              env=self.env, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"ledger {' '.join(args)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}")
        return proc

    def j(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def open(self, order: dict[str, Any]) -> str:
        path = self.home / f"{order['order_id']}.json"
        path.write_text(json.dumps(order))
        self.j("order", "open", "--record", str(path), "--merchant", "dev:1", "--buyer", "dev:3",
               "--price", str(10**15))
        return str(order["order_id"])

    def ship_args(self, oid: str, n: int) -> list[str]:
        return ["order", "ship", oid, "--carrier", "dev:5", "--carrier-code", "SF",
                "--tracking", f"SF77{n:08d}"]

    def store(self) -> Store:
        return Store(self.home / "evidence.sqlite3", MasterSecret.from_hex(self.secret))


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with AnvilProcess() as node:
        c = Cli(node, tmp_path_factory.mktemp("faults-home"))
        c.j("deploy")
        c.j("carrier", "add", "dev:5")
        c.j("deposit", "add", "--merchant", "dev:1", "--amount", str(10**19))
        yield c


def test_cli_stuck_ship_is_pending_then_replaced_by_ledger_resume(cli: Cli) -> None:
    oid = cli.open(_orders(4)[0])
    _rpc(cli.chain, "anvil_setAutomine", False)
    try:
        out = cli.run(*cli.ship_args(oid, 1), "--timeout", "1", check=False)
        assert out.returncode == 75, out.stderr  # EX_TEMPFAIL: stored, not settled yet
        assert "not settled within 1s" in out.stderr and "ledger resume" in out.stderr
        shown = cli.j("order", "show", oid)
        assert shown["state"] == "FUNDED" and "shipment" not in {r["kind"] for r in shown["records"]}
        assert [a["status"] for a in shown["actions"] if a["action"] == "ship"] == ["sent"]
        # (exit 1: nothing is anchored yet; the report is what matters)
        audit = json.loads(cli.run("audit", "--order", oid, "--json", check=False).stdout)
        assert [(s["action"], s["status"]) for s in audit["steps"]] == [("ship", "sent")]
        assert not [e for e in audit["timeline"] if str(e.get("record_id", "")).endswith(":ship")]

        _rpc(cli.chain, "anvil_setNextBlockBaseFeePerGas", hex(100 * GWEI))
        _rpc(cli.chain, "evm_mine")
        capped = cli.run("resume", "--max-fee", "1", "--timeout", "1", check=False)
        assert capped.returncode == 75, capped.stderr
        assert "needs at least" in capped.stdout and "1 still pending" in capped.stdout
        bumped = cli.run("resume", "--timeout", "1", check=False)  # replaced, then not mined yet
        assert bumped.returncode == 75 and "replaced" in bumped.stderr, bumped.stderr
        _rpc(cli.chain, "evm_mine")
        done = cli.j("resume")
        assert [r["status"] for r in done["results"]] == ["confirmed"] and done["pending"] == 0
    finally:
        _rpc(cli.chain, "anvil_setAutomine", True)
    with cli.store() as store:
        (ship,) = [a for a in store.actions(order_id=oid) if a.action == "ship"]
        assert ship.status == "confirmed" and len(ship.attempts) == 1
        assert ship.nonce == cli.chain.w3.eth.get_transaction(ship.tx_hash)["nonce"]
        assert [r.id for r in store.records_for_order(oid)].count(f"{oid}:ship") == 1
    assert cli.j("order", "show", oid)["state"] == "SHIPPED"


def test_cli_two_processes_ship_on_one_key_at_once(cli: Cli) -> None:
    a, b = (cli.open(o) for o in _orders(4)[1:3])
    procs = [subprocess.Popen([sys.executable, "-m", "ledger", *cli.ship_args(oid, 10 + n), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli.env)
             for n, oid in enumerate((a, b))]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [json.loads(o)["state"] for o, _ in outs] == ["SHIPPED", "SHIPPED"]
    with cli.store() as store:
        ships = [x for oid in (a, b) for x in store.actions(order_id=oid) if x.action == "ship"]
        assert [x.status for x in ships] == ["confirmed", "confirmed"]
        assert ships[0].sender == ships[1].sender and ships[0].nonce != ships[1].nonce
        sender = ships[0].sender
    locks = list((cli.home / "locks").iterdir())
    assert (cli.home / "locks" / f"31337-{sender.lower()}.lock") in locks


def test_cli_confirmations_on_a_node_that_mines_on_demand(cli: Cli) -> None:
    oid = cli.open(_orders(4)[3])
    out = cli.run(*cli.ship_args(oid, 20), "--confirmations", "3", "--timeout", "20", "--json")
    step = json.loads(out.stdout)
    assert step["state"] == "SHIPPED"
    assert "mines on demand; mined 2 empty block(s) for 3 confirmation(s)" in out.stderr
    assert cli.chain.w3.eth.block_number - step["block"] + 1 >= 3


def _reorg(w: World, depth: int, *txs: tuple[bytes, int]) -> None:
    """anvil_reorg: replace the last `depth` blocks, re-including `txs` (raw, block offset)."""
    _rpc(w.chain, "anvil_reorg", depth, [["0x" + raw.hex(), at] for raw, at in txs])


def test_reorg_moving_a_confirmed_step_to_another_block_updates_it(world: World) -> None:
    w = world
    oid = w.open(_orders(1)[0])
    w.ship(oid)
    row = _ship_row(w, oid)
    _reorg(w, 1, (row.raw_tx, 0))  # the same transaction, in a new block of the same height
    receipt = w.chain.receipt(row.tx_hash)
    assert receipt is not None and bytes(receipt["blockHash"]) != row.block_hash
    assert w.platform.resume(timeout=5) == []  # nothing to send: the step only moved
    moved = _ship_row(w, oid)
    assert (moved.status, moved.block_hash) == ("confirmed", bytes(receipt["blockHash"]))
    assert_logged_once(w, oid, row.tx_hash)


def test_reorg_reordering_a_step_before_its_order_was_funded_marks_it_failed(world: World) -> None:
    w = world
    oid = w.open(_orders(1)[0])
    w.ship(oid)
    row = _ship_row(w, oid)
    # The funding's block and the ship's are replaced; only the ship is re-included, first,
    # where it reverts (the order is not funded yet).
    _reorg(w, 2, (row.raw_tx, 0))
    outcomes = w.platform.resume(timeout=5)
    assert [(o.row.label, o.status) for o in outcomes] == [("fund", "confirmed")]  # same bytes again
    failed = _ship_row(w, oid)
    assert failed.status == "failed" and "reverted" in (failed.error or "")
    assert w.state(oid) is OrderState.FUNDED
    # Its record entered the log when the step was confirmed: the audit says the chain does not
    # back it, and lists the step as not taken.
    report = w.audit(oid)
    assert any(f"record '{oid}:ship'" in f.reason and "failed" in f.reason for f in report.flags)
    assert [(s.action, s.status) for s in report.steps] == [("ship", "failed")]


# --- h. node reset: the escrow a pending step was signed for is gone ---------------------------

def _stuck_second_ship(w: World) -> tuple[str, Any]:
    """Two orders; the first ship is confirmed, the second stays pending on a node that stopped
    mining (its relayer nonce is 1: after a reset, nonce 0 is free again, a gap before it)."""
    first, second = (w.open(o) for o in _orders(2, seed=97))
    w.ship(first, tracking="SF1000000001")
    _rpc(w.chain, "anvil_setAutomine", False)
    with pytest.raises(StillPending):
        w.platform.timeout = 1
        w.ship(second, tracking="SF1000000002")
    w.platform.timeout = None
    return second, _ship_row(w, second)


def _reset(w: World) -> None:
    port = w.node.port
    w.node.stop()
    w.node = AnvilProcess(port=port).start()  # the same URL, none of the state
    w.chain._nonces.clear()


def test_node_reset_abandons_a_pending_step_whose_escrow_is_gone(tmp_path: Path) -> None:
    with AnvilProcess() as node:
        w = World(node, tmp_path)
        try:
            oid, row = _stuck_second_ship(w)
            size = w.store.size
            _reset(w)
            outcomes = w.platform.resume()
            # Every step is gone with the escrow: the confirmed ones (their records stay in the
            # log, flagged by the audit) and the pending one (its record never enters it).
            assert {o.status for o in outcomes} == {"abandoned"} and len(outcomes) == 6
            [outcome] = [o for o in outcomes if o.row.id == row.id]
            assert "has no code on chain 31337" in outcome.detail
            after = _ship_row(w, oid)
            assert (after.status, after.error) == ("abandoned", outcome.detail)
            assert w.store.record_by_id(f"{oid}:ship") is None and w.store.size == size  # never logged
            assert w.chain.pending_nonce(w.env.stranger.address) == 0  # no nonce gap was filled
        finally:
            w.node.stop()
            w.store.close()


def test_node_reset_and_redeploy_at_the_same_address_replays_the_stored_steps(tmp_path: Path) -> None:
    """A reset node redeployed by the same keys holds a new escrow at the very same address.
    The re-check finds every confirmed step gone (their blocks are not this chain's) and sends
    each again with its stored bytes, in order, so the chain holds them again; the pending ship
    goes through after them. Whatever the store calls confirmed is on the chain as it is now."""
    with AnvilProcess() as node:
        w = World(node, tmp_path)
        try:
            oid, row = _stuck_second_ship(w)
            escrow = w.env.client.address
            _reset(w)
            assert make_escrow_env(w.chain).client.address == escrow
            outcomes = w.platform.resume()
            assert [o.row.label for o in outcomes] == ["approve", "fund"] * 2 + ["ship"] * 2
            assert {o.status for o in outcomes} == {"confirmed"}
            for a in w.store.actions():
                receipt = w.chain.receipt(a.tx_hash)
                assert a.status == "confirmed" and receipt is not None and receipt["status"] == 1, a.action
                assert bytes(w.chain.w3.eth.get_block(a.block_number)["hash"]) == a.block_hash
            assert w.state(oid) is OrderState.SHIPPED
            assert [r.id for r in w.store.records_for_order(oid)].count(f"{oid}:ship") == 1
        finally:
            w.node.stop()
            w.store.close()


# --- i. one step, one driver: the same step is finished, another is never finished as it -------

def test_a_pending_step_is_finished_by_the_same_step_and_never_by_another(world: World) -> None:
    """Re-running a step finishes its pending attempt (the re-run's record and signature carry
    a new chain time, so they differ); a DIFFERENT step of the same kind (another tracking
    number) is refused while one is pending, naming it, instead of being reported as done.
    A pending step the chain mined meanwhile is audited as mined, not as "not taken"."""
    oid = world.open(_orders(1)[0])
    _rpc(world.chain, "anvil_setAutomine", False)
    try:
        world.platform.timeout = 1
        with pytest.raises(StillPending):
            world.ship(oid, tracking="SF1000000001")
        row = _ship_row(world, oid)
        with pytest.raises(StillPending) as err:
            world.ship(oid, tracking="SF2000000002")
        assert err.value.exit_code == 75
        assert (f"order {oid}: another ship (by {row.sender}, evidence {oid}:ship, tx 0x{row.tx_hash.hex()}) "
                "is still pending, and it is not this one") in str(err.value)
        assert "it differs in attestation" in str(err.value) and "ledger resume" in str(err.value)
        assert _ship_row(world, oid) == row  # one ship stored, nothing else signed

        _rpc(world.chain, "evm_mine")
        receipt = world.chain.receipt(row.tx_hash)
        assert receipt is not None
        [entry] = world.audit(oid).steps
        assert (entry.status, entry.mined_in_block) == ("sent", int(receipt["blockNumber"]))
        assert f"step ship mined in block {entry.mined_in_block} but not yet settled in the store" \
            in text_report(world.audit(oid), width=400)

        world.platform.timeout = 10
        step = world.ship(oid, tracking="SF1000000001")  # the same step again: the pending one ends
    finally:
        _rpc(world.chain, "anvil_setAutomine", True)
        world.platform.timeout = None
    assert step.tx_hash == row.tx_hash
    assert_logged_once(world, oid, row.tx_hash)


_HOLD_LOCK = """
import fcntl, sys, time
with open(sys.argv[1], "a") as fh:
    fcntl.flock(fh, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_step_another_process_drives_is_left_to_it_then_re_read(world: World) -> None:
    """Two processes never drive one order's step at once: while another holds the order's run
    lock, a quick look (every escrow command's) leaves the step alone, and `ledger resume`
    waits, then re-reads it before acting."""
    oid = world.open(_orders(1)[0])
    _rpc(world.chain, "anvil_setAutomine", False)
    try:
        world.platform.timeout = 1
        with pytest.raises(StillPending):
            world.ship(oid)
        world.platform.timeout = None
        _rpc(world.chain, "evm_mine")
    finally:
        _rpc(world.chain, "anvil_setAutomine", True)
    bucket = hashlib.sha256(oid.encode()).hexdigest()[:2]
    assert world.chain.lock_dir is not None
    lock = world.chain.lock_dir / f"31337-escrow-{world.env.client.address.lower()}-{bucket}.lock"
    other = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(lock), "2"], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        assert world.platform.resume(timeout=0) == []  # another process drives it: left to it
        assert _ship_row(world, oid).status == "sent"
        start = time.monotonic()
        [outcome] = world.platform.resume(timeout=10)
        assert time.monotonic() - start > 1.0 and outcome.status == "confirmed"
    finally:
        other.wait(timeout=10)
    assert _ship_row(world, oid).status == "confirmed"


def test_cli_resume_after_a_node_reset_settles_what_the_store_holds(tmp_path: Path) -> None:
    """A reset node has none of the deployed contracts, so the manifest names nothing live;
    `ledger resume` still settles every stored step against the chain as it is (the escrow
    they were signed for has no code: abandoned, never re-sent), instead of "nothing pending"."""
    node = AnvilProcess().start()
    try:
        c = Cli(node, tmp_path / "home")
        c.j("deploy")
        c.j("carrier", "add", "dev:5")
        c.j("deposit", "add", "--merchant", "dev:1", "--amount", str(10**19))
        oid = c.open(_orders(1)[0])
        _rpc(c.chain, "anvil_setAutomine", False)
        assert c.run(*c.ship_args(oid, 1), "--timeout", "1", check=False).returncode == 75
        port = node.port
        node.stop()
        node = AnvilProcess(port=port).start()
        out = c.run("resume", "--json", check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        doc = json.loads(out.stdout)
        assert doc["pending"] == 0 and doc["results"], doc
        assert {r["status"] for r in doc["results"]} == {"abandoned"}
        [ship] = [r for r in doc["results"] if r["what"] == f"ship of order {oid}"]
        assert "has no code on chain 31337" in ship["detail"]
        assert any("settled against the chain as it is" in n for n in doc["notes"])
        with c.store() as store:
            assert {a.status for a in store.actions(order_id=oid)} == {"abandoned"}
            assert store.record_by_id(f"{oid}:ship") is None
    finally:
        node.stop()
