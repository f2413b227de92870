"""A production deployment rehearsed end to end (docs/deploy.md), on anvil standing in for a
real network: chain id 8453, 2-second blocks, a 1 gwei base fee, two confirmations, keystore
keys only (the node's development accounts serve as a faucet and nothing else).

The operator deploys with the roles separated (a hot anchorer that can do nothing else, the
log admin with a "safe" that must accept, the escrow's admin behind a timelock whose proposer
and executor is the safe, a cold treasury), the safe accepts the log admin, the anchorer
anchors, the treasury is changed through the timelock, a re-run asking for another treasury
is refused, one contract is redeployed alone, `ledger deploy --check` is clean, and then
reports a role granted behind the tool's back.

Attacks tried: the deployer (no longer the anchorer) anchoring; a re-run quietly ignoring a
new configuration; a redeploy moving the evidence log; a grant made outside the tool going
unnoticed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.types import RPCEndpoint

from ledger.chain.anvil import AnvilProcess
from ledger.chain.rpc import connect
from ledger.dev.flash_sale import generate_flash_sale, to_jsonl

pytestmark = pytest.mark.anvil

GWEI = 10**9
CHAIN_ID = 8453


class Operator:
    """`ledger` commands against the production-like node, as an operator runs them."""

    def __init__(self, node: AnvilProcess, home: Path) -> None:
        self.node, self.home = node, home
        self.chain = connect(node.url, signers=[])
        self.keys: dict[str, LocalAccount] = {}
        self.refs: dict[str, str] = {}
        for name in ("deployer", "hot", "safe", "cold", "m1", "m2", "m3", "intruder"):
            self._keystore(name)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("LEDGER_") or k in ("LEDGER_MASTER_SECRET",)}
        self.env.update(LEDGER_HOME=str(home), LEDGER_RPC=node.url, COLUMNS="200",
                        LEDGER_MASTER_SECRET="a5" * 32, LEDGER_CONFIRMATIONS="2", LEDGER_TX_TIMEOUT="60",
                        LEDGER_KEYSTORE=str(home / "deployer.json"),
                        LEDGER_KEYSTORE_PASSWORD_FILE=str(home / "deployer.pw"))

    def _keystore(self, name: str) -> None:
        account = Account.create()
        self.home.mkdir(parents=True, exist_ok=True)
        password = f"{name} passphrase"
        (self.home / f"{name}.json").write_text(json.dumps(Account.encrypt(account.key, password)))
        pw = self.home / f"{name}.pw"
        pw.write_text(password)
        pw.chmod(0o600)
        self.keys[name] = account
        self.refs[name] = f"keystore:{self.home / (name + '.json')}?password-file={pw}"
        self.rpc("anvil_setBalance", account.address, hex(10**20))  # the faucet

    def rpc(self, method: str, *params: Any) -> Any:
        out = self.chain.w3.provider.make_request(RPCEndpoint(method), list(params))
        assert "error" not in out, out
        return out.get("result")

    def addr(self, name: str) -> str:
        return str(self.keys[name].address)

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ledger", *args], capture_output=True, text=True,
                              env=env or self.env, timeout=300)

    def ok(self, *args: str, env: dict[str, str] | None = None) -> Any:
        proc = self.run(*args, "--json", env=env)
        assert proc.returncode == 0, \
            f"ledger {' '.join(args)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}"
        assert "Traceback" not in proc.stderr
        return json.loads(proc.stdout)

    def as_(self, name: str) -> dict[str, str]:
        """The environment with `name`'s keystore as the operator key."""
        return dict(self.env, LEDGER_KEYSTORE=str(self.home / f"{name}.json"),
                    LEDGER_KEYSTORE_PASSWORD_FILE=str(self.home / f"{name}.pw"))

    def manifest(self) -> Any:
        return json.loads((self.home / "deployments" / f"{CHAIN_ID}.json").read_text())


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    with AnvilProcess(chain_id=CHAIN_ID, base_fee=GWEI, block_time=2) as node:
        yield Operator(node, tmp_path_factory.mktemp("operator"))


