"""The evidence bundle document (``evidence-escrow/bundle/v1``, docs/bundle.md) as a typed model,
parsed strictly in one place (`load_bundle`) and written in one place (`dumps_bundle`).

The model checks a bundle's *shape*: UTF-8 JSON without a byte order mark, duplicate keys or
NaN, the right ``format``, no unknown fields, every field of its type (integers in range, never
as strings, floats or booleans), every hash, salt and key in exactly the form the exporter
writes it, an address in its EIP-55 checksum form, the selection's time bounds RFC 3339, at
least one record, records in strictly increasing leaf index order, and personal data only
with its salt and commitment. A bundle that fails here is malformed (`BundleError`, naming
the JSON path) and is not verified at all. Whether a well-formed bundle tells the truth (its
records hash to their leaves and match its selection, its salts derive from its order keys,
its proofs lead to an anchored head) is verification (`ledger.evidence.bundle`), reported
record by record.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from eth_utils import is_checksum_address
from msgspec import Meta

from ledger._internal import jsondoc
from ledger._internal.jsondoc import DocumentStruct
from ledger._internal.rfc3339 import parse_time_ns
from ledger.errors import BundleError

__all__ = [
    "FORMAT", "FORMATS", "FORMAT_V2", "Address", "Bundle", "BundleAnchor", "BundleRecord", "Completeness",
    "Erased", "Hex32", "Selection", "TxHash", "Uint",
    "check_address", "dumps_bundle", "hex_bytes", "load_bundle",
]

FORMAT: Final = "evidence-escrow/bundle/v1"
#: Bundles that also prove completeness against the log's index (docs/bundle.md, "Completeness").
FORMAT_V2: Final = "evidence-escrow/bundle/v2"
FORMATS: Final = (FORMAT, FORMAT_V2)

#: 32 bytes as the exporter writes them: 64 lowercase hex digits, no 0x (leaf hashes, proof
#: hashes, roots, salts, order keys, personal commitments). Any other spelling is malformed:
#: two spellings of one value would let a reader and a verifier disagree on what was said.
#: (``\Z``, not ``$``, which also matches before a final newline that `bytes.fromhex` skips.)
Hex32 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}\Z")]
#: A transaction or block hash as Ethereum nodes write it: 0x and 64 lowercase hex digits.
TxHash = Annotated[str, Meta(pattern=r"^0x[0-9a-f]{64}\Z")]
#: An address: 0x and 40 hex digits, in EIP-55 checksum case (`check_address`).
Address = Annotated[str, Meta(pattern=r"^0x[0-9a-fA-F]{40}\Z")]
#: A tree size, leaf index, block number, time or chain id: a JSON integer from 0 to 2**63 - 1 (the
#: chain's uint64 and uint48 values, as far as anyone will reach; never a string, float or bool).
Uint = Annotated[int, Meta(ge=0, le=2**63 - 1)]


def hex_bytes(value: str) -> bytes:
    """The bytes of a hex field of the model (``Hex32`` or ``TxHash``)."""
    return bytes.fromhex(value.removeprefix("0x"))


def check_address(value: str, name: str) -> None:
    """Refuse an `Address` not in its EIP-55 checksum case (a ValueError naming `name`): the
    checksum catches a mistyped digit, and one spelling per address keeps comparisons exact."""
    if not is_checksum_address(value):
        raise ValueError(f"{name} {value} is not in its EIP-55 checksum case")


class Selection(DocumentStruct):
    """What the bundle claims its records are (docs/bundle.md): every record must match it."""

    order_id: str | None = None  # every record's order_id is this
    merchant_id: str | None = None  # every record's merchant_id is this
    since: str | None = None  # RFC 3339, inclusive: no record's ts is earlier
    until: str | None = None  # RFC 3339, exclusive: every record's ts is earlier
    audit: str | None = None  # informational: "merchant" marks a merchant audit's bundle (`ledger audit`)

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            bound = getattr(self, name)
            if bound is not None:
                try:
                    parse_time_ns(bound)
                except ValueError as exc:
                    raise ValueError(f"selection.{name}: {exc}") from None


class BundleAnchor(DocumentStruct):
    """The tree head every proof is against, and the transaction that anchored it."""

    chain_id: Uint
    contract: Address
    tree_size: Uint
    root: Hex32
    tx_hash: TxHash
    block_number: Uint
    block_hash: TxHash
    block_timestamp: Uint
    index_root: Hex32 | None = None  # v2: the completeness index's root anchored with the head

    def __post_init__(self) -> None:
        check_address(self.contract, "anchor.contract")


class Erased(DocumentStruct):
    """An erased entry's claim: the log's erasure record `record_id` destroyed its content at `at`."""

    at: str  # RFC 3339: the erasure record's ts
    record_id: str  # the erasure record's id (in `records` or in `erasures`)

    def __post_init__(self) -> None:
        try:
            parse_time_ns(self.at)
        except ValueError as exc:
            raise ValueError(f"erased.at: {exc}") from None


class BundleRecord(DocumentStruct):
    """One disclosed record with its salt and inclusion proof, or one erased leaf (`erased`).

    `record` holds the record's public fields as committed; it stays plain JSON because
    the verifier recomputes the leaf from exactly what is there (a changed field is a
    verification failure of this record, not a malformed bundle). An erased entry has no
    `record`, `salt` or personal members: only its index, its leaf hash and the erasure."""

    index: Uint
    leaf_hash: Hex32
    record: dict[str, Any] | None = None  # required unless erased
    salt: Hex32 | None = None  # required unless erased
    inclusion_proof: list[Hex32] | None = None  # required in v1; optional in v2 (`ledger export --paths`)
    personal_commitment: Hex32 | None = None
    personal: dict[str, Any] | None = None
    personal_salt: Hex32 | None = None
    erased: Erased | None = None  # the record's content was erased (docs/bundle.md, "Erased records")

    def __post_init__(self) -> None:
        if self.erased is not None:
            if any(v is not None for v in (self.record, self.salt, self.personal_commitment, self.personal,
                                           self.personal_salt)):
                raise ValueError("an erased entry has no record, salt, personal_commitment, personal or "
                                 "personal_salt: its content is gone")
            return
        if self.record is None or self.salt is None:
            raise ValueError("`record` and `salt` are required (unless the entry is `erased`)")
        if (self.personal is None) != (self.personal_salt is None):
            raise ValueError("personal and personal_salt are disclosed together or not at all")
        if self.personal is not None and self.personal_commitment is None:
            raise ValueError("personal data is disclosed without the personal_commitment it opens")


#: A bucket entry: [leaf index, ts as unix nanoseconds, leaf hash].
IndexEntry = tuple[Uint, Uint, Hex32]
#: UTC day as written in a merchant's directory and buckets.
Day = Annotated[str, Meta(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")]


class Completeness(DocumentStruct):
    """v2: the proof that the bundle's records are all the log holds for its selection."""

    key: str  # "order:<order_id>" or "merchant:<merchant_id>"
    shard: list[tuple[Hex32, Hex32]]  # the key's whole shard: (keyhash, value), increasing keyhash
    shard_path: Annotated[list[Hex32], Meta(min_length=16, max_length=16)]  # audit path of the shard
    entries: list[IndexEntry] | None = None  # an order key: its whole bucket
    directory: list[tuple[Day, Uint, Hex32]] | None = None  # a merchant key: (day, count, digest)
    days: dict[Day, list[IndexEntry]] | None = None  # a merchant key: the buckets of the selection's days

    def __post_init__(self) -> None:
        is_order = self.key.startswith("order:")
        if not is_order and not self.key.startswith("merchant:"):
            raise ValueError(f"completeness.key {self.key!r} is neither 'order:<id>' nor 'merchant:<id>'")
        if is_order != (self.entries is not None) or is_order == (self.directory is not None) \
                or is_order == (self.days is not None):
            raise ValueError("completeness: an order key has `entries`; a merchant key has `directory` and "
                             "`days`")


