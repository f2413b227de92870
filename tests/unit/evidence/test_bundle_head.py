"""A bundle's head against its pin and a real chain: the impostor attack, every anchor field
checked against the chain, every cross-check caught alone (by a node that lies about one
answer), and every failure naming the field, what the bundle states and what the chain has."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from eth_abi import encode
from eth_utils import keccak

from ledger.errors import ChainUnavailable
from ledger.evidence.bundle import Verdict, verify_bundle
from ledger.evidence.bundle_format import Bundle
from ledger.evidence.bundle_head import index_failures
from ledger.evidence.trust import Pin, TrustRoot
from tests.unit.evidence.chain_bundle import World, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("head"))


@pytest.fixture(autouse=True)
def honest_node(world: World) -> Iterator[None]:
    yield
    world.node.lies.clear()


def _verify(world: World, pin: Pin | None = None, **anchor: Any) -> Verdict:
    bundle: Bundle = copy.deepcopy(world.bundle)
    for name, value in anchor.items():
        setattr(bundle.anchor, name, value)
    return verify_bundle(bundle, world.node.w3, pin=world.pin if pin is None else pin)


def _failures(world: World, pin: Pin | None = None, **anchor: Any) -> list[str]:
    verdict = _verify(world, pin, **anchor)
    assert all(r.ok for r in verdict.records), verdict.to_json()
    assert verdict.status == "not_verified" and not verdict.ok
    _no_value_twice(verdict.head_failures)
    return verdict.head_failures


def _no_value_twice(failures: list[str]) -> None:
    """"mined in block 4, not 4" was a real message: a failure names two different values."""
    for f in failures:
        m = re.search(r"states (\S+), .* has (.+)$", f)
        if m:
            assert m.group(1) != m.group(2), f


def test_the_exported_bundle_verifies_against_its_trust_root(world: World) -> None:
    verdict = _verify(world)
    assert verdict.status == "verified" and verdict.ok and verdict.head_failures == []
    assert verdict.anchored_timestamp == world.bundle.anchor.block_timestamp


def test_without_a_pin_the_head_checks_out_but_the_status_says_unpinned(world: World) -> None:
    verdict = verify_bundle(world.bundle, world.node.w3)
    assert verdict.status == "unpinned" and not verdict.ok and verdict.head_failures == []
    half = verify_bundle(world.bundle, world.node.w3, pin=Pin(chain_id=world.chain.chain_id))
    assert half.status == "unpinned"


def test_an_impostor_that_anchored_the_same_head_is_refused_by_the_pin(world: World) -> None:
    """Anyone can deploy an EvidenceLog and anchor any head on it: without a pin the impostor's
    bundle holds up on chain, which is exactly why the verdict is `unpinned`, never verified."""
    unpinned = verify_bundle(_impostor(world), world.node.w3)
    assert unpinned.status == "unpinned" and unpinned.head_failures == []
    for pin in (world.pin, Pin(world.chain.chain_id, world.trust.contract)):
        verdict = verify_bundle(_impostor(world), world.node.w3, pin=pin)
        assert verdict.status == "not_verified"
        assert verdict.head_failures == [f"wrong contract: anchor.contract is {world.impostor['contract']}, "
                                         f"the pinned EvidenceLog is {world.trust.contract}"]


def _impostor(world: World) -> Bundle:
    bundle = copy.deepcopy(world.bundle)
    for name, value in world.impostor.items():
        setattr(bundle.anchor, name, value)
    return bundle


def test_a_pin_of_another_chain_is_refused(world: World) -> None:
    other = Pin(world.chain.chain_id + 1, world.trust.contract)
    assert _failures(world, other) == [f"wrong chain: anchor.chain_id is {world.chain.chain_id}, the pinned "
                                       f"chain is {world.chain.chain_id + 1}"]


def test_the_node_of_another_chain_is_refused(world: World) -> None:
    chain_id = world.chain.chain_id + 1
    pin = Pin(chain_id, world.trust.contract)
    assert _failures(world, pin, chain_id=chain_id) == [
        f"wrong chain: anchor.chain_id is {chain_id}, the node is chain {world.chain.chain_id}"]


def _trust(world: World, **fields: Any) -> Pin:
    return Pin.of(msgspec.structs.replace(world.trust, **fields))


def test_the_trust_roots_deployment_is_checked(world: World) -> None:
    trust = world.trust
    other = world.chain.accounts[5].address
    assert _failures(world, _trust(world, deployer=other)) == [
        f"trust root deployer: the trust file states {other}, the receipt of deployment_tx (its sender) "
        f"has {trust.deployer}"]
    assert _failures(world, _trust(world, deployment_block=trust.deployment_block + 1)) == [
        f"trust root deployment_block: the trust file states {trust.deployment_block + 1}, the receipt of "
        f"deployment_tx has {trust.deployment_block}"]
    anchor_tx = world.bundle.anchor.tx_hash
    assert _failures(world, _trust(world, deployment_tx=anchor_tx)) == [
        f"trust root contract: the trust file states {trust.contract}, the receipt of deployment_tx has no "
        "contract created",
        f"trust root deployment_block: the trust file states {trust.deployment_block}, the receipt of "
        f"deployment_tx has {world.bundle.anchor.block_number}"]
    unknown = "0x" + "ab" * 32
    assert _failures(world, _trust(world, deployment_tx=unknown)) == [
        f"trust root: deployment_tx {unknown} is not a transaction of chain {trust.chain_id}"]
    failed = _failures(world, _trust(world, deployment_tx=world.failed_deployment))
    assert failed[0] == f"trust root: deployment_tx {world.failed_deployment} failed (receipt status 0)"


def test_a_deployment_the_node_reports_failed_is_refused(world: World) -> None:
    """Some nodes report the would-be address of a failed creation: the status decides."""
    world.node.lies["eth_getTransactionReceipt"] = lambda params, r: (
        {**r, "status": 0} if params[0] == world.trust.deployment_tx else r)
    assert _failures(world) == [f"trust root: deployment_tx {world.trust.deployment_tx} failed (receipt "
                                "status 0)"]


def test_a_trust_root_without_a_deployer_checks_the_rest(world: World) -> None:
    assert _verify(world, _trust(world, deployer=None)).ok
    assert _failures(world, _trust(world, deployer=None, deployment_block=0))


def test_a_contract_with_no_code_or_no_evidence_log_is_the_wrong_contract(world: World) -> None:
    eoa = world.chain.accounts[6].address
    assert _failures(world, Pin(world.chain.chain_id, eoa), contract=eoa) == [
        f"wrong contract: anchor.contract {eoa} has no code on chain {world.chain.chain_id}"]
    other = world.not_a_log
    assert _failures(world, Pin(world.chain.chain_id, other), contract=other) == [
        f"wrong contract: {other} does not answer anchoredAt (not an EvidenceLog)"]


@pytest.mark.parametrize("change", ["root", "size-1", "size+1", "earlier root"])
def test_a_head_the_contract_never_anchored(world: World, change: str) -> None:
    head = world.bundle.anchor
    fields = {"root": {"root": "33" * 32}, "size-1": {"tree_size": head.tree_size - 1},
              "size+1": {"tree_size": head.tree_size + 1},
              "earlier root": {"root": world.earlier["root"]}}[change]
    size, root = fields.get("tree_size", head.tree_size), fields.get("root", head.root)
    assert _verify_head_only(world, **fields) == [
        f"head not anchored: {head.contract} has no anchored head of size {size} with root {root}"]


def _verify_head_only(world: World, **anchor: Any) -> list[str]:
    """Head failures of a changed anchor (its records then fail their proofs too)."""
    verdict = _verify(world, None, **anchor)
    assert verdict.status == "not_verified"
    return verdict.head_failures


def test_every_anchor_field_is_checked_against_the_chain(world: World) -> None:
    head = world.bundle.anchor
    n, ts, h = head.block_number, head.block_timestamp, head.block_hash
    on_receipt, on_block, on_log = ("the receipt of anchor.tx_hash", f"the chain's block {n}",
                                    "anchoredAt(tree_size, root)")
    assert _failures(world, block_timestamp=ts + 1) == [
        f"anchor.block_timestamp: the bundle states {ts + 1}, {on_log} has {ts}",
        f"anchor.block_timestamp: the bundle states {ts + 1}, {on_block} has {ts}"]
    assert _failures(world, block_hash=world.earlier["block_hash"]) == [
        f"anchor.block_hash: the bundle states {world.earlier['block_hash']}, {on_receipt} has {h}",
        f"anchor.block_hash: the bundle states {world.earlier['block_hash']}, {on_block} has {h}"]
    later = world.impostor["block_number"]
    assert _failures(world, block_number=later) == [
        f"anchor.block_number: the bundle states {later}, {on_log} has {n}",
        f"anchor.block_number: the bundle states {later}, {on_receipt} has {n}",
        f"anchor.block_hash: the bundle states {h}, the chain's block {later} has "
        f"{world.impostor['block_hash']}",
        f"anchor.block_timestamp: the bundle states {ts}, the chain's block {later} has "
        f"{world.impostor['block_timestamp']}"]
    assert _failures(world, block_number=10**6)[-1] == (
        f"anchor.block_number: chain {world.chain.chain_id} has no block {10**6}")


def test_the_anchoring_transaction_is_checked(world: World) -> None:
    head = world.bundle.anchor
    unknown = "0x" + "cd" * 32
    assert _failures(world, tx_hash=unknown) == [
        f"anchor.tx_hash: {unknown} is not a transaction of chain {world.chain.chain_id}"]
    earlier = world.earlier["tx_hash"]
    assert _failures(world, tx_hash=earlier) == [
        f"anchor.tx_hash: {earlier} did not emit HeadAnchored({head.tree_size}, {head.root}) from "
        f"{head.contract}",
        f"anchor.block_number: the bundle states {head.block_number}, the receipt of anchor.tx_hash has "
        f"{world.earlier['block_number']}",
        f"anchor.block_hash: the bundle states {head.block_hash}, the receipt of anchor.tx_hash has "
        f"{world.earlier['block_hash']}"]
    impostor = world.impostor["tx_hash"]  # the same head, anchored by another contract
    assert _failures(world, tx_hash=impostor)[0] == (
        f"anchor.tx_hash: {impostor} did not emit HeadAnchored({head.tree_size}, {head.root}) from "
        f"{head.contract}")
    failed = _failures(world, tx_hash=world.failed_anchor)
    assert failed[:2] == [f"anchor.tx_hash: {world.failed_anchor} failed (receipt status 0)",
                          f"anchor.tx_hash: {world.failed_anchor} did not emit HeadAnchored("
                          f"{head.tree_size}, {head.root}) from {head.contract}"]


def _answer(world: World, method: str, change: dict[str, Any]) -> None:
    """The node changes its answer about the bundle's anchoring (transaction or block) only."""
    about = {"eth_getTransactionReceipt": world.bundle.anchor.tx_hash,
             "eth_getBlockByNumber": hex(world.bundle.anchor.block_number)}[method]
    world.node.lies[method] = lambda params, result: {**result, **change} if params[0] == about else result


