"""Shared test data for records: a valid record of each kind, field lists, problem helpers,
and a hypothesis strategy of valid records."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from ledger.errors import RecordProblem, ValidationError
from ledger.evidence import model
from ledger.evidence.model import KINDS, MAX_INT
from ledger.evidence.records import parse_line, parse_record

DOC = Path(__file__).resolve().parents[3] / "docs" / "records.md"


SALT = bytes(range(32))


PSALT = bytes(range(100, 132))


BASE = {"order_id": "O1", "merchant_id": "M1", "ts": "2026-11-11T20:00:00Z"}


VALID: dict[str, dict[str, Any]] = {
    "order": {
        "id": "O1:order", "kind": "order", **BASE,
        "buyer_id": "B1", "live_session": "M1.live.20261111",
        "items": [
            {"sku": "SKU-1", "title": "保湿面霜 50ml", "qty": 2, "unit_price": 12900},
            {"sku": "SKU-2", "qty": 1, "unit_price": 0},
        ],
        "shipping_fee": 600, "discount": 1000, "total": 25400, "currency": "CNY",
        "personal": {"buyer_name": "王小明", "phone": "13812345678", "address": "幸福路88号"},
    },
    "payment": {
        "id": "O1:pay", "kind": "payment", **BASE,
        "amount": 25400, "currency": "CNY", "method": "alipay", "payment_ref": "2026111122001",
        "personal": {"payer_name": "王小明"},
    },
    "shipment": {
        "id": "O1:ship", "kind": "shipment", **BASE,
        "carrier": "SF", "tracking_number": "SF1234567890123",
        "items": [{"sku": "SKU-1", "qty": 2}],
    },
    "delivery": {
        "id": "O1:dlv", "kind": "delivery", **BASE,
        "carrier": "SF", "tracking_number": "SF1234567890123", "method": "locker",
        "personal": {"pickup_code": "123456"},
    },
    "review": {
        "id": "O1:review", "kind": "review", **BASE,
        "buyer_id": "B1", "rating": 5, "text": "好评👍 \"quoted\" \\ / \u2028",
        "media_sha256": ["ab" * 32],
    },
    "return": {
        "id": "O1:return", "kind": "return", **BASE,
        "amount": 12900, "currency": "CNY", "type": "return_and_refund", "reason": "damaged",
        "detail": "外包装破损", "carrier": "YTO", "tracking_number": "YT1234567890123",
    },
}  # fmt: skip


REQUIRED = {
    "order": ["buyer_id", "live_session", "items", "shipping_fee", "total", "currency"],
    "payment": ["amount", "currency", "method", "payment_ref"],
    "shipment": ["carrier", "tracking_number"],
    "delivery": ["carrier", "tracking_number", "method"],
    "review": ["buyer_id", "rating"],
    "return": ["amount", "currency", "type", "reason"],
}


COMMON = ["id", "kind", "order_id", "merchant_id", "ts"]


MONEY = {"order": ["shipping_fee", "total", "discount"], "payment": ["amount"], "return": ["amount"]}


STRINGS = {
    "order": ["buyer_id", "live_session", "currency"],
    "payment": ["currency", "method", "payment_ref"],
    "shipment": ["carrier", "tracking_number"],
    "delivery": ["carrier", "tracking_number", "method"],
    "review": ["buyer_id", "text"],
    "return": ["currency", "type", "reason", "detail", "carrier", "tracking_number"],
}


def valid(kind: str) -> dict[str, Any]:
    return copy.deepcopy(VALID[kind])


def as_line(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def problems(line: bytes | dict[str, Any], line_no: int = 7) -> list[RecordProblem]:
    """The problems parse_line reports (and parse_record too, for objects)."""
    raw = line if isinstance(line, bytes) else as_line(line)
    with pytest.raises(ValidationError) as e:
        parse_line(raw, source="in.jsonl", line_no=line_no)
    found = e.value.problems
    assert all(p.source == "in.jsonl" and p.line == line_no for p in found)
    if isinstance(line, dict):
        with pytest.raises(ValidationError) as e2:
            parse_record(line)
        api = [(p.field, p.reason) for p in e2.value.problems]
        assert api == [(p.field, p.reason) for p in found], "parse_record and parse_line disagree"
    return found


def one_problem(obj: bytes | dict[str, Any]) -> RecordProblem:
    found = problems(obj)
    assert len(found) == 1, [p.describe() for p in found]
    return found[0]


# Text that exercises JSON escaping: quotes, backslashes, allowed controls, U+00A0,
# U+2028/2029, "/", non-BMP characters.
_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(['"', "\\", "/", "\t", "\n", "\r", "\xa0", "\u2028", "\u2029", "😀", "€", "a"]),
        st.characters(blacklist_categories=("Cs", "Cc")),
    ),
    min_size=1,
    max_size=30,
)


_ident = st.from_regex(r"[A-Za-z0-9._:-]{1,20}", fullmatch=True)


_money = st.integers(0, MAX_INT // 1000)


@st.composite
def valid_records(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(KINDS))
    obj: dict[str, Any] = {
        "id": draw(_ident), "kind": kind, "order_id": draw(_ident), "merchant_id": draw(_ident),
        "ts": draw(st.sampled_from(["2026-11-11T20:00:00Z", "2024-02-29T23:59:59.999999999Z"])),
    }  # fmt: skip
    opt = lambda: draw(st.booleans())  # noqa: E731
    if kind == "order":
        skus = draw(st.lists(_ident, min_size=1, max_size=4, unique=True))
        items = []
        for sku in skus:
            item: dict[str, Any] = {"sku": sku, "qty": draw(st.integers(1, 50)), "unit_price": draw(_money)}
            if opt():
                item["title"] = draw(_text)
            items.append(item)
        fee = draw(_money)
        discount = draw(st.integers(0, fee))
        obj.update(buyer_id=draw(_ident), live_session=draw(_ident), items=items, shipping_fee=fee,
                   currency=draw(st.sampled_from(sorted(model.CURRENCIES))))  # fmt: skip
        if opt():
            obj["discount"] = discount
        obj["total"] = sum(i["qty"] * i["unit_price"] for i in items) + fee - obj.get("discount", 0)
    elif kind == "payment":
        obj.update(amount=draw(st.integers(1, MAX_INT)), currency="USD",
                   method=draw(st.sampled_from(model.PAYMENT_METHODS)),
                   payment_ref=draw(_ident))  # fmt: skip
    elif kind in ("shipment", "delivery"):
        obj.update(carrier=draw(st.from_regex(r"[A-Z][A-Z0-9_]{1,15}", fullmatch=True)),
                   tracking_number=draw(st.from_regex(r"[A-Za-z0-9-]{6,40}", fullmatch=True)))  # fmt: skip
        if kind == "delivery":
            obj["method"] = draw(st.sampled_from(model.DELIVERY_METHODS))
        elif opt():
            skus = draw(st.lists(_ident, min_size=1, max_size=3, unique=True))
            obj["items"] = [{"sku": s, "qty": draw(st.integers(1, 9))} for s in skus]
    elif kind == "review":
        obj.update(buyer_id=draw(_ident), rating=draw(st.integers(1, 5)))
        if opt():
            obj["text"] = draw(_text)
        if opt():
            obj["media_sha256"] = draw(st.lists(st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
                                                min_size=1, max_size=3))
    else:
        rtype = draw(st.sampled_from(model.RETURN_TYPES))
        obj.update(amount=draw(st.integers(1, 10**9)), currency="EUR", type=rtype,
                   reason=draw(st.sampled_from(model.RETURN_REASONS)))  # fmt: skip
        if opt():
            obj["detail"] = draw(_text)
        if rtype == "return_and_refund" and opt():
            obj["carrier"] = "SF"
            obj["tracking_number"] = draw(st.from_regex(r"[A-Za-z0-9-]{6,40}", fullmatch=True))
        if opt():
            obj["media_sha256"] = ["0" * 64]
    if opt():
        names = draw(st.lists(st.sampled_from(model.PERSONAL_FIELDS[kind]), min_size=1, unique=True))
        obj["personal"] = {n: draw(_text) for n in names}
    return obj


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def one_problem_api(obj: dict[str, Any]) -> RecordProblem:
    with pytest.raises(ValidationError) as e:
        parse_record(obj)
    assert len(e.value.problems) == 1
    return e.value.problems[0]
