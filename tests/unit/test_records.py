"""Records: every validation path, JSONL file handling, round trips and the leaf encoding."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ledger import records
from ledger.errors import RecordProblem, ValidationError
from ledger.records import (
    KINDS,
    MAX_INT,
    MAX_LINE_BYTES,
    Record,
    leaf_bytes,
    leaf_hash_of,
    parse_jsonl,
    parse_line,
    parse_record,
    personal_commitment,
)
from ledger.secrets import MasterSecret
from ledger.simulate import generate_flash_sale

DOC = Path(__file__).resolve().parents[2] / "docs" / "records.md"
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


# --- valid records ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_valid_record_of_each_kind(kind: str) -> None:
    obj = valid(kind)
    rec = parse_line(as_line(obj) + b"\n", source="in.jsonl", line_no=1)
    assert (rec.id, rec.kind, rec.order_id, rec.merchant_id, rec.ts) == (
        obj["id"], kind, "O1", "M1", "2026-11-11T20:00:00Z",
    )  # fmt: skip
    assert rec.personal == obj.get("personal")
    assert "personal" not in rec.public
    assert rec.public == {k: v for k, v in obj.items() if k != "personal"}
    assert parse_record(obj) == rec


@pytest.mark.parametrize("kind", KINDS)
def test_round_trips(kind: str) -> None:
    obj = valid(kind)
    rec = parse_record(obj)
    assert rec.to_json() == obj
    again = parse_line(rec.to_jsonl(), source="x", line_no=1)
    assert again == rec
    assert rec.to_jsonl() == rfc8785.dumps(obj)
    assert parse_record(json.loads(rec.to_jsonl())) == rec


def test_parse_record_copies_its_input() -> None:
    obj = valid("order")
    rec = parse_record(obj)
    obj["items"][0]["qty"] = 99
    obj["personal"]["phone"] = "0"
    assert rec.public["items"][0]["qty"] == 2
    assert rec.personal is not None and rec.personal["phone"] == "13812345678"


def test_record_is_frozen_and_hashable() -> None:
    rec = parse_record(valid("payment"))
    with pytest.raises(AttributeError):
        rec.id = "other"  # type: ignore[misc]
    assert {rec, parse_record(valid("payment"))} == {rec}


def test_optional_fields_may_be_omitted() -> None:
    order = valid("order")
    del order["discount"], order["personal"], order["items"][0]["title"]
    order["total"] = 2 * 12900 + 600
    assert parse_record(order).personal is None
    shipment = valid("shipment")
    del shipment["items"]
    parse_record(shipment)
    review = valid("review")
    del review["text"], review["media_sha256"]
    parse_record(review)
    ret = valid("return")
    del ret["detail"], ret["carrier"], ret["tracking_number"]
    parse_record(ret)


@pytest.mark.parametrize(
    "ts",
    ["2024-02-29T00:00:00Z", "2026-11-11T23:59:59.123456789Z", "2026-12-31T00:00:00.5Z",
     "1970-01-01T00:00:00Z"],
)
def test_good_timestamps(ts: str) -> None:
    assert parse_record({**valid("payment"), "ts": ts}).ts == ts


def test_extreme_but_valid_values() -> None:
    obj = valid("payment")
    obj["amount"] = MAX_INT
    obj["id"] = "a" * 128
    obj["payment_ref"] = "A-z_0.9:"
    parse_record(obj)
    order = valid("order")
    order["items"] = [{"sku": "X", "qty": 1, "unit_price": MAX_INT}]
    order["shipping_fee"] = order["discount"] = 0
    order["total"] = MAX_INT
    parse_record(order)


# --- every field: missing, wrong type, float, bool, range ----------------------------


@pytest.mark.parametrize("kind,field", [(k, f) for k in KINDS for f in COMMON + REQUIRED[k]])
def test_missing_required_field(kind: str, field: str) -> None:
    obj = valid(kind)
    del obj[field]
    found = problems(obj)
    assert [(p.field, p.reason.split(";")[0]) for p in found] == [(field, "missing required field")]
    assert found[0].record_id == (None if field == "id" else obj["id"])


@pytest.mark.parametrize("kind,field", [(k, f) for k in KINDS
                                        for f in ["id", "order_id", "merchant_id", "ts", *STRINGS[k]]])
@pytest.mark.parametrize("bad", [7, None, ["x"], {"a": "b"}, True])
def test_string_field_of_wrong_type(kind: str, field: str, bad: Any) -> None:
    obj = valid(kind)
    obj[field] = bad
    p = one_problem(obj)
    assert p.field == field
    assert p.reason.startswith("expected") or p.reason.startswith("null is not allowed")
    if bad is None:
        assert "omit optional fields" in p.reason


@pytest.mark.parametrize("kind,field", [(k, f) for k, fs in MONEY.items() for f in fs])
def test_float_money_is_rejected(kind: str, field: str) -> None:
    obj = valid(kind)
    obj[field] = float(obj[field])  # e.g. 10.0
    p = one_problem(obj)
    assert (p.field, p.reason) == (field, "float money not allowed; use integer minor units")


def test_float_money_from_json_text() -> None:
    line = as_line(valid("payment")).replace(b'"amount": 25400', b'"amount": 254.00')
    p = one_problem(line)
    assert (p.field, p.reason) == ("amount", "float money not allowed; use integer minor units")
    line = as_line(valid("payment")).replace(b'"amount": 25400', b'"amount": 2.54e4')
    assert one_problem(line).reason == "float money not allowed; use integer minor units"


INT_FIELDS = [(k, f) for k, fs in MONEY.items() for f in fs] + [("review", "rating")]


@pytest.mark.parametrize("kind,field", INT_FIELDS)
def test_bool_is_not_an_integer(kind: str, field: str) -> None:
    obj = valid(kind)
    obj[field] = True
    p = one_problem(obj)
    assert p.field == field and p.reason.startswith("boolean not allowed")


@pytest.mark.parametrize("kind,field", INT_FIELDS)
@pytest.mark.parametrize("bad", ["100", [1], {"v": 1}])
def test_integer_field_of_wrong_type(kind: str, field: str, bad: Any) -> None:
    obj = valid(kind)
    obj[field] = bad
    p = one_problem(obj)
    assert p.field == field and p.reason.startswith("expected an integer")


@pytest.mark.parametrize(
    "kind,field,value",
    [
        ("order", "shipping_fee", -1),
        ("order", "total", MAX_INT + 1),
        ("order", "discount", -5),
        ("payment", "amount", 0),
        ("payment", "amount", 2**64),
        ("return", "amount", 0),
        ("review", "rating", 0),
        ("review", "rating", 6),
    ],
)
def test_integer_out_of_range(kind: str, field: str, value: int) -> None:
    obj = valid(kind)
    obj[field] = value
    found = problems(obj)
    assert (found[0].field, found[0].reason.split(":")[0]) == (field, "out of range")


def test_nan_and_infinity_name_the_field() -> None:
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        line = as_line(valid("payment")).replace(b'"amount": 25400', b'"amount": ' + constant)
        p = one_problem(line)
        assert p.field == "amount" and p.record_id == "O1:pay"
        assert "not valid JSON" in p.reason and constant.lstrip(b"-").decode() in p.reason


def test_nan_inside_items() -> None:
    line = as_line(valid("order")).replace(b'"qty": 2', b'"qty": NaN')
    found = problems(line)
    assert found[0].field == "items[0].qty" and "NaN (not valid JSON)" in found[0].reason


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_field(kind: str) -> None:
    obj = valid(kind)
    obj["colour"] = "red"
    p = one_problem(obj)
    assert p.field == "colour" and p.reason.startswith(f"unknown field for kind {kind!r}")


@pytest.mark.parametrize("name", ["salt", "personal_commitment"])
def test_reserved_field_names(name: str) -> None:
    obj = valid("review")
    obj[name] = "00" * 32
    p = one_problem(obj)
    assert (p.field, p.reason) == (name, "field name is reserved for the leaf encoding")


def test_field_of_another_kind_is_unknown() -> None:
    obj = valid("payment")
    obj["carrier"] = "SF"
    assert one_problem(obj).field == "carrier"


@pytest.mark.parametrize("kind_value,reason",
                         [("refund", "unknown kind 'refund'"), (3, "expected a record kind")])
def test_unknown_kind_still_checks_common_fields(kind_value: Any, reason: str) -> None:
    obj = valid("payment")
    obj["kind"] = kind_value
    obj["ts"] = "yesterday"
    found = problems(obj)
    assert [p.field for p in found] == ["kind", "ts"]
    assert found[0].reason.startswith(reason)
    assert found[0].record_id == "O1:pay"


def test_null_optional_field() -> None:
    obj = valid("order")
    obj["discount"] = None
    p = one_problem(obj)
    assert p.field == "discount" and p.reason.startswith("null is not allowed")


# --- identifiers, enums, codes, text --------------------------------------------------


@pytest.mark.parametrize(
    "value,reason",
    [
        ("", "must not be empty"),
        ("a" * 129, "too long: 129 characters (max 128)"),
        ("has space", "invalid characters"),
        ("订单1", "invalid characters"),
        ("a/b", "invalid characters"),
        ("a\nb", "invalid characters"),
    ],
)
@pytest.mark.parametrize("field", ["id", "order_id", "merchant_id"])
def test_identifier_rules(field: str, value: str, reason: str) -> None:
    obj = valid("delivery")
    obj[field] = value
    p = one_problem(obj)
    assert p.field == field and p.reason.startswith(reason)


@pytest.mark.parametrize(
    "kind,field,value",
    [
        ("order", "currency", "XXX"),
        ("order", "currency", "cny"),
        ("payment", "method", "bitcoin"),
        ("delivery", "method", "drone"),
        ("return", "type", "exchange"),
        ("return", "reason", "bored"),
        ("shipment", "carrier", "sf"),
        ("shipment", "carrier", "S"),
        ("shipment", "tracking_number", "12345"),
        ("shipment", "tracking_number", "SF 123456"),
        ("review", "media_sha256", ["AB" * 32]),
        ("review", "media_sha256", ["ab" * 31]),
    ],
)
def test_enums_and_codes(kind: str, field: str, value: Any) -> None:
    obj = valid(kind)
    obj[field] = value
    p = one_problem(obj)
    assert p.field.startswith(field)
    assert p.reason.startswith("unknown") or p.reason.startswith("not a valid")


@pytest.mark.parametrize(
    "kind,field,value,reason",
    [
        ("review", "text", "", "must not be empty"),
        ("review", "text", "x" * 2001, "too long: 2001 characters (max 2000)"),
        ("review", "text", "bell\x07", "control character U+0007"),
        ("review", "text", "nul\x00", "control character U+0000"),
        ("return", "detail", "lone \ud800", "lone surrogate U+D800"),
    ],
)
def test_text_rules(kind: str, field: str, value: str, reason: str) -> None:
    obj = valid(kind)
    obj[field] = value
    line = json.dumps(obj).encode()  # ASCII with \u escapes: a lone surrogate survives
    p = one_problem(line)
    assert p.field == field and p.reason.startswith(reason)


def test_text_allows_tab_newline_and_any_unicode() -> None:
    obj = valid("review")
    obj["text"] = "line1\nline2\ttab\r\u007f\u2028\u2029 😀 𝄞 \"q\" \\ /"
    rec = parse_line(json.dumps(obj).encode(), source="x", line_no=1)
    assert rec.public["text"] == obj["text"]


def test_item_problems_name_the_path() -> None:
    obj = valid("order")
    obj["items"][1] = {"sku": "SKU 2", "qty": 0, "unit_price": 1.5, "colour": "red"}
    found = problems(obj)
    assert [(p.field, p.reason.split(":")[0].split(";")[0]) for p in found] == [
        ("items[1].sku", "invalid characters"),
        ("items[1].qty", "out of range"),
        ("items[1].unit_price", "float money not allowed"),
        ("items[1].colour", "unknown field"),
    ]


def test_item_missing_fields_and_bad_shapes() -> None:
    obj = valid("order")
    obj["items"] = [{"sku": "A"}, "B", {"sku": "C", "qty": 1, "unit_price": 1, "title": 5}]
    found = [(p.field, p.reason) for p in problems(obj)]
    assert ("items[0].qty", "missing required field") in found
    assert ("items[0].unit_price", "missing required field") in found
    assert ("items[1]", "expected an object, got string") in found
    assert ("items[2].title", "expected a string, got integer") in found
    assert not any(f == "total" for f, _ in found), "totals are not checked when items are bad"


@pytest.mark.parametrize("value,reason", [([], "must not be empty"), ("x", "expected an array")])
def test_items_must_be_a_non_empty_array(value: Any, reason: str) -> None:
    obj = valid("order")
    obj["items"] = value
    assert one_problem(obj).reason.startswith(reason)


def test_too_many_items() -> None:
    obj = valid("shipment")
    obj["items"] = [{"sku": f"S{i}", "qty": 1} for i in range(records.MAX_ITEMS + 1)]
    assert one_problem(obj).reason.startswith("too many elements")


def test_duplicate_sku() -> None:
    obj = valid("shipment")
    obj["items"] = [{"sku": "A", "qty": 1}, {"sku": "A", "qty": 2}]
    p = one_problem(obj)
    assert (p.field, p.reason) == ("items[1].sku", "duplicate sku 'A' in the array")


def test_order_total_must_add_up() -> None:
    obj = valid("order")
    obj["total"] += 1
    p = one_problem(obj)
    assert p.field == "total"
    assert p.reason == (
        "total 25401 does not equal sum(qty*unit_price) 25800 + shipping_fee 600 - discount 1000 = 25400"
    )


def test_refund_only_cannot_have_a_return_parcel() -> None:
    obj = valid("return")
    obj["type"] = "refund_only"
    found = problems(obj)
    assert [p.field for p in found] == ["carrier", "tracking_number"]
    assert all("refund_only" in p.reason for p in found)


def test_return_carrier_and_tracking_go_together() -> None:
    obj = valid("return")
    del obj["carrier"]
    p = one_problem(obj)
    assert (p.field, p.reason) == ("carrier", "carrier and tracking_number must be given together")


# --- personal fields -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_personal_fields_are_a_closed_list_per_kind(kind: str) -> None:
    obj = valid(kind)
    obj["personal"] = {name: "x" for name in records.PERSONAL_FIELDS[kind]}
    parse_record(obj)
    obj["personal"]["passport_no"] = "E123"
    p = one_problem(obj)
    assert p.field == "personal.passport_no"
    assert p.reason.startswith(f"unknown personal field for kind {kind!r}")


@pytest.mark.parametrize(
    "value,field,reason",
    [
        ({}, "personal", "must not be empty"),
        ("Wang", "personal", "expected an object"),
        ({"phone": 138}, "personal.phone", "expected a string"),
        ({"phone": ""}, "personal.phone", "must not be empty"),
        ({"phone": "1" * 501}, "personal.phone", "too long"),
        ({"phone": "1\x1b"}, "personal.phone", "control character"),
    ],
)
def test_personal_value_rules(value: Any, field: str, reason: str) -> None:
    obj = valid("payment")
    obj["personal"] = value
    p = one_problem(obj)
    assert p.field == field and p.reason.startswith(reason)


# --- timestamps --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ts,reason",
    [
        ("2026-11-11 20:00:00", "not an RFC 3339 UTC timestamp"),
        ("2026-11-11T20:00:00", "not an RFC 3339 UTC timestamp"),
        ("2026-11-11t20:00:00z", "not an RFC 3339 UTC timestamp"),
        ("2026-11-11", "not an RFC 3339 UTC timestamp"),
        ("11/11/2026 20:00", "not an RFC 3339 UTC timestamp"),
        ("２０２６-11-11T20:00:00Z", "not an RFC 3339 UTC timestamp"),
        ("2026-11-11T20:00:00+08:00", "timezone offsets are not allowed"),
        ("2026-11-11T20:00:00-0500", "timezone offsets are not allowed"),
        ("2026-11-11T20:00:00.5+00:00", "timezone offsets are not allowed"),
        ("2026-02-30T00:00:00Z", "not a real date: 2026-02-30"),
        ("2025-02-29T00:00:00Z", "not a real date: 2025-02-29"),
        ("2100-02-29T00:00:00Z", "not a real date: 2100-02-29"),
        ("2026-04-31T00:00:00Z", "not a real date"),
        ("2026-13-01T00:00:00Z", "not a real date"),
        ("2026-00-10T00:00:00Z", "not a real date"),
        ("2026-11-00T00:00:00Z", "not a real date"),
        ("2026-11-11T24:00:00Z", "not a real time of day"),
        ("2026-11-11T20:60:00Z", "not a real time of day"),
        ("2026-11-11T23:59:60Z", "not a real time of day"),
        ("0000-01-01T00:00:00Z", "year 0 out of range"),
        ("2026-11-11T20:00:00.1234567891Z", "at most 9 fractional-second digits"),
        ("2026-11-11T20:00:00.Z", "not an RFC 3339 UTC timestamp"),
    ],
)
def test_bad_timestamps(ts: str, reason: str) -> None:
    obj = valid("payment")
    obj["ts"] = ts
    p = one_problem(obj)
    assert p.field == "ts" and p.reason.startswith(reason), p.reason


# --- line-level problems -------------------------------------------------------------


def test_non_utf8_names_line_and_offset() -> None:
    line = as_line(valid("payment")).replace("王小明".encode(), b"\xff\xfe")
    offset = line.index(b"\xff")
    p = one_problem(line)
    assert p.field is None and p.record_id == "O1:pay"
    assert p.reason.startswith("not valid UTF-8")
    assert f"byte 0xff) at byte offset {offset} of the line" in p.reason


def test_encoded_surrogate_is_not_utf8() -> None:
    line = as_line(valid("review")).replace("好评".encode(), b"\xed\xa0\x80")  # CESU-style U+D800
    assert one_problem(line).reason.startswith("not valid UTF-8")


def test_oversized_line() -> None:
    obj = valid("review")
    obj["text"] = "x" * 1000
    obj["media_sha256"] = ["ab" * 32] * 20
    line = as_line(obj)
    big = line[:-1] + b" " * (MAX_LINE_BYTES + 1 - len(line)) + b"}"
    assert len(big) == MAX_LINE_BYTES + 1
    p = one_problem(big)
    assert p.record_id == "O1:review"
    assert p.reason == f"line is {MAX_LINE_BYTES + 1} bytes; the limit is {MAX_LINE_BYTES} bytes per record"
    # exactly at the limit is fine, and the line ending does not count
    at_limit = line[:-1] + b" " * (MAX_LINE_BYTES - len(line)) + b"}"
    assert parse_line(at_limit + b"\r\n", source="x", line_no=1).id == "O1:review"


def test_oversized_record_through_the_api() -> None:
    obj = valid("shipment")
    obj["items"] = [{"sku": f"{'S' * 120}{i:03d}", "qty": 1} for i in range(500)]
    p = one_problem_api(obj)
    assert p.reason.startswith("record is") and "the limit is 65536 bytes" in p.reason


def one_problem_api(obj: dict[str, Any]) -> RecordProblem:
    with pytest.raises(ValidationError) as e:
        parse_record(obj)
    assert len(e.value.problems) == 1
    return e.value.problems[0]


def test_duplicate_keys() -> None:
    line = as_line(valid("payment"))[:-1] + b', "amount": 1}'
    p = one_problem(line)
    assert (p.field, p.reason, p.record_id) == ("amount", "duplicate key 'amount' in the object", "O1:pay")
    nested = as_line(valid("order")).replace(b'"qty": 2', b'"qty": 2, "qty": 2')
    p = one_problem(nested)
    assert (p.field, p.reason) == ("items[0].qty", "duplicate key 'qty' in the object")
    personal = as_line(valid("payment")).replace(b'"payer_name": "', b'"payer_name": "a", "payer_name": "')
    assert one_problem(personal).field == "personal.payer_name"


@pytest.mark.parametrize(
    "line,reason",
    [
        (b"[1, 2]", "expected a JSON object, got array"),
        (b'"record"', "expected a JSON object, got string"),
        (b"42", "expected a JSON object, got integer"),
        (b"null", "expected a JSON object, got null"),
        (b'{"id": "x",}', "invalid JSON"),
        (b'{"id": "x"} {"id": "y"}', "invalid JSON: Extra data"),
        (b"\xef\xbb\xbf{}", "a UTF-8 byte order mark is not allowed"),
        (b'{"id": "x", "n": ' + b"9" * 5000 + b"}", "invalid JSON"),
        (b"[" * 60_000, "invalid JSON"),  # too deep or truncated, never a crash
    ],
)
def test_not_a_record(line: bytes, reason: str) -> None:
    p = one_problem(line)
    assert p.field is None and p.reason.startswith(reason), p.reason


def test_all_problems_of_a_line_are_listed_in_field_order() -> None:
    obj = valid("order")
    obj["ts"] = "2026-11-11 20:00"
    obj["currency"] = "RMB"
    obj["shipping_fee"] = 6.0
    obj["extra"] = 1
    del obj["buyer_id"]
    found = problems(obj)
    assert [p.field for p in found] == ["ts", "shipping_fee", "currency", "extra", "buyer_id"]
    assert {p.record_id for p in found} == {"O1:order"}


def test_problem_fields_are_printable() -> None:
    line = as_line(valid("payment"))[:-1] + b', "\\ud800\\u0007": 1}'
    p = one_problem(line)
    assert p.field == repr("\ud800\x07")
    p.describe().encode("utf-8")  # must not raise


def test_parse_line_rejects_text() -> None:
    with pytest.raises(TypeError):
        parse_line('{"id": "x"}', source="x", line_no=1)  # type: ignore[arg-type]


def test_parse_record_rejects_non_mappings_and_odd_python_types() -> None:
    with pytest.raises(ValidationError):
        parse_record(["not", "a", "mapping"])  # type: ignore[arg-type]
    obj = valid("order")
    obj["items"] = tuple(obj["items"])
    assert one_problem_api(obj).reason == "expected an array, got Python tuple"

    class Str(str):
        pass

    obj = valid("payment")
    obj["method"] = Str("alipay")
    assert one_problem_api(obj).field == "method"
    obj = valid("payment")
    obj[1] = "x"  # type: ignore[index]
    assert one_problem_api(obj).field == "1"


# --- files -------------------------------------------------------------------------------


def test_jsonl_file_lists_every_problem_with_its_line() -> None:
    good = [valid(k) for k in KINDS]
    bad_ts = {**valid("payment"), "id": "P2", "ts": "2026-11-11T20:00:00+08:00"}
    bad_money = {**valid("return"), "id": "R2", "amount": 10.0}
    lines = [
        as_line(good[0]),
        b"",
        as_line(bad_ts),
        b"   ",
        as_line(good[1]),
        b"\xff not utf-8",
        as_line(bad_money),
        b"[]",
        *[as_line(g) for g in good[2:]],
    ]
    with pytest.raises(ValidationError) as e:
        parse_jsonl(b"\n".join(lines) + b"\n", source="day1.jsonl")
    got = [(p.source, p.line, p.record_id, p.field) for p in e.value.problems]
    assert got == [
        ("day1.jsonl", 3, "P2", "ts"),
        ("day1.jsonl", 6, None, None),
        ("day1.jsonl", 7, "R2", "amount"),
        ("day1.jsonl", 8, None, None),
    ]
    text = str(e.value)
    assert "4 invalid record problem(s)" in text and "day1.jsonl:7: record 'R2' field 'amount'" in text


def test_jsonl_accepts_iterables_crlf_and_skips_blank_lines() -> None:
    lines = [as_line(valid(k)) + b"\r\n" for k in KINDS]
    recs = parse_jsonl(iter([b"\n", *lines, b"  \t\r\n"]), source="x")
    assert [r.kind for r in recs] == list(KINDS)
    assert parse_jsonl(b"".join(lines), source="x") == recs
    assert parse_jsonl(b"", source="x") == []


def test_jsonl_identical_duplicates_are_kept_once() -> None:
    a = as_line(valid("payment"))
    reordered = json.dumps(dict(reversed(list(valid("payment").items()))), ensure_ascii=False).encode()
    recs = parse_jsonl(b"\n".join([a, as_line(valid("review")), a, reordered]), source="x")
    assert [r.id for r in recs] == ["O1:pay", "O1:review"]


def test_jsonl_conflicting_duplicate_ids() -> None:
    a = valid("payment")
    b = {**valid("payment"), "amount": 1}
    with pytest.raises(ValidationError) as e:
        parse_jsonl(b"\n".join([as_line(a), as_line(valid("review")), as_line(b)]), source="f")
    (p,) = e.value.problems
    assert (p.line, p.record_id, p.field) == (3, "O1:pay", "id")
    assert p.reason == "duplicate record id with different content (first at line 1)"


def test_jsonl_rejects_text_lines() -> None:
    with pytest.raises(TypeError):
        parse_jsonl(["{}"], source="x")  # type: ignore[list-item]


def test_simulated_sale_is_valid_jsonl() -> None:
    from ledger.simulate import to_jsonl

    recs = generate_flash_sale(5, 400, 3, "2026-11-11T20:00:00Z")
    parsed = parse_jsonl(to_jsonl(recs), source="sim")
    assert [r.to_json() for r in parsed] == recs


# --- the leaf encoding ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_leaf_is_jcs_of_the_committed_object(kind: str) -> None:
    rec = parse_record(valid(kind))
    committed = rec.committed(SALT, PSALT)
    assert committed["salt"] == SALT.hex()
    if rec.personal is None:
        assert "personal_commitment" not in committed
    else:
        expected_pc = hashlib.sha256(PSALT + rfc8785.dumps(rec.personal)).hexdigest()
        assert committed["personal_commitment"] == expected_pc == personal_commitment(rec.personal, PSALT)
    assert {k: v for k, v in committed.items() if k not in ("salt", "personal_commitment")} == rec.public
    assert leaf_bytes(rec, SALT, PSALT) == rfc8785.dumps(committed)
    assert leaf_hash_of(rec, SALT, PSALT) == hashlib.sha256(b"\x00" + rfc8785.dumps(committed)).digest()


def test_leaf_hides_personal_data_but_commits_to_it() -> None:
    rec = parse_record(valid("order"))
    leaf = leaf_bytes(rec, SALT, PSALT)
    assert rec.personal is not None
    for value in rec.personal.values():
        assert value.encode() not in leaf
    other = parse_record({**valid("order"), "personal": {**rec.personal, "phone": "13900000000"}})
    assert leaf_hash_of(other, SALT, PSALT) != leaf_hash_of(rec, SALT, PSALT)
    assert leaf_hash_of(rec, SALT, bytes(32)) != leaf_hash_of(rec, SALT, PSALT)
    # without personal data the personal salt plays no part
    pay = parse_record({k: v for k, v in valid("payment").items() if k != "personal"})
    assert leaf_hash_of(pay, SALT, PSALT) == leaf_hash_of(pay, SALT, bytes(32))


def test_leaf_depends_on_salt_and_every_field() -> None:
    rec = parse_record(valid("payment"))
    base = leaf_hash_of(rec, SALT, PSALT)
    assert leaf_hash_of(rec, bytes(32), PSALT) != base
    for field, value in [("amount", 25401), ("ts", "2026-11-11T20:00:01Z"), ("method", "card")]:
        assert leaf_hash_of(parse_record({**valid("payment"), field: value}), SALT, PSALT) != base


def test_salts_must_be_32_bytes() -> None:
    rec = parse_record(valid("order"))
    for salt, psalt in [(b"short", PSALT), (SALT, b"short"), (SALT.hex(), PSALT)]:
        with pytest.raises(ValueError):
            leaf_bytes(rec, salt, psalt)  # type: ignore[arg-type]


def test_unvalidated_record_uses_the_strict_encoder() -> None:
    rec = parse_record(valid("review"))
    hand_made = Record(rec.id, rec.kind, rec.order_id, rec.merchant_id, rec.ts, rec.public, rec.personal)
    assert hand_made == rec and not hand_made._validated and rec._validated
    assert leaf_bytes(hand_made, SALT, PSALT) == leaf_bytes(rec, SALT, PSALT)


def test_fast_writers_match_rfc8785_on_a_simulated_sale() -> None:
    master = MasterSecret(bytes(32))
    for obj in generate_flash_sale(11, 600, 4, "2026-11-11T20:00:00Z"):
        rec = parse_line(as_line(obj), source="sim", line_no=1)
        salt, psalt = master.salts(rec.order_id, rec.id)
        assert leaf_bytes(rec, salt, psalt) == rfc8785.dumps(rec.committed(salt, psalt))


# Text that exercises JSON escaping: quotes, backslashes, allowed controls, U+007F,
# U+2028/2029, "/", non-BMP characters.
_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(['"', "\\", "/", "\t", "\n", "\r", "\x7f", "\u2028", "\u2029", "😀", "€", "a"]),
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
                   currency=draw(st.sampled_from(sorted(records.CURRENCIES))))  # fmt: skip
        if opt():
            obj["discount"] = discount
        obj["total"] = sum(i["qty"] * i["unit_price"] for i in items) + fee - obj.get("discount", 0)
    elif kind == "payment":
        obj.update(amount=draw(st.integers(1, MAX_INT)), currency="USD",
                   method=draw(st.sampled_from(records.PAYMENT_METHODS)),
                   payment_ref=draw(_ident))  # fmt: skip
    elif kind in ("shipment", "delivery"):
        obj.update(carrier=draw(st.from_regex(r"[A-Z][A-Z0-9_]{1,15}", fullmatch=True)),
                   tracking_number=draw(st.from_regex(r"[A-Za-z0-9-]{6,40}", fullmatch=True)))  # fmt: skip
        if kind == "delivery":
            obj["method"] = draw(st.sampled_from(records.DELIVERY_METHODS))
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
        rtype = draw(st.sampled_from(records.RETURN_TYPES))
        obj.update(amount=draw(st.integers(1, 10**9)), currency="EUR", type=rtype,
                   reason=draw(st.sampled_from(records.RETURN_REASONS)))  # fmt: skip
        if opt():
            obj["detail"] = draw(_text)
        if rtype == "return_and_refund" and opt():
            obj["carrier"] = "SF"
            obj["tracking_number"] = draw(st.from_regex(r"[A-Za-z0-9-]{6,40}", fullmatch=True))
        if opt():
            obj["media_sha256"] = ["0" * 64]
    if opt():
        names = draw(st.lists(st.sampled_from(records.PERSONAL_FIELDS[kind]), min_size=1, unique=True))
        obj["personal"] = {n: draw(_text) for n in names}
    return obj


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_records(), st.randoms(use_true_random=False))
def test_valid_records_parse_and_their_leaf_is_jcs(obj: dict[str, Any], rnd: Any) -> None:
    keys = list(obj)
    rnd.shuffle(keys)  # the field order of the input does not matter
    shuffled = {k: obj[k] for k in keys}
    rec = parse_line(json.dumps(shuffled, ensure_ascii=rnd.random() < 0.5).encode(), source="h", line_no=1)
    assert rec == parse_record(obj)
    assert rec.to_json() == obj
    assert leaf_bytes(rec, SALT, PSALT) == rfc8785.dumps(rec.committed(SALT, PSALT))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_records(), st.data())
@example(obj=VALID["payment"], data=None)
def test_fast_path_never_accepts_what_the_full_check_rejects(obj: dict[str, Any], data: Any) -> None:
    """Mutate a valid record; the fast validator and the full checker must agree."""
    mutated = copy.deepcopy(obj)
    if data is not None:
        action = data.draw(st.sampled_from(["replace", "delete", "add", "nested"]))
        key = data.draw(st.sampled_from(sorted(mutated)))
        if action == "replace":
            mutated[key] = data.draw(_json_values)
        elif action == "delete":
            del mutated[key]
        elif action == "add":
            mutated[data.draw(st.text(max_size=12))] = data.draw(_json_values)
        else:
            target = mutated.get("items") or [mutated.get("personal") or mutated]
            victim = target[0]
            if isinstance(victim, dict):
                victim[data.draw(st.sampled_from([*victim, "qty", "x"]))] = data.draw(_json_values)
    line = json.dumps(mutated).encode()
    decoded = records._decode(line.decode())
    full = records._collect_problems(copy.deepcopy(decoded))
    fast = records._fast_valid(copy.deepcopy(decoded))
    if fast:
        assert full == [], full
    try:
        parse_line(line, source="h", line_no=1)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == (full == [])


# --- the worked example in docs/records.md ------------------------------------------------


def _doc_block(name: str) -> str:
    """The body of the fenced block that follows the marker <!-- example:NAME --> in the doc."""
    text = DOC.read_text(encoding="utf-8")
    m = re.search(rf"<!-- example:{name} -->\s*```[a-z]*\n(.*?)\n```", text, re.S)
    assert m, f"docs/records.md has no example block {name!r}"
    return m.group(1)


def test_worked_example_in_the_doc() -> None:
    """Recompute every value of the doc's worked example from the doc's own inputs."""
    master = bytes.fromhex(_doc_block("master-secret"))
    line = _doc_block("record").encode("utf-8")
    rec = parse_line(line, source="doc", line_no=1)
    ms = MasterSecret(master)
    order_key = ms.order_key(rec.order_id)
    salt, psalt = ms.salts(rec.order_id, rec.id)
    assert _doc_block("order-key") == order_key.hex()
    assert _doc_block("record-salt") == salt.hex()
    assert _doc_block("personal-salt") == psalt.hex()
    assert _doc_block("personal-jcs").encode("utf-8") == rfc8785.dumps(rec.personal)
    assert _doc_block("personal-commitment") == personal_commitment(rec.personal or {}, psalt)
    assert _doc_block("leaf-bytes").encode("utf-8") == leaf_bytes(rec, salt, psalt)
    assert _doc_block("leaf-hash") == leaf_hash_of(rec, salt, psalt).hex()


def test_worked_example_by_an_independent_verifier() -> None:
    """Follow the doc's recipe with only hashlib, hmac and rfc8785 (no ledger code)."""
    import hmac

    master = bytes.fromhex(_doc_block("master-secret"))
    obj = json.loads(_doc_block("record"))
    prk = hmac.digest(b"evidence-escrow/v1", master, "sha256")
    order_key = hmac.digest(prk, b"order:" + obj["order_id"].encode() + b"\x01", "sha256")
    salt = hmac.digest(order_key, b"record:" + obj["id"].encode() + b"\x01", "sha256")
    psalt = hmac.digest(order_key, b"personal:" + obj["id"].encode() + b"\x01", "sha256")
    personal = obj.pop("personal")
    committed = {**obj, "salt": salt.hex()}
    committed["personal_commitment"] = hashlib.sha256(psalt + rfc8785.dumps(personal)).hexdigest()
    leaf = hashlib.sha256(b"\x00" + rfc8785.dumps(committed)).hexdigest()
    assert leaf == _doc_block("leaf-hash")


