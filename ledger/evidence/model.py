"""The evidence record: its kinds, limits, allowed values and personal fields, and `Record`.

docs/records.md is the specification; `ledger.evidence.validate` enforces it and
`ledger.evidence.leaf` turns a record into its leaf.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger._internal import canonical

__all__ = [
    "CURRENCIES", "DELIVERY_METHODS", "ERASURE_KIND", "KINDS", "MAX_ERASED", "MAX_INT", "MAX_LINE_BYTES",
    "PAYMENT_METHODS", "PERSONAL_FIELDS", "RESERVED_FIELDS", "RETURN_REASONS", "RETURN_TYPES",
    "Record", "record_from_validated",
]

KINDS: tuple[str, ...] = ("order", "payment", "shipment", "delivery", "review", "return")
#: Written by the platform itself, never ingested: `ledger erase`'s record of an erasure.
ERASURE_KIND = "erasure"
MAX_ERASED = 200  # leaves one erasure record names (its canonical form stays below 64 KiB)
MAX_REASON_CHARS = 500
MAX_OPERATOR_CHARS = 200

MAX_LINE_BYTES = 64 * 1024
MAX_INT = 2**53 - 1  # I-JSON: every integer is exact in an IEEE 754 double, so JCS is exact
MAX_ID_CHARS = 128
MAX_ITEMS = 500
MAX_MEDIA = 20
MAX_QTY = 100_000
MAX_PERSONAL_CHARS = 500
MAX_TITLE_CHARS = 200
MAX_TEXT_CHARS = 2000

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
    "erasure": (),
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
    # True only for records built by validation (`record_from_validated`): their leaf bytes
    # may use the fast per-kind writers of `ledger.evidence.leaf`.
    validated: bool = field(default=False, init=False, repr=False, compare=False)

    def __hash__(self) -> int:
        return hash(self.id)

    def to_json(self) -> dict[str, Any]:
        """The record as given (public fields plus ``personal`` when present)."""
        obj = self.public.copy()
        if self.personal is not None:
            obj["personal"] = self.personal.copy()
        return obj

    def to_jsonl(self) -> bytes:
        """One canonical JSONL line (JCS of `to_json`, no newline); parses back to this record."""
        return canonical.dumps_strict(self.to_json())



_new_record = object.__new__
_set_id, _set_kind, _set_order_id, _set_merchant_id, _set_ts, _set_public, _set_personal, _set_validated = (
    getattr(Record, name).__set__
    for name in ("id", "kind", "order_id", "merchant_id", "ts", "public", "personal", "validated")
)


def record_from_validated(obj: dict[str, Any]) -> Record:
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


