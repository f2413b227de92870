"""Evidence records: the strict model, validation, canonical form and leaf encoding.

A record is one JSON object per line (JSONL). Validation is strict and reports every
problem of every line at once (`ValidationError` with one `RecordProblem` per problem):
no unknown fields, no nulls, no floats, no booleans where integers belong, integers in
0..2**53-1, identifiers from a small ASCII alphabet, RFC 3339 UTC timestamps, money as
integer minor units of a known ISO 4217 currency. docs/records.md is the specification.

The leaf of a record in the Merkle log is::

    committed = public fields
                + {"salt": hex(record salt)}
                + {"personal_commitment": hex(SHA-256(personal salt || JCS(personal)))}
                  (only when the record has personal fields)
    leaf_hash = SHA-256(0x00 || JCS(committed))

so personal data never enters the log, and a record can be disclosed without it.
"""

from __future__ import annotations

import calendar
import datetime
import hashlib
import json
import operator
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _jstr
from typing import Any, cast

import orjson

from ledger._internal import canonical
from ledger._internal.perf import paused_gc
from ledger.errors import ConfigError, RecordProblem, ValidationError

__all__ = [
    "CURRENCIES",
    "DELIVERY_METHODS",
    "KINDS",
    "LEAF_PREFIX",
    "MAX_INT",
    "MAX_LINE_BYTES",
    "PAYMENT_METHODS",
    "PERSONAL_FIELDS",
    "RESERVED_FIELDS",
    "RETURN_REASONS",
    "RETURN_TYPES",
    "Record",
    "Encoded",
    "encode",
    "leaf_bytes",
    "leaf_hash_of",
    "parse_jsonl",
    "parse_line",
    "parse_record",
    "parse_time_ns",
    "personal_commitment",
    "rfc3339",
    "ts_ns",
]

KINDS: tuple[str, ...] = ("order", "payment", "shipment", "delivery", "review", "return")

MAX_LINE_BYTES = 64 * 1024
MAX_INT = 2**53 - 1  # I-JSON: every integer is exact in an IEEE 754 double, so JCS is exact
MAX_ID_CHARS = 128
MAX_ITEMS = 500
MAX_MEDIA = 20
MAX_QTY = 100_000
MAX_PERSONAL_CHARS = 500
MAX_TITLE_CHARS = 200
MAX_TEXT_CHARS = 2000

LEAF_PREFIX = b"\x00"  # RFC 9162 leaf domain separation
RESERVED_FIELDS = ("salt", "personal_commitment")  # added by the leaf encoding

#: ISO 4217 codes accepted, with their number of minor-unit digits (for display only:
#: amounts are always integers in minor units, e.g. 1999 CNY = 19.99 yuan, 1999 JPY = 1999 yen).
CURRENCIES: Mapping[str, int] = {
    "AED": 2, "ARS": 2, "AUD": 2, "BDT": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2,
    "CLP": 0, "CNY": 2, "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2,
    "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0,
    "KES": 2, "KRW": 0, "KWD": 3, "KZT": 2, "LKR": 2, "MAD": 2, "MOP": 2, "MXN": 2,
    "MYR": 2, "NGN": 2, "NOK": 2, "NPR": 2, "NZD": 2, "OMR": 3, "PEN": 2, "PHP": 2,
    "PKR": 2, "PLN": 2, "QAR": 2, "RON": 2, "RUB": 2, "SAR": 2, "SEK": 2, "SGD": 2,
    "THB": 2, "TND": 3, "TRY": 2, "TWD": 2, "UAH": 2, "USD": 2, "VND": 0, "ZAR": 2,
}  # fmt: skip

PAYMENT_METHODS = (
    "alipay", "wechat_pay", "unionpay", "card", "apple_pay", "paypal",
    "bank_transfer", "platform_balance", "cash_on_delivery",
)  # fmt: skip
DELIVERY_METHODS = ("signed", "locker", "doorstep", "pickup")
RETURN_TYPES = ("refund_only", "return_and_refund")
RETURN_REASONS = (
    "not_as_described", "damaged", "defective", "wrong_item", "missing_item", "size_fit",
    "quality", "changed_mind", "not_received", "late_delivery", "counterfeit", "other",
)  # fmt: skip

#: The only personal fields each kind may carry (all strings of 1..500 characters).
PERSONAL_FIELDS: Mapping[str, tuple[str, ...]] = {
    "order": ("buyer_name", "recipient", "phone", "address", "postal_code", "email", "buyer_note"),
    "payment": ("payer_name", "payer_account", "phone"),
    "shipment": ("recipient", "phone", "address", "postal_code"),
    "delivery": ("recipient", "phone", "address", "signed_by", "pickup_code"),
    "review": ("reviewer_name",),
    "return": ("buyer_name", "phone", "address", "postal_code"),
}

