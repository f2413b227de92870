"""`ledger admin` through the CLI on anvil: with an admin timelock every change is scheduled in
public, runs only after the delay, and never reaches an order funded before it."""

from __future__ import annotations

import json
from pathlib import Path

from ledger.chain.rpc import connect
from ledger.dev.flash_sale import generate_flash_sale
from tests.integration import test_cli_escrow
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
