"""`ledger admin` through the CLI on anvil: with an admin timelock every change is scheduled in
public, runs only after the delay, and never reaches an order funded before it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ledger.chain.rpc import connect
from ledger.dev.flash_sale import generate_flash_sale, to_jsonl
from tests.integration import test_chain_faults, test_cli_escrow
from tests.integration.test_cli import run
from tests.integration.test_cli_escrow import ETH, START, j

env = test_cli_escrow.env  # the same fixture: a fresh data dir on the session's anvil

DAY = 86_400


def fails(args: list[str], env: dict[str, str], needle: str) -> None:
    out = run(args, env, check=False)
    assert out.returncode == 2 and needle in out.stderr, (out.returncode, out.stderr)


def test_timelocked_admin_changes_wait_and_spare_open_orders(tmp_path: Path, env: dict[str, str]) -> None:
    dep = j(["deploy", "--redeploy", "--admin-delay", "1d", "--carrier", "dev:5"], env)
    assert "AdminTimelock" in dep["contracts"]
    shown = j(["admin", "show"], env)
    assert shown["delay"] == DAY and shown["timelock"] == dep["contracts"]["AdminTimelock"]["address"]
    assert shown["operations"] == []
    # The deployer handed both admin roles to the timelock and kept none.
    chain = connect(env["LEDGER_RPC"])
    for name in ("FulfillmentEscrow", "PanelArbitrator"):
        c = chain.contract(name, dep["contracts"][name]["address"])
        role = bytes(chain.call(c.functions.DEFAULT_ADMIN_ROLE()))
        assert chain.call(c.functions.hasRole(role, shown["timelock"]))
        assert not chain.call(c.functions.hasRole(role, chain.default_account.address))
    # Only a proposer schedules.
    fails(["admin", "treasury", "dev:4", "--as", "dev:3"], env, "AccessControlUnauthorizedAccount")

    # An order funded before any change.
    sale = generate_flash_sale(seed=41, orders=4, merchants=1, start=START)
    order = next(r for r in sale if r["kind"] == "order")
    path = tmp_path / "order.json"
    path.write_text(json.dumps({k: v for k, v in order.items() if k != "ts"}))
    j(["deposit", "add", "--merchant", "dev:1", "--amount", str(10 * ETH)], env)
    j(["order", "open", "--record", str(path), "--merchant", "dev:1", "--buyer", "dev:3",
       "--price", str(ETH // 10)], env)
    locked = j(["deposit", "show", "--merchant", "dev:1"], env)["locked"]
    assert locked == ETH // 10 // 5  # 20 % in terms version 1

    # Schedule a friendly panel that prices disputes out, and no deposit at all for new orders.
    panel = j(["admin", "arbitrator", "--panel", "dev:6,dev:7,dev:8", "--cost", str(ETH)], env)
    assert panel["panel_epoch"] == 2 and not panel["executed"]
    assert [c.split("(")[0] for c in panel["calls"]] == ["PanelArbitrator.setPanel",
                                                         "FulfillmentEscrow.setTerms"]
    assert panel["operation"]["status"] == "pending"
    ratio = j(["admin", "deposit-ratio", "0"], env)
    assert not ratio["executed"] and panel["operation"]["id"] in ratio["warning"]  # both publish terms
    j(["admin", "cancel", ratio["operation"]["id"]], env)
    ops = [o for o in j(["admin", "show"], env)["operations"] if o["status"] != "cancelled"]
    assert [o["status"] for o in ops] == ["pending"]
    # Not before the delay.
    fails(["admin", "execute", ops[0]["id"]], env, "is pending")
    j(["advance", "1d"], env)
    assert j(["admin", "show"], env)["operations"][0]["status"] == "ready"
    assert j(["admin", "execute", ops[0]["id"]], env)["executed"]
    assert j(["admin", "show"], env)["operations"][0]["status"] == "done"
    fails(["admin", "execute", ops[0]["id"]], env, "is done")
    ratio = j(["admin", "deposit-ratio", "0"], env)
    assert "warning" not in ratio
    j(["advance", "1d"], env)
    j(["admin", "execute", ratio["operation"]["id"]], env)

    # The open order keeps its lock, its panel and its arbitration cost.
    assert j(["deposit", "show", "--merchant", "dev:1"], env)["locked"] == locked
    terms = j(["escrow"], env)["terms"]
    assert terms["deposit_ratio_bps"] == 0 and terms["arbitrator_extra_data"] == f"{2:064x}"
    chain_order = j(["order", "show", order["order_id"]], env)
    escrow = chain.contract("FulfillmentEscrow", dep["contracts"]["FulfillmentEscrow"]["address"])
    info = chain.call(escrow.functions.getOrder(bytes.fromhex(chain_order["escrow_order_id"][2:])))
    assert info[7] == 1  # funded under terms version 1: panel epoch 1, no arbitration cost

    # A scheduled change can be cancelled before it runs.
    op = j(["admin", "treasury", "dev:4"], env)["operation"]
    assert j(["admin", "cancel", op["id"]], env)["cancelled"]
    assert j(["admin", "show"], env)["operations"][-1]["status"] == "cancelled"


def test_without_a_timelock_admin_changes_apply_at_once(env: dict[str, str]) -> None:
    j(["deploy", "--redeploy"], env)
    assert j(["admin", "show"], env)["timelock"] is None
    done = j(["admin", "carrier", "add", "dev:5"], env)
    assert done["executed"] and done["calls"][0].startswith("FulfillmentEscrow.setCarrier(")
    assert j(["carrier", "add", "dev:6"], env)["registered"]
    fails(["admin", "terms"], env, "name at least one field")


# --- roles: `ledger admin role ...` ------------------------------------------------------------

fault_node = test_chain_faults.fault_node  # a node of the test's own (it stops mining)
fault_env = test_chain_faults.fault_env

ZERO = "0x" + "00" * 20
TYPO = "0x1111111111111111111111111111111111111112"  # nobody's key


def holders(env: dict[str, str], contract: str, role: str) -> list[str]:
    listed = j(["admin", "role", "list", "--contract", contract], env)[contract]["roles"]
    return next(r["holders"] for r in listed if r["role"] == role)


def costs_add_up(out: dict[str, Any]) -> None:
    """A command that sent transactions reports each one's hash, gas and cost, and the sums."""
    txs = out["transactions"]
    assert txs and [t["tx_hash"] for t in txs] == out["tx_hashes"]
    for t in txs:
        assert t["gas_used"] > 0 and t["cost_wei"] == t["gas_used"] * t["effective_gas_price"] > 0
    assert out["gas_used"] == sum(t["gas_used"] for t in txs)
    assert out["cost_wei"] == sum(t["cost_wei"] for t in txs)


