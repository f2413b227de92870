"""Evidence bundles: export disclosed records with proofs; verify them against a chain.

The format is specified in docs/bundle.md. A verifier needs only the bundle and a chain:
it recomputes every leaf from the disclosed content, checks every inclusion proof against
the bundle's tree head, and asks the EvidenceLog contract named in the bundle whether that
head was anchored, and checks the anchoring transaction. Nothing from the platform is
trusted.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger._internal import canonical
from ledger._internal.merkle import verify_inclusion
from ledger._internal.rfc3339 import parse_time_ns, rfc3339, ts_ns
from ledger.errors import BundleError, InclusionProofError, LedgerError
from ledger.evidence.leaf import committed_leaf, personal_commitment_of
from ledger.evidence.master_secret import OrderKey

FORMAT = "evidence-escrow/bundle/v1"

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


def _unhex(value: Any, where: str, length: int | None = 32) -> bytes:
    if not isinstance(value, str):
        raise BundleError(f"{where}: expected a hex string, got {type(value).__name__}")
    text = value[2:] if value.startswith("0x") else value
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise BundleError(f"{where}: not hex: {value[:20]!r}") from None
    if length is not None and len(raw) != length:
        raise BundleError(f"{where}: expected {length} bytes, got {len(raw)}")
    return raw


# --------------------------------------------------------------------------- export


def build_bundle(
    store: Any,
    stored: Sequence[Any],
    anchor: Any,
    *,
    selection: dict[str, Any],
    disclose_personal: bool = False,
) -> dict[str, Any]:
    """A bundle for `stored` records (all covered by the confirmed `anchor` row)."""
    tree = store.tree
    secret = store.secret
    out_records = []
    order_keys: dict[str, str] = {}
    for r in stored:
        if r.index >= anchor.size:
            raise BundleError(f"record {r.id!r} (leaf {r.index}) is not covered by head {anchor.size}")
        item: dict[str, Any] = {
            "index": r.index,
            "leaf_hash": _h(r.leaf),
            "inclusion_proof": [_h(p) for p in tree.inclusion_proof(r.index, anchor.size)],
            "record": r.public,
            "salt": _h(secret.record_salt(r.order_id, r.id)),
        }
        if r.personal_commitment is not None:
            item["personal_commitment"] = _h(r.personal_commitment)
            if disclose_personal:
                item["personal"] = store.personal(r)
                item["personal_salt"] = _h(secret.personal_salt(r.order_id, r.id))
        out_records.append(item)
        order_keys.setdefault(r.order_id, _h(secret.order_key(r.order_id)))
    return {
        "format": FORMAT,
        "generated_at": rfc3339(),
        "selection": selection,
        "anchor": {
            "chain_id": anchor.chain_id,
            "contract": anchor.contract,
            "tree_size": anchor.size,
            "root": _h(anchor.root),
            "tx_hash": "0x" + _h(anchor.tx_hash),
            "block_number": anchor.block_number,
            "block_hash": "0x" + _h(anchor.block_hash or b""),
            "block_timestamp": anchor.block_timestamp,
        },
        "order_keys": order_keys,
        "records": out_records,
    }


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
) -> tuple[dict[str, Any], list[str]]:
    """Select records and build a bundle against the latest confirmed head.

    Returns (bundle, ids of selected records left out because no confirmed head covers
    them yet).
    """
    anchor = store.latest_confirmed(chain_id, contract)
    if anchor is None:
        raise BundleError(f"nothing anchored on chain {chain_id} at {contract}: run `ledger anchor`")
    if order_id is not None:
        selected = store.records_for_order(order_id)
        selection: dict[str, Any] = {"order_id": order_id}
        if since or until:
            lo = parse_time_ns(since) if since else None
            hi = parse_time_ns(until) if until else None
            selected = [r for r in selected if (lo is None or ts_ns(r.ts) >= lo)
                        and (hi is None or ts_ns(r.ts) < hi)]
    elif merchant_id is not None:
        selected = store.records_for_merchant(merchant_id, since, until)
        selection = {"merchant_id": merchant_id}
    else:
        selected = store.records_in_range(since, until)
        selection = {}
    if since:
        selection["since"] = since
    if until:
        selection["until"] = until
    if not selected:
        raise BundleError(f"no records match {selection or 'the selection'}")
    covered = [r for r in selected if r.index < anchor.size]
    left_out = [r.id for r in selected if r.index >= anchor.size]
    if not covered:
        raise BundleError(
            f"none of the {len(selected)} matching record(s) is anchored yet: run `ledger anchor`"
        )
    bundle = build_bundle(store, covered, anchor, selection=selection,
                          disclose_personal=disclose_personal)
    return bundle, left_out


# --------------------------------------------------------------------------- verify


@dataclass
class RecordVerdict:
    index: int | None
    record_id: str | None
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class Verdict:
    """The outcome of verifying one bundle."""

    head_failures: list[str]
    records: list[RecordVerdict]
    chain_id: int | None
    contract: str | None
    tree_size: int | None
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


def load_document(
    text: str | bytes, source: str, *, fmt: str, what: str, keys: Sequence[str],
    error: type[LedgerError] = BundleError,
) -> dict[str, Any]:
    """A JSON document of format `fmt` with `keys` present, or `error` saying what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise error(f"{source} is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise error(f"{source} is not {what} (format must be {fmt!r})")
    for key in keys:
        if key not in data:
            raise error(f"{source}: missing {key!r}")
    return data


def load_bundle(text: str | bytes, source: str = "bundle") -> dict[str, Any]:
    data = load_document(text, source, fmt=FORMAT, what="an evidence bundle", keys=("anchor", "records"))
    if not isinstance(data["records"], list):
        raise BundleError(f"{source}: 'records' must be a list")
    return data


def verify_records(
    bundle: dict[str, Any], progress: Callable[[int], None] | None = None
) -> tuple[list[RecordVerdict], int, bytes]:
    """Offline part: leaves and inclusion proofs against the bundle's own head."""
    head = bundle["anchor"]
    try:
        size = int(head["tree_size"])
        root = _unhex(head["root"], "anchor.root")
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"anchor: malformed tree head ({exc})") from None
    order_keys = bundle.get("order_keys") or {}
    verdicts: list[RecordVerdict] = []
    seen: set[int] = set()
    for n, item in enumerate(bundle["records"]):
        verdicts.append(_verify_one(n, item, size, root, order_keys, seen))
        if progress is not None:
            progress(1)
    return verdicts, size, root


