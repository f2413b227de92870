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
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ledger.chain import rpc
from ledger.config import settings
from ledger.deploy import deploy_evidence_log
from ledger.dev.demo_escrow import escrow_table, run_escrow_demo
from ledger.dev.flash_sale import generate_flash_sale, to_jsonl
from ledger.evidence import records as rec
from ledger.evidence.anchor import Anchorer
from ledger.evidence.bundle import export_bundle, verify_bundle
from ledger.evidence.bundle_format import Bundle, dumps_bundle
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store

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
        for key in ("amount", "total", "tracking_number", "rating"):
            if key in record:
                old = record[key]
                if isinstance(old, int):
                    record[key] = old + 1 if old < 9 or key != "rating" else old - 1
                else:
                    record[key] = old[:-1] + ("0" if old[-1] != "0" else "1")
                return bad, f"record {record['id']!r} field {key!r}: {old!r} -> {record[key]!r}"
    raise AssertionError("bundle has nothing to tamper with")


def run_demo(
    *, orders: int, merchants: int, seed: int, batches: int, out_dir: Path, as_json: bool
) -> int:
    console = Console(stderr=as_json, highlight=False)
    t0 = time.perf_counter()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    chain = rpc.embedded()
    dep = deploy_evidence_log(chain, out_dir)
    log = chain.contract("EvidenceLog", dep.address)
    timings["deploy"] = time.perf_counter() - t
    console.print(f"[bold]1.[/bold] EvidenceLog deployed at {dep.address} on the embedded chain "
                  f"{chain.chain_id} (manifest in {out_dir / 'deployments'})")

    t = time.perf_counter()
    sale = generate_flash_sale(seed=seed, orders=orders, merchants=merchants, start=DEMO_START)
    timings["generate"] = time.perf_counter() - t
    console.print(f"[bold]2.[/bold] flash sale generated: {len(sale)} records, {orders} orders, "
                  f"{merchants} merchants (seed {seed})")

    # The configured master secret if there is one, else an ephemeral one: salts and the
    # personal-data key then exist only in this process.
    configured = settings()
    secret = (MasterSecret.from_env() if configured.master_secret or configured.master_secret_file
              else MasterSecret.generate())
    store = Store(out_dir / "evidence.sqlite3", secret)
    anchorer = Anchorer(store, chain, log)
    heads: list[dict[str, Any]] = []
    t_ingest = t_anchor = 0.0
    per_batch = -(-len(sale) // batches)
    for b in range(batches):
        part = sale[b * per_batch : (b + 1) * per_batch]
        if not part:
            continue
        path = out_dir / f"batch-{b + 1}.jsonl"
        path.write_bytes(to_jsonl(part))
        t = time.perf_counter()
        parsed = rec.parse_jsonl(path.read_bytes(), source=path.name)
        result = store.ingest(parsed, source=path.name)
        t_ingest += time.perf_counter() - t
        t = time.perf_counter()
        outcome = anchorer.anchor()
        t_anchor += time.perf_counter() - t
        assert outcome.head is not None
        heads.append({"batch": b + 1, "records": result.stored, "size": outcome.head.size,
                      "root": outcome.head.root.hex(), "gas": outcome.gas_used,
                      "block": outcome.block_number})
    timings["ingest"] = t_ingest
    timings["anchor"] = t_anchor
    again = store.ingest(rec.parse_jsonl((out_dir / "batch-1.jsonl").read_bytes(),
                                         source="batch-1.jsonl"), source="batch-1.jsonl (again)")
    console.print(f"[bold]3.[/bold] ingested and anchored in {len(heads)} batches; re-ingesting "
                  f"batch 1 stored {again.stored} and skipped {again.skipped} (idempotent)")

    t = time.perf_counter()
    order_id = _pick_order(store)
    bundle, _ = export_bundle(store, chain.chain_id, log.address, order_id=order_id)
    bundle_path = out_dir / f"bundle-{order_id}.json"
    bundle_path.write_text(dumps_bundle(bundle))
    verdict = verify_bundle(bundle, chain.w3)
    timings["export+verify"] = time.perf_counter() - t
    console.print(f"[bold]4.[/bold] order {order_id}: {len(bundle.records)} records exported to "
                  f"{bundle_path}; verified against the chain: "
                  + ("[green]OK[/green]" if verdict.ok else "[red]FAILED[/red]"))

    bad, change = tamper(bundle)
    bad_path = out_dir / f"bundle-{order_id}-tampered.json"
    bad_path.write_text(dumps_bundle(bad))
    bad_verdict = verify_bundle(bad, chain.w3)
    failures = [f"{r.record_id}: {f}" for r in bad_verdict.records for f in r.failures]
    console.print(f"[bold]5.[/bold] tampered copy ({change}) → "
                  + ("[red]REJECTED[/red]" if not bad_verdict.ok else "[bold red]ACCEPTED?![/bold red]"))
    for f in failures:
        console.print(f"     {f}")

    t = time.perf_counter()
    escrow = run_escrow_demo(chain, store, console)
    outcome = anchorer.anchor()
    assert outcome.head is not None
    heads.append({"batch": "escrow", "records": outcome.head.size - outcome.previous.size,
                  "size": outcome.head.size, "root": outcome.head.root.hex(),
                  "gas": outcome.gas_used, "block": outcome.block_number})
    pledged_bundle, _ = export_bundle(store, chain.chain_id, log.address, order_id=escrow.pledged_order)
    pledged_path = out_dir / f"bundle-{escrow.pledged_order}.json"
    pledged_path.write_text(dumps_bundle(pledged_bundle))
    pledged_ok = verify_bundle(pledged_bundle, chain.w3).ok
    cited = {a.evidence.hex() for a in store.actions(order_id=escrow.pledged_order) if a.evidence}
    cited_ok = cited <= {item.leaf_hash for item in pledged_bundle.records}
    timings["escrow"] = time.perf_counter() - t
    console.print(f"[bold]11.[/bold] escrow evidence anchored (head size {outcome.head.size}); the pledged "
                  f"order's bundle {pledged_path} verifies: "
                  + ("[green]OK[/green]" if pledged_ok and cited_ok else "[red]FAILED[/red]")
                  + ", and every evidence hash its escrow steps cited is among its leaves")
    books_ok = escrow.balances["escrow_balance"] == sum(
        escrow.balances[k] for k in ("escrowed", "deposits", "reserve", "fees", "credits"))

    counts = store.counts()
    store.close()
    timings["total"] = time.perf_counter() - t0
    table = Table(title="evidence log demo")
    table.add_column("batch", justify="right")
    table.add_column("records", justify="right")
    table.add_column("tree size", justify="right")
    table.add_column("root", justify="left")
    table.add_column("gas", justify="right")
    for h in heads:
        table.add_row(str(h["batch"]), str(h["records"]), str(h["size"]), h["root"][:16] + "…",
                      f"{h['gas']:,}")
    console.print(table)
    console.print(escrow_table(escrow))
    bal = escrow.balances
    console.print(
        f"escrow books (TUSD base units): balance {bal['escrow_balance']:,} = escrowed {bal['escrowed']:,} + "
        f"deposits {bal['deposits']:,} + reserve {bal['reserve']:,} + fees {bal['fees']:,} + credits "
        f"{bal['credits']:,} → {'[green]balanced[/green]' if books_ok else '[red]NOT BALANCED[/red]'}\n"
        f"merchant deposits after the fraud ruling: A {bal['deposit_a']:,}, B {bal['deposit_b']:,}; "
        f"lender credit {bal['lender_credit']:,}\n"
        "gas per step (mean): " + ", ".join(
            f"{k} {sum(v) // len(v):,}" for k, v in escrow.gas.items()))
    console.print("records by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    console.print("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    console.print(f"bundle: {bundle_path}\ntampered bundle: {bad_path}\n"
                  f"try: ledger verify {bundle_path} --rpc URL  (needs the chain the bundle names)")
    success = (verdict.ok and not bad_verdict.ok and pledged_ok and cited_ok and books_ok
               and "EscrowTrackingReused" in escrow.rejected)
    if as_json:
        print(json.dumps({
            "ok": success, "records": len(sale), "records_by_kind": counts, "heads": heads,
            "bundle": str(bundle_path), "tampered_bundle": str(bad_path),
            "bundle_verified": verdict.ok, "tampered_rejected": not bad_verdict.ok,
            "tamper": change, "tamper_failures": failures, "timings": timings,
            "escrow": {
                "address": escrow.escrow, "arbitrator": escrow.arbitrator, "token": escrow.token,
                "orders": escrow.orders, "empty_parcel_rejected": escrow.rejected,
                "pledged_order": escrow.pledged_order, "pledged_bundle": str(pledged_path),
                "pledged_bundle_verified": pledged_ok, "cited_evidence_in_bundle": cited_ok,
                "balances": escrow.balances, "books_balanced": books_ok,
                "gas": {k: sum(v) // len(v) for k, v in escrow.gas.items()},
            },
        }, indent=2))
    return 0 if success else 1