def _anchored_at(anchored: bool, timestamp: int, block: int) -> str:
    return "0x" + encode(["bool", "uint48", "uint48"], [anchored, timestamp, block]).hex()


LIES: dict[str, tuple[str, Any, str]] = {
    # method, the node's false answer, the one failure it must cause
    "a stale receipt's block hash": ("eth_getTransactionReceipt", {"blockHash": "0x" + "77" * 32},
                                     "anchor.block_hash: the bundle states {block_hash}, the receipt of "
                                     "anchor.tx_hash has 0x" + "77" * 32),
    "a stale receipt's block number": ("eth_getTransactionReceipt", {"blockNumber": 99},
                                       "anchor.block_number: the bundle states {block_number}, the receipt "
                                       "of anchor.tx_hash has 99"),
    "a failed anchoring transaction": ("eth_getTransactionReceipt", {"status": 0},
                                       "anchor.tx_hash: {tx_hash} failed (receipt status 0)"),
    "no HeadAnchored event": ("eth_getTransactionReceipt", {"logs": []},
                              "anchor.tx_hash: {tx_hash} did not emit HeadAnchored({tree_size}, {root}) from "
                              "{contract}"),
    "another block at that height": ("eth_getBlockByNumber", {"hash": "0x" + "66" * 32},
                                     "anchor.block_hash: the bundle states {block_hash}, the chain's block "
                                     "{block_number} has 0x" + "66" * 32),
    "another time for that block": ("eth_getBlockByNumber", {"timestamp": 12345},
                                    "anchor.block_timestamp: the bundle states {block_timestamp}, the "
                                    "chain's block {block_number} has 12345"),
}


