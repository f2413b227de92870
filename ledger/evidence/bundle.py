"""Evidence bundles: export disclosed records with proofs; verify them against a chain.

The format is specified in docs/bundle.md. A verifier needs only the bundle and a chain:
it recomputes every leaf from the disclosed content, checks every inclusion proof against
the bundle's tree head, and asks the EvidenceLog contract named in the bundle whether that
head was anchored, and checks the anchoring transaction. Nothing from the platform is
trusted.

Verification takes a well-formed `Bundle` (`ledger.evidence.bundle_format` parses one and
refuses a malformed document outright); what it decides is whether the bundle tells the
truth, and it reports every way it does not, record by record.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import is_address, to_checksum_address
from web3.logs import DISCARD

from ledger._internal import canonical, jsondoc
from ledger._internal.merkle import verify_inclusion
from ledger._internal.rfc3339 import parse_time_ns, rfc3339, ts_ns
from ledger.errors import BundleError, InclusionProofError, LedgerError
from ledger.evidence.bundle_format import (
    FORMAT,
    Bundle,
    BundleAnchor,
    BundleRecord,
    Selection,
    hex_bytes,
)
from ledger.evidence.leaf import committed_leaf, personal_commitment_of
from ledger.evidence.master_secret import OrderKey

__all__ = [
    "EVIDENCE_LOG_VERIFY_ABI", "RecordVerdict", "Verdict", "build_bundle", "export_bundle",
    "verify_bundle", "verify_head_on_chain", "verify_records",
]

_logger = logging.getLogger(__name__)

# Only what a verifier needs from EvidenceLog: no compiler required to audit.
EVIDENCE_LOG_VERIFY_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "anchoredAt",
        "stateMutability": "view",
        "inputs": [{"name": "size", "type": "uint64"}, {"name": "root", "type": "bytes32"}],
        "outputs": [
            {"name": "anchored", "type": "bool"},
            {"name": "timestamp", "type": "uint48"},
            {"name": "blockNumber", "type": "uint48"},
        ],
    },
    {
        "type": "event",
        "name": "HeadAnchored",
        "anonymous": False,
        "inputs": [
            {"name": "size", "type": "uint64", "indexed": True},
            {"name": "root", "type": "bytes32", "indexed": True},
            {"name": "previousSize", "type": "uint64", "indexed": False},
            {"name": "anchorer", "type": "address", "indexed": True},
        ],
    },
]


def _h(b: bytes) -> str:
    return b.hex()


# --------------------------------------------------------------------------- export


def _head(anchor: Any) -> BundleAnchor:
    """The bundle's tree head: a confirmed anchor row (one that knows where it was mined)."""
    if anchor.block_hash is None or anchor.block_number is None or anchor.block_timestamp is None:
        raise BundleError(f"the anchor of head size {anchor.size} is not confirmed yet: run `ledger anchor`")
    return BundleAnchor(
        chain_id=anchor.chain_id, contract=anchor.contract, tree_size=anchor.size, root=_h(anchor.root),
        tx_hash="0x" + _h(anchor.tx_hash), block_number=anchor.block_number,
        block_hash="0x" + _h(anchor.block_hash), block_timestamp=anchor.block_timestamp,
    )  # fmt: skip


def build_bundle(
    store: Any,
    stored: Sequence[Any],
    anchor: Any,
    *,
    selection: Selection,
    disclose_personal: bool = False,
) -> Bundle:
    """A bundle for `stored` records (all covered by the confirmed `anchor` row)."""
    tree = store.tree
    secret = store.secret
    out_records = []
    order_keys: dict[str, str] = {}
    for r in stored:
        if r.index >= anchor.size:
            raise BundleError(f"record {r.id!r} (leaf {r.index}) is not covered by head {anchor.size}")
        item = BundleRecord(
            index=r.index,
            leaf_hash=_h(r.leaf),
            inclusion_proof=[_h(p) for p in tree.inclusion_proof(r.index, anchor.size)],
            record=r.public,
            salt=_h(secret.record_salt(r.order_id, r.id)),
        )
        if r.personal_commitment is not None:
            item.personal_commitment = _h(r.personal_commitment)
            if disclose_personal:
                item.personal = store.personal(r)
                item.personal_salt = _h(secret.personal_salt(r.order_id, r.id))
        out_records.append(item)
        order_keys.setdefault(r.order_id, _h(secret.order_key(r.order_id)))
    return Bundle(
        format=FORMAT, generated_at=rfc3339(), selection=selection, anchor=_head(anchor),
        records=out_records, order_keys=order_keys,
    )