def _verify_one(
    n: int, item: Any, size: int, root: bytes, order_keys: dict[str, Any], seen: set[int]
) -> RecordVerdict:
    if not isinstance(item, dict) or not isinstance(item.get("record"), dict):
        return RecordVerdict(None, None, [f"records[{n}]: malformed entry"])
    record = item["record"]
    rid = record.get("id") if isinstance(record.get("id"), str) else None
    index = item.get("index")
    v = RecordVerdict(index if isinstance(index, int) else None, rid)
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        v.failures.append("bad index: not a non-negative integer")
        return v
    if index in seen:
        v.failures.append(f"leaf index {index} appears twice in the bundle")
    seen.add(index)
    try:
        salt = _unhex(item.get("salt"), "salt")
        stated_leaf = _unhex(item.get("leaf_hash"), "leaf_hash")
        proof = [_unhex(p, f"inclusion_proof[{i}]") for i, p in enumerate(item.get("inclusion_proof", []))]
    except BundleError as exc:
        v.failures.append(str(exc))
        return v
    if "salt" in record or "personal_commitment" in record:
        v.failures.append("record carries reserved field 'salt' or 'personal_commitment'")
        return v
    # Salt: if the order key is disclosed, the salt must be the one derived from it.
    order_id = record.get("order_id")
    okey = order_keys.get(order_id) if isinstance(order_id, str) else None
    if okey is not None:
        try:
            expected_salt = (
                OrderKey(_unhex(okey, f"order_keys[{order_id}]")).record_salt(rid) if rid else None
            )
        except BundleError as exc:
            v.failures.append(str(exc))
            expected_salt = None
        if expected_salt is not None and not hmac.compare_digest(expected_salt, salt):
            v.failures.append(
                f"wrong salt: not the salt derived from order {order_id!r}'s key for record "
                f"{rid!r} (the salt, or the record's id or order_id, was altered)"
            )
    # Personal data: a disclosed value must match the commitment inside the leaf.
    pc: bytes | None = None
    if "personal_commitment" in item:
        try:
            pc = _unhex(item["personal_commitment"], "personal_commitment")
        except BundleError as exc:
            v.failures.append(str(exc))
            return v
        if "personal" in item:
            try:
                psalt = _unhex(item.get("personal_salt"), "personal_salt")
                got = personal_commitment_of(canonical.dumps_strict(item["personal"]), psalt)
            except (BundleError, TypeError, ValueError) as exc:
                v.failures.append(f"personal data: {exc}")
            else:
                if got != pc:
                    v.failures.append(
                        "tampered personal data: does not match its commitment "
                        f"(expected {pc.hex()}, computed {got.hex()})"
                    )
    elif "personal" in item:
        v.failures.append("personal data disclosed without a personal_commitment")
    try:
        _, computed_leaf = committed_leaf(record, salt, pc)
    except (TypeError, ValueError) as exc:
        v.failures.append(f"record cannot be canonicalised: {exc}")
        return v
    if computed_leaf != stated_leaf:
        if not any(f.startswith("wrong salt") for f in v.failures):
            v.failures.append(
                f"tampered content: the record hashes to leaf {computed_leaf.hex()}, "
                f"the bundle states {stated_leaf.hex()}"
            )
    try:
        verify_inclusion(computed_leaf, index, size, proof, root)
    except InclusionProofError as exc:
        if computed_leaf == stated_leaf:
            v.failures.append(f"bad inclusion proof: {exc}")
        else:
            # The recomputed leaf is not in the tree; was the stated one?
            try:
                verify_inclusion(stated_leaf, index, size, proof, root)
            except InclusionProofError as exc2:
                v.failures.append(f"bad inclusion proof: {exc2}")
    except ValueError as exc:
        v.failures.append(f"bad inclusion proof: {exc}")
    return v