class Bundle(DocumentStruct):
    format: Literal["evidence-escrow/bundle/v1", "evidence-escrow/bundle/v2"]  # FORMATS
    generated_at: str  # informational
    selection: Selection
    anchor: BundleAnchor
    records: list[BundleRecord]  # v1: at least one
    order_keys: dict[str, Hex32] | None = None  # order id -> order key; optional (docs/bundle.md)
    completeness: Completeness | None = None  # v2 only, and required there
    #: the erasure records erased entries cite that are not among `records` (each with its path)
    erasures: list[BundleRecord] | None = None

    def __post_init__(self) -> None:
        self._check_version()
        for i, e in enumerate(self.erasures or []):
            if e.erased is not None or e.inclusion_proof is None:
                raise ValueError(f"`$.erasures[{i}]`: an erasure record entry is not erased and carries its "
                                 "inclusion_proof")
        for i in range(1, len(self.records)):
            before, index = self.records[i - 1].index, self.records[i].index
            if index <= before:
                raise ValueError(f"records[{i}].index {index} does not follow records[{i - 1}].index "
                                 f"{before}: records are in strictly increasing leaf index order")

    def _check_version(self) -> None:
        if self.format == FORMAT:
            if not self.records:
                raise ValueError("`$.records`: a v1 bundle has at least one record")
            for i, r in enumerate(self.records):
                if r.inclusion_proof is None:
                    raise ValueError(f"`$.records[{i}].inclusion_proof` is required in a v1 bundle")
            if self.completeness is not None or self.anchor.index_root is not None:
                raise ValueError("`$.completeness` and `$.anchor.index_root` belong to v2 bundles only")
            return
        if self.completeness is None or self.anchor.index_root is None:
            raise ValueError("a v2 bundle has `completeness` and `anchor.index_root`")
        key = self.completeness.key
        sel = self.selection
        wanted = (f"order:{sel.order_id}" if sel.order_id is not None
                  else f"merchant:{sel.merchant_id}" if sel.merchant_id is not None else None)
        if key != wanted:
            raise ValueError(f"completeness.key {key!r} is not the selection's ({wanted!r}): a v2 bundle "
                             "selects one order, or one merchant")


def load_bundle(text: str | bytes, source: str = "bundle") -> Bundle:
    """Parse a bundle (see the module docstring), or raise `BundleError`."""
    return jsondoc.load(text, Bundle, source=source, what="an evidence bundle", fmt=FORMATS,
                        error=BundleError)


def dumps_bundle(bundle: Bundle) -> str:
    """The bundle as written to a file: indented by two, keys sorted, a final newline."""
    return jsondoc.dumps(bundle, indent=2)
