"""The chain misbehaves as real chains do (issue 9), and the project never claims what is not true.

Each test runs the CLI, as a user does, against its own anvil node (`fault_node`), so the
reorgs and resets it inflicts never reach other tests. The fixtures (`fault_node`,
`fault_env`, `rpc_call`) are meant for every section of this file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.chain.anvil import AnvilProcess
from ledger.dev.flash_sale import generate_flash_sale, to_jsonl
from ledger.evidence.journal import AnchorRow
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store
from tests.integration.test_cli import START, run


class FaultNode:
    """An anvil node of one test's own, which the test may reorganise or reset."""

    def __init__(self) -> None:
        self.proc = AnvilProcess().start()
        self.port, self.url = self.proc.port, self.proc.url

    def reset(self) -> None:
        """Stop the node and start a fresh one on the same port, without its state (as a test
        node restarted without --state, or a devnet that was wiped)."""
        self.proc.stop()
        self.proc = AnvilProcess(port=self.port).start()

    def stop(self) -> None:
        self.proc.stop()


@pytest.fixture
def fault_node() -> Iterator[FaultNode]:
    node = FaultNode()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def fault_env(tmp_path: Path, fault_node: FaultNode) -> dict[str, str]:
    e = dict(os.environ)
    e.update(LEDGER_HOME=str(tmp_path / "home"), LEDGER_MASTER_SECRET=MasterSecret.generate_hex(),
             LEDGER_RPC=fault_node.url, COLUMNS="200")
    for k in ("LEDGER_PRIVATE_KEY", "LEDGER_KEYSTORE", "LEDGER_CONFIRMATIONS", "LEDGER_TX_TIMEOUT"):
        e.pop(k, None)
    return e


