"""The escrow through the CLI, as a platform engineer runs it: separate processes, real anvil."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ledger.dev.flash_sale import generate_flash_sale
from ledger.evidence.master_secret import MasterSecret
from tests.integration.test_cli import run

START = "2026-11-11T12:00:00Z"
ETH = 10**18


@pytest.fixture
def env(tmp_path: Path, anvil_node) -> dict[str, str]:  # type: ignore[no-untyped-def]
    e = dict(os.environ)
    e.update(LEDGER_HOME=str(tmp_path / "home"), LEDGER_MASTER_SECRET=MasterSecret.generate_hex(),
             LEDGER_RPC=anvil_node.url, COLUMNS="200")
    for k in ("LEDGER_PRIVATE_KEY", "LEDGER_KEYSTORE"):
        e.pop(k, None)
    return e


def j(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    return json.loads(run([*args, "--json"], env).stdout)


def test_escrow_lifecycle_through_the_cli(tmp_path: Path, env: dict[str, str]) -> None:
    sale = generate_flash_sale(seed=31, orders=6, merchants=1, start=START)
    orders = [r for r in sale if r["kind"] == "order"][:3]
    paths = []
    for o in orders:
        path = tmp_path / f"{o['order_id']}.json"
        path.write_text(json.dumps({k: v for k, v in o.items() if k != "ts"}))
        paths.append(path)
    a, b, c = (o["order_id"] for o in orders)

    dep = j(["deploy", "--redeploy"], env)
    assert set(dep["contracts"]) == {"EvidenceLog", "PanelArbitrator", "FulfillmentEscrow",
                                     "EscrowTermsRules", "EscrowBatcher"}
    assert all(d["reused"] for d in j(["deploy"], env)["contracts"].values())
    assert j(["carrier", "add", "dev:5"], env)["registered"]
    d = j(["deposit", "add", "--merchant", "dev:1", "--amount", str(10 * ETH)], env)
    assert d["deposit"] == 10 * ETH and d["locked"] == 0

    for path in paths:
        out = j(["order", "open", "--record", str(path), "--merchant", "dev:1", "--buyer", "dev:3",
                 "--price", str(ETH // 10)], env)
        assert out["state"] == "FUNDED" and out["record_id"].endswith(":order")
    # each order locks 20 % of its price of the deposit (terms version 1)
    assert j(["deposit", "show", "--merchant", "dev:1"], env)["locked"] == 3 * (ETH // 10) // 5

    for n, oid in enumerate((a, b, c)):
        out = j(["order", "ship", oid, "--carrier", "dev:5", "--carrier-code", "SF",
                 "--tracking", f"SF8800{n}0001111"], env)
        assert out["state"] == "SHIPPED" and out["evidence"]
        j(["order", "deliver", oid, "--carrier", "dev:5", "--method", "signed"], env)

    # Reusing a waybill: refused, in plain words, nothing stored.
    sale2 = [r for r in generate_flash_sale(seed=32, orders=2, merchants=1, start="2026-11-12T12:00:00Z")
             if r["kind"] == "order"][0]
    p2 = tmp_path / "d.json"
    p2.write_text(json.dumps({k: v for k, v in sale2.items() if k != "ts"}))
    j(["order", "open", "--record", str(p2), "--merchant", "dev:1", "--buyer", "dev:4",
       "--price", str(ETH // 10)], env)
    bad = run(["order", "ship", sale2["order_id"], "--carrier", "dev:5", "--carrier-code", "SF",
               "--tracking", "sf880000001111"], env, check=False)
    assert bad.returncode == 2
    assert "reused waybill" in bad.stderr and "EscrowTrackingReused" in bad.stderr
    assert not [r for r in j(["order", "show", sale2["order_id"]], env)["records"] if r["kind"] == "shipment"]

    # Too early to release: the error says why and when.
    early = run(["order", "release", a], env, check=False)
    assert early.returncode == 2 and "before its deadline" in early.stderr

    # Pledge b once; a second pledge is refused.
    assert j(["pledge", b, "--merchant", "dev:1", "--lender", "dev:6"], env)["action"] == "pledge"
    again = run(["pledge", b, "--merchant", "dev:1", "--lender", "dev:2"], env, check=False)
    assert again.returncode == 2 and "EscrowAlreadyPledged" in again.stderr
    lender = j(["pledge", b], env)["lender"]
    assert j(["pledge", "show", b], env)["lender"] == lender
    assert lender is not None

    # c goes to dispute; the panel (dev:7..9) rules a refund.
    j(["dispute", "open", c, "--as", "dev:3", "--record-id", f"{c}:dlv"], env)
    j(["dispute", "evidence", c, "--as", "dev:1", "--record-id", f"{c}:ship"], env)
    j(["dispute", "vote", c, "--member", "dev:7", "--ruling", "refund"], env)
    out = j(["dispute", "vote", c, "--member", "dev:8", "--ruling", "refund"], env)
    assert out["state"] == "RESOLVED"

    j(["advance", "4d"], env)
    assert j(["order", "release", a], env)["state"] == "RELEASED"
    assert j(["order", "release", b], env)["state"] == "RELEASED"
    shown = j(["order", "show", b], env)
    assert shown["lender"] == lender
    assert [x["action"] for x in shown["actions"]] == ["fund", "ship", "deliver", "pledge", "release"]

    merchant = j(["withdraw", "--as", "dev:1"], env)
    terms = j(["escrow"], env)["terms"]
    net = ETH // 10 - ETH // 10 * (terms["fee_bps"] + terms["reserve_bps"]) // 10_000
    assert merchant["amount"] == net  # a only: b's payout went to the lender
    assert j(["withdraw", "--as", "dev:6"], env)["amount"] == net
    assert j(["withdraw", "--as", "dev:3"], env)["amount"] == ETH // 10  # c refunded
    books = j(["escrow"], env)
    assert books["books_balance"] and books["escrowed"] == ETH // 10  # the 4th order is open

    # Everything the escrow cited is in the log: anchor it and export c's bundle.
    run(["anchor"], env)
    bundle = tmp_path / "c.json"
    run(["export", "--order", c, "-o", str(bundle)], env)
    assert run(["verify", str(bundle), "--trust", dep["trust_root"]], env).returncode == 0
    kinds = {r["record"]["kind"] for r in json.loads(bundle.read_text())["records"]}
    assert kinds == {"order", "payment", "shipment", "delivery"}

    # An investigator exports c's case and replays it on a fresh chain; or replays the order
    # straight from this data dir and its live chain.
    case_path = tmp_path / "c-case.json"
    out = j(["case", c, "-o", str(case_path)], env)
    assert out["state"] == "RESOLVED" and out["actions"] == 7  # fund ship deliver open evidence 2 votes
    replayed = run(["replay", str(case_path), "--json"], env)
    result = json.loads(replayed.stdout)
    assert result["ok"] and result["replay_state"] == "RESOLVED"
    from_live = json.loads(run(["replay", c, "--json"], env).stdout)
    assert from_live["ok"] and from_live["event_log_digest"] == result["event_log_digest"]

    # The failed waybill attempt above was refused before it was sent; a refused call that is
    # mined is traced with its custom error decoded.
    shown = j(["order", "show", a], env)
    fund_tx = shown["actions"][0]["tx"]
    trace = j(["trace", fund_tx], env)
    assert trace["contract"] == "FulfillmentEscrow" and trace["function"] == "fund"
    assert trace["args"]["offer"][0].startswith("0x")


def test_cli_escrow_errors_are_clear(tmp_path: Path, env: dict[str, str]) -> None:
    res = run(["order", "show", "X1"], env, check=False)
    assert res.returncode == 2 and "run `ledger deploy` first" in res.stderr
    run(["deploy", "--redeploy"], env)
    res = run(["order", "ship", "X1", "--carrier", "dev:5", "--carrier-code", "SF",
               "--tracking", "SF123456"], env, check=False)
    assert res.returncode == 2 and "no order record" in res.stderr
    res = run(["withdraw", "--as", "0x12"], env, check=False)
    assert res.returncode == 2 and "argument --as: not a key reference" in res.stderr
    res = run(["dispute", "vote", "X1", "--member", "dev:7", "--ruling", "maybe"], env, check=False)
    assert res.returncode == 2 and "unknown ruling" in res.stderr


def test_a_merchant_signs_the_offer_in_its_own_wallet(tmp_path: Path, env: dict[str, str]) -> None:
    """`order offer` prints the typed data; the merchant signs it elsewhere (eth_signTypedData_v4,
    here eth_account on the JSON alone); `order open --offer` funds it. An offer for another
    record, or signed by someone else, is refused before anything is stored or sent."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    from ledger.chain.keys import resolve_signer
    from ledger.chain.rpc import connect

    sale = generate_flash_sale(seed=37, orders=4, merchants=1, start=START)
    first, second = [r for r in sale if r["kind"] == "order"][:2]
    paths = []
    for o in (first, second):
        path = tmp_path / f"{o['order_id']}.json"
        path.write_text(json.dumps({k: v for k, v in o.items() if k != "ts"}))
        paths.append(path)
    j(["deploy", "--redeploy"], env)
    j(["deposit", "add", "--merchant", "dev:1", "--amount", str(ETH)], env)
    merchant = resolve_signer("dev:1", connect(env["LEDGER_RPC"]))

    def offer_for(path: Path) -> dict[str, Any]:
        doc = j(["order", "offer", "--record", str(path), "--merchant", merchant.address,
                 "--buyer", "dev:3", "--price", str(ETH // 10)], env)
        assert doc["signature"] is None and doc["typed_data"]["primaryType"] == "Offer"
        return doc

    def signed(doc: dict[str, Any], key: Any) -> Path:
        sig = Account.sign_message(encode_typed_data(full_message=doc["typed_data"]), key.key).signature
        out = tmp_path / f"signed-{len(list(tmp_path.iterdir()))}.json"
        out.write_text(json.dumps({**doc, "signature": "0x" + bytes(sig).hex()}))
        return out

    doc = offer_for(paths[0])
    assert doc["offer"]["orderId"][2:42] == merchant.address[2:].lower()  # the merchant's namespace
    # Signed by someone else: refused, naming both.
    stranger = Account.from_key(b"\x42" * 32)
    out = run(["order", "open", "--offer", str(signed(doc, stranger)), "--buyer", "dev:3"], env, check=False)
    assert out.returncode == 2 and stranger.address in out.stderr and "not the merchant" in out.stderr
    # An offer for another record: refused.
    other = tmp_path / "other-record.json"
    other.write_text(json.dumps(offer_for(paths[1])["record"]))
    out = run(["order", "open", "--offer", str(signed(doc, merchant)), "--record", str(other),
               "--buyer", "dev:3"], env, check=False)
    assert out.returncode == 2 and "commits to order record leaf" in out.stderr
    show = run(["order", "show", first["order_id"]], env, check=False)
    assert show.returncode == 2  # nothing stored
    # The genuine signature funds it.
    opened = j(["order", "open", "--offer", str(signed(doc, merchant)), "--buyer", "dev:3"], env)
    assert opened["state"] == "FUNDED"
