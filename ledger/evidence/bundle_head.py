"""A bundle's head against its pin and the chain: steps 7 to 12 of docs/bundle.md.

The records of a bundle are checked offline against the head the bundle states
(`ledger.evidence.bundle`); this module decides whether that head is true: that the
EvidenceLog it names is the one the verifier trusts (`ledger.evidence.trust.Pin`), that the
contract anchored exactly this head, and that every fact the bundle states about the
anchoring (transaction, block number, block hash, block time) is the chain's. Each failure
names the bundle's field, what the bundle states and what the chain has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from web3.exceptions import BlockNotFound, TransactionNotFound
from web3.logs import DISCARD

from ledger.errors import ChainUnavailable
from ledger.evidence.bundle_format import BundleAnchor, hex_bytes
from ledger.evidence.trust import Pin, TrustRoot

__all__ = ["EVIDENCE_LOG_VERIFY_ABI", "deployment_failures", "index_failures", "pin_failures",
           "verify_head_on_chain"]

T = TypeVar("T")

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
    {
        "type": "event",
        "name": "HeadIndexed",
        "anonymous": False,
        "inputs": [
            {"name": "size", "type": "uint64", "indexed": True},
            {"name": "root", "type": "bytes32", "indexed": True},
            {"name": "indexRoot", "type": "bytes32", "indexed": False},
        ],
    },
]


def _ask(what: str, read: Callable[[], T]) -> T | None:
    """A chain read; None when the node has no such transaction or block. Any other failure
    means there is no usable node, which is not a verdict on the bundle (`ChainUnavailable`)."""
    try:
        return read()
    except (TransactionNotFound, BlockNotFound):
        return None
    except Exception as exc:  # noqa: BLE001 - whatever the transport raises
        raise ChainUnavailable(f"cannot read {what} from the node: {exc}") from None


def _differs(field: str, stated: object, source: str, actual: object, by: str = "the bundle") -> list[str]:
    """The failure of a value `by` states and the chain contradicts, naming both (none if equal)."""
    if stated == actual:
        return []
    return [f"{field}: {by} states {stated}, {source} has {actual}"]


def _hash(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def pin_failures(head: BundleAnchor, pin: Pin | None) -> list[str]:
    """Step 7: the bundle's chain and contract are the pinned ones (no chain needed)."""
    failures = []
    if pin is not None and pin.chain_id is not None and head.chain_id != pin.chain_id:
        failures.append(f"wrong chain: anchor.chain_id is {head.chain_id}, the pinned chain is "
                        f"{pin.chain_id}")
    if pin is not None and pin.contract is not None and head.contract != pin.contract:
        failures.append(f"wrong contract: anchor.contract is {head.contract}, the pinned EvidenceLog "
                        f"is {pin.contract}")
    return failures


def deployment_failures(w3: Any, root: TrustRoot) -> list[str]:
    """Step 9: the trust root's deployment_tx created its contract in its block (and was sent
    by its deployer, when it names one)."""
    tx = root.deployment_tx
    receipt = _ask("the deployment's receipt", lambda: w3.eth.get_transaction_receipt(tx))
    if receipt is None:
        return [f"trust root: deployment_tx {tx} is not a transaction of chain {root.chain_id}"]
    failures = []
    if int(receipt["status"]) != 1:
        failures.append(f"trust root: deployment_tx {tx} failed (receipt status {receipt['status']})")
    where, by = "the receipt of deployment_tx", "the trust file"
    failures += _differs("trust root contract", root.contract, where,
                         receipt.get("contractAddress") or "no contract created", by)
    failures += _differs("trust root deployment_block", root.deployment_block, where,
                         int(receipt["blockNumber"]), by)
    if root.deployer is not None:
        failures += _differs("trust root deployer", root.deployer, f"{where} (its sender)", receipt["from"],
                             by)
    return failures


def verify_head_on_chain(
    head: BundleAnchor, w3: Any, pin: Pin | None = None
) -> tuple[list[str], int | None]:
    """Steps 8 to 12 on the node `w3`: (failures, the anchoring time EvidenceLog recorded)."""
    chain = _ask("the chain id", lambda: int(w3.eth.chain_id))
    if head.chain_id != chain:
        return [f"wrong chain: anchor.chain_id is {head.chain_id}, the node is chain {chain}"], None
    if not _ask("the contract's code", lambda: bytes(w3.eth.get_code(head.contract))):
        return [f"wrong contract: anchor.contract {head.contract} has no code on chain {chain}"], None
    if pin is not None and pin.root is not None:
        failures = deployment_failures(w3, pin.root)
        if failures:
            return failures, None
    log = w3.eth.contract(address=head.contract, abi=EVIDENCE_LOG_VERIFY_ABI)
    size, root = head.tree_size, hex_bytes(head.root)
    try:
        anchored, timestamp, block = log.functions.anchoredAt(size, root).call()
    except Exception:  # noqa: BLE001 - not an EvidenceLog: it reverts or answers something else
        return [f"wrong contract: {head.contract} does not answer anchoredAt (not an EvidenceLog)"], None
    if not anchored:
        return [f"head not anchored: {head.contract} has no anchored head of size {size} "
                f"with root {head.root}"], None
    where = "anchoredAt(tree_size, root)"
    failures = (_differs("anchor.block_number", head.block_number, where, int(block))
                + _differs("anchor.block_timestamp", head.block_timestamp, where, int(timestamp))
                + _tx_failures(w3, log, head, root) + _block_failures(w3, head))
    return failures, int(timestamp)