def test_roles_cannot_lock_the_operator_out(env: dict[str, str]) -> None:
    dep = j(["deploy", "--redeploy"], env)
    chain = connect(env["LEDGER_RPC"])
    me = chain.default_account.address
    listed = j(["admin", "role", "list"], env)
    assert set(listed) == {"EvidenceLog", "FulfillmentEscrow", "PanelArbitrator"}
    assert [r["role"] for r in listed["EvidenceLog"]["roles"]] == ["admin", "anchorer"]
    assert all(r["holders"] == [me] for c in listed.values() for r in c["roles"])
    assert listed["FulfillmentEscrow"]["address"] == dep["contracts"]["FulfillmentEscrow"]["address"]

    # A separate anchorer key; the grant reports what it cost.
    anchorer = address(env, "dev:2")
    out = j(["admin", "role", "grant", "anchorer", "dev:2", "--contract", "EvidenceLog"], env)
    assert out["executed"] and out["role"] == "anchorer" and out["account"] == anchorer
    costs_add_up(out)
    assert holders(env, "EvidenceLog", "anchorer") == [me, anchorer]
    fails(["admin", "role", "grant", "anchorer", "dev:2", "--contract", "EvidenceLog"], env, "already holds")
    fails(["admin", "role", "grant", "admin", ZERO, "--contract", "FulfillmentEscrow"], env, "zero address")
    fails(["admin", "role", "grant", "pauser", "dev:2", "--contract", "FulfillmentEscrow"], env,
          "its roles are admin")
    fails(["admin", "role", "list", "--contract", "Nope"], env, "not a contract with roles")
    # The last admin can neither be revoked nor renounce.
    fails(["admin", "role", "revoke", "admin", me, "--contract", "FulfillmentEscrow"], env,
          "no holder would be left")
    fails(["admin", "role", "renounce", "admin", "dev:0", "--contract", "EvidenceLog"], env,
          "no holder would be left")
    # Only the account itself renounces; a non-admin cannot grant.
    fails(["admin", "role", "renounce", "anchorer", anchorer, "--contract", "EvidenceLog"], env,
          "renounceRole is sent by")
    fails(["admin", "role", "grant", "admin", "dev:3", "--contract", "PanelArbitrator", "--as", "dev:4"], env,
          "does not hold PanelArbitrator's admin role")
    assert j(["admin", "role", "renounce", "anchorer", "dev:2", "--contract", "EvidenceLog"], env)["executed"]
    assert holders(env, "EvidenceLog", "anchorer") == [me]

    # A handover to a typo'd address: the old admin stays, and cannot leave until a key proves itself.
    step1 = j(["admin", "role", "handover", "--contract", "FulfillmentEscrow", "--to", TYPO], env)
    assert step1["executed"] and "role accept" in step1["next"]
    assert holders(env, "FulfillmentEscrow", "admin") == [me, TYPO]
    fails(["admin", "role", "revoke", "admin", me, "--contract", "FulfillmentEscrow"], env,
          "never sent a transaction")
    fails(["admin", "role", "renounce", "admin", "dev:0", "--contract", "FulfillmentEscrow"], env,
          "never sent a transaction")
    # A key that was not handed the role cannot accept it, and sends nothing trying.
    outsider = address(env, "dev:3")
    nonce = chain.w3.eth.get_transaction_count(outsider)
    fails(["admin", "role", "accept", "--contract", "FulfillmentEscrow", "--key", "dev:3"], env,
          "does not hold FulfillmentEscrow's admin role")
    assert chain.w3.eth.get_transaction_count(outsider) == nonce
    # The real new admin: step 1, then its own key removes every other admin (the typo too).
    new = address(env, "dev:4")
    j(["admin", "role", "handover", "--contract", "FulfillmentEscrow", "--to", "dev:4"], env)
    accepted = j(["admin", "role", "accept", "--contract", "FulfillmentEscrow", "--key", "dev:4"], env)
    assert sorted(accepted["revoked"]) == sorted([me, TYPO]) and len(accepted["tx_hashes"]) == 2
    costs_add_up(accepted)
    assert holders(env, "FulfillmentEscrow", "admin") == [new]
    fails(["admin", "role", "accept", "--contract", "FulfillmentEscrow", "--key", "dev:4"], env, "only admin")
    # The old platform key is no admin any more; the new one is.
    fails(["admin", "carrier", "add", "dev:5"], env, "AccessControlUnauthorizedAccount")
    assert j(["admin", "carrier", "add", "dev:5", "--as", "dev:4"], env)["executed"]