# --- the orjson fast path of parse_line ---------------------------------------------------


def _compact(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _slow_parse(line: bytes) -> tuple[Record | None, list[RecordProblem]]:
    """parse_line with the fast path switched off: the exact reference."""
    saved = records._orjson_loads

    def refuse(_: bytes) -> Any:
        raise records._OrjsonDecodeError("fast path disabled", "", 0)

    records._orjson_loads = refuse
    try:
        return records._parse_line(line, "h", 1)
    finally:
        records._orjson_loads = saved


def test_compact_duplicate_keys_are_caught_by_the_fast_path_check() -> None:
    pay = _compact(valid("payment"))
    # The later value is shorter, equal and longer than the first; the record is otherwise valid.
    for extra in (b',"amount":1', b',"amount":25400', b',"amount":9999999'):
        p = one_problem(pay[:-1] + extra + b"}")
        assert (p.field, p.reason) == ("amount", "duplicate key 'amount' in the object")
    nested = _compact(valid("order")).replace(b'"qty":2', b'"qty":2,"qty":2', 1)
    assert one_problem(nested).field == "items[0].qty"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_records(), st.data())
def test_fast_path_agrees_with_the_exact_path(obj: dict[str, Any], data: Any) -> None:
    """Compact lines, sometimes with a member repeated (any value): same verdict both ways."""
    line = _compact(obj)
    if data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(obj)))
        value = data.draw(st.one_of(st.just(obj[key]), _json_values))
        member = _compact({key: value})[1:-1]
        line = line[:-1] + b"," + member + b"}"
    fast = records._parse_line(line, "h", 1)
    slow = _slow_parse(line)
    assert fast[0] == slow[0]
    assert [p.describe() for p in fast[1]] == [p.describe() for p in slow[1]]