def rpc_call(node: FaultNode, method: str, *params: Any) -> Any:
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
    req = urllib.request.Request(node.url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        out = json.loads(resp.read())
    if "error" in out:
        raise AssertionError(f"{method}: {out['error']}")
    return out.get("result")


def block_number(node: FaultNode) -> int:
    return int(rpc_call(node, "eth_blockNumber"), 16)


def stored_anchors(env: dict[str, str]) -> list[AnchorRow]:
    home = Path(env["LEDGER_HOME"])
    with Store(home / "evidence.sqlite3", MasterSecret.from_hex(env["LEDGER_MASTER_SECRET"])) as store:
        return store.anchors()


def words(text: str) -> str:
    """`text` with its line wrapping undone."""
    return " ".join(text.split())


def jrun(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(run([*args, "--json"], env).stdout)
    return out


# --- anchors: "confirmed" means confirmed on the chain as it is now ------------------------

class Anchored:
    """A data dir whose log is anchored in two heads on the fault node."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env
        sale = generate_flash_sale(seed=11, orders=8, merchants=1, start=START)
        half = len(sale) // 2
        (tmp / "a.jsonl").write_bytes(to_jsonl(sale[:half]))
        (tmp / "b.jsonl").write_bytes(to_jsonl(sale[half:]))
        self.trust = jrun(["deploy", "--log-only", "--redeploy"], env)["trust_root"]
        run(["ingest", str(tmp / "a.jsonl")], env)
        self.first = jrun(["anchor"], env)
        run(["ingest", str(tmp / "b.jsonl")], env)
        self.second = jrun(["anchor"], env)
        self.order = sale[-1]["order_id"]  # among the second head's records only
        self.size = len(sale)

    def export(self, name: str) -> dict[str, Any]:
        path = self.tmp / name
        run(["export", "--order", self.order, "-o", str(path)], self.env)
        bundle: dict[str, Any] = json.loads(path.read_text())
        return bundle

    def verify(self, name: str) -> tuple[int, dict[str, Any]]:
        res = run(["verify", str(self.tmp / name), "--trust", self.trust, "--json"], self.env, check=False)
        return res.returncode, json.loads(res.stdout)


@pytest.fixture
def anchored(tmp_path: Path, fault_env: dict[str, str]) -> Anchored:
    return Anchored(tmp_path, fault_env)


def test_reorg_dropping_the_anchor_is_reported_lost_and_re_anchored(
        anchored: Anchored, fault_node: FaultNode) -> None:
    a, env = anchored, anchored.env
    a.export("before.json")
    assert a.verify("before.json")[0] == 0
    # A reorg replaces every block from the second anchor's on with empty ones.
    depth = block_number(fault_node) - a.second["block_number"] + 1
    rpc_call(fault_node, "anvil_reorg", depth, [])

    status = jrun(["status"], env)
    latest = status["latest_anchor"]
    assert latest["size"] == a.first["size"] and latest["tx_hash"] == a.first["tx_hash"]
    assert status["unanchored_records"] == a.size - a.first["size"]
    [lost] = [x for x in status["anchors"] if x["tx_hash"] == a.second["tx_hash"]]
    assert lost["status"] == "lost" and "no longer on chain" in lost["reason"]
    assert [x["tx_hash"] for x in status["lost"]] == [a.second["tx_hash"]]
    text = words(run(["status"], env).stdout)
    assert f"lost anchor: head size {a.size}" in text and "ledger anchor" in text
    # The bundle exported before the reorg cites the vanished transaction: not verified.
    assert a.verify("before.json")[0] == 1
    # A bundle exported now cites the head the chain still holds, and only what it covers.
    mid = a.export("mid.json")
    assert mid["anchor"]["tx_hash"] == a.first["tx_hash"] and mid["anchor"]["tree_size"] == a.first["size"]
    assert a.verify("mid.json")[0] == 0

    again = run(["anchor"], env).stdout  # status already said it was lost: this run anchors again
    assert f"anchored head size {a.size}" in again and f"(from {a.first['size']})" in again
    assert not jrun(["anchor"], env)["anchored"]
    reanchored = [x for x in stored_anchors(env) if x.status == "confirmed" and x.size == a.size]
    assert len(reanchored) == 1 and "0x" + reanchored[0].tx_hash.hex() != a.second["tx_hash"]
    bundle = a.export("after.json")
    assert bundle["anchor"]["tx_hash"] == "0x" + reanchored[0].tx_hash.hex()
    code, verdict = a.verify("after.json")
    assert code == 0 and verdict["status"] == "verified", verdict


def test_ledger_anchor_says_the_chain_went_back_and_anchors_again(
        anchored: Anchored, fault_node: FaultNode) -> None:
    a, env = anchored, anchored.env
    depth = block_number(fault_node) - a.second["block_number"] + 1
    rpc_call(fault_node, "anvil_reorg", depth, [])
    text = words(run(["anchor"], env).stdout)
    assert (f"the chain went back: head size {a.size} anchored in tx {a.second['tx_hash']} "
            f"(block {a.second['block_number']}) is no longer on chain") in text
    assert "re-anchoring" in text and f"anchored head size {a.size}" in text
    assert f"(from {a.first['size']})" in text  # from the head the chain still holds
    a.export("again.json")
    code, verdict = a.verify("again.json")
    assert code == 0 and verdict["status"] == "verified", verdict
    status = jrun(["status"], env)
    assert status["latest_anchor"]["size"] == a.size and status["unanchored_records"] == 0


def test_ledger_anchor_json_lists_what_the_chain_lost(anchored: Anchored, fault_node: FaultNode) -> None:
    a, env = anchored, anchored.env
    # Back to before the first anchor: the chain's head is now empty (size 0).
    depth = block_number(fault_node) - a.first["block_number"] + 1
    rpc_call(fault_node, "anvil_reorg", depth, [])
    out = jrun(["anchor"], env)
    assert out["anchored"] and out["size"] == a.size and out["previous_size"] == 0
    assert sorted(x["tx_hash"] for x in out["lost"]) == sorted([a.first["tx_hash"], a.second["tx_hash"]])
    assert all(x["status"] == "lost" and "no longer on chain" in x["reason"] for x in out["lost"])
    assert out["moved"] == []
    a.export("fresh.json")
    assert a.verify("fresh.json")[0] == 0


def test_reorg_moving_the_anchor_updates_its_block(anchored: Anchored, fault_node: FaultNode) -> None:
    a, env = anchored, anchored.env
    a.export("before.json")
    [row] = [x for x in stored_anchors(env) if "0x" + x.tx_hash.hex() == a.second["tx_hash"]]
    was = a.second["block_number"]
    rpc_call(fault_node, "anvil_mine", "0x2")
    depth = block_number(fault_node) - was + 1
    # The same signed transaction, mined one block later on the new branch.
    rpc_call(fault_node, "anvil_reorg", depth, [["0x" + row.raw_tx.hex(), 1]])
    assert a.verify("before.json")[0] == 1  # its block number and hash are stale now

    out = jrun(["anchor"], env)
    assert not out["anchored"] and out["block_number"] == was + 1
    [moved] = out["moved"]
    assert (moved["tx_hash"], moved["was_block_number"], moved["block_number"]) == (
        a.second["tx_hash"], was, was + 1)
    text = words(run(["anchor"], env).stdout)  # already updated: the facts it states are the new ones
    assert text.strip() == (f"nothing new to anchor: head size {a.size} is anchored in block {was + 1} "
                            f"(tx {a.second['tx_hash']})")
    status = jrun(["status"], env)
    assert status["latest_anchor"]["block_number"] == was + 1
    assert status["latest_anchor"]["tx_hash"] == a.second["tx_hash"]
    bundle = a.export("after.json")
    assert bundle["anchor"]["block_number"] == was + 1
    code, verdict = a.verify("after.json")
    assert code == 0 and verdict["status"] == "verified", verdict


def test_status_reports_a_moved_anchor_in_plain_words(anchored: Anchored, fault_node: FaultNode) -> None:
    a, env = anchored, anchored.env
    [row] = [x for x in stored_anchors(env) if "0x" + x.tx_hash.hex() == a.second["tx_hash"]]
    was = a.second["block_number"]
    rpc_call(fault_node, "anvil_mine", "0x3")
    depth = block_number(fault_node) - was + 1
    rpc_call(fault_node, "anvil_reorg", depth, [["0x" + row.raw_tx.hex(), 2]])
    text = words(run(["status"], env).stdout)
    assert f"moved from block {was} to block {was + 2}" in text
    assert f"block {was + 2}, tx {a.second['tx_hash']}" in text and "re-checked against the chain" in text


def test_node_reset_loses_every_anchor_and_says_to_deploy_again(
        anchored: Anchored, fault_node: FaultNode) -> None:
    a, env = anchored, anchored.env
    fault_node.reset()
    res = run(["anchor"], env, check=False)  # says what was lost, and that the log needs deploying
    said = words(res.stderr)
    assert res.returncode == 2 and f"head size {a.size} anchored in tx {a.second['tx_hash']}" in said
    assert "no code" in said and "ledger deploy" in said
    status = jrun(["status"], env)
    assert status["latest_anchor"] is None and status["unanchored_records"] == a.size
    assert {x["status"] for x in status["anchors"]} == {"lost"}
    assert all("ledger deploy --redeploy" in x["reason"] and "no code" in x["reason"]
               for x in status["anchors"])
    text = words(run(["status"], env).stdout)
    assert "nothing anchored yet" in text and "ledger deploy --redeploy" in text
    res = run(["export", "--order", a.order, "-o", str(a.tmp / "x.json")], env, check=False)
    assert res.returncode == 2 and "ledger anchor" in res.stderr and "no code" in res.stderr

    a.trust = jrun(["deploy", "--log-only", "--redeploy"], env)["trust_root"]
    out = jrun(["anchor"], env)
    assert out["anchored"] and out["size"] == a.size and out["previous_size"] == 0
    a.export("new.json")
    code, verdict = a.verify("new.json")
    assert code == 0 and verdict["status"] == "verified", verdict


def test_status_without_a_node_says_it_did_not_recheck(anchored: Anchored, fault_node: FaultNode) -> None:
    a, env = anchored, dict(anchored.env, LEDGER_RPC="http://127.0.0.1:9")
    status = jrun(["status"], env)
    assert status["latest_anchor"]["size"] == a.size and status["recheck_error"]
    assert "NOT re-checked against the chain" in words(run(["status"], env).stdout)
    res = run(["export", "--order", a.order, "-o", str(a.tmp / "x.json")], env, check=False)
    assert res.returncode == 2 and "re-checked against the chain" in res.stderr


def test_resume_lists_lost_anchors_and_leaves_re_anchoring_to_ledger_anchor(
        anchored: Anchored, fault_node: FaultNode) -> None:
    a, env = anchored, anchored.env
    depth = block_number(fault_node) - a.second["block_number"] + 1
    rpc_call(fault_node, "anvil_reorg", depth, [])
    text = words(run(["resume"], env).stdout)
    assert f"head size {a.size} anchored in tx {a.second['tx_hash']}" in text
    assert "no longer on chain" in text and "run it to anchor the log again" in text
    assert json.loads(run(["resume", "--json"], env).stdout)["anchors_rechecked"] == []  # said once
    assert jrun(["status"], env)["latest_anchor"]["size"] == a.first["size"]


class LibWorld:
    """The library's anchorer on the fault node, for the faults a CLI run cannot stage."""

    def __init__(self, tmp: Path, node: FaultNode) -> None:
        from ledger.chain.rpc import connect
        from ledger.evidence import records as rec
        from ledger.evidence.anchor import Anchorer

        self.node, self.chain = node, connect(node.url)
        self.chain.poll_interval = 0.01
        self.log = self.chain.deploy("EvidenceLog", self.chain.accounts[0].address)
        self.store = Store(tmp / "lib.sqlite3", MasterSecret.generate())
        sale = generate_flash_sale(seed=12, orders=4, merchants=1, start=START)
        self.store.ingest(rec.parse_jsonl(to_jsonl(sale), source="t"), source="t")
        self.anchorer = Anchorer(self.store, self.chain, self.log)

    def recheck(self) -> Any:
        from ledger.evidence.anchor_check import recheck_anchors

        return recheck_anchors(self.store, self.chain, self.log.address)

    def latest(self) -> AnchorRow:
        row = self.store.latest_confirmed(self.chain.chain_id, self.log.address)
        assert row is not None
        return row


@pytest.fixture
def lib(tmp_path: Path, fault_node: FaultNode) -> Iterator[LibWorld]:
    w = LibWorld(tmp_path, fault_node)
    yield w
    w.store.close()


def test_an_anchor_that_reverts_once_re_mined_is_failed(lib: LibWorld) -> None:
    chain, log = lib.chain, lib.log
    rival = chain.accounts[1]
    chain.transact(log.functions.grantRole(chain.call(log.functions.ANCHORER_ROLE()), rival.address))
    lib.anchorer.anchor()
    row = lib.latest()
    raw_rival, _, _ = chain.build_signed(log.functions.anchor(row.size, row.root, []), rival, gas=200_000)
    rpc_call(lib.node, "anvil_mine", "0x1")
    depth = block_number(lib.node) - (row.block_number or 0) + 1
    # On the new branch the rival anchors the same head first: ours reverts.
    rpc_call(lib.node, "anvil_reorg", depth, [["0x" + raw_rival.hex(), 0], ["0x" + row.raw_tx.hex(), 1]])
    [change] = lib.recheck().changes
    assert change.kind == "failed" and change.row.status == "failed"
    assert "reverted" in (change.row.error or "")
    assert lib.store.latest_confirmed(chain.chain_id, log.address) is None
    assert lib.anchorer.anchor().head is None  # the rival's anchor of this head is the chain's


def test_an_anchor_the_node_holds_pending_again_is_awaited_not_re_anchored(lib: LibWorld) -> None:
    chain = lib.chain
    snap = rpc_call(lib.node, "evm_snapshot")
    lib.anchorer.anchor()
    row = lib.latest()
    rpc_call(lib.node, "evm_revert", snap)  # the block is gone ...
    rpc_call(lib.node, "evm_setAutomine", False)
    chain.broadcast(row.raw_tx)  # ... and the transaction is back in the node's pool, as geth does
    [change] = lib.recheck().changes
    assert change.kind == "lost" and change.row.status == "sent" and "pending" in (change.row.error or "")
    rpc_call(lib.node, "evm_setAutomine", True)
    rpc_call(lib.node, "anvil_mine", "0x1")
    chain._nonces.clear()
    outcome = lib.anchorer.anchor()
    assert outcome.head is None and [a.status for a in outcome.settled] == ["confirmed"]
    assert lib.latest().id == row.id and lib.latest().tx_hash == row.tx_hash
    assert len(lib.store.anchors()) == 1  # awaited, never anchored a second time


# --- anchors: stuck, replaced, and two processes on one key ----------------------------------

class Ingested:
    """A data dir with the evidence log deployed and records ingested, nothing anchored yet."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env
        sale = generate_flash_sale(seed=13, orders=6, merchants=1, start=START)
        self.order = sale[-1]["order_id"]
        self.size = len(sale)
        (tmp / "sale.jsonl").write_bytes(to_jsonl(sale))
        self.trust = jrun(["deploy", "--log-only", "--redeploy"], env)["trust_root"]
        run(["ingest", str(tmp / "sale.jsonl")], env)


def test_stuck_anchor_is_not_claimed_then_replaced_by_ledger_resume(
        tmp_path: Path, fault_env: dict[str, str], fault_node: FaultNode) -> None:
    w, env = Ingested(tmp_path, fault_env), fault_env
    rpc_call(fault_node, "anvil_setAutomine", False)
    try:
        res = run(["anchor", "--timeout", "1"], env, check=False)
        assert res.returncode == 75, res.stderr  # EX_TEMPFAIL: stored and sent, not settled
        assert "not settled within 1s" in res.stderr and "ledger resume" in res.stderr
        [sent] = stored_anchors(env)
        assert sent.status == "sent" and sent.size == w.size
        # Nothing claims the head while it waits: no confirmed anchor, no bundle.
        status = jrun(["status"], env)
        assert status["latest_anchor"] is None and status["unanchored_records"] == w.size
        out = run(["export", "--order", w.order, "-o", str(tmp_path / "x.json")], env, check=False)
        assert out.returncode == 2 and not (tmp_path / "x.json").exists()

        # The base fee rises past the stored bid: under a ceiling below it nothing is sent.
        rpc_call(fault_node, "anvil_setNextBlockBaseFeePerGas", hex(100 * 10**9))
        rpc_call(fault_node, "evm_mine")
        capped = run(["resume", "--max-fee", "1", "--timeout", "1"], env, check=False)
        assert capped.returncode == 75, capped.stderr
        assert "needs at least" in capped.stdout and "1 still pending" in capped.stdout
        assert [a.tx_hash for a in stored_anchors(env)] == [sent.tx_hash]
        bumped = run(["resume", "--timeout", "1"], env, check=False)  # replaced, not mined yet
        assert bumped.returncode == 75 and "replaced" in bumped.stderr, bumped.stderr
        [replaced] = stored_anchors(env)
        assert replaced.tx_hash != sent.tx_hash and replaced.status == "sent"
        rpc_call(fault_node, "evm_mine")
        done = jrun(["resume"], env)
        assert [r["status"] for r in done["results"]] == ["confirmed"] and done["pending"] == 0
    finally:
        rpc_call(fault_node, "anvil_setAutomine", True)
    [row] = stored_anchors(env)  # one head, one anchor: the replacement, at the same nonce
    assert row.status == "confirmed" and row.tx_hash == replaced.tx_hash and row.size == w.size
    tx = json.loads(json.dumps(rpc_call(fault_node, "eth_getTransactionByHash", "0x" + row.tx_hash.hex())))
    assert int(tx["nonce"], 16) == row.nonce
    assert rpc_call(fault_node, "eth_getTransactionByHash", "0x" + sent.tx_hash.hex()) is None
    assert not jrun(["anchor"], env)["anchored"]
    run(["export", "--order", w.order, "-o", str(tmp_path / "b.json")], env)
    code = run(["verify", str(tmp_path / "b.json"), "--trust", w.trust], env, check=False).returncode
    assert code == 0


def test_two_anchor_processes_on_one_key_anchor_each_head_once(
        tmp_path: Path, fault_env: dict[str, str], fault_node: FaultNode) -> None:
    import subprocess
    import sys

    w, env = Ingested(tmp_path, fault_env), fault_env
    procs = [subprocess.Popen([sys.executable, "-m", "ledger", "anchor", "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = [json.loads(o) for o, _ in outs]
    assert sorted(bool(s["anchored"]) for s in said) == [False, True]  # one anchors, one finds it done
    rows = stored_anchors(env)
    assert [(r.status, r.size) for r in rows] == [("confirmed", w.size)]
    assert jrun(["status"], env)["latest_anchor"]["size"] == w.size
    assert (Path(env["LEDGER_HOME"]) / "locks").is_dir()
