"""Field checkers for record validation, and a JSON decoder that keeps problems visible.

A checker returns None when a value is valid, a reason (str) when it is not, or, for
arrays and objects, a list of (sub-path, reason) such as ("[2].qty", "..."). The decoder
keeps duplicate keys (`DupDict`) and NaN/Infinity (`NonFinite`) visible, so validation
names the field instead of silently taking one value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from ledger._internal.rfc3339 import MAX_NS, MAX_RFC3339, ts_ns
from ledger.evidence.model import MAX_ID_CHARS

# --- JSON decoding: duplicate keys and NaN are kept visible for validation -----------


class DupDict(dict[str, Any]):
    """An object that had duplicate keys; ``dups`` names them (the last value wins)."""

    __slots__ = ("dups",)
    dups: list[str]


class NonFinite:
    """Stands in for NaN/Infinity/-Infinity, which are not JSON, so validation names the field."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) == len(pairs):
        return d
    dd = DupDict(pairs)
    seen: set[str] = set()
    dups: list[str] = []
    for k, _ in pairs:
        if k in seen and k not in dups:
            dups.append(k)
        seen.add(k)
    dd.dups = dups
    return dd


decode_json = json.JSONDecoder(object_pairs_hook=_pairs_hook, parse_constant=NonFinite).decode

# --- field checkers ------------------------------------------------------------------
# A checker returns None when the value is valid, a reason (str) when it is not, or, for
# arrays and objects, a list of (sub-path, reason) such as ("[2].qty", "...").

Problems = list[tuple[str, str]]
Check = Callable[[Any], str | Problems | None]

# For the fast path of `_parse_line`: string checkers whose rule is exactly "a str that
# fully matches this regex", and integer checkers with their range.
PATTERN_OF: dict[Check, str] = {}
RANGE_OF: dict[Check, tuple[int, int]] = {}


def type_name(v: Any) -> str:
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
    if t is NonFinite:
        return f"{v.text} (not valid JSON)"
    return f"Python {t.__name__}"


def wrong_type(expected: str, v: Any) -> str:
    if v is None:
        return f"null is not allowed; expected {expected} (omit optional fields instead)"
    return f"expected {expected}, got {type_name(v)}"


def int_check(lo: int, hi: int, *, money: bool) -> Check:
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
        return wrong_type("an integer" + (" (minor units)" if money else ""), v)

    RANGE_OF[check] = (lo, hi)
    return check


_IDENT = r"[A-Za-z0-9._:-]{1,128}"
_ident_match = re.compile(_IDENT).fullmatch


def _ident_problem(v: Any, what: str = "an identifier") -> str:
    if v.__class__ is not str:
        return wrong_type(f"{what} (string)", v)
    if not v:
        return "must not be empty"
    if len(v) > MAX_ID_CHARS:
        return f"too long: {len(v)} characters (max {MAX_ID_CHARS})"
    return "invalid characters; allowed: A-Z a-z 0-9 . _ : -"


def check_ident(v: Any) -> str | None:
    if v.__class__ is str and _ident_match(v) is not None:
        return None
    return _ident_problem(v)


PATTERN_OF[check_ident] = _IDENT


# Control characters (Unicode category Cc: C0, DEL and C1) other than TAB, LF and CR, and
# lone surrogates (possible via \ud800 escapes). U+0085 (NEL) and U+2028/2029 are line
# breaks to some readers: NEL is a C1 control and refused; U+2028/2029 are not controls.
bad_text_search = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]").search


def text_check(max_chars: int) -> Check:
    def check(v: Any) -> str | None:
        if v.__class__ is not str:
            return wrong_type("a string", v)
        if not v:
            return "must not be empty (omit the field instead)"
        if len(v) > max_chars:
            return f"too long: {len(v)} characters (max {max_chars})"
        bad = bad_text_search(v)
        if bad is not None:
            c = bad.group()
            if "\ud800" <= c <= "\udfff":
                return f"lone surrogate U+{ord(c):04X} at character {bad.start()} (not valid Unicode)"
            return f"control character U+{ord(c):04X} at character {bad.start()} is not allowed"
        return None

    return check


def enum_check(values: Iterable[str], what: str) -> Check:
    allowed = frozenset(values)
    listing = ", ".join(sorted(allowed)) if len(allowed) <= 12 else None

    def check(v: Any) -> str | None:
        if v.__class__ is str and v in allowed:
            return None
        if v.__class__ is not str:
            return wrong_type(f"{what} (string)", v)
        if listing is None:
            return f"unknown {what} {v[:40]!r}"
        return f"unknown {what} {v[:40]!r}; expected one of: {listing}"

    PATTERN_OF[check] = "(?:" + "|".join(re.escape(a) for a in sorted(allowed)) + ")"
    return check


def pattern_check(pattern: str, what: str, example: str) -> Check:
    match = re.compile(pattern, re.ASCII).fullmatch

    def check(v: Any) -> str | None:
        if v.__class__ is str and match(v) is not None:
            return None
        if v.__class__ is not str:
            return wrong_type(f"{what} (string)", v)
        return f"not a valid {what}: {v[:60]!r} (e.g. {example!r})"

    PATTERN_OF[check] = pattern
    return check


