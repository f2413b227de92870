"""`ledger demo`: the evidence log and the escrow end to end, in one process on the embedded chain.

Deploy → generate a live-stream flash sale → ingest and anchor it in several batches →
export one order's bundle → verify it against the chain → show that a tampered copy fails →
settle a second day's orders through the escrow on evidenced performance (releases, a
return, a fraud ruling, a refused reused waybill, a pledged receivable) → anchor that
evidence too and verify the pledged order's bundle.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from web3.contract import Contract

from ledger.chain import rpc
from ledger.chain.rpc import Chain
from ledger.config import settings
from ledger.deploy import deploy_evidence_log, trust_root_path
from ledger.dev.demo_escrow import EscrowDemo, escrow_table, run_escrow_demo
from ledger.dev.flash_sale import generate_flash_sale, to_jsonl
from ledger.evidence import records as rec
from ledger.evidence.anchor import Anchorer
from ledger.evidence.bundle import Verdict, export_bundle, verify_bundle
from ledger.evidence.bundle_format import Bundle, dumps_bundle
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store
from ledger.evidence.trust import Pin, read_trust_root

DEMO_START = "2026-11-11T12:00:00Z"


def _pick_order(store: Store) -> str:
    """An order with the fullest story: paid, shipped, delivered, reviewed or returned."""
    rows = store.db.execute(
        "SELECT order_id, COUNT(DISTINCT kind) AS k, SUM(kind = 'return') AS r FROM records "
        "GROUP BY order_id ORDER BY r DESC, k DESC, order_id LIMIT 1"
    ).fetchone()
    return str(rows[0])


def tamper(bundle: Bundle) -> tuple[Bundle, str]:
    """A copy with one byte changed in one disclosed record; returns (copy, what changed)."""
    bad = copy.deepcopy(bundle)
    for item in bad.records:
        record = item.record
        if record is None:  # an erased entry
            continue
        for key in ("amount", "total", "tracking_number", "rating"):
            if key in record:
                old = record[key]
                if isinstance(old, int):
                    record[key] = old + 1 if old < 9 or key != "rating" else old - 1
                else:
                    record[key] = old[:-1] + ("0" if old[-1] != "0" else "1")
                return bad, f"record {record['id']!r} field {key!r}: {old!r} -> {record[key]!r}"
    raise AssertionError("bundle has nothing to tamper with")


@dataclass
class _Run:
    """One demo run: where it writes, what it talks to, what it measured (steps 1 to 11)."""

    out_dir: Path
    console: Console
    chain: Chain = field(default_factory=rpc.embedded)
    timings: dict[str, float] = field(default_factory=dict)
    heads: list[dict[str, Any]] = field(default_factory=list)
    trust_file: Path | None = None  # the log's trust file: what the bundles are verified against

    def timed(self, name: str, started: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started

    def deploy(self) -> Contract:
        """Step 1: the evidence log, with its deployment manifest in the output directory."""
        t = time.perf_counter()
        dep = deploy_evidence_log(self.chain, self.out_dir)
        log = self.chain.contract("EvidenceLog", dep.address)
        self.trust_file = trust_root_path(self.out_dir, self.chain.chain_id)
        self.timed("deploy", t)
        self.console.print(f"[bold]1.[/bold] EvidenceLog deployed at {dep.address} on the embedded chain "
                           f"{self.chain.chain_id} (manifest in {self.out_dir / 'deployments'}, trust "
                           f"file for auditors {self.trust_file})")
        return log

    def verify(self, bundle: Bundle) -> Verdict:
        """A bundle verified as an auditor does: against the chain, pinned by the trust file."""
        assert self.trust_file is not None
        return verify_bundle(bundle, self.chain.w3, pin=Pin.of(read_trust_root(self.trust_file)))

    def ingest_and_anchor(self, store: Store, anchorer: Anchorer, sale: list[dict[str, Any]],
                          batches: int) -> None:
        """Step 3: each batch written as JSONL, parsed, stored and anchored; batch 1 again."""
        self.timings["ingest"] = self.timings["anchor"] = 0.0
        per_batch = -(-len(sale) // batches)
        for b in range(batches):
            part = sale[b * per_batch : (b + 1) * per_batch]
            if not part:
                continue
            path = self.out_dir / f"batch-{b + 1}.jsonl"
            path.write_bytes(to_jsonl(part))
            t = time.perf_counter()
            result = store.ingest(rec.parse_jsonl(path.read_bytes(), source=path.name), source=path.name)
            self.timed("ingest", t)
            t = time.perf_counter()
            outcome = anchorer.anchor()
            self.timed("anchor", t)
            assert outcome.head is not None
            self.heads.append({"batch": b + 1, "records": result.stored, "size": outcome.head.size,
                               "root": outcome.head.root.hex(), "gas": outcome.gas_used,
                               "block": outcome.block_number})
        again = store.ingest(rec.parse_jsonl((self.out_dir / "batch-1.jsonl").read_bytes(),
                                             source="batch-1.jsonl"), source="batch-1.jsonl (again)")
        self.console.print(f"[bold]3.[/bold] ingested and anchored in {len(self.heads)} batches; "
                           f"re-ingesting batch 1 stored {again.stored} and skipped {again.skipped} "
                           "(idempotent)")

    def export_and_verify(self, store: Store, log: Contract) -> dict[str, Any]:
        """Steps 4 and 5: one order's bundle verifies against the chain; a tampered copy does not."""
        t = time.perf_counter()
        order_id = _pick_order(store)
        bundle, _ = export_bundle(store, self.chain.chain_id, log.address, order_id=order_id)
        bundle_path = self.out_dir / f"bundle-{order_id}.json"
        bundle_path.write_text(dumps_bundle(bundle))
        verdict = self.verify(bundle)
        self.timed("export+verify", t)
        self.console.print(f"[bold]4.[/bold] order {order_id}: {len(bundle.records)} records exported to "
                           f"{bundle_path}; verified against the chain: "
                           + ("[green]OK[/green]" if verdict.ok else "[red]FAILED[/red]"))
        bad, change = tamper(bundle)
        bad_path = self.out_dir / f"bundle-{order_id}-tampered.json"
        bad_path.write_text(dumps_bundle(bad))
        bad_verdict = self.verify(bad)
        failures = [f"{r.record_id}: {f}" for r in bad_verdict.records for f in r.failures]
        self.console.print(f"[bold]5.[/bold] tampered copy ({change}) → "
                           + ("[red]REJECTED[/red]" if not bad_verdict.ok
                              else "[bold red]ACCEPTED?![/bold red]"))
        for f in failures:
            self.console.print(f"     {f}")
        return {"bundle": str(bundle_path), "tampered_bundle": str(bad_path), "bundle_verified": verdict.ok,
                "tampered_rejected": not bad_verdict.ok, "tamper": change, "tamper_failures": failures}

    def escrow_half(
        self, store: Store, anchorer: Anchorer, log: Contract
    ) -> tuple[EscrowDemo, dict[str, Any]]:
        """Steps 6 to 11: the escrow day, then its evidence anchored and the pledged order verified."""
        t = time.perf_counter()
        escrow = run_escrow_demo(self.chain, store, self.console)
        outcome = anchorer.anchor()
        assert outcome.head is not None
        self.heads.append({"batch": "escrow", "records": outcome.head.size - outcome.previous.size,
                           "size": outcome.head.size, "root": outcome.head.root.hex(),
                           "gas": outcome.gas_used, "block": outcome.block_number})
        pledged_bundle, _ = export_bundle(store, self.chain.chain_id, log.address,
                                          order_id=escrow.pledged_order)
        pledged_path = self.out_dir / f"bundle-{escrow.pledged_order}.json"
        pledged_path.write_text(dumps_bundle(pledged_bundle))
        pledged_ok = self.verify(pledged_bundle).ok
        cited = {a.evidence.hex() for a in store.actions(order_id=escrow.pledged_order) if a.evidence}
        cited_ok = cited <= {item.leaf_hash for item in pledged_bundle.records}
        self.timed("escrow", t)
        self.console.print(f"[bold]11.[/bold] escrow evidence anchored (head size {outcome.head.size}); the "
                           f"pledged order's bundle {pledged_path} verifies: "
                           + ("[green]OK[/green]" if pledged_ok and cited_ok else "[red]FAILED[/red]")
                           + ", and every evidence hash its escrow steps cited is among its leaves")
        books_ok = escrow.balances["escrow_balance"] == sum(
            escrow.balances[k] for k in ("escrowed", "deposits", "reserve", "fees", "credits"))
        return escrow, {"pledged_bundle": str(pledged_path), "pledged_bundle_verified": pledged_ok,
                        "cited_evidence_in_bundle": cited_ok, "books_balanced": books_ok,
                        **self.lender_view(store, log, escrow)}

    def lender_view(self, store: Store, log: Contract, escrow: EscrowDemo) -> dict[str, Any]:
        """Step 12: the pledged order's merchant as its lender sees it: a complete merchant bundle
        of the escrow day, and the figures recomputed from it and the chain alone (that they equal
        `ledger audit --merchant`'s is tests/integration/test_audit.py's to show)."""
        from ledger.escrow.client import EscrowClient
        from ledger.investigate.audit import render_json
        from ledger.investigate.bundle_figures import bundle_figures

        t = time.perf_counter()
        pledged = store.records_for_order(escrow.pledged_order)
        merchant, day = pledged[0].merchant_id, pledged[0].ts[:10] + "T00:00:00Z"
        bundle, _ = export_bundle(store, self.chain.chain_id, log.address, merchant_id=merchant, since=day)
        path = self.out_dir / f"bundle-merchant-{merchant}.json"
        path.write_text(dumps_bundle(bundle))
        verdict = self.verify(bundle)
        client = EscrowClient.at(self.chain, escrow.escrow, escrow.arbitrator)
        report = json.loads(render_json(bundle_figures(bundle, verdict, client)))
        self.timed("lender view", t)
        f = report["figures"]
        pledges = f["pledged_receivables"]["items"]
        self.console.print(
            f"[bold]12.[/bold] lender's view of merchant {merchant} since {day}: {len(bundle.records)} "
            f"records in {path}, completeness {verdict.completeness}; from the bundle and the chain alone: "
            f"{f['orders']['count']} orders ({f['orders']['escrowed']} escrowed), pledged: "
            + ", ".join(f"{p['order_id']} {p['state']}, {p['paid_to_lender']:,} paid to {p['lender'][:10]}…"
                        for p in pledges))
        ok = verdict.ok and verdict.completeness == "proven" and report["ok"] and bool(pledges)
        return {"merchant_bundle": str(path), "merchant_bundle_complete": verdict.completeness == "proven",
                "lender_figures": ok}

    def summary(self, escrow: EscrowDemo, counts: dict[str, int], checks: dict[str, Any]) -> None:
        """The tables and totals printed at the end."""
        table = Table(title="evidence log demo")
        table.add_column("batch", justify="right")
        table.add_column("records", justify="right")
        table.add_column("tree size", justify="right")
        table.add_column("root", justify="left")
        table.add_column("gas", justify="right")
        for h in self.heads:
            table.add_row(str(h["batch"]), str(h["records"]), str(h["size"]), h["root"][:16] + "…",
                          f"{h['gas']:,}")
        self.console.print(table)
        self.console.print(escrow_table(escrow))
        bal = escrow.balances
        self.console.print(
            f"escrow books (TUSD base units): balance {bal['escrow_balance']:,} = "
            f"escrowed {bal['escrowed']:,} + "
            f"deposits {bal['deposits']:,} + reserve {bal['reserve']:,} + fees {bal['fees']:,} + credits "
            f"{bal['credits']:,} → "
            + ("[green]balanced[/green]" if checks["books_balanced"] else "[red]NOT BALANCED[/red]") + "\n"
            f"merchant deposits after the fraud ruling: A {bal['deposit_a']:,}, B {bal['deposit_b']:,}; "
            f"lender credit {bal['lender_credit']:,}\n"
            "gas per step (mean): " + ", ".join(
                f"{k} {sum(v) // len(v):,}" for k, v in escrow.gas.items()))
        self.console.print("records by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        self.console.print("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items()))
        self.console.print(f"bundle: {checks['bundle']}\ntampered bundle: {checks['tampered_bundle']}\n"
                           f"try: ledger verify {checks['bundle']} --trust {self.trust_file} --rpc URL  "
                           "(needs the chain the bundle names), or --offline")


