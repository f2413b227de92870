"""What an audit logs: its start and end in counts, its chain reads at DEBUG, and nothing of
what the records say (their text can hold a buyer's name, address, anything).

The figures, timelines and renderings themselves are checked against the chain in
tests/integration/test_audit.py; the report document in test_audit_model.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ledger.dev.flash_sale import generate_flash_sale
from ledger.dev.sandbox import EscrowEnv
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store
from ledger.investigate.audit_model import AuditReport, RecordEntry
from tests.integration.test_audit import NASTY, NASTY_TITLE, START, build_history


@pytest.mark.parametrize("chain", ["embedded"], indirect=True)
def test_an_audit_logs_counts_and_chain_reads_never_record_content(
        escrow_env: EscrowEnv, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sale = generate_flash_sale(seed=41, orders=12, merchants=1, start=START)  # as test_audit.py
    orders = [{k: v for k, v in r.items() if k != "ts"} for r in sale if r["kind"] == "order"]
    store = Store(tmp_path / "ev.sqlite3", MasterSecret.generate())
    try:
        h = build_history(escrow_env, store, tmp_path, orders)
        a = h.ids["A"]
        with caplog.at_level(logging.DEBUG, logger="ledger.investigate"):
            order = h.auditor.order_report(a)
            merchant = h.auditor.merchant_report(h.merchant_id)
    finally:
        store.close()
    logged = [(r.name, r.levelno, r.getMessage()) for r in caplog.records
              if r.name.startswith("ledger.investigate")]

    def records(report: AuditReport) -> int:
        return sum(1 for e in report.timeline if isinstance(e, RecordEntry))

    info = [m for name, level, m in logged if level == logging.INFO]
    assert info == [
        f"auditing order {a}",
        f"audit of order {a} done: 1 order(s), {records(order)} record(s), "
        f"{len(order.timeline) - records(order)} event(s), 0 flag(s)",
        f"auditing merchant {h.merchant_id}, orders opened in [-inf, +inf)",
        f"audit of merchant {h.merchant_id} done: 7 order(s), {records(merchant)} record(s), "
        f"{len(merchant.timeline) - records(merchant)} event(s), 0 flag(s)",
    ]
    debug = "\n".join(m for _, level, m in logged if level == logging.DEBUG)
    for read in ("eth_getLogs", "getOrder(0x", "latest block", "verifying", "depositOf("):
        assert read in debug, read
    assert any(name == "ledger.investigate.audit_figures" for name, _, _ in logged)

    everything = "\n".join(m for _, _, m in logged)
    summaries = [e.summary for e in (*order.timeline, *merchant.timeline)]
    assert any(NASTY_TITLE in s for s in summaries) and any(NASTY.split()[0] in s for s in summaries)
    assert NASTY_TITLE not in everything and NASTY.split()[0] not in everything
    assert not [s for s in summaries if s in everything]
    buyer = escrow_env.buyer.address
    assert buyer not in everything and buyer.lower() not in everything