# --- the record ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """A validated record. Treat ``public`` and ``personal`` as read-only.

    ``public`` is the record without ``personal`` (it includes id, kind, order_id,
    merchant_id and ts); ``personal`` is the personal fields or None.
    """

    id: str
    kind: str
    order_id: str
    merchant_id: str
    ts: str
    public: dict[str, Any]
    personal: dict[str, str] | None = None
    # True only for records built by validation: their leaf bytes may use the fast writers.
    _validated: bool = field(default=False, init=False, repr=False, compare=False)

    def __hash__(self) -> int:
        return hash(self.id)

    def committed(self, salt: bytes, personal_salt: bytes) -> dict[str, Any]:
        """The object whose JCS form is the leaf (see the module docstring)."""
        if type(salt) is not bytes or len(salt) != 32:
            raise ValueError("the record salt must be 32 bytes")
        obj = self.public.copy()
        obj["salt"] = salt.hex()
        if self.personal is not None:
            obj["personal_commitment"] = personal_commitment(self.personal, personal_salt)
        return obj

    def to_json(self) -> dict[str, Any]:
        """The record as given (public fields plus ``personal`` when present)."""
        obj = self.public.copy()
        if self.personal is not None:
            obj["personal"] = self.personal.copy()
        return obj

    def to_jsonl(self) -> bytes:
        """One canonical JSONL line (JCS of `to_json`, no newline); parses back to this record."""
        return canonical.dumps_strict(self.to_json())


def personal_commitment(personal: Mapping[str, str], personal_salt: bytes) -> str:
    """hex(SHA-256(personal_salt || JCS(personal))): binds the personal fields to the leaf."""
    if type(personal_salt) is not bytes or len(personal_salt) != 32:
        raise ValueError("the personal salt must be 32 bytes")
    return hashlib.sha256(personal_salt + canonical.dumps_strict(dict(personal))).hexdigest()


@dataclass(frozen=True, slots=True)
class Encoded:
    """What the log keeps of a record: its canonical parts and its leaf hash."""

    public_jcs: bytes  # JCS of the public fields (no salt, no personal data)
    personal_jcs: bytes | None  # JCS of the personal fields, to be encrypted at rest
    personal_commitment: bytes | None  # SHA-256(personal salt || personal_jcs)
    leaf_bytes: bytes  # JCS(committed object)
    leaf_hash: bytes  # SHA-256(0x00 || leaf_bytes)


def encode(record: Record, salt: bytes, personal_salt: bytes) -> Encoded:
    """The record's canonical parts and leaf hash in one pass (the ingest hot path).

    Validated records are written by the per-kind JCS writers; any other record goes
    through the strict generic encoder. Both give the same bytes (tested).
    """
    if type(salt) is not bytes or len(salt) != 32:
        raise ValueError("the record salt must be 32 bytes")
    personal = record.personal
    pjcs: bytes | None = None
    pc: bytes | None = None
    if personal is not None:
        if type(personal_salt) is not bytes or len(personal_salt) != 32:
            raise ValueError("the personal salt must be 32 bytes")
        if record._validated:
            # Keys are known ASCII names; values go through the JSON string escaper.
            pjcs = ("{" + ",".join([f'"{k}":{_jstr(personal[k])}' for k in sorted(personal)])
                    + "}").encode()
        else:
            pjcs = canonical.dumps_strict(dict(personal))
        pc = hashlib.sha256(personal_salt + pjcs).digest()
    if record._validated:
        write = _JCS_WRITERS[record.kind]
        public = write(record.public, "", "").encode()
        pc_member = "" if pc is None else f'"personal_commitment":"{pc.hex()}",'
        leaf_text = write(record.public, pc_member, f'"salt":"{salt.hex()}",').encode()
    else:
        public = canonical.dumps_strict(record.public)
        committed = record.public.copy()
        committed["salt"] = salt.hex()
        if pc is not None:
            committed["personal_commitment"] = pc.hex()
        leaf_text = canonical.dumps_strict(committed)
    return Encoded(public, pjcs, pc, leaf_text, hashlib.sha256(LEAF_PREFIX + leaf_text).digest())


def leaf_bytes(record: Record, salt: bytes, personal_salt: bytes) -> bytes:
    """JCS(committed object): the bytes that are leaf-hashed."""
    return encode(record, salt, personal_salt).leaf_bytes


def leaf_hash_of(record: Record, salt: bytes, personal_salt: bytes) -> bytes:
    """SHA-256(0x00 || leaf_bytes): the record's RFC 9162 leaf hash."""
    return encode(record, salt, personal_salt).leaf_hash


# --- time -------------------------------------------------------------------------------

_RFC3339_ANY = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def parse_time_ns(text: str) -> int:
    """An RFC 3339 time (``Z`` or an offset, up to 9 fractional digits) as unix nanoseconds.

    Integer nanoseconds compare exactly; the strings do not (``…00.5Z`` sorts before
    ``…00Z``). Raises ConfigError (a ValueError) naming the text for anything else.
    """
    m = _RFC3339_ANY.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ConfigError(f"not an RFC 3339 time: {str(text)[:40]!r} (e.g. 2026-11-11T00:00:00Z)")
    y, mo, d, hh, mi, ss = (int(g) for g in m.groups()[:6])
    try:
        base = calendar.timegm(datetime.datetime(y, mo, d, hh, mi, ss).timetuple())
    except ValueError:
        raise ConfigError(f"not a real date and time: {text[:40]!r}") from None
    offset = m.group(8)
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        base -= sign * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60)
    frac = (m.group(7) or ".")[1:].ljust(9, "0")
    return base * 10**9 + int(frac)


