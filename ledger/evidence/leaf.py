"""THE leaf rule: how a record becomes an RFC 9162 leaf of the evidence log.

The leaf of a record is::

    committed = public fields
                + {"salt": hex(record salt)}
                + {"personal_commitment": hex(SHA-256(personal salt || JCS(personal)))}
                  (only when the record has personal fields)
    leaf_hash = SHA-256(0x00 || JCS(committed))

so personal data never enters the log, and a record can be disclosed without it. Ingest
(`encode`), bundle export and verification (`committed_leaf`) and replays all use these
functions; the salts come from `ledger.evidence.master_secret`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring as _jstr
from typing import Any

from ledger._internal import canonical
from ledger._internal.merkle import leaf_hash
from ledger.evidence.model import Record

__all__ = [
    "WRITER_FIELDS", "Encoded", "committed", "committed_leaf", "committed_object", "encode", "leaf_bytes",
    "leaf_hash_of", "personal_commitment", "personal_commitment_of",
]


def _check_salt(salt: object, what: str) -> None:
    if type(salt) is not bytes or len(salt) != 32:
        raise ValueError(f"the {what} salt must be 32 bytes")


def personal_commitment_of(personal_jcs: bytes, personal_salt: bytes) -> bytes:
    """SHA-256(personal_salt || JCS(personal)): binds the personal fields to the leaf."""
    _check_salt(personal_salt, "personal")
    return hashlib.sha256(personal_salt + personal_jcs).digest()


def personal_commitment(personal: Mapping[str, str], personal_salt: bytes) -> str:
    """hex(SHA-256(personal_salt || JCS(personal))) of personal fields given as a mapping."""
    return personal_commitment_of(canonical.dumps_strict(dict(personal)), personal_salt).hex()


def committed_object(
    public: Mapping[str, Any], salt: bytes, personal_commitment: bytes | None
) -> dict[str, Any]:
    """The object whose JCS form is the leaf: the public fields, the salt and, when the record
    has personal fields, their commitment (see the module docstring)."""
    _check_salt(salt, "record")
    obj = dict(public)
    obj["salt"] = salt.hex()
    if personal_commitment is not None:
        obj["personal_commitment"] = personal_commitment.hex()
    return obj


def committed_leaf(
    public: Mapping[str, Any], salt: bytes, personal_commitment: bytes | None
) -> tuple[bytes, bytes]:
    """(JCS of the committed object, its RFC 9162 leaf hash), for any JSON-like public fields.

    The general form of the leaf rule: what a verifier recomputes from a disclosed record.
    Raises `canonical.CanonicalizationError` (a ValueError) for values JCS cannot represent.
    """
    text = canonical.dumps_strict(committed_object(public, salt, personal_commitment))
    return text, leaf_hash(text)


def committed(record: Record, salt: bytes, personal_salt: bytes) -> dict[str, Any]:
    """The object whose JCS form is `record`'s leaf."""
    pc = None
    if record.personal is not None:
        pc = personal_commitment_of(canonical.dumps_strict(dict(record.personal)), personal_salt)
    return committed_object(record.public, salt, pc)


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
    _check_salt(salt, "record")
    personal = record.personal
    pjcs: bytes | None = None
    pc: bytes | None = None
    if personal is not None:
        if record.validated:
            # Keys are known ASCII names; values go through the JSON string escaper.
            pjcs = ("{" + ",".join([f'"{k}":{_jstr(personal[k])}' for k in sorted(personal)])
                    + "}").encode()
        else:
            pjcs = canonical.dumps_strict(dict(personal))
        pc = personal_commitment_of(pjcs, personal_salt)
    if record.validated:
        write = _JCS_WRITERS[record.kind]
        public = write(record.public, "", "").encode()
        pc_member = "" if pc is None else f'"personal_commitment":"{pc.hex()}",'
        leaf_text = write(record.public, pc_member, f'"salt":"{salt.hex()}",').encode()
        return Encoded(public, pjcs, pc, leaf_text, leaf_hash(leaf_text))
    public = canonical.dumps_strict(record.public)
    leaf_text, leaf = committed_leaf(record.public, salt, pc)
    return Encoded(public, pjcs, pc, leaf_text, leaf)


def leaf_bytes(record: Record, salt: bytes, personal_salt: bytes) -> bytes:
    """JCS(committed object): the bytes that are leaf-hashed."""
    return encode(record, salt, personal_salt).leaf_bytes


def leaf_hash_of(record: Record, salt: bytes, personal_salt: bytes) -> bytes:
    """SHA-256(0x00 || leaf_bytes): the record's RFC 9162 leaf hash."""
    return encode(record, salt, personal_salt).leaf_hash



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


def _write_erasure(o: dict[str, Any], pc: str, salt: str) -> str:
    erased = ",".join([f'{{"id":"{e["id"]}","index":{e["index"]},"leaf":"{e["leaf"]}"}}'
                       for e in o["erased"]])
    return (
        f'{{"erased":[{erased}],"id":"{o["id"]}","key_version":{o["key_version"]},"kind":"erasure",'
        f'"merchant_id":"{o["merchant_id"]}","operator":{_jstr(o["operator"])},"order_id":"{o["order_id"]}",'
        f'{pc}"reason":{_jstr(o["reason"])},{salt}"ts":"{o["ts"]}"}}'
    )


_JCS_WRITERS: dict[str, Callable[[dict[str, Any], str, str], str]] = {
    "order": _write_order,
    "payment": _write_payment,
    "shipment": _write_shipment,
    "delivery": _write_delivery,
    "review": _write_review,
    "return": _write_return,
    "erasure": _write_erasure,
}
# The fields each writer handles (tests/unit/evidence/test_leaf.py checks them against the schemas).
WRITER_FIELDS = {
    "order": {"buyer_id", "currency", "discount", "items", "live_session", "shipping_fee", "total"},
    "payment": {"amount", "currency", "method", "payment_ref"},
    "shipment": {"carrier", "items", "tracking_number"},
    "delivery": {"carrier", "method", "tracking_number"},
    "review": {"buyer_id", "media_sha256", "rating", "text"},
    "return": {"amount", "carrier", "currency", "detail", "media_sha256", "reason", "tracking_number",
               "type"},
    "erasure": {"erased", "key_version", "operator", "reason"},
}
