"""Records: every validation path, line and file handling, round trips, the fast parse path."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ledger.dev.flash_sale import generate_flash_sale
from ledger.errors import RecordProblem, ValidationError
from ledger.evidence import model, records, validate
from ledger.evidence.checks import decode_json
from ledger.evidence.model import KINDS, MAX_INT, MAX_LINE_BYTES, Record
from ledger.evidence.records import parse_jsonl, parse_line, parse_record
from tests.unit.evidence.records_data import (
    COMMON,
    MONEY,
    REQUIRED,
    STRINGS,
    VALID,
    _json_values,
    as_line,
    one_problem,
    one_problem_api,
    problems,
    valid,
    valid_records,
)


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
     "1970-01-01T00:00:00Z", "2262-04-11T23:47:16.854775807Z", "2262-04-11T23:47:16.8Z"],
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
        ("review", "text", "del\x7f", "control character U+007F at character 3"),
        ("review", "text", "next line\x85", "control character U+0085 at character 9"),
        ("return", "detail", "csi\x9b", "control character U+009B at character 3"),
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
    obj["text"] = "line1\nline2\ttab\r\u00a0\u2028\u2029 😀 𝄞 \"q\" \\ /"
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
    obj["items"] = [{"sku": f"S{i}", "qty": 1} for i in range(model.MAX_ITEMS + 1)]
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


@pytest.mark.parametrize("kind", KINDS)
def test_personal_fields_are_a_closed_list_per_kind(kind: str) -> None:
    obj = valid(kind)
    obj["personal"] = {name: "x" for name in model.PERSONAL_FIELDS[kind]}
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
        ({"phone": "1\x7f"}, "personal.phone", "control character U+007F at character 1"),
        ({"phone": "1\x85"}, "personal.phone", "control character U+0085 at character 1"),
    ],
)
def test_personal_value_rules(value: Any, field: str, reason: str) -> None:
    obj = valid("payment")
    obj["personal"] = value
    p = one_problem(obj)
    assert p.field == field and p.reason.startswith(reason)


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
        ("1969-12-31T23:59:59.999999999Z", "year 1969 out of range"),
        ("2262-04-11T23:47:16.854775808Z", "after 2262-04-11T23:47:16.854775807Z"),
        ("2262-04-11T23:47:17Z", "after 2262-04-11T23:47:16.854775807Z"),
        ("2262-04-12T00:00:00Z", "after 2262-04-11T23:47:16.854775807Z"),
        ("9999-12-31T23:59:59Z", "after 2262-04-11T23:47:16.854775807Z"),
        ("2026-11-11T20:00:00.1234567891Z", "at most 9 fractional-second digits"),
        ("2026-11-11T20:00:00.Z", "not an RFC 3339 UTC timestamp"),
    ],
)
def test_bad_timestamps(ts: str, reason: str) -> None:
    obj = valid("payment")
    obj["ts"] = ts
    p = one_problem(obj)
    assert p.field == "ts" and p.reason.startswith(reason), p.reason


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
    from ledger.dev.flash_sale import to_jsonl

    recs = generate_flash_sale(5, 400, 3, "2026-11-11T20:00:00Z")
    parsed = parse_jsonl(to_jsonl(recs), source="sim")
    assert [r.to_json() for r in parsed] == recs


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
    decoded = decode_json(line.decode())
    full = validate._collect_problems(copy.deepcopy(decoded))
    fast = validate.fast_valid(copy.deepcopy(decoded))
    if fast:
        assert full == [], full
    try:
        parse_line(line, source="h", line_no=1)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == (full == [])


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


@pytest.mark.parametrize("char", ["\x7f", "\x80", "\x85", "\x9f", "\x1f"])
@pytest.mark.parametrize(("kind", "path"), [("review", ("text",)), ("order", ("items", 0, "title")),
                                             ("payment", ("personal", "payer_name"))])
def test_fast_and_exact_paths_refuse_c0_del_and_c1_controls(kind: str, path: tuple[Any, ...],
                                                             char: str) -> None:
    """DEL and C1 controls (U+0085 is a line break to some readers) are refused like C0 ones,
    raw in a compact line (the orjson path) as well as escaped (the exact path)."""
    obj = valid(kind)
    target: Any = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = f"ab{char}"
    field = ".".join(str(k) for k in path).replace(".0.", "[0].")
    for line in (_compact(obj), json.dumps(obj).encode()):
        fast, slow = records._parse_line(line, "h", 1), _slow_parse(line)
        assert fast[0] is None and [p.describe() for p in fast[1]] == [p.describe() for p in slow[1]]
        [p] = fast[1]
        assert (p.field, p.reason) == (field, f"control character U+{ord(char):04X} at character 2 "
                                              "is not allowed")


def test_read_jsonl_streams_lines_and_measures_an_overlong_one() -> None:
    """A stream is read line by line; a line over the limit is measured, not held, and
    reported like one from bytes; the lines around it are checked as usual."""
    good = as_line(valid("payment"))
    for eol in (b"\n", b"\r\n"):
        huge = b'{"id":"O1:big","text":"' + b"x" * (3 * MAX_LINE_BYTES) + b'"}'
        data = good + eol + huge + eol + good.replace(b"O1:pay", b"O1:pay2") + b"\n\n"
        seen: list[int] = []
        with pytest.raises(ValidationError) as err:
            records.read_jsonl(io.BytesIO(data), source="s", progress=seen.append)
        [p] = err.value.problems
        assert (p.line, p.record_id) == (2, "O1:big")
        assert p.reason == f"line is {len(huge)} bytes; the limit is {MAX_LINE_BYTES} bytes per record"
        assert sum(seen) == len(data)
    text = good + b"\n" + good.replace(b"O1:pay", b"O1:pay2")
    assert [r.id for r in records.read_jsonl(io.BytesIO(text), source="s")] == ["O1:pay", "O1:pay2"]
    packed = records.read_jsonl(io.BytesIO(text), source="s")
    assert list(packed) == parse_jsonl(text, source="s") and packed[1:] == [packed[1]]
    assert packed[0].validated  # rebuilt records keep the fast leaf writers