def rfc3339(unix: int | None = None) -> str:
    """A unix time (default: now) in the records' RFC 3339 UTC form, whole seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


_DAY_NS: dict[str, int] = {}


def ts_ns(ts: str) -> int:
    """A validated record's ``ts`` as unix nanoseconds (fast: dates are cached)."""
    day = _DAY_NS.get(ts[:10])
    if day is None:
        day = calendar.timegm((int(ts[0:4]), int(ts[5:7]), int(ts[8:10]), 0, 0, 0)) * 10**9
        if len(_DAY_NS) < 100_000:
            _DAY_NS[ts[:10]] = day
    secs = int(ts[11:13]) * 3600 + int(ts[14:16]) * 60 + int(ts[17:19])
    frac = ts[20:-1]
    return day + secs * 10**9 + (int(frac.ljust(9, "0")) if frac else 0)


# --- JSON decoding: duplicate keys and NaN are kept visible for validation -----------


class _DupDict(dict[str, Any]):
    """An object that had duplicate keys; ``dups`` names them (the last value wins)."""

    __slots__ = ("dups",)
    dups: list[str]


class _NonFinite:
    """Stands in for NaN/Infinity/-Infinity, which are not JSON, so validation names the field."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) == len(pairs):
        return d
    dd = _DupDict(pairs)
    seen: set[str] = set()
    dups: list[str] = []
    for k, _ in pairs:
        if k in seen and k not in dups:
            dups.append(k)
        seen.add(k)
    dd.dups = dups
    return dd


_decode = json.JSONDecoder(object_pairs_hook=_pairs_hook, parse_constant=_NonFinite).decode
_orjson_loads = orjson.loads
_orjson_dumps = orjson.dumps
_OrjsonDecodeError = orjson.JSONDecodeError

# --- field checkers ------------------------------------------------------------------
# A checker returns None when the value is valid, a reason (str) when it is not, or, for
# arrays and objects, a list of (sub-path, reason) such as ("[2].qty", "...").

_Problems = list[tuple[str, str]]
_Check = Callable[[Any], str | _Problems | None]

# For the fast path of `_parse_line`: string checkers whose rule is exactly "a str that
# fully matches this regex", and integer checkers with their range.
_PATTERN_OF: dict[_Check, str] = {}
_RANGE_OF: dict[_Check, tuple[int, int]] = {}


def _type_name(v: Any) -> str:
    t = type(v)
    if v is None:
        return "null"
    if t is bool:
        return "boolean"
    if t is int:
        return "integer"
    if t is float:
        return "float"
    if t is str:
        return "string"
    if t is list:
        return "array"
    if isinstance(v, dict):
        return "object"
    if t is _NonFinite:
        return f"{v.text} (not valid JSON)"
    return f"Python {t.__name__}"


def _wrong_type(expected: str, v: Any) -> str:
    if v is None:
        return f"null is not allowed; expected {expected} (omit optional fields instead)"
    return f"expected {expected}, got {_type_name(v)}"


def _int_check(lo: int, hi: int, *, money: bool) -> _Check:
    def check(v: Any) -> str | None:
        if v.__class__ is int:
            if lo <= v <= hi:
                return None
            return f"out of range: {v} (allowed {lo}..{hi})"
        if v.__class__ is float:
            if money:
                return "float money not allowed; use integer minor units"
            return "float not allowed; expected an integer"
        if v.__class__ is bool:
            return f"boolean not allowed; expected an integer in {lo}..{hi}"
        return _wrong_type("an integer" + (" (minor units)" if money else ""), v)

    _RANGE_OF[check] = (lo, hi)
    return check


_IDENT = r"[A-Za-z0-9._:-]{1,128}"
_ident_match = re.compile(_IDENT).fullmatch


def _ident_problem(v: Any, what: str = "an identifier") -> str:
    if v.__class__ is not str:
        return _wrong_type(f"{what} (string)", v)
    if not v:
        return "must not be empty"
    if len(v) > MAX_ID_CHARS:
        return f"too long: {len(v)} characters (max {MAX_ID_CHARS})"
    return "invalid characters; allowed: A-Z a-z 0-9 . _ : -"


def _check_ident(v: Any) -> str | None:
    if v.__class__ is str and _ident_match(v) is not None:
        return None
    return _ident_problem(v)


_PATTERN_OF[_check_ident] = _IDENT


# Controls other than TAB, LF, CR, and lone surrogates (possible via \ud800 escapes).
_bad_text_search = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]").search


def _text_check(max_chars: int) -> _Check:
    def check(v: Any) -> str | None:
        if v.__class__ is not str:
            return _wrong_type("a string", v)
        if not v:
            return "must not be empty (omit the field instead)"
        if len(v) > max_chars:
            return f"too long: {len(v)} characters (max {max_chars})"
        bad = _bad_text_search(v)
        if bad is not None:
            c = bad.group()
            if "\ud800" <= c <= "\udfff":
                return f"lone surrogate U+{ord(c):04X} at character {bad.start()} (not valid Unicode)"
            return f"control character U+{ord(c):04X} at character {bad.start()} is not allowed"
        return None

    return check


def _enum_check(values: Iterable[str], what: str) -> _Check:
    allowed = frozenset(values)
    listing = ", ".join(sorted(allowed)) if len(allowed) <= 12 else None

    def check(v: Any) -> str | None:
        if v.__class__ is str and v in allowed:
            return None
        if v.__class__ is not str:
            return _wrong_type(f"{what} (string)", v)
        if listing is None:
            return f"unknown {what} {v[:40]!r}"
        return f"unknown {what} {v[:40]!r}; expected one of: {listing}"

    _PATTERN_OF[check] = "(?:" + "|".join(re.escape(a) for a in sorted(allowed)) + ")"
    return check


def _pattern_check(pattern: str, what: str, example: str) -> _Check:
    match = re.compile(pattern, re.ASCII).fullmatch

    def check(v: Any) -> str | None:
        if v.__class__ is str and match(v) is not None:
            return None
        if v.__class__ is not str:
            return _wrong_type(f"{what} (string)", v)
        return f"not a valid {what}: {v[:60]!r} (e.g. {example!r})"

    _PATTERN_OF[check] = pattern
    return check


# RFC 3339, UTC only, upper-case T and Z, 0..9 fractional digits.
_TS = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?Z"
_ts_match = re.compile(_TS).fullmatch
_ts_shape = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z").fullmatch
_ts_offset = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?[+-][0-9]{2}:?[0-9]{2}"
).fullmatch
_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_good_dates: set[str] = set()


def _check_ts(v: Any) -> str | None:
    if v.__class__ is not str:
        return _wrong_type("an RFC 3339 UTC timestamp (string)", v)
    if _ts_match(v) is None:
        if _ts_shape(v) is not None:
            return f"not a real time of day: {v[11:19]} (hours 00-23, minutes and seconds 00-59)"
        return _ts_form_problem(v)
    date = v[:10]
    if date in _good_dates:
        return None
    y, mo, d = int(v[0:4]), int(v[5:7]), int(v[8:10])
    if not 1970 <= y <= 9999:
        return f"year {y} out of range (1970..9999)"
    if not 1 <= mo <= 12:
        return f"not a real date: {date} (month {mo})"
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    if not 1 <= d <= (29 if mo == 2 and leap else _DAYS[mo]):
        return f"not a real date: {date}"
    if len(_good_dates) < 100_000:
        _good_dates.add(date)
    return None


_TS_EXAMPLE = "e.g. 2026-11-11T20:00:00Z or 2026-11-11T20:00:00.123Z"


def _ts_form_problem(v: str) -> str:
    if _ts_offset(v) is not None:
        return (f"timezone offsets are not allowed: {v[:40]!r}; "
                f"convert to UTC and end with 'Z' ({_TS_EXAMPLE})")
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{10,}Z", v):
        return "at most 9 fractional-second digits are allowed"
    return f"not an RFC 3339 UTC timestamp: {v[:40]!r} ({_TS_EXAMPLE}; 'T' and 'Z' upper-case)"


def _list_check(item: _Check, max_len: int, *, unique_key: str | None = None) -> _Check:
    """An array of 1..max_len elements, each checked by `item` (sub-paths get "[i]")."""

    def check(v: Any) -> str | _Problems | None:
        if v.__class__ is not list:
            return _wrong_type("an array", v)
        if not v:
            return "must not be empty (omit the field instead)"
        if len(v) > max_len:
            return f"too many elements: {len(v)} (max {max_len})"
        out: _Problems = []
        seen: set[str] = set()
        for i, el in enumerate(v):
            r = item(el)
            if r is not None:
                if r.__class__ is str:
                    out.append((f"[{i}]", r))
                else:
                    out.extend((f"[{i}]{sub}", reason) for sub, reason in cast(_Problems, r))
            elif unique_key is not None:
                key = el[unique_key]
                if key in seen:
                    out.append((f"[{i}].{unique_key}", f"duplicate {unique_key} {key!r} in the array"))
                seen.add(key)
        return out or None

    return check


def _object_check(fields: Mapping[str, _Check], required: Iterable[str]) -> _Check:
    """A nested object with exactly these fields (sub-paths get ".name")."""
    req = frozenset(required)
    allowed = frozenset(fields)
    names = ", ".join(fields)

    def check(v: Any) -> str | _Problems | None:
        if v.__class__ is dict and req <= v.keys() and v.keys() <= allowed:
            for k, val in v.items():
                if fields[k](val) is not None:
                    break
            else:
                return None
        if not isinstance(v, dict):
            return _wrong_type("an object", v)
        out: _Problems = []
        if v.__class__ is _DupDict:
            out.extend((f".{_key(k)}", f"duplicate key {k!r} in the object") for k in v.dups)
        for k, val in v.items():
            c = fields.get(k)
            if c is None:
                out.append((f".{_key(k)}", f"unknown field; allowed here: {names}"))
                continue
            r = c(val)
            if r is not None:
                if r.__class__ is str:
                    out.append((f".{k}", r))
                else:
                    out.extend((f".{k}{sub}", reason) for sub, reason in cast(_Problems, r))
        if not req <= v.keys():
            out.extend((f".{k}", "missing required field") for k in sorted(req - v.keys()))
        return out or None

    return check


def _personal_check(kind: str) -> _Check:
    allowed = PERSONAL_FIELDS[kind]
    text = _text_check(MAX_PERSONAL_CHARS)
    fields = {name: text for name in allowed}
    listing = ", ".join(allowed)
    allowed_set = frozenset(allowed)
    obj = _object_check(fields, ())

    def check(v: Any) -> str | _Problems | None:
        if v.__class__ is dict and v and v.keys() <= allowed_set:
            for x in v.values():
                if x.__class__ is not str or not 0 < len(x) <= MAX_PERSONAL_CHARS:
                    break
            else:
                if _bad_text_search("\n".join(v.values())) is None:
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
            for sub, reason in cast(_Problems, r)
        ]

    return check


_money = _int_check(0, MAX_INT, money=True)
_positive_money = _int_check(1, MAX_INT, money=True)
_currency = _enum_check(CURRENCIES, "currency (ISO 4217 code such as CNY, USD, EUR)")
_carrier = _pattern_check(r"[A-Z][A-Z0-9_]{1,15}", "carrier code", "SF")
_tracking = _pattern_check(r"[A-Za-z0-9-]{6,40}", "tracking number", "SF1234567890123")
_sha256_hex = _pattern_check(r"[0-9a-f]{64}", "SHA-256 hex digest", "64 lower-case hex digits")
_media = _list_check(_sha256_hex, MAX_MEDIA)
_qty = _int_check(1, MAX_QTY, money=False)

_order_item = _object_check(
    {"sku": _check_ident, "title": _text_check(MAX_TITLE_CHARS), "qty": _qty, "unit_price": _money},
    ("sku", "qty", "unit_price"),
)
_shipment_item = _object_check({"sku": _check_ident, "qty": _qty}, ("sku", "qty"))


def _kind_check(v: Any) -> str | None:
    # Only reached for a known kind (see _check_record), so this never fails.
    return None


# --- cross-field rules (run only when the fields they use are individually valid) ----


def _order_rules(obj: dict[str, Any], bad: set[str], out: _Problems) -> None:
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


def _return_rules(obj: dict[str, Any], bad: set[str], out: _Problems) -> None:
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
    fields: Mapping[str, _Check]
    required: frozenset[str]
    allowed: frozenset[str]
    rules: Callable[[dict[str, Any], set[str], _Problems], None] | None
    listing: str
    # fast path (see _fast_valid)
    str_get: Callable[[dict[str, Any]], tuple[str, ...]]
    str_match: Callable[[str], object]
    ints: tuple[tuple[str, int, int], ...]
    other_required: tuple[tuple[str, _Check], ...]
    optional: tuple[tuple[str, _Check], ...]


_COMMON: dict[str, Callable[[Any], str | None]] = {
    "id": _check_ident,
    "kind": _kind_check,
    "order_id": _check_ident,
    "merchant_id": _check_ident,
    "ts": _check_ts,
}
_COMMON_REQUIRED = ("id", "kind", "order_id", "merchant_id", "ts")


def _schema(
    kind: str,
    required: Mapping[str, _Check],
    optional: Mapping[str, _Check],
    rules: Callable[[dict[str, Any], set[str], _Problems], None] | None = None,
) -> _Schema:
    fields = {**_COMMON, **required, **optional, "personal": _personal_check(kind)}
    assert not set(fields) & set(RESERVED_FIELDS)
    req = {**_COMMON, **required}
    str_fields = [k for k, c in req.items() if c in _PATTERN_OF]
    patterns = [_PATTERN_OF[req[k]] for k in str_fields]
    # "kind" and "ts" are checked by the combined regex too: kind as its literal value,
    # ts by its form (the date itself is checked separately).
    str_fields += ["kind", "ts"]
    patterns += [re.escape(kind), _TS]
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
        ints=tuple((k, *_RANGE_OF[c]) for k, c in req.items() if c in _RANGE_OF),
        other_required=tuple(
            (k, c) for k, c in req.items()
            if c not in _PATTERN_OF and c not in _RANGE_OF and k not in ("kind", "ts")
        ),
        optional=tuple((k, fields[k]) for k in fields if k not in req),
    )  # fmt: skip


_SCHEMAS: dict[str, _Schema] = {
    s.kind: s
    for s in (
        _schema(
            "order",
            {
                "buyer_id": _check_ident,
                "live_session": _check_ident,
                "items": _list_check(_order_item, MAX_ITEMS, unique_key="sku"),
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
                "method": _enum_check(PAYMENT_METHODS, "payment method"),
                "payment_ref": _check_ident,
            },
            {},
        ),
        _schema(
            "shipment",
            {"carrier": _carrier, "tracking_number": _tracking},
            {"items": _list_check(_shipment_item, MAX_ITEMS, unique_key="sku")},
        ),
        _schema(
            "delivery",
            {
                "carrier": _carrier,
                "tracking_number": _tracking,
                "method": _enum_check(DELIVERY_METHODS, "delivery method"),
            },
            {},
        ),
        _schema(
            "review",
            {"buyer_id": _check_ident, "rating": _int_check(1, 5, money=False)},
            {"text": _text_check(MAX_TEXT_CHARS), "media_sha256": _media},
        ),
        _schema(
            "return",
            {
                "amount": _positive_money,
                "currency": _currency,
                "type": _enum_check(RETURN_TYPES, "return type"),
                "reason": _enum_check(RETURN_REASONS, "return reason"),
            },
            {
                "detail": _text_check(MAX_TEXT_CHARS),
                "carrier": _carrier,
                "tracking_number": _tracking,
                "media_sha256": _media,
            },
            _return_rules,
        ),
    )
}
assert tuple(_SCHEMAS) == KINDS


_NO_PROBLEMS: _Problems = []
_NO_BAD: set[str] = set()
_ABSENT = object()


def _fast_valid(obj: dict[str, Any]) -> bool:
    """True if `obj`, decoded from JSON, is a valid record; False means "look closer".

    It applies the same rules as `_check_record` with fewer Python-level steps: all
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
    if ts[:10] not in _good_dates and _check_ts(ts) is not None:
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
        found: _Problems = []
        schema.rules(obj, _NO_BAD, found)
        return not found
    return True


