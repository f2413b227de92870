"""`ledger audit`: an order's verified timeline, or a merchant's figures for a lender.

The escrow (and its deployment block, where its logs are read from) and the evidence log
come from the chain's deployment manifest in the data dir, like every chain command; if
the manifest names no EvidenceLog, the store's latest confirmed anchor on this chain names
it. Exit status: 0 when every check passed (records not yet anchored are reported as such,
not as failures), 1 when anything was flagged, 2 on an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from ledger.chain.rpc import Chain
from ledger.cli._common import (
    add_json,
    add_rpc,
    data_dir,
    open_chain,
    open_store,
    spinner,
    time_bound,
    write_output,
)
from ledger.deploy import escrow_client, live_matches, read_manifest
from ledger.errors import ConfigError
from ledger.evidence.store import Store
from ledger.investigate import audit
from ledger.investigate.audit_model import MerchantReport, OrderReport

__all__ = ["configure"]


def _deployment(chain: Chain, store: Store, ddir: Path) -> tuple[str | None, int]:
    """(the EvidenceLog to check records against, the escrow's deployment block), from one
    read of the manifest: its EvidenceLog if that has the right code on chain, else the
    contract of the store's latest confirmed anchor on this chain."""
    manifest = read_manifest(ddir, chain.chain_id)
    contracts = {} if manifest is None else manifest.contracts
    escrow, log = contracts.get("FulfillmentEscrow"), contracts.get("EvidenceLog")
    block = escrow.block_number if escrow else 0
    if log and live_matches(chain, log.address, "EvidenceLog"):
        return log.address, block
    anchors = store.anchors(chain_id=chain.chain_id, status="confirmed")
    return (str(max(anchors, key=lambda a: a.id).contract) if anchors else None), block


def cmd_audit(args: argparse.Namespace) -> int:
    if args.order is not None and (args.since or args.until):
        raise ConfigError("--since/--until bound a merchant audit's orders; an order audit "
                          "covers the whole order")
    chain = open_chain(args)
    ddir = data_dir(args)
    with open_store(args) as store:
        client = escrow_client(chain, ddir)  # as every escrow command opens it (cli/replay.py too)
        log_address, from_block = _deployment(chain, store, ddir)
        auditor = audit.Auditor(store, client, log_address=log_address, from_block=from_block)
        show = not args.json and sys.stderr.isatty()
        with spinner(show, "auditing: reading the escrow's events, verifying the evidence…"):
            report: OrderReport | MerchantReport
            if args.order is not None:
                report = auditor.order_report(args.order)
            else:
                report = auditor.merchant_report(args.merchant, args.since, args.until)
    if args.html:
        write_output(args.html, audit.render_html(report), "--html")
    if args.json:
        sys.stdout.write(audit.render_json(report))
    else:
        console = Console(highlight=False)
        console.print(audit.render_text(report))
    if args.html:
        Console(stderr=True, highlight=False).print(f"wrote the HTML report to {args.html}",
                                                    markup=False)
    return 0 if report.ok else 1


def configure(name: str, sp: argparse.ArgumentParser) -> None:
    add_rpc(sp)
    add_json(sp)
    who = sp.add_mutually_exclusive_group(required=True)
    who.add_argument("--order", metavar="ID", help="one order: its records and escrow events")
    who.add_argument("--merchant", metavar="ID", help="one merchant (its records' merchant_id)")
    sp.add_argument("--since", metavar="TS", type=time_bound,
                    help="merchant audit: orders whose order record is at or after TS (RFC 3339)")
    sp.add_argument("--until", metavar="TS", type=time_bound,
                    help="merchant audit: orders whose order record is before TS (RFC 3339)")
    sp.add_argument("--html", metavar="FILE",
                    help="also write a self-contained HTML report (timeline chart and tables)")
    sp.set_defaults(func=cmd_audit)
