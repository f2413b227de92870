"""The Anchorer commits the index root with each head (anchorIndexed), and falls back to anchor(),
with a warning, on an EvidenceLog deployed before anchorIndexed existed.

The older EvidenceLog is its creation code as compiled from the source of the time
(evidence_log_v1.json, beside this file): no second contract to compile.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import function_abi_to_4byte_selector
from web3.logs import DISCARD

from ledger._internal import solc
from ledger.chain import rpc
from ledger.chain.rpc import Chain
from ledger.dev.flash_sale import generate_flash_sale, to_jsonl
from ledger.evidence import records as rec
from ledger.evidence.anchor import INDEXED_LOG_INTERFACE_ID, Anchorer, AnchorOutcome, has_anchor_indexed
from ledger.evidence.master_secret import MasterSecret
from ledger.evidence.store import Store

V1 = Path(__file__).with_name("evidence_log_v1.json")


@pytest.fixture(scope="module")
def sale() -> list[dict[str, Any]]:
    return generate_flash_sale(seed=5, orders=4, merchants=1, start="2026-11-11T12:00:00Z")


@pytest.fixture(scope="module")
def chain() -> Chain:
    return rpc.embedded()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "s.sqlite3", MasterSecret.generate())
    yield s
    s.close()


def _deploy_v1(chain: Chain) -> Any:
    """The older EvidenceLog on chain, seen through the current ABI (as `ledger` sees it)."""
    v1 = json.loads(V1.read_text(encoding="utf-8"))
    factory = chain.w3.eth.contract(abi=v1["abi"], bytecode=v1["bytecode"])
    receipt = chain.transact(factory.constructor(chain.accounts[0].address))
    return chain.contract("EvidenceLog", receipt["contractAddress"])


def _anchor(store: Store, anchorer: Anchorer, part: list[dict[str, Any]]) -> AnchorOutcome:
    store.ingest(rec.parse_jsonl(to_jsonl(part), source="t"), source="t")
    outcome = anchorer.anchor()
    assert outcome.head is not None and outcome.head.size == store.size
    return outcome


def _events(chain: Chain, log: Any, outcome: AnchorOutcome) -> tuple[list[Any], list[Any]]:
    receipt = chain.w3.eth.get_transaction_receipt(outcome.tx_hash)
    return ([dict(e["args"]) for e in log.events.HeadAnchored().process_receipt(receipt, errors=DISCARD)],
            [dict(e["args"]) for e in log.events.HeadIndexed().process_receipt(receipt, errors=DISCARD)])


def test_the_interface_id_is_the_builds() -> None:
    selector = 0
    for item in solc.artifacts()["IEvidenceLog"].abi:
        if item["type"] == "function":
            selector ^= int.from_bytes(function_abi_to_4byte_selector(item), "big")
    assert INDEXED_LOG_INTERFACE_ID == selector.to_bytes(4, "big")


def test_each_head_is_anchored_with_its_index_root(chain: Chain, store: Store,
                                                   sale: list[dict[str, Any]]) -> None:
    log = chain.deploy("EvidenceLog", chain.accounts[0].address)
    assert has_anchor_indexed(chain, log)
    anchorer = Anchorer(store, chain, log)
    half = len(sale) // 2
    for part in (sale[:half], sale[half:]):
        outcome = _anchor(store, anchorer, part)
        assert outcome.head is not None
        size, root = outcome.head.size, outcome.head.root
        anchored, indexed = _events(chain, log, outcome)
        assert [(a["size"], a["root"], a["previousSize"]) for a in anchored] == [
            (size, root, outcome.previous.size)]
        assert indexed == [{"size": size, "root": root, "indexRoot": store.index_root(size)}]


def test_an_older_evidence_log_is_anchored_with_anchor_and_a_warning(
        chain: Chain, store: Store, sale: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    log = _deploy_v1(chain)
    assert not has_anchor_indexed(chain, log)
    assert chain.call(log.functions.supportsInterface(bytes.fromhex("01ffc9a7")))  # ERC-165 itself
    anchorer = Anchorer(store, chain, log)
    half = len(sale) // 2
    for part in (sale[:half], sale[half:]):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="ledger.evidence.anchor"):
            outcome = _anchor(store, anchorer, part)
        assert outcome.head is not None
        anchored, indexed = _events(chain, log, outcome)
        assert [(a["size"], a["root"]) for a in anchored] == [(outcome.head.size, outcome.head.root)]
        assert indexed == []
        (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert f"the EvidenceLog at {log.address} has no anchorIndexed" in warning
        assert "completeness proofs are not possible for this log until it is redeployed" in warning