def address(env: dict[str, str], ref: str) -> str:
    from ledger.chain.keys import resolve_signer

    return str(resolve_signer(ref, connect(env["LEDGER_RPC"])).address)


def test_role_changes_through_the_timelock_wait_and_are_checked_again(env: dict[str, str]) -> None:
    dep = j(["deploy", "--redeploy", "--admin-delay", "1d"], env)
    tl = dep["contracts"]["AdminTimelock"]["address"]
    me = connect(env["LEDGER_RPC"]).default_account.address
    assert holders(env, "AdminTimelock", "admin") == [tl]  # it administers itself
    assert holders(env, "AdminTimelock", "proposer") == [me]
    assert holders(env, "FulfillmentEscrow", "admin") == [tl]
    # Without a proposer (or an executor) nothing could ever be scheduled (or run) again.
    fails(["admin", "role", "revoke", "proposer", me, "--contract", "AdminTimelock"], env,
          "no holder would be left")
    fails(["admin", "role", "renounce", "executor", "dev:0", "--contract", "AdminTimelock"], env,
          "no holder would be left")

    # Handing the escrow's admin role over is itself an admin change: it waits out the delay.
    step1 = j(["admin", "role", "handover", "--contract", "FulfillmentEscrow", "--to", "dev:4"], env)
    assert not step1["executed"] and step1["operation"]["status"] == "pending"
    costs_add_up(step1)
    fails(["admin", "role", "accept", "--contract", "FulfillmentEscrow", "--key", "dev:4"], env,
          "does not hold")
    j(["advance", "1d"], env)
    done = j(["admin", "execute", step1["operation"]["id"]], env)
    assert done["executed"] and done["gas_used"] > 0 and done["cost_wei"] > 0
    new = address(env, "dev:4")
    assert holders(env, "FulfillmentEscrow", "admin") == [tl, new]
    j(["deposit", "add", "--merchant", "dev:4", "--amount", "1"], env)  # dev:4 has sent a transaction

    # Two removals, each fine alone when scheduled, are checked again when executed.
    a = j(["admin", "role", "revoke", "admin", new, "--contract", "FulfillmentEscrow"], env)["operation"]
    b = j(["admin", "role", "renounce", "admin", tl, "--contract", "FulfillmentEscrow"], env)["operation"]
    j(["advance", "1d"], env)
    j(["admin", "execute", a["id"]], env)
    fails(["admin", "execute", b["id"]], env, "no holder would be left")
    assert holders(env, "FulfillmentEscrow", "admin") == [tl]