@pytest.mark.parametrize("name", list(LIES))
def test_each_cross_check_catches_a_lying_node_alone(world: World, name: str) -> None:
    method, change, expected = LIES[name]
    _answer(world, method, change)
    head = msgspec.structs.asdict(world.bundle.anchor)
    assert _failures(world) == [expected.format(**head)]


@pytest.mark.parametrize("anchored_at, field", [((7, None), "anchor.block_timestamp"),
                                                 ((None, 99), "anchor.block_number")])
def test_anchored_at_must_agree_with_the_bundle(world: World, anchored_at: tuple[Any, Any],
                                                field: str) -> None:
    head = world.bundle.anchor
    ts = head.block_timestamp if anchored_at[0] is None else anchored_at[0]
    block = head.block_number if anchored_at[1] is None else anchored_at[1]
    world.node.lies["eth_call"] = lambda params, result: _anchored_at(True, ts, block)
    stated = head.block_timestamp if field.endswith("timestamp") else head.block_number
    actual = ts if field.endswith("timestamp") else block
    assert _failures(world) == [
        f"{field}: the bundle states {stated}, anchoredAt(tree_size, root) has {actual}"]


def test_a_node_that_fails_mid_way_is_no_verdict(world: World) -> None:
    def broken(params: Any, result: Any) -> Any:
        raise ConnectionError("connection reset")

    world.node.lies["eth_getBlockByNumber"] = broken
    with pytest.raises(ChainUnavailable, match="cannot read block .* from the node: connection reset"):
        _verify(world)


