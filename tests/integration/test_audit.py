"""`ledger audit`: order timelines and merchant figures, checked against the chain.

A realistic history goes through the platform facade on the `escrow_env` fixture (embedded
chain and anvil): releases, a pledged order, a partial return, a refund on timeout, a
dispute lost by the merchant, one split mostly for the merchant, and an order still open
whose delivery is logged after the last anchor. Every figure is asserted exactly, with
the leaves and transactions it must name; tampering with the store is flagged. The CLI
runs as separate processes on anvil; the HTML report is rendered by headless Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from ledger._internal.merkle import verify_inclusion
from ledger.chain import rpc
from ledger.config import settings
from ledger.deploy import deploy_escrow, deploy_evidence_log, trust_root_path
from ledger.dev.flash_sale import generate_flash_sale
from ledger.escrow.client import EscrowClient
from ledger.escrow.platform import Platform
from ledger.escrow.types import DAY, NATIVE, Ruling, split_ruling
from ledger.evidence.anchor import Anchorer
from ledger.evidence.bundle import export_bundle, verify_bundle
from ledger.evidence.bundle_head import EVIDENCE_LOG_VERIFY_ABI
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store
from ledger.evidence.trust import Pin
from ledger.investigate.audit import Auditor, parse_time_ns, render_html, render_json, text_report
from ledger.investigate.audit_model import MerchantReport, OrderReport
from tests.integration.test_cli import run

START = "2026-11-11T12:00:00Z"
# Record text can hold anything: every rendering must show it as text, never run it.
NASTY = "</script><img src=x onerror=alert(1)> \"q\" 's & <!-- <b>bold</b> \u2028"
NASTY_TITLE = "<svg onload=alert(2)>【赠品】</title>"
PRICES = {"A": 5 * 10**16, "B": 2_000_000, "C": 4_000_000, "D": 1_000_000, "E": 3_000_000,
          "F": 5_000_000, "G": 2_500_000}  # A in wei (ETH), the rest in test-stablecoin units


@pytest.fixture(scope="module")
def orders() -> list[dict[str, Any]]:
    sale = generate_flash_sale(seed=41, orders=12, merchants=1, start=START)
    out = []
    for r in sale:
        if r["kind"] == "order":
            o = {k: v for k, v in r.items() if k != "ts"}  # stamped with the chain's clock
            out.append(o)
    return out


@dataclass
class History:
    store: Store
    auditor: Auditor
    merchant_id: str
    ids: dict[str, str]  # letter -> order id
    tx: dict[str, str]  # step -> 0x tx hash
    anchored_size: int

    def leaf(self, record_id: str) -> int:
        index = self.store.index_of(record_id)
        assert index is not None, record_id
        return index


def build_history(e: Any, store: Store, tmp_path: Path, orders: list[dict[str, Any]]) -> History:
    """Seven orders of one merchant through the platform, anchored, then one more step.

    A (ETH) released; B pledged, released to the lender; C partly returned (1/4) and
    settled by the merchant; D never shipped, refunded on timeout; E disputed by the buyer,
    the panel refunds (merchant lost); G disputed, the panel gives the buyer 30% (merchant
    won); F shipped and pledged, delivered after the anchor (its delivery is unanchored).
    """
    p = Platform(store, e.client, e.admin)
    o = {k: dict(orders[i]) for i, k in enumerate("ABCDEFG")}
    o["A"]["items"] = [dict(o["A"]["items"][0], title=NASTY_TITLE), *o["A"]["items"][1:]]
    ids = {k: v["order_id"] for k, v in o.items()}
    tx: dict[str, str] = {}

    def step(name: str, s: Any) -> None:
        tx[name] = "0x" + s.tx_hash.hex()

    for k in "ABCDEFG":
        token = NATIVE if k == "A" else e.token
        step(f"{k}:fund", p.open_order(o[k], merchant=e.merchant, buyer=e.buyer,
                                       price=PRICES[k], token=token))
        if k == "A":
            e.chain.time_travel(60)  # A opens strictly before the others (window test)
    for n, k in enumerate("ABCEGF"):
        step(f"{k}:ship", p.ship(ids[k], carrier=e.carrier, carrier_code="SF",
                                 tracking_number=f"SF41000{n}77881"))
    for k in "ABCEG":
        step(f"{k}:deliver", p.deliver(ids[k], carrier=e.carrier2))
    for k in "BF":
        step(f"{k}:pledge", p.pledge(ids[k], merchant=e.merchant, lender=e.lender.address))
    c = ids["C"]
    step("C:return", p.request_return(c, buyer=e.buyer, amount=1_000_000, reason="size_fit",
                                      detail=NASTY))
    step("C:return-ship", p.ship_return(c, carrier=e.carrier, carrier_code="YTO",
                                        tracking_number="YT55001122"))
    step("C:return-deliver", p.deliver_return(c, carrier=e.carrier))
    step("C:settle", p.confirm_return(c, merchant=e.merchant))
    step("E:dispute", p.open_dispute(ids["E"], party=e.buyer, statement={
        "kind": "return", "amount": 1, "currency": "CNY", "type": "refund_only",
        "reason": "counterfeit", "detail": "the serum is a counterfeit",
    }))  # fmt: skip
    p.vote(ids["E"], member=e.panel[0], ruling=int(Ruling.REFUND))
    step("E:resolve", p.vote(ids["E"], member=e.panel[1], ruling=int(Ruling.REFUND)))
    step("G:dispute", p.open_dispute(ids["G"], party=e.buyer, evidence_record_id=f"{ids['G']}:dlv"))
    p.vote(ids["G"], member=e.panel[0], ruling=split_ruling(3000))
    step("G:resolve", p.vote(ids["G"], member=e.panel[2], ruling=split_ruling(3000)))
    e.chain.time_travel(3 * DAY + 60)
    step("A:release", p.release(ids["A"]))
    step("B:release", p.release(ids["B"]))
    step("D:refund", p.refund(ids["D"]))

    dep = deploy_evidence_log(e.chain, tmp_path)
    log = e.chain.contract("EvidenceLog", dep.address)
    Anchorer(store, e.chain, log).anchor()
    anchored = store.size
    step("F:deliver", p.deliver(ids["F"], carrier=e.carrier))  # logged after the anchor
    auditor = Auditor(store, e.client, log_address=log.address)
    return History(store, auditor, o["A"]["merchant_id"], ids, tx, anchored)


@pytest.fixture
def history(escrow_env, tmp_path: Path, orders) -> Any:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "ev.sqlite3", MasterSecret.generate())
    yield build_history(escrow_env, store, tmp_path, orders)
    store.close()


def _doc(report: OrderReport | MerchantReport) -> Any:
    """The report as the document `ledger audit --json` prints: the assertions read its keys."""
    return json.loads(render_json(report))


def _sources(fig: dict[str, Any]) -> tuple[set[str], set[str]]:
    s = fig["sources"]
    return {r["id"] for r in s["records"]}, {e["tx_hash"] for e in s["events"]}


def _tamper_public(store: Store, record_id: str, **changes: Any) -> None:
    rec = store.record_by_id(record_id)
    assert rec is not None
    public = json.dumps({**rec.public, **changes}, ensure_ascii=False).encode()
    store.db.execute("UPDATE records SET public = ? WHERE id = ?", (public, record_id))


def _tamper_leaf(store: Store, record_id: str) -> None:
    store.db.execute("UPDATE records SET leaf = ? WHERE id = ?", (b"\x01" * 32, record_id))
    store._tree = None  # the store caches its tree; a real run starts from the file


# --------------------------------------------------------------------------- figures


def test_merchant_figures_are_exact_and_name_their_leaves_and_txs(history, escrow_env) -> None:  # type: ignore[no-untyped-def]
    h, e = history, escrow_env
    ids, tx = h.ids, h.tx
    token = e.token
    typed = h.auditor.merchant_report(h.merchant_id)
    report = _doc(typed)
    f = report["figures"]
    assert report["merchant"]["addresses"] == [e.merchant.address]

    # Orders: the order records; all seven escrowed (their OrderFunded transactions).
    assert (f["orders"]["count"], f["orders"]["escrowed"]) == (7, 7)
    assert _sources(f["orders"]) == ({f"{i}:order" for i in ids.values()},
                                     {tx[f"{k}:fund"] for k in "ABCDEFG"})
    assert {r["index"] for r in f["orders"]["sources"]["records"]} == {
        h.leaf(f"{i}:order") for i in ids.values()}

    # Settled sales: payouts of OrderReleased (A, B), ReturnSettled (C), DisputeResolved (G:
    # the merchant keeps 70%); E's resolution released nothing, D was refunded.
    assert f["settled_sales"]["by_token"] == {
        token: {"orders": 3, "gross": 2_000_000 + 3_000_000 + 1_750_000,
                "fee": 40_000 + 60_000 + 35_000, "reserve": 20_000 + 30_000 + 17_500,
                "payout": 1_940_000 + 2_910_000 + 1_697_500},
        NATIVE: {"orders": 1, "gross": 5 * 10**16, "fee": 10**15, "reserve": 5 * 10**14,
                 "payout": 485 * 10**14},
    }  # fmt: skip
    assert _sources(f["settled_sales"]) == (
        {f"{ids[k]}:order" for k in "ABCG"} | {f"{ids['A']}:dlv", f"{ids['B']}:dlv",
                                               f"{ids['C']}:return-dlv"},
        {tx["A:release"], tx["B:release"], tx["C:settle"], tx["G:resolve"]})
    assert f["settled_sales"]["sources"]["status"] == "verified"

    # Refunds: C partial (its return), D full (timeout), E full (ruling), G partial (30%).
    r = f["refunds"]
    assert (r["count"], r["full"]["count"], r["partial"]["count"]) == (4, 2, 2)
    assert r["full"]["by_token"] == {token: 1_000_000 + 3_000_000}
    assert r["partial"]["by_token"] == {token: 1_000_000 + 750_000}
    assert r["by_token"] == {token: 5_750_000} and r["compensation_by_token"] == {}
    assert _sources(r) == (
        {f"{ids[k]}:order" for k in "CDEG"}
        | {f"{ids['C']}:return", f"{ids['C']}:return-dlv", f"{ids['D']}:refund",
           f"{ids['E']}:dispute-buyer"},
        {tx["C:settle"], tx["D:refund"], tx["E:resolve"], tx["G:resolve"]})

    # Return rate: one return request over six delivered orders (F's delivery is on chain,
    # its record not yet anchored, so the figure says "unanchored", not "failed").
    rate = f["return_rate"]
    assert (rate["returns"], rate["delivered"]) == (1, 6) and rate["rate"] == pytest.approx(1 / 6)
    assert _sources(rate) == (
        {f"{ids[k]}:dlv" for k in "ABCEGF"} | {f"{ids['C']}:return"},
        {tx[f"{k}:deliver"] for k in "ABCEGF"} | {tx["C:return"]})
    assert rate["sources"]["status"] == "unanchored"
    assert any(f"{ids['F']}:dlv" in why for why in rate["sources"]["reasons"])

    # Disputes: E lost (refund in full), G won (the buyer got 30%).
    d = f["disputes"]
    assert {k: d[k] for k in ("opened", "resolved", "lost", "won", "even", "open")} == {
        "opened": 2, "resolved": 2, "lost": 1, "won": 1, "even": 0, "open": 0}
    outcome = {i["order_id"]: (i["opener"], i["ruling"], i["buyer_bps"], i["outcome"])
               for i in d["items"]}
    assert outcome == {ids["E"]: ("buyer", 1, 10_000, "lost"),
                       ids["G"]: ("buyer", split_ruling(3000), 3000, "won")}
    assert _sources(d) == (
        {f"{ids['E']}:order", f"{ids['G']}:order", f"{ids['E']}:dispute-buyer", f"{ids['G']}:dlv"},
        {tx["E:dispute"], tx["E:resolve"], tx["G:dispute"], tx["G:resolve"]})

    # Deposit coverage, now: F (5,000,000) is the only open order; it locks 20% of its price.
    cov = {i["token"]: i for i in f["deposit_coverage"]["items"]}
    assert set(cov) == {token, NATIVE}
    assert {k: cov[token][k] for k in ("deposit", "locked", "covered")} == {
        "deposit": 10**12, "locked": 1_000_000, "covered": True}
    assert cov[token]["coverage"] == 10**12 / 1_000_000
    eth = cov[NATIVE]
    assert (eth["locked"], eth["coverage"]) == (0, None)
    assert [ev["event"] for ev in cov[token]["events"]] == ["DepositAdded"]
    assert not f["deposit_coverage"]["sources"]["records"]
    assert len(f["deposit_coverage"]["sources"]["events"]) == 2

    # Pledged receivables: B paid to the lender, F outstanding.
    pl = f["pledged_receivables"]
    items = {i["order_id"]: i for i in pl["items"]}
    assert pl["count"] == 2 and set(items) == {ids["B"], ids["F"]}
    b_item = items[ids["B"]]
    assert {k: b_item[k] for k in ("state", "outstanding", "paid_to_lender", "lender")} == {
        "state": "RELEASED", "outstanding": 0, "paid_to_lender": 1_940_000,
        "lender": e.lender.address}
    assert {k: items[ids["F"]][k] for k in ("state", "outstanding", "paid_to_lender")} == {
        "state": "DELIVERED", "outstanding": 5_000_000, "paid_to_lender": 0}
    assert items[ids["F"]]["lender_on_chain"] == e.lender.address
    assert pl["by_token"] == {token: {"pledged": 7_000_000, "outstanding": 5_000_000,
                                      "paid_to_lenders": 1_940_000}}
    assert _sources(pl) == ({f"{ids['B']}:order", f"{ids['F']}:order", f"{ids['B']}:dlv"},
                            {tx["B:pledge"], tx["F:pledge"], tx["B:release"]})

    # Every source leaf was verified on chain, except F's late delivery record.
    assert report["ok"], report["flags"]
    statuses = {e["id"]: e["status"] for e in report["timeline"] if e["type"] == "record"}
    assert {k for k, v in statuses.items() if v != "verified"} == {f"{ids['F']}:dlv"}
    assert report["counts"]["failed"] == 0 and report["counts"]["unanchored"] == 2

    # A window selects orders by their order record's time: since inclusive, until exclusive.
    second = next(x for x in report["orders"] if x["order_id"] == ids["B"])["ts"]
    later = _doc(h.auditor.merchant_report(h.merchant_id, since=second))
    assert later["figures"]["orders"]["count"] == 6  # B..G (A was opened before B)
    earlier = _doc(h.auditor.merchant_report(h.merchant_id, until=second))
    assert [x["order_id"] for x in earlier["orders"]] == [ids["A"]]
    assert earlier["figures"]["settled_sales"]["by_token"] == {
        NATIVE: f["settled_sales"]["by_token"][NATIVE]}

    text = text_report(typed, width=220)
    for heading in ("Figures", "Settled sales by token", "Refunds", "fraud compensation",
                    "Disputes", "Deposit coverage", "Pledged receivables", "Orders", "Timeline",
                    "all checks passed"):
        assert heading in text
    assert "2,000,000" in text and "1,750,000" in text  # full and partial refunds (tokens)
    assert tx["G:resolve"] in text and NASTY.split()[0] in text  # shown as text


# --------------------------------------------------------------------------- order timelines


def test_order_timeline_verifies_unanchored_and_tampered_evidence(history, escrow_env) -> None:  # type: ignore[no-untyped-def]
    h, e = history, escrow_env
    ids, tx = h.ids, h.tx
    c = ids["C"]
    report = _doc(h.auditor.order_report(c))
    assert report["ok"] and report["order"]["state"] == "RETURNED"
    assert report["anchor"]["tree_size"] == h.anchored_size
    records = [x for x in report["timeline"] if x["type"] == "record"]
    events = [x for x in report["timeline"] if x["type"] == "event"]
    assert [x["id"] for x in records] == [f"{c}:{s}" for s in (
        "order", "pay", "ship", "dlv", "return", "return-ship", "return-dlv")]
    # Index and leaf as an outside verifier gets them: the order's exported bundle (which
    # verifies on chain), each leaf included in the head the EvidenceLog anchored.
    bundle, left_out = export_bundle(h.store, e.chain.chain_id, h.auditor.log_address, order_id=c,
                                     paths=True)
    pin = Pin(e.chain.chain_id, h.auditor.log_address)
    assert left_out == [] and verify_bundle(bundle, e.chain.w3, pin=pin).ok
    head = bundle.anchor
    assert (head.tree_size, head.root) == (report["anchor"]["tree_size"],
                                           report["anchor"]["root"])
    log = e.chain.w3.eth.contract(address=h.auditor.log_address, abi=EVIDENCE_LOG_VERIFY_ABI)
    assert log.functions.anchoredAt(head.tree_size, bytes.fromhex(head.root)).call()[0]
    exported = {b.record["id"]: b for b in bundle.records}
    assert set(exported) == {x["id"] for x in records}
    for x in records:
        b = exported[x["id"]]
        assert (x["index"], x["leaf"], x["status"]) == (b.index, b.leaf_hash, "verified")
        verify_inclusion(bytes.fromhex(x["leaf"]), x["index"], head.tree_size,
                         [bytes.fromhex(p) for p in b.inclusion_proof],
                         bytes.fromhex(head.root))
    assert [(x["kind"], x["tx_hash"]) for x in events] == [
        ("OrderFunded", tx["C:fund"]), ("OrderShipped", tx["C:ship"]),
        ("OrderDelivered", tx["C:deliver"]), ("ReturnRequested", tx["C:return"]),
        ("ReturnShipped", tx["C:return-ship"]), ("ReturnDelivered", tx["C:return-deliver"]),
        ("ReturnSettled", tx["C:settle"])]
    cited = {x["kind"]: x["evidence_record"]["id"] for x in events}
    assert cited["OrderFunded"] == f"{c}:order" and cited["ReturnSettled"] == f"{c}:return-dlv"
    assert all(x["status"] == "verified" for x in events)
    block_time = {}  # event entry -> its transaction's block timestamp, read from the chain
    for x in events:  # block time and transaction come from the chain
        receipt = e.chain.w3.eth.get_transaction_receipt(x["tx_hash"])
        block = e.chain.w3.eth.get_block(receipt["blockNumber"])
        assert (x["block_number"], x["time"]) == (receipt["blockNumber"], block["timestamp"])
        block_time[x["n"]] = int(block["timestamp"]) * 10**9
    # In time order by those block times and the records' own ts: a record is stamped with
    # the chain's clock before the transaction citing it is mined, and comes before it.
    known = [block_time[x["n"]] if x["type"] == "event" else parse_time_ns(x["ts"])
             for x in report["timeline"]]
    assert known == sorted(known) and [x["n"] for x in report["timeline"]] == list(range(14))
    by_record = {x["id"]: x for x in records}
    for x in events:
        cited = by_record[x["evidence_record"]["id"]]
        assert parse_time_ns(cited["ts"]) <= block_time[x["n"]] and cited["n"] < x["n"]

    # F: its delivery record came after the last anchor: reported unanchored, not failed,
    # and so is the on-chain delivery citing it.
    f_report = _doc(h.auditor.order_report(ids["F"]))
    assert f_report["ok"] and f_report["counts"]["unanchored"] == 2
    dlv = next(x for x in f_report["timeline"] if x.get("id") == f"{ids['F']}:dlv")
    assert dlv["status"] == "unanchored" and dlv["index"] >= h.anchored_size
    assert f"latest anchored size {h.anchored_size}" in dlv["reasons"][0]
    delivered = next(x for x in f_report["timeline"] if x["kind"] == "OrderDelivered")
    assert delivered["status"] == "unanchored" and delivered["tx_hash"] == tx["F:deliver"]
    assert "not yet anchored" in delivered["reasons"][0]
    pledged = next(x for x in f_report["timeline"] if x["kind"] == "OrderPledged")
    assert pledged["status"] == "n/a" and f_report["order"]["lender"] == e.lender.address
    assert ("all checks passed, but 2 entries are not yet anchored, so not verified"
            in text_report(h.auditor.order_report(ids["F"]), width=220))

    # Nothing anchored on the log audited against: nothing is verified, and that is no pass.
    blind = Auditor(h.store, e.client, log_address=None).order_report(ids["A"])
    assert not blind.ok and blind.counts.verified == 0 and blind.counts.unanchored > 0
    [flag] = blind.flags
    assert (flag.entry, flag.subject) == (None, f"order {ids['A']}")
    assert flag.reason.startswith(f"nothing was verified: the {blind.counts.unanchored} entries")
    assert f"{len(blind.flags)} problem(s) flagged" in text_report(blind, width=220)

    # Someone edits C's return record in the store: the record and the on-chain return
    # request citing it are flagged; the report is no longer ok.
    _tamper_public(h.store, f"{c}:return", amount=1)
    bad = _doc(h.auditor.order_report(c))
    assert not bad["ok"]
    by_id = {x.get("id"): x for x in bad["timeline"] if x["type"] == "record"}
    assert by_id[f"{c}:return"]["status"] == "failed"
    assert "tampered content" in by_id[f"{c}:return"]["reasons"][0]
    assert all(x["status"] == "verified" for k, x in by_id.items() if k != f"{c}:return")
    req = next(x for x in bad["timeline"] if x["kind"] == "ReturnRequested")
    assert req["status"] == "failed" and "fails verification" in req["reasons"][0]
    assert {fl["entry"] for fl in bad["flags"]} == {by_id[f"{c}:return"]["n"], req["n"]}

    # A record of order A filed under another merchant id: its content still verifies, but
    # it is flagged, in the order's audit and in the merchant's (every record of an order in
    # scope is checked, whatever merchant id it carries).
    a = ids["A"]
    h.store.db.execute("UPDATE records SET merchant_id = 'M-OTHER' WHERE id = ?", (f"{a}:pay",))
    why = f"merchant_id 'M-OTHER' differs from the order record's {h.merchant_id!r}"
    for audited in (_doc(h.auditor.order_report(a)), _doc(h.auditor.merchant_report(h.merchant_id))):
        pay = next((x for x in audited["timeline"] if x.get("id") == f"{a}:pay"), None)
        assert pay is not None, f"{a}:pay is missing from the {audited['report']} report"
        assert (pay["status"], pay["reasons"]) == ("failed", [why])
        assert {"entry": pay["n"], "subject": f"record {a}:pay (leaf {pay['index']})",
                "reason": why} in audited["flags"]

    # Someone swaps a leaf in the store: the record fails, and the dispute that cited the
    # original leaf now cites something the log does not hold.
    ev = ids["E"]
    _tamper_leaf(h.store, f"{ev}:dispute-buyer")
    e_report = _doc(h.auditor.order_report(ev))
    stmt = next(x for x in e_report["timeline"] if x.get("id") == f"{ev}:dispute-buyer")
    assert stmt["status"] == "failed" and "tampered content" in " ".join(stmt["reasons"])
    opened = next(x for x in e_report["timeline"] if x["kind"] == "DisputeOpened")
    assert opened["status"] == "failed" and opened["tx_hash"] == tx["E:dispute"]
    assert "not the leaf of any record in the log" in opened["reasons"][0]
    evidence = next(x for x in e_report["timeline"] if x["kind"] == "Evidence")
    assert evidence["status"] == "failed"
    merchant = _doc(h.auditor.merchant_report(h.merchant_id))
    assert not merchant["ok"]
    assert merchant["figures"]["disputes"]["sources"]["status"] == "failed"
    assert merchant["figures"]["refunds"]["sources"]["status"] == "failed"
    assert any(f"{ev}:dispute-buyer" in fl["subject"] for fl in merchant["flags"])


# --------------------------------------------------------------------------- the CLI


def test_audit_cli_on_anvil(tmp_path: Path, anvil_node, orders) -> None:  # type: ignore[no-untyped-def]
    chain = rpc.connect(anvil_node.url)
    chain.poll_interval = 0.01
    snap = chain.snapshot()
    try:
        _cli_flow(tmp_path, chain, anvil_node.url, orders)
    finally:
        chain.revert_to(snap)


def _cli_flow(tmp_path: Path, chain: Any, url: str, orders: list[dict[str, Any]]) -> None:
    home = tmp_path / "home"
    secret = MasterSecret.generate_hex()
    a = chain.accounts
    esc = deploy_escrow(chain, home, panel=[x.address for x in a[7:10]], threshold=2,
                        redeploy=True)
    log_dep = deploy_evidence_log(chain, home, redeploy=True)
    client = EscrowClient.at(chain, esc.escrow.address, esc.arbitrator.address)
    client.set_carrier(a[5].address, True, a[0])
    client.deposit(a[1].address, NATIVE, 10**19, a[1])
    store = Store(home / "evidence.sqlite3", MasterSecret.from_hex(secret))
    try:
        p = Platform(store, client, a[0])
        x, y, z = (o["order_id"] for o in orders[7:10])
        for o in orders[7:10]:
            p.open_order(o, merchant=a[1], buyer=a[3], price=10**17)
        for n, oid in enumerate((x, z)):
            p.ship(oid, carrier=a[5], carrier_code="JD", tracking_number=f"JD9900{n}12345")
        p.deliver(x, carrier=a[5])
        p.pledge(z, merchant=a[1], lender=a[6].address)
        chain.time_travel(3 * DAY + 60)
        p.release(x)
        p.refund(y)
        Anchorer(store, chain, chain.contract("EvidenceLog", log_dep.address)).anchor()
        mid = orders[7]["merchant_id"]
        expected = _doc(Auditor(store, client, log_address=log_dep.address,
                                from_block=esc.escrow.block_number).merchant_report(mid))

        env = dict(os.environ)
        env.update(LEDGER_HOME=str(home), LEDGER_MASTER_SECRET=secret, LEDGER_RPC=url,
                   COLUMNS="200")
        for k in ("LEDGER_PRIVATE_KEY", "LEDGER_KEYSTORE"):
            env.pop(k, None)

        got = json.loads(run(["audit", "--merchant", mid, "--json"], env).stdout)
        assert got["format"] == "evidence-escrow/audit/v1" and got["report"] == "merchant"
        for key in ("figures", "orders", "timeline", "flags", "counts", "ok", "merchant"):
            assert got[key] == expected[key], key
        # What the process computed, independently of the in-process run: x released,
        # y refunded on timeout, z pledged and still open.
        fig = got["figures"]
        assert got["ok"] and got["merchant"]["addresses"] == [a[1].address]
        assert (fig["orders"]["count"], fig["orders"]["escrowed"]) == (3, 3)
        assert fig["settled_sales"]["by_token"] == {NATIVE: {
            "orders": 1, "gross": 10**17, "fee": 2 * 10**15, "reserve": 10**15,
            "payout": 97 * 10**15}}
        assert fig["refunds"]["full"]["by_token"] == {NATIVE: 10**17}
        assert fig["refunds"]["partial"]["count"] == 0
        [pledge] = fig["pledged_receivables"]["items"]
        assert (pledge["order_id"], pledge["outstanding"], pledge["lender"]) == (
            z, 10**17, a[6].address)
        assert got["chain"]["evidence_log"] == log_dep.address

        # the lender's side, as separate processes: a complete merchant bundle, its figures
        bundle = tmp_path / "merchant.json"
        run(["export", "--merchant", mid, "-o", str(bundle)], env)
        trust = str(trust_root_path(home, chain.chain_id))
        lender = json.loads(run(["verify", str(bundle), "--trust", trust, "--figures", "--escrow",
                                 esc.escrow.address, "--json"], env).stdout)
        for key in ("figures", "orders", "timeline", "flags", "counts", "ok", "merchant", "anchor"):
            assert lender[key] == got[key], key
        shown = run(["verify", str(bundle), "--trust", trust, "--figures"], env)
        assert "COMPLETE" in shown.stdout and "VERIFIED" in shown.stdout
        res = run(["verify", str(bundle), "--offline", "--figures"], env, check=False)
        assert res.returncode == 2 and "drop --offline" in res.stderr

        page = tmp_path / "x.html"
        shown = run(["audit", "--order", x, "--html", str(page)], env)
        assert "Timeline" in shown.stdout and "all checks passed" in shown.stdout
        assert x in shown.stdout and "OrderReleased" in shown.stdout
        assert f"wrote the HTML report to {page}" in shown.stderr
        embedded = _embedded(page.read_text(encoding="utf-8"))
        in_process = _doc(Auditor(store, client, log_address=log_dep.address,
                                  from_block=esc.escrow.block_number).order_report(x))
        assert {k: v for k, v in embedded.items() if k != "generated_at"} == {
            k: v for k, v in in_process.items() if k != "generated_at"}
        assert embedded["ok"] and embedded["order"]["state"] == "RELEASED"

        none = json.loads(run(["audit", "--merchant", mid, "--since", "2099-01-01T00:00:00Z",
                               "--json"], env).stdout)
        assert none["figures"]["orders"]["count"] == 0 and none["orders"] == [] and none["ok"]
        assert {x["type"] for x in none["timeline"]} == {"event"}  # the deposit only
        [eth] = none["figures"]["deposit_coverage"]["items"]  # "now": not bound by the window
        assert (eth["token"], eth["deposit"], eth["locked"]) == (NATIVE, 10**19, 2 * 10**16)

        for args, needle in (
            (["audit", "--order", "NO-SUCH-ORDER"], "no record in the log"),
            (["audit", "--order", x, "--since", "2026-01-01T00:00:00Z"], "--since/--until"),
            (["audit", "--merchant", mid, "--until", "yesterday"], "not an RFC 3339 time"),
        ):
            res = run(args, env, check=False)
            assert res.returncode == 2 and needle in res.stderr, (args, res.stderr)

        _tamper_public(store, f"{x}:dlv", method="pickup")
        res = run(["audit", "--order", x, "--json"], env, check=False)
        assert res.returncode == 1
        flagged = json.loads(res.stdout)
        assert not flagged["ok"] and any(f"{x}:dlv" in fl["subject"] for fl in flagged["flags"])
        res = run(["audit", "--order", x], env, check=False)
        assert res.returncode == 1 and "FLAG" in res.stdout and "tampered content" in res.stdout
    finally:
        store.close()


# --------------------------------------------------------------------------- the HTML page

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--force-device-scale-factor=1", "--hide-scrollbars"]


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(tmp))
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, env=env, check=True)


class _Dom(HTMLParser):
    """Elements of a page: (tag, attributes) in document order, plus the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(text: str) -> _Dom:
    dom = _Dom()
    dom.feed(text)
    dom.close()
    return dom