def run_demo(
    *, orders: int, merchants: int, seed: int, batches: int, out_dir: Path, as_json: bool
) -> int:
    """The whole demo (see the module docstring); 0 when every step did what it should."""
    t0 = time.perf_counter()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    run = _Run(out_dir, Console(stderr=as_json, highlight=False))
    log = run.deploy()
    t = time.perf_counter()
    sale = generate_flash_sale(seed=seed, orders=orders, merchants=merchants, start=DEMO_START)
    run.timed("generate", t)
    run.console.print(f"[bold]2.[/bold] flash sale generated: {len(sale)} records, {orders} orders, "
                      f"{merchants} merchants (seed {seed})")
    # The configured master secret if there is one, else an ephemeral one: salts and the
    # personal-data key then exist only in this process.
    configured = settings()
    secret = (MasterSecret.from_env() if configured.master_secret or configured.master_secret_file
              else MasterSecret.generate())
    store = Store(out_dir / "evidence.sqlite3", secret)
    anchorer = Anchorer(store, run.chain, log)
    run.ingest_and_anchor(store, anchorer, sale, batches)
    checks = run.export_and_verify(store, log)
    escrow, escrow_checks = run.escrow_half(store, anchorer, log)
    checks.update(escrow_checks)
    counts = store.counts()
    store.close()
    run.timings["total"] = time.perf_counter() - t0
    run.summary(escrow, counts, checks)
    success = (checks["bundle_verified"] and checks["tampered_rejected"] and checks["pledged_bundle_verified"]
               and checks["cited_evidence_in_bundle"] and checks["books_balanced"]
               and checks["lender_figures"]
               and "EscrowTrackingReused" in escrow.rejected)
    if as_json:
        print(json.dumps({
            "ok": success, "records": len(sale), "records_by_kind": counts, "heads": run.heads,
            **{k: checks[k] for k in ("bundle", "tampered_bundle", "bundle_verified", "tampered_rejected",
                                      "tamper", "tamper_failures")},
            "timings": run.timings,
            "escrow": {
                "address": escrow.escrow, "arbitrator": escrow.arbitrator, "token": escrow.token,
                "orders": escrow.orders, "empty_parcel_rejected": escrow.rejected,
                "pledged_order": escrow.pledged_order,
                **{k: checks[k] for k in ("pledged_bundle", "pledged_bundle_verified",
                                          "cited_evidence_in_bundle", "merchant_bundle",
                                          "merchant_bundle_complete", "lender_figures")},
                "balances": escrow.balances, "books_balanced": checks["books_balanced"],
                "gas": {k: sum(v) // len(v) for k, v in escrow.gas.items()},
            },
        }, indent=2))
    return 0 if success else 1