def _check_record(obj: dict[str, Any]) -> _Problems:
    """Every problem of one decoded record, as (field path, reason), in field order."""
    kind = obj.get("kind")
    schema = _SCHEMAS.get(kind) if kind.__class__ is str else None
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
                found: _Problems = []
                schema.rules(obj, _NO_BAD, found)
                return found
    return _collect_problems(obj)


def _collect_problems(obj: dict[str, Any]) -> _Problems:
    out: _Problems = []
    if obj.__class__ is _DupDict:
        out.extend((_key(k), f"duplicate key {k!r} in the object") for k in obj.dups)
    kind = obj.get("kind")
    schema = _SCHEMAS.get(kind) if kind.__class__ is str else None
    if schema is None:
        # Without a kind only the common fields can be checked.
        if "kind" not in obj:
            out.append(("kind", f"missing required field; expected one of: {', '.join(KINDS)}"))
        elif kind.__class__ is not str:
            out.append(("kind", _wrong_type("a record kind (string)", kind)))
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
                out.append((_key(k), reason))
            continue
        r = c(v)
        if r is not None:
            if r.__class__ is str:
                out.append((k, r))
            else:
                out.extend((k + sub, reason) for sub, reason in cast(_Problems, r))
    if not schema.required <= obj.keys():
        out.extend((k, "missing required field") for k in sorted(schema.required - obj.keys()))
    if schema.rules is not None:
        bad = {_top_field(f) for f, _ in out}
        schema.rules(obj, bad, out)
    return out