def _tx_failures(w3: Any, log: Any, head: BundleAnchor, root: bytes) -> list[str]:
    """Step 11: anchor.tx_hash succeeded, emitted HeadAnchored(tree_size, root) from the contract,
    and was mined in the block the bundle states."""
    tx = head.tx_hash
    receipt = _ask("the anchoring transaction's receipt", lambda: w3.eth.get_transaction_receipt(tx))
    if receipt is None:
        return [f"anchor.tx_hash: {tx} is not a transaction of chain {head.chain_id}"]
    failures = []
    if int(receipt["status"]) != 1:
        failures.append(f"anchor.tx_hash: {tx} failed (receipt status {receipt['status']})")
    if not any(ev["address"] == head.contract and int(ev["args"]["size"]) == head.tree_size
               and bytes(ev["args"]["root"]) == root
               for ev in log.events.HeadAnchored().process_receipt(receipt, errors=DISCARD)):
        failures.append(f"anchor.tx_hash: {tx} did not emit HeadAnchored({head.tree_size}, {head.root}) "
                        f"from {head.contract}")
    where = "the receipt of anchor.tx_hash"
    return (failures + _differs("anchor.block_number", head.block_number, where, int(receipt["blockNumber"]))
            + _differs("anchor.block_hash", head.block_hash, where, _hash(receipt["blockHash"])))


def _block_failures(w3: Any, head: BundleAnchor) -> list[str]:
    """Step 12: the stated block is canonical: the chain's block at anchor.block_number has the
    stated hash and time."""
    n = head.block_number
    block = _ask(f"block {n}", lambda: w3.eth.get_block(n))
    if block is None:
        return [f"anchor.block_number: chain {head.chain_id} has no block {n}"]
    where = f"the chain's block {n}"
    return (_differs("anchor.block_hash", head.block_hash, where, _hash(block["hash"]))
            + _differs("anchor.block_timestamp", head.block_timestamp, where, int(block["timestamp"])))


def index_failures(w3: Any, head: BundleAnchor, index_root: bytes) -> list[str]:
    """The head was anchored together with `index_root`: the receipt of anchor.tx_hash holds
    HeadIndexed(tree_size, root, index_root) emitted by anchor.contract.

    EvidenceLog stores no index root; its anchorIndexed emits HeadIndexed beside HeadAnchored in
    the head's one anchoring transaction (a size is anchored only once, so no other transaction
    can attach another index root to the head). That the transaction is the head's canonical
    anchoring is `verify_head_on_chain`'s to check; this adds only the index root.
    """
    tx, stated = head.tx_hash, bytes(index_root).hex()
    field = f"anchor.index_root: the bundle states {stated}"
    receipt = _ask("the anchoring transaction's receipt", lambda: w3.eth.get_transaction_receipt(tx))
    if receipt is None:
        return [f"{field}, but anchor.tx_hash {tx} is not a transaction of chain {head.chain_id}"]
    if int(receipt["status"]) != 1:
        return [f"{field}, but anchor.tx_hash {tx} failed (receipt status {receipt['status']}): it "
                "committed nothing"]
    log = w3.eth.contract(address=head.contract, abi=EVIDENCE_LOG_VERIFY_ABI)
    root = hex_bytes(head.root)

    def this_head(event: Any) -> bool:
        args = event["args"]
        return bool(event["address"] == head.contract and int(args["size"]) == head.tree_size
                    and bytes(args["root"]) == root)

    committed = [bytes(ev["args"]["indexRoot"]).hex()
                 for ev in log.events.HeadIndexed().process_receipt(receipt, errors=DISCARD) if this_head(ev)]
    if committed:
        return [] if committed == [stated] else [
            f"{field}, the anchoring transaction committed {', '.join(committed)}"]
    if any(this_head(ev) for ev in log.events.HeadAnchored().process_receipt(receipt, errors=DISCARD)):
        return [f"{field}, the anchoring transaction committed no index (anchored with anchor(), not "
                "anchorIndexed)"]
    return [f"{field}, but anchor.tx_hash {tx} committed no index for head ({head.tree_size}, {head.root}) "
            f"on {head.contract}: it did not anchor that head"]