def export_bundle(
    store: Any,
    chain_id: int,
    contract: str,
    *,
    order_id: str | None = None,
    merchant_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    disclose_personal: bool = False,
) -> tuple[Bundle, list[str]]:
    """Select records and build a bundle against the latest confirmed head.

    Returns (bundle, ids of selected records left out because no confirmed head covers
    them yet).
    """
    anchor = store.latest_confirmed(chain_id, contract)
    if anchor is None:
        raise BundleError(f"nothing anchored on chain {chain_id} at {contract}: run `ledger anchor`")
    selection = Selection(order_id=order_id, merchant_id=None if order_id else merchant_id,
                          since=since or None, until=until or None)
    if order_id is not None:
        selected = store.records_for_order(order_id)
        if since or until:
            lo = parse_time_ns(since) if since else None
            hi = parse_time_ns(until) if until else None
            selected = [r for r in selected if (lo is None or ts_ns(r.ts) >= lo)
                        and (hi is None or ts_ns(r.ts) < hi)]
    elif merchant_id is not None:
        selected = store.records_for_merchant(merchant_id, since, until)
    else:
        selected = store.records_in_range(since, until)
    if not selected:
        raise BundleError(f"no records match {jsondoc.to_json(selection) or 'the selection'}")
    covered = [r for r in selected if r.index < anchor.size]
    left_out = [r.id for r in selected if r.index >= anchor.size]
    if not covered:
        raise BundleError(
            f"none of the {len(selected)} matching record(s) is anchored yet: run `ledger anchor`"
        )
    bundle = build_bundle(store, covered, anchor, selection=selection,
                          disclose_personal=disclose_personal)
    _logger.info("exported a bundle of %d record(s) (%s) against head size %d on chain %d; "
                 "%d newer record(s) left out, not anchored yet", len(bundle.records),
                 jsondoc.to_json(selection) or "every record", anchor.size, chain_id, len(left_out))
    return bundle, left_out


# --------------------------------------------------------------------------- verify


@dataclass
class RecordVerdict:
    index: int
    record_id: str | None  # None when the record's id is not a string
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class Verdict:
    """The outcome of verifying one bundle."""

    head_failures: list[str]
    records: list[RecordVerdict]
    chain_id: int
    contract: str
    tree_size: int
    anchored_timestamp: int | None = None

    @property
    def ok(self) -> bool:
        return not self.head_failures and all(r.ok for r in self.records) and bool(self.records)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chain_id": self.chain_id,
            "contract": self.contract,
            "tree_size": self.tree_size,
            "anchored_timestamp": self.anchored_timestamp,
            "head_failures": self.head_failures,
            "records": [
                {"index": r.index, "id": r.record_id, "ok": r.ok, "failures": r.failures}
                for r in self.records
            ],
        }


def verify_records(
    bundle: Bundle, progress: Callable[[int], None] | None = None
) -> tuple[list[RecordVerdict], int, bytes]:
    """Offline part: leaves and inclusion proofs against the bundle's own head."""
    size, root = bundle.anchor.tree_size, hex_bytes(bundle.anchor.root)
    order_keys = bundle.order_keys or {}
    verdicts: list[RecordVerdict] = []
    seen: set[int] = set()
    for item in bundle.records:
        verdict = _verify_one(item, size, root, order_keys, seen)
        _logger.debug("leaf %d (record %s): %s", verdict.index, verdict.record_id,
                      "; ".join(verdict.failures) or "ok")
        verdicts.append(verdict)
        if progress is not None:
            progress(1)
    return verdicts, size, root


def _verify_one(
    item: BundleRecord, size: int, root: bytes, order_keys: dict[str, str], seen: set[int]
) -> RecordVerdict:
    """Steps 1-5 of docs/bundle.md for one record entry; every failure is named."""
    record = item.record
    rid = record.get("id") if isinstance(record.get("id"), str) else None
    v = RecordVerdict(item.index, rid)
    if item.index in seen:
        v.failures.append(f"leaf index {item.index} appears twice in the bundle")
    seen.add(item.index)
    if "salt" in record or "personal_commitment" in record:
        v.failures.append("record carries reserved field 'salt' or 'personal_commitment'")
        return v
    salt = hex_bytes(item.salt)
    wrong_salt = _wrong_salt(record, rid, salt, order_keys)
    if wrong_salt is not None:
        v.failures.append(wrong_salt)
    pc = None if item.personal_commitment is None else hex_bytes(item.personal_commitment)
    v.failures.extend(_personal_failures(item, pc))
    try:
        _, computed_leaf = committed_leaf(record, salt, pc)
    except (TypeError, ValueError) as exc:
        v.failures.append(f"record cannot be canonicalised: {exc}")
        return v
    stated_leaf = hex_bytes(item.leaf_hash)
    if computed_leaf != stated_leaf and wrong_salt is None:  # a wrong salt already says why
        v.failures.append(
            f"tampered content: the record hashes to leaf {computed_leaf.hex()}, "
            f"the bundle states {stated_leaf.hex()}"
        )
    v.failures.extend(_proof_failures(item, computed_leaf, stated_leaf, size, root))
    return v


def _wrong_salt(
    record: dict[str, Any], rid: str | None, salt: bytes, order_keys: dict[str, str]
) -> str | None:
    """Step 3: with the order's key disclosed, the salt must be the one derived from it."""
    order_id = record.get("order_id")
    okey = order_keys.get(order_id) if isinstance(order_id, str) else None
    if okey is None or not rid:
        return None
    if hmac.compare_digest(OrderKey(hex_bytes(okey)).record_salt(rid), salt):
        return None
    return (f"wrong salt: not the salt derived from order {order_id!r}'s key for record "
            f"{rid!r} (the salt, or the record's id or order_id, was altered)")