# RFC 3339, UTC only, upper-case T and Z, 0..9 fractional digits.
TS_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?Z"
_ts_match = re.compile(TS_PATTERN).fullmatch
_ts_shape = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z").fullmatch
_ts_offset = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?[+-][0-9]{2}:?[0-9]{2}"
).fullmatch
_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
VALID_DATES: set[str] = set()


def check_ts(v: Any) -> str | None:
    if v.__class__ is not str:
        return wrong_type("an RFC 3339 UTC timestamp (string)", v)
    if _ts_match(v) is None:
        if _ts_shape(v) is not None:
            return f"not a real time of day: {v[11:19]} (hours 00-23, minutes and seconds 00-59)"
        return _ts_form_problem(v)
    date = v[:10]
    if date in VALID_DATES:
        return None
    y, mo, d = int(v[0:4]), int(v[5:7]), int(v[8:10])
    if y < 1970:
        return f"year {y} out of range (1970 to {MAX_RFC3339})"
    if y > _LAST_YEAR:
        return _TOO_LATE
    if not 1 <= mo <= 12:
        return f"not a real date: {date} (month {mo})"
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    if not 1 <= d <= (29 if mo == 2 and leap else _DAYS[mo]):
        return f"not a real date: {date}"
    if date >= _LAST_DATE:  # never cached: the last day is valid only up to MAX_RFC3339
        return _TOO_LATE if ts_ns(v) > MAX_NS else None
    if len(VALID_DATES) < 100_000:
        VALID_DATES.add(date)
    return None


_LAST_DATE = MAX_RFC3339[:10]
_LAST_YEAR = int(MAX_RFC3339[:4])
_TOO_LATE = (f"after {MAX_RFC3339}, the latest time a record can carry (the log orders "
             "records in signed 64-bit nanoseconds since 1970)")


_TS_EXAMPLE = "e.g. 2026-11-11T20:00:00Z or 2026-11-11T20:00:00.123Z"


def _ts_form_problem(v: str) -> str:
    if _ts_offset(v) is not None:
        return (f"timezone offsets are not allowed: {v[:40]!r}; "
                f"convert to UTC and end with 'Z' ({_TS_EXAMPLE})")
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{10,}Z", v):
        return "at most 9 fractional-second digits are allowed"
    return f"not an RFC 3339 UTC timestamp: {v[:40]!r} ({_TS_EXAMPLE}; 'T' and 'Z' upper-case)"


def list_check(item: Check, max_len: int, *, unique_key: str | None = None) -> Check:
    """An array of 1..max_len elements, each checked by `item` (sub-paths get "[i]")."""

    def check(v: Any) -> str | Problems | None:
        if v.__class__ is not list:
            return wrong_type("an array", v)
        if not v:
            return "must not be empty (omit the field instead)"
        if len(v) > max_len:
            return f"too many elements: {len(v)} (max {max_len})"
        out: Problems = []
        seen: set[str] = set()
        for i, el in enumerate(v):
            r = item(el)
            if r is not None:
                if r.__class__ is str:
                    out.append((f"[{i}]", r))
                else:
                    out.extend((f"[{i}]{sub}", reason) for sub, reason in cast(Problems, r))
            elif unique_key is not None:
                key = el[unique_key]
                if key in seen:
                    out.append((f"[{i}].{unique_key}", f"duplicate {unique_key} {key!r} in the array"))
                seen.add(key)
        return out or None

    return check


def object_check(fields: Mapping[str, Check], required: Iterable[str]) -> Check:
    """A nested object with exactly these fields (sub-paths get ".name")."""
    req = frozenset(required)
    allowed = frozenset(fields)
    names = ", ".join(fields)

    def check(v: Any) -> str | Problems | None:
        if v.__class__ is dict and req <= v.keys() and v.keys() <= allowed:
            for k, val in v.items():
                if fields[k](val) is not None:
                    break
            else:
                return None
        if not isinstance(v, dict):
            return wrong_type("an object", v)
        out: Problems = []
        if v.__class__ is DupDict:
            out.extend((f".{field_key(k)}", f"duplicate key {k!r} in the object") for k in v.dups)
        for k, val in v.items():
            c = fields.get(k)
            if c is None:
                out.append((f".{field_key(k)}", f"unknown field; allowed here: {names}"))
                continue
            r = c(val)
            if r is not None:
                if r.__class__ is str:
                    out.append((f".{k}", r))
                else:
                    out.extend((f".{k}{sub}", reason) for sub, reason in cast(Problems, r))
        if not req <= v.keys():
            out.extend((f".{k}", "missing required field") for k in sorted(req - v.keys()))
        return out or None

    return check



def field_key(k: object) -> str:
    """A field name fit for a message: as is when printable, else its Python repr."""
    if k.__class__ is str and k.isprintable() and _LONE_SURROGATE.search(k) is None:
        return k
    return repr(k)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


