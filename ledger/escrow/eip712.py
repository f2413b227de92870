"""The EIP-712 messages the escrow checks, and how parties sign them.

The merchant's ``Offer``, and a carrier's ``Shipment``, ``Delivery``, ``ReturnShipment`` and
``ReturnDelivery`` attestations. The domain is ``("FulfillmentEscrow", "1", chainId,
escrow address)``, so a signature is bound to one order, one contract and one chain.
Evidence-log order ids become escrow order ids, and waybills tracking hashes, here too: the
bytes32 values the contract keys on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from ledger.errors import ConfigError
from ledger.escrow.types import ZERO32

__all__ = [
    "ATTESTATION_KINDS", "DOMAIN_NAME", "DOMAIN_VERSION", "Attestation", "Offer", "canonical_tracking",
    "order_key", "recover_signer", "sign_attestation", "sign_offer", "signed_message", "tracking_hash",
]

def order_key(order_id: str) -> bytes:
    """The escrow order id (the contract's bytes32 `orderId`) of an evidence-log order id:
    keccak256(UTF-8 id). Despite the name, not the *order key* of `ledger.evidence.master_secret`
    (the per-order secret record salts derive from)."""
    if not order_id:
        raise ValueError("order id must not be empty")
    return bytes(keccak(text=order_id))


_WAYBILL_NOISE = re.compile(r"[\s\-]+")
_CANONICAL_WAYBILL = re.compile(r"[A-Z0-9]+:[A-Z0-9]+")


def canonical_tracking(carrier: str, tracking_number: str) -> str:
    """The one spelling of a waybill the escrow accepts: ``CARRIER:NUMBER`` in upper-case letters
    and digits, 3 to 64 characters. Whitespace and hyphens are formatting and are dropped
    ("sf 1234-5678" is "SF:12345678"); anything else that is not a letter or digit is refused.

    The escrow refuses every other spelling on chain, so a reused waybill cannot slip past its
    reuse check by being written differently, whichever client signed the attestation.
    """
    text = f"{_WAYBILL_NOISE.sub('', carrier).upper()}:{_WAYBILL_NOISE.sub('', tracking_number).upper()}"
    if _CANONICAL_WAYBILL.fullmatch(text) is None or not 3 <= len(text) <= 64:
        raise ValueError(f"not a waybill the escrow accepts: {text!r} (CARRIER:NUMBER, letters and digits, "
                         "3 to 64 characters)")
    return text


def tracking_hash(carrier: str, tracking_number: str) -> bytes:
    """keccak256 of the waybill's canonical spelling (`canonical_tracking`): the escrow's key for
    the reuse check and the `trackingHash` of its events."""
    return bytes(keccak(text=canonical_tracking(carrier, tracking_number)))


_OFFER_FIELDS = [
    {"name": "orderId", "type": "bytes32"},
    {"name": "merchant", "type": "address"},
    {"name": "buyer", "type": "address"},
    {"name": "token", "type": "address"},
    {"name": "price", "type": "uint256"},
    {"name": "shipBy", "type": "uint64"},
    {"name": "inspectionWindow", "type": "uint32"},
    {"name": "orderRecord", "type": "bytes32"},
    {"name": "expiresAt", "type": "uint64"},
]


_SHIPMENT_FIELDS = [
    {"name": "orderId", "type": "bytes32"},
    {"name": "tracking", "type": "string"},
    {"name": "shippedAt", "type": "uint64"},
    {"name": "evidence", "type": "bytes32"},
]


_DELIVERY_FIELDS = [
    {"name": "orderId", "type": "bytes32"},
    {"name": "tracking", "type": "string"},
    {"name": "deliveredAt", "type": "uint64"},
    {"name": "evidence", "type": "bytes32"},
]


#: attestation kind -> (EIP-712 field list, name of its time field)
ATTESTATION_KINDS: dict[str, list[dict[str, str]]] = {
    "Shipment": _SHIPMENT_FIELDS,
    "Delivery": _DELIVERY_FIELDS,
    "ReturnShipment": _SHIPMENT_FIELDS,
    "ReturnDelivery": _DELIVERY_FIELDS,
}


_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


DOMAIN_NAME = "FulfillmentEscrow"


DOMAIN_VERSION = "1"


def _typed_data(kind: str, message: dict[str, Any], chain_id: int, escrow: str) -> dict[str, Any]:
    """The EIP-712 typed data the escrow hashes for a message of type `kind`."""
    return {
        "types": {"EIP712Domain": _DOMAIN_FIELDS,
                  kind: _OFFER_FIELDS if kind == "Offer" else ATTESTATION_KINDS[kind]},
        "primaryType": kind,
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                   "verifyingContract": to_checksum_address(escrow)},
        "message": message,
    }


def _b32(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else bytes.fromhex(value.removeprefix("0x"))


@dataclass(frozen=True)
class Offer:
    """The merchant's signed terms for one order (EIP-712 type ``Offer``)."""

    order_id: bytes  # the escrow order id (bytes32), see `order_key`
    merchant: str
    buyer: str  # NATIVE (zero address): any buyer may fund it
    token: str  # NATIVE for ETH
    price: int
    ship_by: int  # unix seconds
    inspection_window: int  # seconds
    order_record: bytes  # leaf hash of the order record in the evidence log
    expires_at: int  # unix seconds

    def message(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "merchant": to_checksum_address(self.merchant),
            "buyer": to_checksum_address(self.buyer),
            "token": to_checksum_address(self.token),
            "price": self.price,
            "shipBy": self.ship_by,
            "inspectionWindow": self.inspection_window,
            "orderRecord": self.order_record,
            "expiresAt": self.expires_at,
        }

    def as_tuple(self) -> tuple[Any, ...]:
        return tuple(self.message().values())

    def typed_data(self, chain_id: int, escrow: str) -> dict[str, Any]:
        return _typed_data("Offer", self.message(), chain_id, escrow)

    @classmethod
    def from_message(cls, m: dict[str, Any]) -> Offer:
        """From the EIP-712 message form (bytes32 as bytes or 0x hex), as a case file holds it."""
        return cls(
            order_id=_b32(m["orderId"]), merchant=m["merchant"], buyer=m["buyer"], token=m["token"],
            price=int(m["price"]), ship_by=int(m["shipBy"]), inspection_window=int(m["inspectionWindow"]),
            order_record=_b32(m["orderRecord"]), expires_at=int(m["expiresAt"]),
        )  # fmt: skip


@dataclass(frozen=True)
class Attestation:
    """A carrier's signed statement about a parcel: shipped or delivered at `at`.

    `kind` is the EIP-712 type: ``Shipment`` or ``Delivery`` for the outbound parcel,
    ``ReturnShipment`` or ``ReturnDelivery`` for the parcel sent back. `tracking` is the waybill
    in its canonical spelling (`canonical_tracking`); `evidence` is the leaf of the evidence
    record behind the step, which the carrier's signature commits to.
    """

    kind: str
    order_id: bytes
    tracking: str
    at: int  # unix seconds: shippedAt or deliveredAt
    evidence: bytes = ZERO32

    def __post_init__(self) -> None:
        if self.kind not in ATTESTATION_KINDS:
            raise ValueError(f"unknown attestation kind {self.kind!r}; one of {sorted(ATTESTATION_KINDS)}")

    @property
    def tracking_hash(self) -> bytes:
        """keccak256 of the waybill: the escrow's reuse key and its events' `trackingHash`."""
        return bytes(keccak(text=self.tracking))

    def message(self) -> dict[str, Any]:
        time_field = ATTESTATION_KINDS[self.kind][2]["name"]
        return {"orderId": self.order_id, "tracking": self.tracking, time_field: self.at,
                "evidence": self.evidence}

    def as_tuple(self) -> tuple[bytes, str, int, bytes]:
        return (self.order_id, self.tracking, self.at, self.evidence)

    def typed_data(self, chain_id: int, escrow: str) -> dict[str, Any]:
        return _typed_data(self.kind, self.message(), chain_id, escrow)

    @classmethod
    def from_message(cls, kind: str, m: dict[str, Any]) -> Attestation:
        """From the EIP-712 message form of `kind` (bytes32 as bytes or 0x hex)."""
        time_field = ATTESTATION_KINDS[kind][2]["name"]
        return cls(kind, _b32(m["orderId"]), str(m["tracking"]), int(m[time_field]), _b32(m["evidence"]))


def _sign(signer: LocalAccount, typed: dict[str, Any]) -> bytes:
    return bytes(signer.sign_message(encode_typed_data(full_message=typed)).signature)


def sign_offer(merchant: LocalAccount, offer: Offer, chain_id: int, escrow: str) -> bytes:
    """The merchant's 65-byte EIP-712 signature of `offer` for this escrow and chain."""
    if merchant.address.lower() != offer.merchant.lower():
        raise ConfigError(f"offer names merchant {offer.merchant}, but {merchant.address} is signing")
    return _sign(merchant, offer.typed_data(chain_id, escrow))


def sign_attestation(carrier: LocalAccount, att: Attestation, chain_id: int, escrow: str) -> bytes:
    """The carrier's 65-byte EIP-712 signature of an attestation for this escrow and chain."""
    return _sign(carrier, att.typed_data(chain_id, escrow))


def recover_signer(typed: dict[str, Any], signature: bytes) -> str:
    """The address that signed an EIP-712 message (for auditors checking attestations)."""
    return str(Account.recover_message(encode_typed_data(full_message=typed), signature=signature))


def signed_message(kind: str, struct: dict[str, Any]) -> Offer | Attestation:
    """The Offer or Attestation of EIP-712 type `kind` in a decoded call argument."""
    return Offer.from_message(struct) if kind == "Offer" else Attestation.from_message(kind, struct)