def _personal_failures(item: BundleRecord, pc: bytes | None) -> list[str]:
    """Step 4: disclosed personal data must match the commitment inside the leaf."""
    if item.personal is None:
        return []
    if pc is None:
        return ["personal data disclosed without a personal_commitment"]
    if item.personal_salt is None:
        return ["personal data: disclosed without its personal_salt"]
    try:
        got = personal_commitment_of(canonical.dumps_strict(item.personal), hex_bytes(item.personal_salt))
    except (TypeError, ValueError) as exc:
        return [f"personal data: {exc}"]
    if got != pc:
        return ["tampered personal data: does not match its commitment "
                f"(expected {pc.hex()}, computed {got.hex()})"]
    return []


def _proof_failures(item: BundleRecord, computed_leaf: bytes, stated_leaf: bytes, size: int,
                    root: bytes) -> list[str]:
    """Step 5: the recomputed leaf must be in the tree at `index`. When it is not but the
    stated leaf is, the content was changed (already reported), not the proof."""
    proof = [hex_bytes(p) for p in item.inclusion_proof]
    try:
        verify_inclusion(computed_leaf, item.index, size, proof, root)
    except InclusionProofError as exc:
        if computed_leaf == stated_leaf:
            return [f"bad inclusion proof: {exc}"]
        try:
            verify_inclusion(stated_leaf, item.index, size, proof, root)
        except InclusionProofError as exc2:
            return [f"bad inclusion proof: {exc2}"]
    except ValueError as exc:
        return [f"bad inclusion proof: {exc}"]
    return []


def verify_head_on_chain(bundle: Bundle, w3: Any) -> tuple[list[str], int | None]:
    """Online part: is the bundle's head anchored by the named contract on the named chain?"""
    head = bundle.anchor
    try:
        actual_chain = int(w3.eth.chain_id)
    except Exception as exc:  # noqa: BLE001
        raise LedgerError(f"cannot reach the chain to check the anchor: {exc}") from None
    if head.chain_id != actual_chain:
        return [f"wrong chain: the bundle names chain {head.chain_id}, "
                f"the node is chain {actual_chain}"], None
    if not is_address(head.contract):
        return [f"wrong contract: {head.contract!r} is not an address"], None
    address = to_checksum_address(head.contract)
    if not bytes(w3.eth.get_code(address)):
        return [f"wrong contract: no contract at {address} on chain {actual_chain}"], None
    log = w3.eth.contract(address=address, abi=EVIDENCE_LOG_VERIFY_ABI)
    size, root = head.tree_size, hex_bytes(head.root)
    try:
        anchored, timestamp, _block = log.functions.anchoredAt(size, root).call()
    except Exception:  # noqa: BLE001 - not an EvidenceLog, or size out of range
        return [f"wrong contract: {address} does not answer anchoredAt (not an EvidenceLog)"], None
    if not anchored:
        return [f"head not anchored: contract {address} has no anchored head of size {size} "
                f"with root {root.hex()}"], None
    return _check_anchor_tx(w3, log, head, size, root), int(timestamp)


def _check_anchor_tx(w3: Any, log: Any, head: BundleAnchor, size: int, root: bytes) -> list[str]:
    """Step 8: the stated transaction anchored this head, in the stated block."""
    tx = head.tx_hash
    try:
        receipt = w3.eth.get_transaction_receipt(tx)
    except Exception:  # noqa: BLE001
        return [f"anchor tx {tx} not found on this chain"]
    events = log.events.HeadAnchored().process_receipt(receipt, errors=DISCARD)
    for ev in events:
        if (
            ev["address"] == log.address
            and int(ev["args"]["size"]) == size
            and bytes(ev["args"]["root"]) == root
        ):
            if head.block_number != int(receipt["blockNumber"]):
                return [f"anchor tx {tx} was mined in block {receipt['blockNumber']}, "
                        f"not {head.block_number} as the bundle states"]
            return []
    return [f"anchor tx {tx} does not anchor this head on {log.address}"]


def verify_bundle(
    bundle: Bundle, w3: Any, progress: Callable[[int], None] | None = None
) -> Verdict:
    """Verify a bundle: every record offline, then its head against the chain it names."""
    records, size, _root = verify_records(bundle, progress)
    head_failures, ts = verify_head_on_chain(bundle, w3)
    if not records:
        head_failures = head_failures + ["the bundle discloses no records"]
    head = bundle.anchor
    verdict = Verdict(head_failures, records, head.chain_id, head.contract, size, ts)
    _logger.info("verified a bundle against head size %d on chain %d: %d/%d record(s) ok, "
                 "%d head failure(s): %s", size, head.chain_id, sum(r.ok for r in records),
                 len(records), len(head_failures), "VERIFIED" if verdict.ok else "NOT VERIFIED")
    return verdict