def test_a_production_deployment_end_to_end(op: Operator) -> None:
    panel = ",".join(op.addr(m) for m in ("m1", "m2", "m3"))
    dep = op.ok("deploy", "--anchorer", op.addr("hot"), "--log-admin", op.addr("safe"), "--panel", panel,
                "--threshold", "2", "--treasury", op.addr("cold"), "--admin-delay", "1h",
                "--proposer", op.addr("safe"), "--executor", op.addr("safe"))
    assert dep["deployer"] == op.addr("deployer") and set(dep["contracts"]) == {
        "EvidenceLog", "EscrowTermsRules", "EscrowBatcher", "PanelArbitrator", "FulfillmentEscrow",
        "AdminTimelock"}
    assert dep["gas_used"] > 0 and dep["cost_wei"] >= dep["gas_used"] * GWEI // 2 and dep["tx_hashes"]
    roles = dep["configuration"]["roles"]
    assert roles["EvidenceLog"] == {"anchorer": [op.addr("hot")],
                                    "admin": sorted([op.addr("deployer"), op.addr("safe")])}
    timelock = dep["contracts"]["AdminTimelock"]["address"]
    assert roles["FulfillmentEscrow"]["admin"] == roles["PanelArbitrator"]["admin"] == [timelock]
    assert roles["AdminTimelock"]["proposer"] == [op.addr("safe")]
    assert dep["configuration"]["treasury"] == op.addr("cold")
    assert op.ok("deploy", "--check")["ok"]

    # The safe proves its key and takes the log admin over: the deployer leaves.
    op.ok("admin", "role", "accept", "--contract", "EvidenceLog", "--key", op.refs["safe"])
    assert op.manifest()["configuration"]["roles"]["EvidenceLog"]["admin"] == [op.addr("safe")]
    listed = op.ok("admin", "role", "list", "--contract", "EvidenceLog")
    assert op.addr("deployer") not in json.dumps(listed) and op.addr("safe") in json.dumps(listed)
    assert op.ok("deploy", "--check")["ok"]

    # The deployer is no longer the anchorer: only the hot key anchors.
    sale = generate_flash_sale(seed=8, orders=6, merchants=1, start="2026-11-11T12:00:00Z")
    (op.home / "sale.jsonl").write_bytes(to_jsonl(sale))
    op.ok("ingest", str(op.home / "sale.jsonl"))
    refused = op.run("anchor")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "AccessControlUnauthorizedAccount" in refused.stderr, refused.stderr
    anchored = op.ok("anchor", env=op.as_("hot"))
    assert anchored["size"] == len(sale)

    # A re-run asking for another treasury is refused with the supported way to change it.
    again = op.run("deploy", "--treasury", op.addr("safe"))
    assert again.returncode == 2 and "nothing was sent" in again.stderr
    assert f"`ledger admin treasury {op.addr('safe')}`" in again.stderr
    # ... which is the timelock: the safe schedules, waits out the delay, executes.
    scheduled = op.ok("admin", "treasury", op.addr("safe"), "--as", op.refs["safe"])
    op.rpc("evm_increaseTime", 3601)
    op.rpc("evm_mine")
    op.ok("admin", "execute", "0x" + scheduled["operation"]["id"].removeprefix("0x"), "--as", op.refs["safe"])
    manifest = op.manifest()
    assert manifest["configuration"]["treasury"] == op.addr("safe")
    assert manifest["history"][-1]["event"] == "admin change"
    assert op.ok("deploy", "--check")["ok"]

    # One contract redeployed alone: every other address, the log above all, stays.
    before = {n: c["address"] for n, c in op.manifest()["contracts"].items()}
    redone = op.ok("deploy", "--redeploy", "EscrowBatcher")
    after = {n: c["address"] for n, c in redone["contracts"].items()}
    assert after["EscrowBatcher"] != before["EscrowBatcher"]
    assert {n: a for n, a in after.items() if n != "EscrowBatcher"} == \
        {n: a for n, a in before.items() if n != "EscrowBatcher"}
    moved = op.run("deploy", "--redeploy", "EvidenceLog")
    assert moved.returncode == 2 and "--move-log" in moved.stderr
    assert op.ok("deploy", "--check")["ok"]

    # Moving the log, asked for twice: a bundle anchored in the old log still verifies with its
    # kept trust file; the log is anchored anew into the new one, and new bundles verify there.
    oid = next(r["order_id"] for r in sale if r["kind"] == "order")
    op.ok("export", "--order", oid, "-o", str(op.home / "old.json"))
    old_log = after["EvidenceLog"]
    new = op.ok("deploy", "--redeploy", "EvidenceLog", "--move-log", "--anchorer", op.addr("hot"),
                "--log-admin", op.addr("safe"))  # a new contract: its roles are separated again
    assert new["address"] != old_log and not new["reused"]
    kept = op.home / "trust" / f"{CHAIN_ID}-{old_log.lower()}.json"
    op.ok("verify", str(op.home / "old.json"), "--trust", str(kept))
    assert new["configuration"]["roles"]["EvidenceLog"]["anchorer"] == [op.addr("hot")]
    op.ok("anchor", env=op.as_("hot"))
    op.ok("export", "--order", oid, "-o", str(op.home / "new.json"))
    op.ok("verify", str(op.home / "new.json"), "--trust", new["trust_root"])
    stale = op.run("verify", str(op.home / "old.json"), "--trust", new["trust_root"], "--json")
    assert stale.returncode != 0  # pinned to the new log, the old bundle is not taken on trust
    assert op.ok("deploy", "--check")["ok"]

    # Drift: the deployer, still the new log's admin until the safe accepts, grants the anchorer
    # role outside the tool.
    log = op.chain.contract("EvidenceLog", new["address"])
    op.chain.transact(log.functions.grantRole(keccak(text="ANCHORER_ROLE"), op.addr("intruder")),
                      op.keys["deployer"], confirmations=1)
    drift = op.run("deploy", "--check", "--json")
    assert drift.returncode == 1, drift.stdout + drift.stderr
    assert json.loads(drift.stdout)["differences"] == [
        f"EvidenceLog anchorer: {op.addr('intruder')} holds the role on chain, the manifest does not list it"]


def test_a_reset_local_node_is_redeployed_with_a_bare_redeploy(tmp_path: Path) -> None:
    """After a reset, nothing in the manifest is live: a bare `--redeploy` deploys every contract
    anew with the local defaults (a panel of dev accounts, no timelock), the log included (its
    code is gone, so nothing is moved), and `--check` is clean again."""
    node = AnvilProcess().start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        env.update(LEDGER_HOME=str(tmp_path / "home"), LEDGER_RPC=node.url, LEDGER_MASTER_SECRET="b6" * 32)

        def ledger(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "ledger", *args, "--json"], capture_output=True,
                                  text=True, env=env, timeout=300)

        first = json.loads(ledger("deploy").stdout)
        port = node.port
        node.stop()
        node = AnvilProcess(port=port).start()
        gone = ledger("deploy", "--check")
        assert gone.returncode == 1 and len(json.loads(gone.stdout)["differences"]) == 5
        redone = ledger("deploy", "--redeploy")
        assert redone.returncode == 0, redone.stdout + redone.stderr
        contracts = json.loads(redone.stdout)["contracts"]
        assert set(contracts) == set(first["contracts"]) and not any(c["reused"] for c in contracts.values())
        assert ledger("deploy", "--check").returncode == 0
    finally:
        node.stop()
