"""The flash-sale generator: deterministic for a seed, valid records, in time order."""

from __future__ import annotations

import hashlib

from ledger._internal.rfc3339 import ts_ns
from ledger.dev.flash_sale import generate_flash_sale, iter_flash_sale, to_jsonl
from ledger.evidence.records import parse_jsonl

START = "2026-11-11T12:00:00Z"


def test_same_seed_same_bytes_other_seed_other_sale() -> None:
    a = to_jsonl(generate_flash_sale(seed=3, orders=60, merchants=2, start=START))
    assert a == to_jsonl(generate_flash_sale(seed=3, orders=60, merchants=2, start=START))
    assert hashlib.sha256(a).digest() != hashlib.sha256(
        to_jsonl(generate_flash_sale(seed=4, orders=60, merchants=2, start=START))).digest()


def test_every_record_is_valid_and_in_time_order() -> None:
    sale = list(iter_flash_sale(seed=9, orders=200, merchants=3, start=START))
    records = parse_jsonl(to_jsonl(sale), source="sale")
    assert len(records) == len(sale)
    times = [ts_ns(r.ts) for r in records]
    assert times == sorted(times)
    assert {r.kind for r in records} == {"order", "payment", "shipment", "delivery", "review", "return"}
    by_order: dict[str, set[str]] = {}
    for r in records:
        by_order.setdefault(r.order_id, set()).add(r.merchant_id)
    assert all(len(m) == 1 for m in by_order.values())  # an order belongs to one merchant
