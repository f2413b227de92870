"""A real bundle on a real (embedded) chain, built once per test module, and a node to read it
through that remembers every answer and can be made to lie.

The chain holds the platform's EvidenceLog (its trust file written by `deploy_evidence_log`)
with a small flash sale anchored in two heads (by the Anchorer, so each with its index root),
and what an attacker can do beside it: an impostor EvidenceLog that anchored the very same head
(with anchor(): no index root), a failed anchoring transaction, a failed deployment, and a
contract that is not an EvidenceLog. Once built the chain never
changes, so the node double answers each distinct request from memory: hundreds of
verifications cost about as much as one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.middleware import Web3Middleware
from web3.providers.eth_tester import EthereumTesterProvider

from ledger._internal import solc
from ledger.chain import rpc
from ledger.chain.rpc import Chain
from ledger.deploy import deploy_evidence_log, trust_root_path
from ledger.dev.flash_sale import generate_flash_sale, to_jsonl
from ledger.evidence import records as rec
from ledger.evidence.anchor import Anchorer
from ledger.evidence.bundle import export_bundle
from ledger.evidence.bundle_format import Bundle, dumps_bundle
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store
from ledger.evidence.trust import Pin, TrustRoot, read_trust_root

#: method -> how to change the node's answer to it: (params, result) -> result
Lie = Callable[[Any, Any], Any]


@dataclass
class Node:
    """A `Web3` over the chain whose answers are remembered (the chain no longer changes) and
    can be replaced: a node that lies, or a stale one."""

    w3: Web3
    lies: dict[str, Lie] = field(default_factory=dict)


def node_double(chain: Chain) -> Node:
    cache: dict[tuple[str, str], Any] = {}
    lies: dict[str, Lie] = {}

    class _Double(Web3Middleware):
        def wrap_make_request(self, make_request: Any) -> Any:
            def request(method: str, params: Any) -> Any:
                key = (method, repr(params))
                if key not in cache:
                    cache[key] = make_request(method, params)
                response = cache[key]
                lie = lies.get(method)
                if lie is None or response.get("result") is None:
                    return response
                return {**response, "result": lie(params, response["result"])}

            return request

    w3 = Web3(EthereumTesterProvider(chain.tester))
    w3.middleware_onion.add(_Double)
    return Node(w3, lies)


def anchoring(receipt: dict[str, Any], w3: Web3) -> dict[str, Any]:
    """The anchor fields a bundle states for the transaction of `receipt`."""
    block = w3.eth.get_block(receipt["blockNumber"])
    return {"tx_hash": "0x" + bytes(receipt["transactionHash"]).hex(), "block_number": receipt["blockNumber"],
            "block_hash": "0x" + bytes(receipt["blockHash"]).hex(), "block_timestamp": block["timestamp"]}


@dataclass
class World:
    chain: Chain
    node: Node
    bundle: Bundle  # one order's records, personal data disclosed, against the latest head
    text: str  # the bundle as `ledger export` writes it
    trust: TrustRoot  # the trust file `ledger deploy` wrote
    impostor: dict[str, Any]  # anchor fields of an impostor EvidenceLog that anchored the same head
    plain: dict[str, Any]  # ... of another that anchored it with anchor(), without an index root
    earlier: dict[str, Any]  # anchor fields of the platform's first (smaller) head
    failed_anchor: str  # a reverted anchor() call to the platform's log
    failed_deployment: str  # an EvidenceLog deployment that ran out of gas
    not_a_log: str  # a contract that is not an EvidenceLog
    index_roots: dict[int, bytes]  # tree size -> the index root committed with the head of that size

    @property
    def pin(self) -> Pin:
        return Pin.of(self.trust)


def build_world(tmp: Path) -> World:
    chain = rpc.embedded()
    attacker = chain.accounts[5]
    log = chain.contract("EvidenceLog", deploy_evidence_log(chain, tmp).address)
    store = Store(tmp / "evidence.sqlite3", MasterSecret.from_hex("c5" * 32))
    anchorer = Anchorer(store, chain, log)
    sale = generate_flash_sale(seed=3, orders=12, merchants=2, start="2026-11-11T12:00:00Z")
    half = len(sale) // 2
    for part in (sale[:half], sale[half:]):
        store.ingest(rec.parse_jsonl(to_jsonl(part), source="sale.jsonl"), source="sale.jsonl")
        anchorer.anchor()
    first, latest = sorted(store.anchors(status="confirmed"), key=lambda a: a.size)
    # Anyone can deploy an EvidenceLog and anchor any head (and index root) on it: the impostor's first head.
    impostor = chain.deploy("EvidenceLog", attacker.address, sender=attacker)
    impostor_receipt = chain.transact(impostor.functions.anchorIndexed(
        latest.size, latest.root, store.index_root(latest.size), []), attacker)
    plain = chain.deploy("EvidenceLog", attacker.address, sender=attacker)  # ... or with anchor(): no index
    plain_receipt = chain.transact(plain.functions.anchor(latest.size, latest.root, []), attacker)
    failed_anchor = chain.send(log.functions.anchor(latest.size + 1, b"\x01" * 32, []), attacker, gas=200_000)
    art = solc.artifacts()["EvidenceLog"]
    factory = chain.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    failed_deployment = chain.send(factory.constructor(attacker.address), attacker, gas=300_000)
    assert failed_anchor["status"] == 0 and failed_deployment["status"] == 0
    not_a_log = chain.deploy("PanelArbitrator", attacker.address, [attacker.address], 1, 0, sender=attacker)
    row = store.db.execute("SELECT order_id FROM records GROUP BY order_id HAVING SUM(personal IS NOT NULL) "
                           "ORDER BY COUNT(*) DESC, order_id LIMIT 1").fetchone()
    bundle, left_out = export_bundle(store, chain.chain_id, log.address, order_id=str(row[0]),
                                     disclose_personal=True, completeness=False)  # v1: the mutants' format
    assert not left_out and bundle.anchor.tree_size == latest.size
    index_roots = {a.size: store.index_root(a.size) for a in (first, latest)}
    store.close()
    return World(
        chain=chain, node=node_double(chain), bundle=bundle, text=dumps_bundle(bundle),
        trust=read_trust_root(trust_root_path(tmp, chain.chain_id)),
        impostor={"contract": impostor.address, **anchoring(impostor_receipt, chain.w3)},
        plain={"contract": plain.address, **anchoring(plain_receipt, chain.w3)},
        earlier={"tree_size": first.size, "root": first.root.hex(), "tx_hash": "0x" + first.tx_hash.hex(),
                 "block_number": first.block_number, "block_hash": "0x" + (first.block_hash or b"").hex(),
                 "block_timestamp": first.block_timestamp},
        failed_anchor="0x" + bytes(failed_anchor["transactionHash"]).hex(),
        failed_deployment="0x" + bytes(failed_deployment["transactionHash"]).hex(),
        not_a_log=not_a_log.address, index_roots=index_roots,
    )  # fmt: skip
