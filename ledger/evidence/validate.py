"""Strict validation of evidence records: per-kind schemas, cross-field rules, every problem named.

`check_record` reports every problem of one decoded record as (field path, reason);
`fast_valid` answers the common case (a valid record) with fewer steps. docs/records.md
is the specification.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from ledger.evidence.checks import (
    PATTERN_OF,
    RANGE_OF,
    TS_PATTERN,
    VALID_DATES,
    Check,
    DupDict,
    Problems,
    bad_text_search,
    check_ident,
    check_ts,
    enum_check,
    field_key,
    int_check,
    list_check,
    object_check,
    pattern_check,
    text_check,
    wrong_type,
)
from ledger.evidence.model import (
    CURRENCIES,
    DELIVERY_METHODS,
    ERASURE_KIND,
    KINDS,
    MAX_ERASED,
    MAX_ID_CHARS,
    MAX_INT,
    MAX_ITEMS,
    MAX_MEDIA,
    MAX_OPERATOR_CHARS,
    MAX_PERSONAL_CHARS,
    MAX_QTY,
    MAX_REASON_CHARS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    PAYMENT_METHODS,
    PERSONAL_FIELDS,
    RESERVED_FIELDS,
    RETURN_REASONS,
    RETURN_TYPES,
)

__all__ = ["check_record", "fast_valid", "record_id_of", "schema_fields"]

def _personal_check(kind: str) -> Check:
    allowed = PERSONAL_FIELDS[kind]
    text = text_check(MAX_PERSONAL_CHARS)
    fields = {name: text for name in allowed}
    listing = ", ".join(allowed) or "none (this kind has no personal fields)"
    allowed_set = frozenset(allowed)
    obj = object_check(fields, ())

    def check(v: Any) -> str | Problems | None:
        if v.__class__ is dict and v and v.keys() <= allowed_set:
            for x in v.values():
                if x.__class__ is not str or not 0 < len(x) <= MAX_PERSONAL_CHARS:
                    break
            else:
                if bad_text_search("\n".join(v.values())) is None:
                    return None
        if isinstance(v, dict) and not v:
            return "must not be empty (omit the field instead)"
        r = obj(v)
        if r is None or r.__class__ is str:
            return r
        return [
            (sub, f"unknown personal field for kind {kind!r}; allowed: {listing}")
            if reason.startswith("unknown field")
            else (sub, reason)
            for sub, reason in cast(Problems, r)
        ]

    return check


_money = int_check(0, MAX_INT, money=True)
_positive_money = int_check(1, MAX_INT, money=True)
_currency = enum_check(CURRENCIES, "currency (ISO 4217 code such as CNY, USD, EUR)")
_carrier = pattern_check(r"[A-Z][A-Z0-9_]{1,15}", "carrier code", "SF")
_tracking = pattern_check(r"[A-Za-z0-9-]{6,40}", "tracking number", "SF1234567890123")
_sha256_hex = pattern_check(r"[0-9a-f]{64}", "SHA-256 hex digest", "64 lower-case hex digits")
_media = list_check(_sha256_hex, MAX_MEDIA)
_qty = int_check(1, MAX_QTY, money=False)

_order_item = object_check(
    {"sku": check_ident, "title": text_check(MAX_TITLE_CHARS), "qty": _qty, "unit_price": _money},
    ("sku", "qty", "unit_price"),
)
_shipment_item = object_check({"sku": check_ident, "qty": _qty}, ("sku", "qty"))


def _kind_check(v: Any) -> str | None:
    # Only reached for a known kind (see check_record), so this never fails.
    return None


# --- cross-field rules (run only when the fields they use are individually valid) ----


def _order_rules(obj: dict[str, Any], bad: set[str], out: Problems) -> None:
    if (bad & {"items", "shipping_fee", "discount", "total"}
            or not {"items", "shipping_fee", "total"} <= obj.keys()):
        return
    subtotal = sum(it["qty"] * it["unit_price"] for it in obj["items"])
    discount = obj.get("discount", 0)
    expected = subtotal + obj["shipping_fee"] - discount
    if obj["total"] != expected:
        out.append((
            "total",
            f"total {obj['total']} does not equal sum(qty*unit_price) {subtotal} + shipping_fee "
            f"{obj['shipping_fee']} - discount {discount} = {expected}",
        ))


def _erasure_rules(obj: dict[str, Any], bad: set[str], out: Problems) -> None:
    if "erased" in bad or "erased" not in obj:
        return
    indexes = [e["index"] for e in obj["erased"]]
    if any(b <= a for a, b in zip(indexes, indexes[1:], strict=False)):
        out.append(("erased", "entries are not in strictly increasing index order"))


def _return_rules(obj: dict[str, Any], bad: set[str], out: Problems) -> None:
    rtype = obj.get("type")
    if "type" in bad or rtype is None:
        return
    if rtype == "refund_only":
        for f in ("carrier", "tracking_number"):
            if f in obj:
                out.append((f, "not allowed for a refund_only return (nothing is sent back)"))
    elif ("carrier" in obj) != ("tracking_number" in obj):
        missing = "carrier" if "tracking_number" in obj else "tracking_number"
        out.append((missing, "carrier and tracking_number must be given together"))


# --- schemas -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Schema:
    kind: str
    fields: Mapping[str, Check]
    required: frozenset[str]
    allowed: frozenset[str]
    rules: Callable[[dict[str, Any], set[str], Problems], None] | None
    listing: str
    # fast path (see fast_valid)
    str_get: Callable[[dict[str, Any]], tuple[str, ...]]
    str_match: Callable[[str], object]
    ints: tuple[tuple[str, int, int], ...]
    other_required: tuple[tuple[str, Check], ...]
    optional: tuple[tuple[str, Check], ...]


_COMMON: dict[str, Callable[[Any], str | None]] = {
    "id": check_ident,
    "kind": _kind_check,
    "order_id": check_ident,
    "merchant_id": check_ident,
    "ts": check_ts,
}
_COMMON_REQUIRED = ("id", "kind", "order_id", "merchant_id", "ts")


def _schema(
    kind: str,
    required: Mapping[str, Check],
    optional: Mapping[str, Check],
    rules: Callable[[dict[str, Any], set[str], Problems], None] | None = None,
) -> _Schema:
    fields = {**_COMMON, **required, **optional, "personal": _personal_check(kind)}
    assert not set(fields) & set(RESERVED_FIELDS)
    req = {**_COMMON, **required}
    str_fields = [k for k, c in req.items() if c in PATTERN_OF]
    patterns = [PATTERN_OF[req[k]] for k in str_fields]
    # "kind" and "ts" are checked by the combined regex too: kind as its literal value,
    # ts by its form (the date itself is checked separately).
    str_fields += ["kind", "ts"]
    patterns += [re.escape(kind), TS_PATTERN]
    return _Schema(
        kind=kind,
        fields=fields,
        required=frozenset(req),
        allowed=frozenset(fields),
        rules=rules,
        listing=", ".join(fields),
        str_get=operator.itemgetter(*str_fields),
        # No pattern matches NUL, so the NUL-joined values split back unambiguously.
        str_match=re.compile("\x00".join(f"(?:{p})" for p in patterns)).fullmatch,
        ints=tuple((k, *RANGE_OF[c]) for k, c in req.items() if c in RANGE_OF),
        other_required=tuple(
            (k, c) for k, c in req.items()
            if c not in PATTERN_OF and c not in RANGE_OF and k not in ("kind", "ts")
        ),
        optional=tuple((k, fields[k]) for k in fields if k not in req),
    )  # fmt: skip


_SCHEMAS: dict[str, _Schema] = {
    s.kind: s
    for s in (
        _schema(
            "order",
            {
                "buyer_id": check_ident,
                "live_session": check_ident,
                "items": list_check(_order_item, MAX_ITEMS, unique_key="sku"),
                "shipping_fee": _money,
                "total": _money,
                "currency": _currency,
            },
            {"discount": _money},
            _order_rules,
        ),
        _schema(
            "payment",
            {
                "amount": _positive_money,
                "currency": _currency,
                "method": enum_check(PAYMENT_METHODS, "payment method"),
                "payment_ref": check_ident,
            },
            {},
        ),
        _schema(
            "shipment",
            {"carrier": _carrier, "tracking_number": _tracking},
            {"items": list_check(_shipment_item, MAX_ITEMS, unique_key="sku")},
        ),
        _schema(
            "delivery",
            {
                "carrier": _carrier,
                "tracking_number": _tracking,
                "method": enum_check(DELIVERY_METHODS, "delivery method"),
            },
            {},
        ),
        _schema(
            "review",
            {"buyer_id": check_ident, "rating": int_check(1, 5, money=False)},
            {"text": text_check(MAX_TEXT_CHARS), "media_sha256": _media},
        ),
        _schema(
            "return",
            {
                "amount": _positive_money,
                "currency": _currency,
                "type": enum_check(RETURN_TYPES, "return type"),
                "reason": enum_check(RETURN_REASONS, "return reason"),
            },
            {
                "detail": text_check(MAX_TEXT_CHARS),
                "carrier": _carrier,
                "tracking_number": _tracking,
                "media_sha256": _media,
            },
            _return_rules,
        ),
    )
}
assert tuple(_SCHEMAS) == KINDS

#: `ledger erase`'s record (docs/records.md, "Erasure"); never accepted from input files.
_ERASURE = _schema(
    ERASURE_KIND,
    {
        "reason": text_check(MAX_REASON_CHARS),
        "operator": text_check(MAX_OPERATOR_CHARS),
        "key_version": int_check(1, 2, money=False),
        "erased": list_check(object_check({"index": int_check(0, MAX_INT, money=False), "id": check_ident,
                                           "leaf": _sha256_hex}, ("index", "id", "leaf")),
                             MAX_ERASED, unique_key="id"),
    },
    {},
    _erasure_rules,
)
_WITH_ERASURE: dict[str, _Schema] = {**_SCHEMAS, ERASURE_KIND: _ERASURE}


_NO_PROBLEMS: Problems = []
_NO_BAD: set[str] = set()
_ABSENT = object()


def fast_valid(obj: dict[str, Any]) -> bool:
    """True if `obj`, decoded from JSON, is a valid record; False means "look closer".

    It applies the same rules as `check_record` with fewer Python-level steps: all
    regex-checked string fields at once, then the integers, then the rest. It trusts
    JSON-decoded types (exact str), so it is not used for records from the Python API.
    """
    if obj.__class__ is not dict:
        return False
    kind = obj.get("kind")
    schema = _SCHEMAS.get(kind) if kind.__class__ is str else None
    if schema is None or not schema.required <= obj.keys():
        return False
    try:
        joined = "\x00".join(schema.str_get(obj))
    except TypeError:  # a non-string value
        return False
    if schema.str_match(joined) is None:
        return False
    ts = obj["ts"]
    if ts[:10] not in VALID_DATES and check_ts(ts) is not None:
        return False
    for k, lo, hi in schema.ints:
        v = obj[k]
        if v.__class__ is not int or not lo <= v <= hi:
            return False
    for k, c in schema.other_required:
        if c(obj[k]) is not None:
            return False
    present = len(schema.required)
    for k, c in schema.optional:
        v = obj.get(k, _ABSENT)
        if v is not _ABSENT:
            if c(v) is not None:
                return False
            present += 1
    if present != len(obj):  # an unknown field
        return False
    if schema.rules is not None:
        found: Problems = []
        schema.rules(obj, _NO_BAD, found)
        return not found
    return True


def check_record(obj: dict[str, Any], *, erasure: bool = False) -> Problems:
    """Every problem of one decoded record, as (field path, reason), in field order. An
    ``erasure`` record is valid only with `erasure` (`ledger erase` writes it; input never may)."""
    kind = obj.get("kind")
    schemas = _WITH_ERASURE if erasure else _SCHEMAS
    schema = schemas.get(kind) if kind.__class__ is str else None
    if schema is not None and obj.__class__ is dict:
        # Fast path: the usual valid record, without collecting anything.
        if schema.required <= obj.keys():
            get = schema.fields.get
            for k, v in obj.items():
                c = get(k)
                if c is None or c(v) is not None:
                    break
            else:
                if schema.rules is None:
                    return _NO_PROBLEMS
                found: Problems = []
                schema.rules(obj, _NO_BAD, found)
                return found
    return _collect_problems(obj, schemas)


def _collect_problems(obj: dict[str, Any], schemas: dict[str, _Schema] = _SCHEMAS) -> Problems:
    out: Problems = []
    if obj.__class__ is DupDict:
        out.extend((field_key(k), f"duplicate key {k!r} in the object") for k in obj.dups)
    kind = obj.get("kind")
    schema = schemas.get(kind) if kind.__class__ is str else None
    if schema is None:
        # Without a kind only the common fields can be checked.
        if "kind" not in obj:
            out.append(("kind", f"missing required field; expected one of: {', '.join(KINDS)}"))
        elif kind.__class__ is not str:
            out.append(("kind", wrong_type("a record kind (string)", kind)))
        elif kind == ERASURE_KIND:
            out.append(("kind", "an erasure record is written by `ledger erase` (which destroys the "
                                "order's content and key), never ingested"))
        else:
            out.append(("kind", f"unknown kind {kind[:40]!r}; expected one of: {', '.join(KINDS)}"))
        for name in ("id", "order_id", "merchant_id", "ts"):
            if name not in obj:
                out.append((name, "missing required field"))
            else:
                problem = _COMMON[name](obj[name])
                if problem is not None:
                    out.append((name, problem))
        return out
    fields = schema.fields
    for k, v in obj.items():
        c = fields.get(k)
        if c is None:
            if k in RESERVED_FIELDS:
                out.append((k, "field name is reserved for the leaf encoding"))
            else:
                reason = f"unknown field for kind {schema.kind!r}; allowed: {schema.listing}"
                out.append((field_key(k), reason))
            continue
        r = c(v)
        if r is not None:
            if r.__class__ is str:
                out.append((k, r))
            else:
                out.extend((k + sub, reason) for sub, reason in cast(Problems, r))
    if not schema.required <= obj.keys():
        out.extend((k, "missing required field") for k in sorted(schema.required - obj.keys()))
    if schema.rules is not None:
        bad = {_top_field(f) for f, _ in out}
        schema.rules(obj, bad, out)
    return out


def _top_field(path: str) -> str:
    return path.split("[", 1)[0].split(".", 1)[0]


def record_id_of(obj: Mapping[str, Any]) -> str | None:
    """The record id for problem reports (shown even when invalid, made printable)."""
    rid = obj.get("id")
    if rid.__class__ is not str or not rid:
        return None
    if len(rid) > MAX_ID_CHARS:
        rid = rid[:MAX_ID_CHARS] + "..."
    return field_key(rid)




def schema_fields(kind: str) -> frozenset[str]:
    """The kind-specific public fields a record of `kind` may carry (not the common ones,
    not ``personal``)."""
    return frozenset(_WITH_ERASURE[kind].fields) - {"personal", *_COMMON}
