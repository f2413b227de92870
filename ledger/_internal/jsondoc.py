"""JSON documents (bundles, case files, audit reports, deployment manifests): parsed strictly in
one place, written in one place.

Each document type is a `msgspec.Struct` whose field names are the document's keys. `load`
parses strictly: the text must be UTF-8 (RFC 8259 section 8.1) without a byte order mark,
JSON without duplicate keys (a duplicate would let a reader see one value and a verifier check
another) and without NaN or Infinity, its ``format``
must be the expected one, and `msgspec.convert` with ``strict=True`` checks every field's type
(no unknown fields where the struct forbids them); a failure is the caller's error class,
naming the source and the JSON path. `dumps` writes the same document back, keys sorted.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import msgspec

from ledger.errors import LedgerError

__all__ = ["DocumentStruct", "dumps", "load", "to_json"]

T = TypeVar("T")


class DocumentStruct(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Base for document parts: unknown fields are errors; optional fields left at their
    default (None, empty) are omitted when written, so only required fields always appear."""


class _DuplicateKey(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)  # in C; fewer keys than pairs means a key came twice
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load(
    text: str | bytes, type_: type[T], *, source: str, what: str, fmt: str | tuple[str, ...] | None,
    error: type[LedgerError],
) -> T:
    """Parse `text` as a document of `type_` ("an evidence bundle" is `what`), or raise `error`."""
    if isinstance(text, bytes):
        # Not json.loads(bytes): it also reads UTF-16 and UTF-32 and skips a byte order mark.
        # Decoded as plain UTF-8, a byte order mark stays and json.loads refuses it.
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{source} is not JSON: it is not UTF-8 ({exc})") from None
    try:
        data = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant)
    except _DuplicateKey as exc:
        raise error(f"{source}: duplicate key {exc.args[0]!r} (a document has one value per key)") from None
    except (ValueError, RecursionError) as exc:
        raise error(f"{source} is not JSON: {exc}") from None
    formats = (fmt,) if isinstance(fmt, str) else fmt
    if formats is not None and (not isinstance(data, dict) or data.get("format") not in formats):
        raise error(f"{source} is not {what} (format must be {' or '.join(map(repr, formats))})")
    try:
        return msgspec.convert(data, type_, strict=True)
    except msgspec.ValidationError as exc:
        raise error(f"{source} is not {what}: {exc}") from None


def to_json(doc: Any) -> Any:
    """The document (a struct, or a container of structs) as plain JSON values."""
    return msgspec.to_builtins(doc)


def dumps(doc: Any, *, indent: int = 2, ensure_ascii: bool = True) -> str:
    """The document as JSON text with sorted keys and a final newline."""
    return json.dumps(to_json(doc), indent=indent, sort_keys=True, ensure_ascii=ensure_ascii) + "\n"