# --- times ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=__import__("datetime").datetime(1970, 1, 1),
                    max_value=__import__("datetime").datetime(9999, 12, 31)),
       st.integers(0, 9), st.integers(0, 999_999_999))
def test_ts_ns_agrees_with_the_general_parser(dt: Any, digits: int, frac: int) -> None:
    from ledger.records import parse_time_ns, ts_ns

    text = dt.strftime("%Y-%m-%dT%H:%M:%S") + (("." + str(frac).zfill(9)[:digits]) if digits else "") + "Z"
    rec = parse_record({**valid("payment"), "ts": text})
    assert ts_ns(rec.ts) == parse_time_ns(text)
    assert parse_time_ns(text.replace("Z", "+08:00")) == parse_time_ns(text) - 8 * 3600 * 10**9


def test_time_bounds_compare_as_times_not_strings(tmp_path: Path) -> None:
    from ledger.errors import ConfigError
    from ledger.store import Store

    with Store(tmp_path / "s.sqlite3", MasterSecret.generate()) as store:
        recs = [parse_record({**valid("payment"), "id": f"p{i}", "ts": ts})
                for i, ts in enumerate(["2026-11-11T20:00:00Z", "2026-11-11T20:00:00.5Z",
                                        "2026-11-11T20:00:01Z"])]
        store.ingest(recs, source="t")
        # As strings, "...00.5Z" < "...00Z"; as times it is half a second later.
        got = [r.id for r in store.records_for_merchant("M1", since="2026-11-11T20:00:00.25Z")]
        assert got == ["p1", "p2"]
        got = [r.id for r in store.records_in_range(None, "2026-11-11T20:00:00.5Z")]
        assert got == ["p0"]
        assert [r.id for r in store.records_in_range("2026-11-12T04:00:00.5+08:00", None)] == ["p1", "p2"]
        with pytest.raises(ConfigError, match="not an RFC 3339 time"):
            store.records_in_range("yesterday", None)