def _top_field(path: str) -> str:
    return path.split("[", 1)[0].split(".", 1)[0]


def _key(k: object) -> str:
    """A field name fit for a message: as is when printable, else its Python repr."""
    if k.__class__ is str and k.isprintable() and _LONE_SURROGATE.search(k) is None:
        return k
    return repr(k)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _record_id_of(obj: Mapping[str, Any]) -> str | None:
    """The record id for problem reports (shown even when invalid, made printable)."""
    rid = obj.get("id")
    if rid.__class__ is not str or not rid:
        return None
    if len(rid) > MAX_ID_CHARS:
        rid = rid[:MAX_ID_CHARS] + "..."
    return _key(rid)


_new_record = object.__new__
_set_id, _set_kind, _set_order_id, _set_merchant_id, _set_ts, _set_public, _set_personal, _set_validated = (
    getattr(Record, name).__set__
    for name in ("id", "kind", "order_id", "merchant_id", "ts", "public", "personal", "_validated")
)


def _make_record(obj: dict[str, Any]) -> Record:
    """Build a Record from a validated object, taking ownership of it.

    Sets the slots directly: the frozen dataclass __init__ costs twice as much, and this
    runs once per ingested record.
    """
    rec = _new_record(Record)
    _set_id(rec, obj["id"])
    _set_kind(rec, obj["kind"])
    _set_order_id(rec, obj["order_id"])
    _set_merchant_id(rec, obj["merchant_id"])
    _set_ts(rec, obj["ts"])
    _set_personal(rec, obj.pop("personal", None))
    _set_public(rec, obj)
    _set_validated(rec, True)
    return rec