class _AuditData(HTMLParser):
    """The text of the page's <script type="application/json" id="audit-data"> elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inside = False
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.inside = (tag == "script" and a.get("id") == "audit-data"
                       and a.get("type") == "application/json")
        if self.inside:
            self.found.append("")

    def handle_endtag(self, tag: str) -> None:
        self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.found[-1] += data


def _embedded(page: str) -> Any:
    """The report embedded in an HTML page, parsed from its one audit-data element."""
    parser = _AuditData()
    parser.feed(page)
    parser.close()
    assert len(parser.found) == 1, len(parser.found)
    return json.loads(parser.found[0])


def read_png(path: Path) -> tuple[int, int, list[bytes], int]:
    """A tiny PNG decoder (8-bit RGB/RGBA, not interlaced): width, height, rows, bytes/pixel."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = bpp = 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour, interlace)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows, bpp


@pytest.mark.parametrize("chain", ["embedded"], indirect=True)
def test_html_report_draws_its_timeline_in_a_browser(history, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if CHROMIUM is None:
        if settings().require_browser:
            pytest.fail("LEDGER_REQUIRE_BROWSER is set but chromium is not installed "
                        "(`bash scripts/run setup` installs Debian's chromium)")
        pytest.skip("chromium is not installed and LEDGER_REQUIRE_BROWSER is unset "
                    "(`bash scripts/run setup` installs it; CI sets LEDGER_REQUIRE_BROWSER)")
    h = history
    _tamper_public(h.store, f"{h.ids['D']}:refund", detail="edited after the fact")
    typed = h.auditor.merchant_report(h.merchant_id)
    report = _doc(typed)
    n = len(report["timeline"])
    failed = {x["n"] for x in report["timeline"] if x["status"] == "failed"}
    assert failed and report["counts"]["unanchored"] == 2
    page = tmp_path / "merchant.html"
    page.write_text(render_html(typed), encoding="utf-8")

    # Self-contained: inline style and scripts only, nothing fetched, nothing injected.
    static = _parse(page.read_text(encoding="utf-8"))
    tags = [t for t, _ in static.elements]
    assert "link" not in tags and "img" not in tags and "iframe" not in tags
    assert not [a for _, a in static.elements if "src" in a or "href" in a or "onerror" in a]
    scripts = [a.get("type") for t, a in static.elements if t == "script"]
    assert scripts == ["application/json", None]
    assert any(t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
               for t, a in static.elements)
    # The embedded report is the report, hostile text in its timeline included.
    assert _embedded(page.read_text(encoding="utf-8")) == report
    summaries = [x["summary"] for x in report["timeline"]]
    assert any(NASTY_TITLE in t for t in summaries) and any("</script><img" in t for t in summaries)

    # After the scripts ran: one marker per timeline entry, titled, red where a check failed.
    dom = _parse(_chromium(tmp_path, "--window-size=1200,900", "--dump-dom", page.as_uri()).stdout)
    svg = [a for t, a in dom.elements if t == "svg" and a.get("id") == "timeline-svg"]
    assert len(svg) == 1 and svg[0]["data-markers"] == str(n)
    markers = [a for _, a in dom.elements if "marker" in a.get("class", "").split()]
    assert sorted(int(a["data-n"]) for a in markers) == list(range(n))
    red = {int(a["data-n"]) for a in markers if a.get("fill") == "#d40000"}
    assert red == failed
    assert sum(1 for t, _ in dom.elements if t == "title") >= n + 1  # one per marker, + <title>
    kinds = {a["data-kind"] for a in markers}
    assert {"order", "delivery", "OrderFunded", "DisputeResolved", "DepositAdded"} <= kinds
    assert not [t for t, a in dom.elements if t == "img" or "onerror" in a or "onload" in a]
    text = "".join(dom.text)
    assert NASTY.split()[0] in text and NASTY_TITLE[:14] in text  # shown, as text

    # The picture: inside the chart's box, coloured markers, some of them red.
    x0, y0, w, hgt = (int(v) for v in svg[0]["data-bbox"].split(","))
    shot = tmp_path / "merchant.png"
    _chromium(tmp_path, "--window-size=1200,900", f"--screenshot={shot}", page.as_uri())
    width, height, rows, bpp = read_png(shot)
    assert (width, height) == (1200, 900) and 0 <= y0 < y0 + hgt <= height
    colours, reds, coloured = set(), 0, 0
    for y in range(y0, y0 + hgt):
        row = rows[y]
        for x in range(x0, min(x0 + w, width)):
            r, g, b = row[x * bpp], row[x * bpp + 1], row[x * bpp + 2]
            if max(r, g, b) - min(r, g, b) > 60:
                coloured += 1
                colours.add((r >> 5, g >> 5, b >> 5))
                if r > 180 and g < 40 and b < 40:
                    reds += 1
    # A blank chart has no saturated pixel at all (lanes and labels are grey); markers are
    # 12 px wide, stacked where entries share a moment.
    assert coloured > 25 * n, coloured
    assert len(colours) >= 6 and reds > 50

    # The order page too: its markers are its timeline.
    order = h.auditor.order_report(h.ids["C"])
    opage = tmp_path / "order.html"
    opage.write_text(render_html(order), encoding="utf-8")
    odom = _parse(_chromium(tmp_path, "--window-size=1200,900", "--dump-dom",
                            opage.as_uri()).stdout)
    omarkers = [a for _, a in odom.elements if "marker" in a.get("class", "").split()]
    assert len(omarkers) == len(_doc(order)["timeline"]) == 14


def test_time_bounds_compare_as_times_not_strings() -> None:
    assert parse_time_ns("2026-11-11T20:00:00.5Z") > parse_time_ns("2026-11-11T20:00:00Z")
    assert parse_time_ns("2026-11-12T04:00:00+08:00") == parse_time_ns("2026-11-11T20:00:00Z")
    assert parse_time_ns("1970-01-01T00:00:00.000000001Z") == 1


def test_an_anchor_the_chain_lost_is_never_the_audits_head(history, escrow_env) -> None:  # type: ignore[no-untyped-def]
    """A later anchor that a reorg (a snapshot reverted) took away: the audit re-checks the
    store's anchors first, so F's delivery is unanchored again and the head reported is the
    one the chain still holds, not the vanished one."""
    h, e = history, escrow_env
    log = e.chain.contract("EvidenceLog", h.auditor.log_address)
    snap = e.chain.snapshot()
    Anchorer(h.store, e.chain, log).anchor()  # covers F's delivery
    assert _doc(h.auditor.order_report(h.ids["F"]))["counts"]["unanchored"] == 0
    e.chain.revert_to(snap)
    report = _doc(h.auditor.order_report(h.ids["F"]))
    assert report["anchor"]["tree_size"] == h.anchored_size and report["counts"]["unanchored"] == 2
    lost = [a for a in h.store.anchors() if a.status == "lost"]
    assert len(lost) == 1 and lost[0].size == h.store.size


# --------------------------------------------------------------------------- a lender's own figures


def test_a_lenders_figures_from_a_complete_bundle_equal_the_audits(history, escrow_env) -> None:  # type: ignore[no-untyped-def]
    """`bundle_figures` over a v2 merchant bundle and the chain gives the audit's report to the unit
    (whole history, and a window of orders), and refuses a bundle that is not complete."""
    import msgspec

    from ledger.errors import AuditError
    from ledger.investigate.bundle_figures import bundle_figures

    h, e = history, escrow_env
    log = e.chain.contract("EvidenceLog", h.auditor.log_address)
    Anchorer(h.store, e.chain, log).anchor()  # F's delivery too: the lender sees what is anchored
    pin = Pin(e.chain.chain_id, log.address)
    bundle, _ = export_bundle(h.store, e.chain.chain_id, log.address, merchant_id=h.merchant_id)
    verdict = verify_bundle(bundle, e.chain.w3, pin=pin)
    assert verdict.ok and verdict.completeness == "proven", verdict.to_json()

    def same(since: str | None = None, until: str | None = None) -> dict[str, Any]:
        audit = _doc(h.auditor.merchant_report(h.merchant_id, since, until))
        lender = _doc(bundle_figures(bundle, verdict, e.client, since=since, until=until))
        for doc in (audit, lender):
            doc.pop("generated_at")
        assert lender == audit
        return lender

    whole = same()
    assert (whole["figures"]["orders"]["count"], whole["figures"]["orders"]["escrowed"]) == (7, 7)
    assert whole["ok"] and whole["figures"]["pledged_receivables"]["items"]
    a_opened = h.store.record_by_id(f"{h.ids['A']}:order")
    assert a_opened is not None
    after_a = rfc3339_after(a_opened.ts)
    window = same(since=after_a)  # A opened a minute before the others: six orders
    assert window["figures"]["orders"]["count"] == 6
    assert same(until=after_a)["figures"]["orders"]["count"] == 1

    # what a lender refuses: a record left out, a bundle cut short at its end, a v1 bundle
    refund = next(i for i, r in enumerate(bundle.records) if r.record["kind"] == "return")
    kept = [r for i, r in enumerate(bundle.records) if i != refund]
    dropped = msgspec.structs.replace(bundle, records=kept)
    bad = verify_bundle(dropped, e.chain.w3, pin=pin)
    assert bad.completeness == "failed" and bad.completeness_failures[0].startswith("record dropped")
    with pytest.raises(AuditError, match="not verified"):
        bundle_figures(dropped, bad, e.client)
    cut, _ = export_bundle(h.store, e.chain.chain_id, log.address, merchant_id=h.merchant_id,
                           until="2099-01-01T00:00:00Z")
    with pytest.raises(AuditError, match="export it without --until"):
        bundle_figures(cut, verify_bundle(cut, e.chain.w3, pin=pin), e.client)
    v1, _ = export_bundle(h.store, e.chain.chain_id, log.address, merchant_id=h.merchant_id,
                          completeness=False)
    with pytest.raises(AuditError, match="v2 merchant bundle"):
        bundle_figures(v1, verify_bundle(v1, e.chain.w3, pin=pin), e.client)


def rfc3339_after(ts: str) -> str:
    """One second after `ts`, as RFC 3339."""
    from ledger._internal.rfc3339 import parse_time_ns, rfc3339

    return rfc3339((parse_time_ns(ts) // 10**9) + 1)
