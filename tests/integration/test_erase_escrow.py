"""Erasure of escrowed orders through the platform facade: a settled order can be erased and its
audit shows its records verified as erased; an open one erased takes no escrow step any more; a
merchant audit over both still adds up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger.deploy import deploy_evidence_log
from ledger.dev.flash_sale import generate_flash_sale
from ledger.errors import LedgerError
from ledger.escrow.platform import Platform
from ledger.escrow.types import DAY, NATIVE
from ledger.evidence.anchor import Anchorer
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store
from ledger.investigate.audit import Auditor, render_json


def test_escrowed_orders_erased(escrow_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    e = escrow_env
    store = Store(tmp_path / "ev.sqlite3", MasterSecret.generate())
    p = Platform(store, e.client, e.admin)
    sale = [dict(r) for r in generate_flash_sale(seed=51, orders=4, merchants=1, start="2026-11-11T12:00:00Z")
            if r["kind"] == "order"]
    for o in sale:
        o.pop("ts")
    settled, open_ = sale[0]["order_id"], sale[1]["order_id"]
    for o in sale[:2]:
        p.open_order(o, merchant=e.merchant, buyer=e.buyer, price=10**17, token=NATIVE)
    p.ship(settled, carrier=e.carrier, carrier_code="SF", tracking_number="SF5100000001")
    p.deliver(settled, carrier=e.carrier)
    e.chain.time_travel(3 * DAY + 60)
    p.release(settled)
    log = e.chain.contract("EvidenceLog", deploy_evidence_log(e.chain, tmp_path).address)
    anchorer = Anchorer(store, e.chain, log)
    anchorer.anchor()

    done = store.erase(settled, reason="GDPR art. 17", operator="dpo")
    assert [rid for _, rid in done.erased] == [f"{settled}:{s}" for s in ("order", "pay", "ship", "dlv")]
    store.erase(open_, reason="PIPL art. 47", operator="dpo")
    with pytest.raises(LedgerError, match=f"order '{open_}' was erased on .*: no escrow step can cite"):
        p.ship(open_, carrier=e.carrier, carrier_code="SF", tracking_number="SF5100000002")
    assert store.actions(order_id=open_, status="sent") == []
    anchorer.anchor()

    auditor = Auditor(store, e.client, log_address=log.address)
    report: dict[str, Any] = json.loads(render_json(auditor.order_report(settled)))
    records = [x for x in report["timeline"] if x["type"] == "record"]
    assert [x["status"] for x in records] == ["verified"] * len(records)
    summaries = {x["id"]: x["summary"] for x in records}
    assert summaries.pop(done.erasure_id) == "erasure"
    kinds = {"order": "order", "pay": "payment", "ship": "shipment", "dlv": "delivery"}
    assert summaries == {rid: f"{kinds[rid.rsplit(':', 1)[1]]}, erased on {done.erased_at}"
                         for _, rid in done.erased}
    merchant = json.loads(render_json(auditor.merchant_report(sale[0]["merchant_id"])))
    assert merchant["figures"]["settled_sales"]["by_token"][NATIVE]["orders"] == 1
