"""RFC 8785 (JCS) canonical JSON, fast for the values that record validation admits.

`dumps` is the hot path. It relies on this fact, checked by a property test against the
`rfc8785` reference library: for values in the *fast domain* below, the standard library
encoder configured as

    json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
               allow_nan=False).encode("utf-8")

produces exactly the JCS bytes. The fast domain is every value built from

* ``None``, ``True``, ``False``;
* ``int`` in [-(2**53 - 1), 2**53 - 1] (I-JSON). JCS prints a number the way ECMAScript
  does; for an integer of at most 53 bits that is its plain decimal form, which is also
  what ``int.__repr__`` gives. Larger integers would switch to exponent form in JCS;
* ``str`` without lone surrogates. JCS (ECMAScript ``JSON.stringify``) escapes only
  ``"`` and ``\\`` and the controls U+0000..U+001F: ``\\b \\t \\n \\f \\r`` in short form,
  the rest as ``\\u00xx`` with lowercase hex. Everything else, including "/", U+007F,
  U+2028, U+2029 and non-BMP characters, is written literally in UTF-8. The standard
  encoder with ``ensure_ascii=False`` does exactly the same;
* ``list`` of such values, and ``dict`` whose keys are ``str`` without characters above
  U+FFFF (validated records only have ASCII keys). JCS sorts keys by UTF-16 code units,
  Python by code points; the two orders differ only when a key holds a character above
  U+FFFF (a surrogate pair in UTF-16), so they agree on these keys.

Floats are outside the fast domain: records never hold them, and Python's float repr
differs from ECMAScript's number form (``1e+16`` vs ``1e16``, ``1e-05`` vs ``0.00001``).

`dumps` does not check the domain, since validated records are in it by construction.
`dumps_strict` checks it and falls back to the `rfc8785` reference implementation for
anything else (floats, non-BMP keys), so it is safe for arbitrary JSON-like values.
"""

from __future__ import annotations

import json
import re
from typing import Any

import rfc8785

__all__ = ["CanonicalizationError", "MAX_SAFE_INT", "dumps", "dumps_strict", "in_fast_domain"]

MAX_SAFE_INT = 2**53 - 1

CanonicalizationError = rfc8785.CanonicalizationError

_ENCODER = json.JSONEncoder(
    ensure_ascii=False,
    sort_keys=True,
    separators=(",", ":"),
    allow_nan=False,
    check_circular=False,
)
_encode = _ENCODER.encode

_NON_BMP = re.compile("[\U00010000-\U0010ffff]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(obj: Any) -> bytes:
    """JCS bytes of `obj`, which must be in the fast domain (see the module docstring).

    A lone surrogate anywhere raises `CanonicalizationError`; other out-of-domain values
    are not detected here. Use `dumps_strict` for values that were not validated.
    """
    try:
        return _encode(obj).encode("utf-8")
    except UnicodeEncodeError as e:
        raise CanonicalizationError("input contains a lone surrogate (not valid Unicode)") from e


def dumps_strict(obj: Any) -> bytes:
    """JCS bytes of any JSON-like value: the fast path when it is in the domain, else rfc8785.

    Raises `CanonicalizationError` for values JCS cannot represent (NaN, infinities,
    integers beyond 2**53 - 1, lone surrogates, non-string keys, other types).
    """
    if in_fast_domain(obj):
        return dumps(obj)
    return rfc8785.dumps(obj)


def in_fast_domain(obj: Any) -> bool:  # long function: one loop without a call per value (verify hot path)
    """Whether `dumps` is guaranteed to produce the JCS bytes of `obj`."""
    stack = [obj]
    while stack:
        o = stack.pop()
        t = type(o)
        if t is dict:
            for k, v in o.items():
                if type(k) is not str:
                    return False
                if not k.isascii() and (
                    _NON_BMP.search(k) is not None or _LONE_SURROGATE.search(k) is not None
                ):
                    return False
                tv = type(v)
                if tv is str:
                    if not v.isascii() and _LONE_SURROGATE.search(v) is not None:
                        return False
                elif tv is int:
                    if not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
                        return False
                elif tv is dict or tv is list:
                    stack.append(v)
                elif not (v is None or tv is bool):
                    return False
        elif t is list:
            stack.extend(o)
        elif t is str:
            if not o.isascii() and _LONE_SURROGATE.search(o) is not None:
                return False
        elif t is int:
            if not -MAX_SAFE_INT <= o <= MAX_SAFE_INT:
                return False
        elif not (o is None or t is bool):
            return False
    return True