# --- JCS writers for validated records ------------------------------------------------
# JCS(committed object) written directly with the members in sorted key order. Validation
# guarantees what makes this exact: identifier-like strings (ids, ts, enums, codes,
# hashes) only hold characters JSON never escapes, free text goes through the standard
# library's JSON string escaper (which matches JCS, see ledger/_internal/canonical.py),
# integers are plain ints, and no other fields exist. Each writer is about ten times
# faster than a generic encoder; tests check them against rfc8785 on every kind and
# every optional field. `pc` is "" or '"personal_commitment":"<hex>",'; `salt` is
# '"salt":"<hex>",', or "" for the JCS of the public fields alone.


def _opt_int(o: dict[str, Any], k: str) -> str:
    return f'"{k}":{o[k]},' if k in o else ""


def _opt_name(o: dict[str, Any], k: str) -> str:
    return f'"{k}":"{o[k]}",' if k in o else ""


def _opt_text(o: dict[str, Any], k: str) -> str:
    return f'"{k}":{_jstr(o[k])},' if k in o else ""


def _opt_media(o: dict[str, Any]) -> str:
    if "media_sha256" not in o:
        return ""
    return '"media_sha256":[' + ",".join([f'"{h}"' for h in o["media_sha256"]]) + "],"


def _order_item_jcs(it: dict[str, Any]) -> str:
    if "title" in it:
        return (f'{{"qty":{it["qty"]},"sku":"{it["sku"]}","title":{_jstr(it["title"])},'
                f'"unit_price":{it["unit_price"]}}}')
    return f'{{"qty":{it["qty"]},"sku":"{it["sku"]}","unit_price":{it["unit_price"]}}}'