def test_the_trust_root_is_what_deploy_wrote(world: World, tmp_path: Path) -> None:
    assert isinstance(world.trust, TrustRoot) and world.trust.contract == world.bundle.anchor.contract
    assert world.trust.deployer == world.chain.default_account.address


# -- the index root committed with the head (HeadIndexed) --------------------------------------

HEAD_INDEXED = "0x" + keccak(text="HeadIndexed(uint64,bytes32,bytes32)").hex()


def _index_failures(world: World, index_root: bytes, **anchor: Any) -> list[str]:
    head = copy.deepcopy(world.bundle.anchor)
    for name, value in anchor.items():
        setattr(head, name, value)
    return index_failures(world.node.w3, head, index_root)


def test_the_index_root_anchored_with_the_head_checks_out(world: World) -> None:
    head = world.bundle.anchor
    assert _index_failures(world, world.index_roots[head.tree_size]) == []
    earlier = world.earlier
    assert _index_failures(world, world.index_roots[earlier["tree_size"]], **earlier) == []


def test_another_index_root_is_refused_naming_both(world: World) -> None:
    committed = world.index_roots[world.bundle.anchor.tree_size]
    for stated in (b"\x44" * 32, world.index_roots[world.earlier["tree_size"]], b"\x00" * 32):
        assert _index_failures(world, stated) == [
            f"anchor.index_root: the bundle states {stated.hex()}, the anchoring transaction committed "
            f"{committed.hex()}"]


def test_a_head_anchored_with_anchor_has_no_index(world: World) -> None:
    """A log that anchored the same head with anchor(): no index root was ever committed."""
    stated = world.index_roots[world.bundle.anchor.tree_size]
    assert _index_failures(world, stated, **world.plain) == [
        f"anchor.index_root: the bundle states {stated.hex()}, the anchoring transaction committed no index "
        "(anchored with anchor(), not anchorIndexed)"]


def test_the_index_root_of_another_transaction_does_not_count(world: World) -> None:
    """The earlier head's transaction committed an index root, but for the earlier head."""
    head, stated = world.bundle.anchor, world.index_roots[world.earlier["tree_size"]]
    cases = {
        world.earlier["tx_hash"]: f"committed no index for head ({head.tree_size}, {head.root}) on "
                                  f"{head.contract}: it did not anchor that head",
        world.failed_anchor: "failed (receipt status 0): it committed nothing",
        "0x" + "cd" * 32: f"is not a transaction of chain {head.chain_id}",
    }
    for tx, why in cases.items():
        assert _index_failures(world, stated, tx_hash=tx) == [
            f"anchor.index_root: the bundle states {stated.hex()}, but anchor.tx_hash {tx} {why}"]


def _edit_head_indexed(world: World, edit: Any) -> None:
    """The node changes (or drops: `edit` returns None) the HeadIndexed log of the bundle's
    anchoring transaction, and nothing else."""
    def lie(params: Any, receipt: Any) -> Any:
        if params[0] != world.bundle.anchor.tx_hash:
            return receipt
        logs = [log if log["topics"][0] != HEAD_INDEXED else edit(dict(log)) for log in receipt["logs"]]
        assert len(receipt["logs"]) == 2 and any(log["topics"][0] == HEAD_INDEXED for log in receipt["logs"])
        return {**receipt, "logs": [log for log in logs if log is not None]}

    world.node.lies["eth_getTransactionReceipt"] = lie


INDEX_LIES: dict[str, tuple[Any, str]] = {
    # how the HeadIndexed log is changed, the failure it must cause
    "dropped": (lambda log: None, "committed no index (anchored with anchor(), not anchorIndexed)"),
    "another index root": (lambda log: {**log, "data": "0x" + "55" * 32},
                           "committed " + "55" * 32),
    "emitted by another contract": (lambda log: {**log, "address": "0x" + "11" * 20},
                                    "committed no index (anchored with anchor(), not anchorIndexed)"),
    "for another size": (lambda log: {**log, "topics": [log["topics"][0], "0x" + "00" * 31 + "01",
                                                        log["topics"][2]]},
                         "committed no index (anchored with anchor(), not anchorIndexed)"),
    "for another root": (lambda log: {**log, "topics": [*log["topics"][:2], "0x" + "22" * 32]},
                         "committed no index (anchored with anchor(), not anchorIndexed)"),
}


@pytest.mark.parametrize("name", list(INDEX_LIES))
def test_each_part_of_head_indexed_is_checked(world: World, name: str) -> None:
    edit, why = INDEX_LIES[name]
    _edit_head_indexed(world, edit)
    stated = world.index_roots[world.bundle.anchor.tree_size]
    assert _index_failures(world, stated) == [
        f"anchor.index_root: the bundle states {stated.hex()}, the anchoring transaction {why}"]