def test_revoking_an_anchorer_with_an_anchor_pending_is_refused(
        tmp_path: Path, fault_env: dict[str, str], fault_node: test_chain_faults.FaultNode) -> None:
    env = fault_env
    sale = generate_flash_sale(seed=43, orders=3, merchants=1, start=START)
    (tmp_path / "sale.jsonl").write_bytes(to_jsonl(sale))
    j(["deploy", "--log-only", "--redeploy"], env)
    run(["ingest", str(tmp_path / "sale.jsonl")], env)
    j(["admin", "role", "grant", "anchorer", "dev:2", "--contract", "EvidenceLog"], env)
    me = connect(env["LEDGER_RPC"]).default_account.address
    test_chain_faults.rpc_call(fault_node, "anvil_setAutomine", False)
    try:
        assert run(["anchor", "--timeout", "1"], env, check=False).returncode == 75
        fails(["admin", "role", "revoke", "anchorer", me, "--contract", "EvidenceLog"], env,
              "has an anchor still pending")
        fails(["admin", "role", "renounce", "anchorer", "dev:0", "--contract", "EvidenceLog"], env,
              "has an anchor still pending")
        test_chain_faults.rpc_call(fault_node, "evm_mine")
    finally:
        test_chain_faults.rpc_call(fault_node, "anvil_setAutomine", True)
    resumed = j(["resume"], env)
    [r] = resumed["results"]
    assert r["status"] == "confirmed" and r["gas_used"] > 0 and resumed["cost_wei"] == r["cost_wei"] > 0
    out = j(["admin", "role", "revoke", "anchorer", me, "--contract", "EvidenceLog"], env)
    assert out["executed"]
    assert holders(env, "EvidenceLog", "anchorer") == [address(env, "dev:2")]
    # The platform key anchors no more; the new anchorer key would (LEDGER_PRIVATE_KEY).
    run(["ingest", str(tmp_path / "sale.jsonl")], env)
    assert run(["anchor"], env, check=False).returncode == 0  # nothing new: the head is anchored


def test_sweep_panel_fees_and_costs_of_escrow_commands(env: dict[str, str]) -> None:
    j(["deploy", "--redeploy"], env)
    fails(["admin", "sweep", "--token", "ETH"], env, "EscrowNothingToSweep")
    fails(["admin", "sweep", "--token", "nope"], env, "not ETH or an ERC-20 address")
    fails(["admin", "panel-fees", "--to", ZERO, "--amount", "1"], env, "zero address")
    fails(["admin", "panel-fees", "--to", "dev:6", "--amount", "1"], env, "PanelWithdrawalFailed")
    out = j(["admin", "panel-fees", "--to", "dev:6", "--amount", "0"], env)
    assert out["calls"][0].startswith("PanelArbitrator.withdrawFees(") and out["executed"]
    costs_add_up(out)
    deposit = j(["deposit", "add", "--merchant", "dev:1", "--amount", str(ETH)], env)
    assert deposit["deposit"] == ETH
    costs_add_up(deposit)
    carrier = j(["carrier", "add", "dev:5"], env)
    assert carrier["registered"]
    costs_add_up(carrier)
    text = run(["admin", "carrier", "add", "dev:6"], env).stdout
    assert "1 transaction(s): gas " in text and " ETH" in text