def _write_order(o: dict[str, Any], pc: str, salt: str) -> str:
    items = ",".join([_order_item_jcs(it) for it in o["items"]])
    return (
        f'{{"buyer_id":"{o["buyer_id"]}","currency":"{o["currency"]}",{_opt_int(o, "discount")}'
        f'"id":"{o["id"]}","items":[{items}],"kind":"order","live_session":"{o["live_session"]}",'
        f'"merchant_id":"{o["merchant_id"]}","order_id":"{o["order_id"]}",{pc}{salt}'
        f'"shipping_fee":{o["shipping_fee"]},"total":{o["total"]},"ts":"{o["ts"]}"}}'
    )


def _write_payment(o: dict[str, Any], pc: str, salt: str) -> str:
    return (
        f'{{"amount":{o["amount"]},"currency":"{o["currency"]}","id":"{o["id"]}","kind":"payment",'
        f'"merchant_id":"{o["merchant_id"]}","method":"{o["method"]}","order_id":"{o["order_id"]}",'
        f'"payment_ref":"{o["payment_ref"]}",{pc}{salt}"ts":"{o["ts"]}"}}'
    )


def _write_shipment(o: dict[str, Any], pc: str, salt: str) -> str:
    items = ""
    if "items" in o:
        items = ('"items":['
                 + ",".join([f'{{"qty":{it["qty"]},"sku":"{it["sku"]}"}}' for it in o["items"]])
                 + "],")
    return (
        f'{{"carrier":"{o["carrier"]}","id":"{o["id"]}",{items}"kind":"shipment",'
        f'"merchant_id":"{o["merchant_id"]}","order_id":"{o["order_id"]}",{pc}{salt}'
        f'"tracking_number":"{o["tracking_number"]}","ts":"{o["ts"]}"}}'
    )


def _write_delivery(o: dict[str, Any], pc: str, salt: str) -> str:
    return (
        f'{{"carrier":"{o["carrier"]}","id":"{o["id"]}","kind":"delivery",'
        f'"merchant_id":"{o["merchant_id"]}","method":"{o["method"]}","order_id":"{o["order_id"]}",'
        f'{pc}{salt}"tracking_number":"{o["tracking_number"]}","ts":"{o["ts"]}"}}'
    )


def _write_review(o: dict[str, Any], pc: str, salt: str) -> str:
    return (
        f'{{"buyer_id":"{o["buyer_id"]}","id":"{o["id"]}","kind":"review",{_opt_media(o)}'
        f'"merchant_id":"{o["merchant_id"]}","order_id":"{o["order_id"]}",{pc}"rating":{o["rating"]},'
        f'{salt}{_opt_text(o, "text")}"ts":"{o["ts"]}"}}'
    )


def _write_return(o: dict[str, Any], pc: str, salt: str) -> str:
    return (
        f'{{"amount":{o["amount"]},{_opt_name(o, "carrier")}"currency":"{o["currency"]}",'
        f'{_opt_text(o, "detail")}"id":"{o["id"]}","kind":"return",{_opt_media(o)}'
        f'"merchant_id":"{o["merchant_id"]}","order_id":"{o["order_id"]}",{pc}"reason":"{o["reason"]}",'
        f'{salt}{_opt_name(o, "tracking_number")}"ts":"{o["ts"]}","type":"{o["type"]}"}}'
    )


_JCS_WRITERS: dict[str, Callable[[dict[str, Any], str, str], str]] = {
    "order": _write_order,
    "payment": _write_payment,
    "shipment": _write_shipment,
    "delivery": _write_delivery,
    "review": _write_review,
    "return": _write_return,
}
# The fields each writer handles; checked against the schemas so the two cannot drift.
_WRITER_FIELDS = {
    "order": {"buyer_id", "currency", "discount", "items", "live_session", "shipping_fee", "total"},
    "payment": {"amount", "currency", "method", "payment_ref"},
    "shipment": {"carrier", "items", "tracking_number"},
    "delivery": {"carrier", "method", "tracking_number"},
    "review": {"buyer_id", "media_sha256", "rating", "text"},
    "return": {"amount", "carrier", "currency", "detail", "media_sha256", "reason", "tracking_number",
               "type"},
}
for _kind, _schema_ in _SCHEMAS.items():
    if set(_schema_.fields) - {"personal", *_COMMON} != _WRITER_FIELDS[_kind]:
        raise AssertionError(f"the JCS writer for {_kind!r} does not match its schema")
del _kind, _schema_


# --- parsing -------------------------------------------------------------------------

_id_hint = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9._:-]{1,128})"').search


def _guess_id(line: bytes) -> str | None:
    """The record id of a line that could not be decoded, if one is recognisable."""
    m = _id_hint(line)
    return m.group(1).decode("ascii") if m is not None else None


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\n"):
        line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
    return line