def verify_head_on_chain(bundle: dict[str, Any], w3: Any) -> tuple[list[str], int | None]:
    """Online part: is the bundle's head anchored by the named contract on the named chain?"""
    from eth_utils import is_address, to_checksum_address

    head = bundle["anchor"]
    failures: list[str] = []
    try:
        actual_chain = int(w3.eth.chain_id)
    except Exception as exc:  # noqa: BLE001
        raise LedgerError(f"cannot reach the chain to check the anchor: {exc}") from None
    if head.get("chain_id") != actual_chain:
        failures.append(
            f"wrong chain: the bundle names chain {head.get('chain_id')}, "
            f"the node is chain {actual_chain}"
        )
        return failures, None
    address = head.get("contract")
    if not isinstance(address, str) or not is_address(address):
        return [f"wrong contract: {address!r} is not an address"], None
    address = to_checksum_address(address)
    if not bytes(w3.eth.get_code(address)):
        return [f"wrong contract: no contract at {address} on chain {actual_chain}"], None
    log = w3.eth.contract(address=address, abi=EVIDENCE_LOG_VERIFY_ABI)
    size, root = int(head["tree_size"]), _unhex(head["root"], "anchor.root")
    try:
        anchored, timestamp, _block = log.functions.anchoredAt(size, root).call()
    except Exception:  # noqa: BLE001 - not an EvidenceLog, or size out of range
        return [f"wrong contract: {address} does not answer anchoredAt (not an EvidenceLog)"], None
    if not anchored:
        failures.append(
            f"head not anchored: contract {address} has no anchored head of size {size} "
            f"with root {root.hex()}"
        )
        return failures, None
    failures.extend(_check_anchor_tx(w3, log, head, size, root))
    return failures, int(timestamp)


def _check_anchor_tx(w3: Any, log: Any, head: dict[str, Any], size: int, root: bytes) -> list[str]:
    tx = head.get("tx_hash")
    if not tx:
        return []
    try:
        receipt = w3.eth.get_transaction_receipt(tx)
    except Exception:  # noqa: BLE001
        return [f"anchor tx {tx} not found on this chain"]
    events = log.events.HeadAnchored().process_receipt(receipt, errors=_discard())
    for ev in events:
        if (
            ev["address"] == log.address
            and int(ev["args"]["size"]) == size
            and bytes(ev["args"]["root"]) == root
        ):
            if head.get("block_number") not in (None, int(receipt["blockNumber"])):
                return [f"anchor tx {tx} was mined in block {receipt['blockNumber']}, "
                        f"not {head.get('block_number')} as the bundle states"]
            return []
    return [f"anchor tx {tx} does not anchor this head on {log.address}"]


def _discard() -> Any:
    from web3.logs import DISCARD

    return DISCARD


def verify_bundle(
    bundle: dict[str, Any], w3: Any, progress: Callable[[int], None] | None = None
) -> Verdict:
    records, size, _root = verify_records(bundle, progress)
    head_failures, ts = verify_head_on_chain(bundle, w3)
    head = bundle["anchor"]
    if not records:
        head_failures = head_failures + ["the bundle discloses no records"]
    return Verdict(head_failures, records, head.get("chain_id"), head.get("contract"), size, ts)
