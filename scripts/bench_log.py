#!/usr/bin/env python3
"""Benchmark the evidence log's hot paths, with baselines measured in the same run.

For each size (default 10k, 100k, 1M records of a generated flash sale):
  ours      ingest + anchor end to end: JSONL parse and validation, canonical form, salts,
            leaf hashes, personal-field encryption, SQLite commit, tree update, and one
            anchor transaction per batch on the embedded chain (one process, one core)
  (a)       the naive design, one transaction per record hash, on the same chain
            (measured on a sample of transactions; rate extrapolated)
  (b)       pymerkle 7 building the same tree and the same number of proofs
  (c)       the hashing limit: canonical bytes + SHA-256 only, records already in memory
Also: inclusion proofs verified per second and gas per anchor.

usage: python scripts/bench_log.py [--sizes 10000,100000,1000000] [--batch 10000]
                                   [--naive-sample 200] [--proofs 2000] [--json]
Writes bench-results/bench_log.json.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from ledger._internal import canonical
from ledger._internal.merkle import MerkleTree, leaf_hash, verify_inclusion
from ledger.chain import rpc
from ledger.deploy import deploy_evidence_log
from ledger.dev.flash_sale import iter_flash_sale
from ledger.evidence import records as rec
from ledger.evidence.anchor import Anchorer
from ledger.evidence.master_secret import MasterSecret

from benchutil import machine, write_results  # scripts/benchutil.py

START = "2026-11-11T12:00:00Z"


def write_sale(path: Path, n: int) -> None:
    """n records of a flash sale as JSONL (not timed)."""
    with path.open("wb") as f:
        stream = iter_flash_sale(seed=1, orders=n // 3 + 10, merchants=20, start=START)
        for r in itertools.islice(stream, n):
            f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")


def chunks(path: Path, size: int):  # type: ignore[no-untyped-def]
    with path.open("rb") as f:
        while True:
            lines = list(itertools.islice(f, size))
            if not lines:
                return
            yield lines


def bench_ours(path: Path, n: int, batch: int, chain: Any, log: Any, workdir: Path) -> dict[str, Any]:
    from ledger.evidence.store import Store

    secret = MasterSecret.generate()
    store = Store(workdir / f"bench-{n}.sqlite3", secret)
    anchorer = Anchorer(store, chain, log)
    t_parse = t_ingest = t_anchor = cpu_index = 0.0
    gas: list[int] = []
    anchor_times: list[float] = []
    gc.collect()
    t0 = time.perf_counter()
    for i, lines in enumerate(chunks(path, batch)):
        t = time.perf_counter()
        recs = rec.parse_jsonl(lines, source=f"batch-{i}")
        t_parse += time.perf_counter() - t
        t = time.perf_counter()
        store.ingest(recs, source=f"batch-{i}")
        t_ingest += time.perf_counter() - t
        c = time.process_time()
        store.index_root(store.size)  # the completeness index (anchor would compute it anyway)
        cpu_index += time.process_time() - c
        t = time.perf_counter()
        out = anchorer.anchor()
        dt = time.perf_counter() - t
        t_anchor += dt
        anchor_times.append(dt)
        assert out.head is not None and out.gas_used is not None
        gas.append(out.gas_used)
    total = time.perf_counter() - t0
    tree = store.tree
    assert tree.size == n
    completeness = bench_completeness(store, chain.chain_id, log.address)
    store.close()
    return {
        "records": n,
        "seconds": total,
        "records_per_s": n / total,
        "parse_validate_s": t_parse,
        "ingest_s": t_ingest,
        "anchor_s": t_anchor,
        "anchors": len(gas),
        "gas_per_anchor_mean": statistics.mean(gas),
        "gas_per_anchor_max": max(gas),
        "gas_per_record": sum(gas) / n,
        "anchor_seconds_mean": statistics.mean(anchor_times),
        "index_cpu_us_per_record": cpu_index / n * 1e6,
        "completeness": completeness,
        "tree": tree,
    }


def bench_completeness(store: Any, chain_id: int, contract: str) -> dict[str, Any]:
    """v2 bundles at this size: the largest order's and the largest merchant's, their sizes,
    the proof overhead per record, export and offline verification times."""
    from ledger.evidence.bundle import export_bundle, verify_bundle
    from ledger.evidence.bundle_format import dumps_bundle, load_bundle

    def one(**sel: str) -> dict[str, Any]:
        t = time.perf_counter()
        bundle, _ = export_bundle(store, chain_id, contract, **sel)
        export_s = time.perf_counter() - t
        text = dumps_bundle(bundle).encode()
        c = bundle.completeness
        proof = len(json.dumps(msgspec.to_builtins(c), separators=(",", ":"))) if c is not None else 0
        t = time.perf_counter()
        verdict = verify_bundle(load_bundle(text), None)
        verify_s = time.perf_counter() - t
        assert verdict.completeness == "proven", verdict.completeness_failures
        n = len(bundle.records)
        return {"records": n, "bytes": len(text), "proof_bytes": proof, "proof_bytes_per_record": proof / n,
                "shard_keys": len(c.shard) if c else 0, "export_s": export_s, "verify_s": verify_s}

    order = store.db.execute("SELECT order_id FROM records GROUP BY order_id ORDER BY COUNT(*) DESC"
                             " LIMIT 1").fetchone()[0]
    merchant = store.db.execute("SELECT merchant_id FROM records GROUP BY merchant_id ORDER BY COUNT(*) DESC"
                                " LIMIT 1").fetchone()[0]
    return {"order": one(order_id=order), "merchant": one(merchant_id=merchant)}


def bench_proof_verify(tree: MerkleTree, count: int) -> dict[str, Any]:
    rng = random.Random(7)
    size = tree.size
    cases = []
    for _ in range(count):
        i = rng.randrange(size)
        cases.append((tree.leaf(i), i, tree.inclusion_proof(i)))
    root = tree.root()
    t = time.perf_counter()
    for leaf, i, proof in cases:
        verify_inclusion(leaf, i, size, proof, root)
    dt = time.perf_counter() - t
    return {"proofs": count, "verified_per_s": count / dt}


def bench_tree_vs_pymerkle(n: int, proofs: int) -> dict[str, Any]:
    from pymerkle import InmemoryTree

    data = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(n)]
    rng = random.Random(3)
    picks = [rng.randrange(n) for _ in range(proofs)]
    olds = [rng.randrange(1, n + 1) for _ in range(proofs)]

    gc.collect()
    t = time.perf_counter()
    ours = MerkleTree()
    ours.extend(leaf_hash(d) for d in data)
    root = ours.root()
    for i in picks:
        ours.inclusion_proof(i)
    for m in olds:
        ours.consistency_proof(m, n)
    ours_s = time.perf_counter() - t

    gc.collect()
    t = time.perf_counter()
    pm = InmemoryTree(algorithm="sha256")
    for d in data:
        pm.append_entry(d)
    pm_root = pm.get_root(n)
    for i in picks:
        pm.prove_inclusion(i + 1)
    for m in olds:
        pm.prove_consistency(m, n)
    pm_s = time.perf_counter() - t
    assert pm_root == root, "pymerkle and our tree disagree"
    return {"ours_s": ours_s, "pymerkle_s": pm_s, "speedup": pm_s / ours_s}


def bench_hash_limit(path: Path, n: int) -> dict[str, Any]:
    """Canonical bytes + SHA-256 of the committed object, records already in memory."""
    salt = os.urandom(32).hex()
    objs = []
    for lines in chunks(path, 100_000):
        for line in lines:
            o = json.loads(line)
            o.pop("personal", None)
            o["salt"] = salt
            objs.append(o)
    dumps, sha = canonical.dumps, hashlib.sha256
    gc.collect()
    t = time.perf_counter()
    for o in objs:
        sha(b"\x00" + dumps(o)).digest()
    dt = time.perf_counter() - t
    return {"records_per_s": n / dt, "seconds": dt}


def bench_naive(chain: Any, sample: int) -> dict[str, Any]:
    naive = chain.deploy("NaiveStamp")
    gas = []
    t = time.perf_counter()
    for i in range(sample):
        receipt = chain.transact(naive.functions.stamp(hashlib.sha256(b"n%d" % i).digest()), gas=80_000)
        gas.append(int(receipt["gasUsed"]))
    dt = time.perf_counter() - t
    return {"sample": sample, "records_per_s": sample / dt, "gas_per_record": statistics.mean(gas)}


def _c(r: dict[str, Any], which: str) -> dict[str, Any]:
    return r["ours"]["completeness"][which]  # type: ignore[no-any-return]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--batch", type=int, default=10_000, help="records per ingest+anchor batch")
    ap.add_argument("--naive-sample", type=int, default=200)
    ap.add_argument("--proofs", type=int, default=2_000)
    ap.add_argument("--json", action="store_true", help="print the JSON result to stdout")
    ap.add_argument("--out", default="bench-results/bench_log.json")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    console = Console(stderr=args.json)

    chain = rpc.embedded()
    dep = deploy_evidence_log(chain, None)
    naive = bench_naive(chain, args.naive_sample)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in sizes:
            console.print(f"[dim]size {n:,}: generating…[/dim]")
            sale = work / f"sale-{n}.jsonl"
            write_sale(sale, n)
            # a fresh log contract per size, so every run starts from an empty log
            log = chain.contract("EvidenceLog", deploy_evidence_log(chain, None, redeploy=True).address)
            console.print(f"[dim]size {n:,}: ingest + anchor…[/dim]")
            ours = bench_ours(sale, n, args.batch, chain, log, work)
            tree = ours.pop("tree")
            verify = bench_proof_verify(tree, args.proofs)
            del tree
            console.print(f"[dim]size {n:,}: baselines…[/dim]")
            pm = bench_tree_vs_pymerkle(n, args.proofs)
            limit = bench_hash_limit(sale, n)
            anchoring_rate = args.batch / ours["anchor_seconds_mean"]
            results.append({
                "records": n,
                "ours": ours,
                "proof_verify": verify,
                "naive": naive,
                "anchoring_records_per_s": anchoring_rate,
                "anchoring_vs_naive": anchoring_rate / naive["records_per_s"],
                "end_to_end_vs_naive": ours["records_per_s"] / naive["records_per_s"],
                "tree_vs_pymerkle": pm,
                "hash_limit": limit,
                "ours_vs_hash_limit": limit["records_per_s"] / ours["records_per_s"],
            })
            sale.unlink()
    _ = dep

    table = Table(title="evidence log benchmark (one process, embedded chain, same run)")
    table.add_column("metric")
    for r in results:
        table.add_column(f"{r['records']:,} records", justify="right")
    rows: list[tuple[str, Any]] = [
        ("ours: ingest+anchor records/s", lambda r: f"{r['ours']['records_per_s']:,.0f}"),
        ("  of which parse+validate s", lambda r: f"{r['ours']['parse_validate_s']:.2f}"),
        ("  of which store (salts, hash, encrypt, SQLite) s", lambda r: f"{r['ours']['ingest_s']:.2f}"),
        ("  of which anchor txs s", lambda r: f"{r['ours']['anchor_s']:.2f}"),
        ("completeness index CPU µs/record", lambda r: f"{r['ours']['index_cpu_us_per_record']:.2f}"),
        ("largest order's v2 bundle: records / KB",
         lambda r: f"{_c(r, 'order')['records']} / {_c(r, 'order')['bytes'] / 1e3:.1f}"),
        ("  its shard: keys (grows with the log)", lambda r: f"{_c(r, 'order')['shard_keys']}"),
        ("largest merchant's v2 bundle: records", lambda r: f"{_c(r, 'merchant')['records']:,}"),
        ("  proof bytes per record", lambda r: f"{_c(r, 'merchant')['proof_bytes_per_record']:.1f}"),
        ("  export s / verify (offline) s",
         lambda r: f"{_c(r, 'merchant')['export_s']:.2f} / {_c(r, 'merchant')['verify_s']:.2f}"),
        ("(c) hashing limit records/s", lambda r: f"{r['hash_limit']['records_per_s']:,.0f}"),
        ("    ours is slower than (c) by", lambda r: f"{r['ours_vs_hash_limit']:.2f}x"),
        ("(a) naive: one tx per record, records/s", lambda r: f"{r['naive']['records_per_s']:,.1f}"),
        ("    anchoring faster than (a) by", lambda r: f"{r['anchoring_vs_naive']:,.0f}x"),
        ("    end to end faster than (a) by", lambda r: f"{r['end_to_end_vs_naive']:,.0f}x"),
        ("tree + proofs, ours s", lambda r: f"{r['tree_vs_pymerkle']['ours_s']:.2f}"),
        ("(b) tree + proofs, pymerkle s", lambda r: f"{r['tree_vs_pymerkle']['pymerkle_s']:.2f}"),
        ("    ours faster than (b) by", lambda r: f"{r['tree_vs_pymerkle']['speedup']:.1f}x"),
        ("inclusion proofs verified/s", lambda r: f"{r['proof_verify']['verified_per_s']:,.0f}"),
        ("anchors (one per batch)", lambda r: f"{r['ours']['anchors']}"),
        ("gas per anchor (mean / max)",
         lambda r: f"{r['ours']['gas_per_anchor_mean']:,.0f} / {r['ours']['gas_per_anchor_max']:,}"),
        ("gas per record: ours / (a)",
         lambda r: f"{r['ours']['gas_per_record']:.2f} / {r['naive']['gas_per_record']:,.0f}"),
    ]
    for label, fmt in rows:
        table.add_row(label, *[fmt(r) for r in results])
    console.print(table)
    console.print(f"naive design: {naive['gas_per_record']:,.0f} gas per record, one tx each")
    payload = {"benchmark": "bench_log", **machine(), "batch": args.batch, "results": results}
    write_results(payload, args.out, console, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