def _parse_line(line: bytes, source: str, line_no: int | None) -> tuple[Record | None, list[RecordProblem]]:
    # Fast path: orjson decodes, the fast validator accepts, and re-encoding gives back
    # exactly as many bytes as the line had. orjson keeps the last of duplicate keys, so
    # the length check is what rules duplicates out: for a record the validator accepts
    # (no floats, no control characters but TAB/LF/CR, which orjson writes as two-character
    # escapes), orjson's compact re-encoding of every member is never longer than its
    # source text, so a dropped duplicate member always makes the re-encoding shorter.
    # Anything else (a non-compact line, an escape written longer than needed, any
    # problem at all) takes the slow path below, which is exact and names every problem.
    if len(line) <= MAX_LINE_BYTES:
        try:
            obj = _orjson_loads(line)
        except _OrjsonDecodeError:
            pass
        else:
            if obj.__class__ is dict and _fast_valid(obj) and len(_orjson_dumps(obj)) == len(line):
                return _make_record(obj), []
    if len(line) > MAX_LINE_BYTES:
        return None, [
            RecordProblem(
                source, line_no, _guess_id(line[:4096]), None,
                f"line is {len(line)} bytes; the limit is {MAX_LINE_BYTES} bytes per record",
            )
        ]  # fmt: skip
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, [
            RecordProblem(
                source, line_no, _guess_id(line), None,
                f"not valid UTF-8: {e.reason} (byte 0x{line[e.start]:02x}) "
                f"at byte offset {e.start} of the line",
            )
        ]  # fmt: skip
    if text.startswith("\ufeff"):
        return None, [RecordProblem(source, line_no, _guess_id(line), None,
                                    "a UTF-8 byte order mark is not allowed")]
    try:
        obj = _decode(text)
    except ValueError as e:  # JSONDecodeError, or an integer with too many digits
        msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
        where = f" at character {e.pos}" if isinstance(e, json.JSONDecodeError) else ""
        return None, [RecordProblem(source, line_no, _guess_id(line), None, f"invalid JSON: {msg}{where}")]
    except RecursionError:
        return None, [RecordProblem(source, line_no, _guess_id(line), None,
                                    "invalid JSON: nested too deeply")]
    if obj.__class__ is not dict and obj.__class__ is not _DupDict:
        return None, [
            RecordProblem(source, line_no, None, None, f"expected a JSON object, got {_type_name(obj)}")
        ]
    if _fast_valid(obj):
        return _make_record(obj), []
    found = _check_record(obj)
    if found:
        rid = _record_id_of(obj)
        return None, [RecordProblem(source, line_no, rid, f, reason) for f, reason in found]
    return _make_record(obj), []


def parse_line(line: bytes, *, source: str, line_no: int) -> Record:
    """Validate one JSONL line (with or without its line ending).

    Raises `ValidationError` listing every problem of the line.
    """
    if not isinstance(line, (bytes, bytearray, memoryview)):
        raise TypeError(f"parse_line takes bytes, not {type(line).__name__}")
    rec, problems = _parse_line(_strip_eol(bytes(line)), source, line_no)
    if problems:
        raise ValidationError(problems)
    assert rec is not None
    return rec


def parse_jsonl(data: bytes | Iterable[bytes], *, source: str) -> list[Record]:
    """Validate a whole JSONL file; every problem of every line is reported in one error.

    Blank lines are skipped. A record id repeated with identical content is kept once;
    repeated with different content it is a problem on the later line. Records are
    returned in file order. Raises `ValidationError` if anything is wrong (nothing is
    returned then: a file is accepted or rejected as a whole).
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        lines: Iterable[bytes] = bytes(data).split(b"\n")
    else:
        lines = data
    with paused_gc():
        return _parse_lines(lines, source)


def _parse_lines(lines: Iterable[bytes], source: str) -> list[Record]:
    records: list[Record] = []
    problems: list[RecordProblem] = []
    first_seen: dict[str, tuple[Record, int]] = {}
    for line_no, raw in enumerate(lines, 1):
        if not isinstance(raw, (bytes, bytearray)):
            raise TypeError(f"parse_jsonl takes bytes lines, not {type(raw).__name__}")
        line = _strip_eol(bytes(raw))
        if not line or line.isspace():
            continue
        rec, found = _parse_line(line, source, line_no)
        if found:
            problems.extend(found)
            continue
        assert rec is not None
        prev = first_seen.get(rec.id)
        if prev is None:
            first_seen[rec.id] = (rec, line_no)
            records.append(rec)
        elif prev[0] != rec:
            problems.append(
                RecordProblem(
                    source, line_no, rec.id, "id",
                    f"duplicate record id with different content (first at line {prev[1]})",
                )
            )  # fmt: skip
    if problems:
        raise ValidationError(problems)
    return records


def parse_record(obj: Mapping[str, Any], *, source: str = "<api>", line_no: int | None = None) -> Record:
    """Validate a record given as a Python mapping (the same rules as a JSONL line).

    The value is copied, so later changes to `obj` do not affect the Record. Its
    canonical form must fit in the 64 KiB record limit.
    """
    if not isinstance(obj, Mapping):
        raise ValidationError([RecordProblem(source, line_no, None, None,
                                             f"expected an object, got {_type_name(obj)}")])
    copy = _copy(obj)
    found = _check_record(copy)
    if found:
        rid = _record_id_of(copy)
        raise ValidationError([RecordProblem(source, line_no, rid, f, reason) for f, reason in found])
    size = len(canonical.dumps(copy))
    if size > MAX_LINE_BYTES:
        raise ValidationError([
            RecordProblem(
                source, line_no, copy["id"], None,
                f"record is {size} bytes in canonical form; the limit is {MAX_LINE_BYTES} bytes",
            )
        ])  # fmt: skip
    return _make_record(copy)


def _copy(v: Any) -> Any:
    """A structural copy; mappings become plain dicts (keys kept as given)."""
    if isinstance(v, Mapping):
        return {k: _copy(x) for k, x in v.items()}
    if v.__class__ is list:
        return [_copy(x) for x in v]
    return v
