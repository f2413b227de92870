"""The evidence bundle document (``evidence-escrow/bundle/v1``, docs/bundle.md) as a typed model,
parsed strictly in one place (`load_bundle`) and written in one place (`dumps_bundle`).

The model checks a bundle's *shape*: JSON without duplicate keys or NaN, the right
``format``, no unknown fields, every field of its type, every hash, salt and key 32 bytes
of hex. A bundle that fails here is malformed (`BundleError`, naming the JSON path) and is
not verified at all. Whether a well-formed bundle tells the truth (its records hash to
their leaves, its salts derive from its order keys, its proofs lead to an anchored head)
is verification (`ledger.evidence.bundle`), reported record by record.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from msgspec import Meta

from ledger._internal import jsondoc
from ledger._internal.jsondoc import DocumentStruct
from ledger.errors import BundleError

__all__ = [
    "FORMAT", "Bundle", "BundleAnchor", "BundleRecord", "Hex32", "Selection", "TxHash", "dumps_bundle",
    "hex_bytes", "load_bundle",
]

FORMAT: Final = "evidence-escrow/bundle/v1"

#: 32 bytes as hex: leaf hashes, proof hashes, roots, salts, order keys, personal commitments.
#: The exporter writes them bare; a leading 0x, and upper case, are read as well.
Hex32 = Annotated[str, Meta(pattern=r"^(0x)?[0-9a-fA-F]{64}$")]
#: A transaction or block hash, written as Ethereum nodes write it: 0x and 32 bytes of hex.
TxHash = Annotated[str, Meta(pattern=r"^0x[0-9a-fA-F]{64}$")]
LeafIndex = Annotated[int, Meta(ge=0)]


def hex_bytes(value: str) -> bytes:
    """The bytes of a hex field of the model (``Hex32`` or ``TxHash``)."""
    return bytes.fromhex(value.removeprefix("0x"))


class Selection(DocumentStruct):
    """What was asked for; informational, never verified."""

    order_id: str | None = None
    merchant_id: str | None = None
    since: str | None = None  # RFC 3339, inclusive
    until: str | None = None  # RFC 3339, exclusive
    audit: str | None = None  # "merchant": the records of a merchant audit's orders (`ledger audit`)


class BundleAnchor(DocumentStruct):
    """The tree head every proof is against, and the transaction that anchored it."""

    chain_id: int
    contract: str
    tree_size: LeafIndex
    root: Hex32
    tx_hash: TxHash
    block_number: int
    block_hash: TxHash
    block_timestamp: int


class BundleRecord(DocumentStruct):
    """One disclosed record with its salt and inclusion proof.

    `record` holds the record's public fields as committed; it stays plain JSON because
    the verifier recomputes the leaf from exactly what is there (a changed field is a
    verification failure of this record, not a malformed bundle)."""

    index: LeafIndex
    leaf_hash: Hex32
    inclusion_proof: list[Hex32]
    record: dict[str, Any]
    salt: Hex32
    personal_commitment: Hex32 | None = None
    personal: dict[str, Any] | None = None
    personal_salt: Hex32 | None = None


class Bundle(DocumentStruct):
    format: Literal["evidence-escrow/bundle/v1"]  # FORMAT, checked inside a case file too
    generated_at: str
    selection: Selection
    anchor: BundleAnchor
    records: list[BundleRecord]
    order_keys: dict[str, Hex32] | None = None  # order id -> order key; optional (docs/bundle.md)


def load_bundle(text: str | bytes, source: str = "bundle") -> Bundle:
    """Parse a bundle (see the module docstring), or raise `BundleError`."""
    return jsondoc.load(text, Bundle, source=source, what="an evidence bundle", fmt=FORMAT, error=BundleError)


def dumps_bundle(bundle: Bundle) -> str:
    """The bundle as written to a file: indented by two, keys sorted, a final newline."""
    return jsondoc.dumps(bundle, indent=2)
