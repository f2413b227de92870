"""EvidenceLog: anchoring RFC 9162 tree heads on chain, append-only by consistency proof."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from eth_utils import function_abi_to_4byte_selector, keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.logs import DISCARD

from ledger._internal import solc
from ledger._internal.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_consistency,
)
from ledger.errors import ConsistencyProofError, ContractRevert

ANCHORER_ROLE = keccak(text="ANCHORER_ROLE")
GAS_BOUND = 100_000


def _tree(n: int) -> MerkleTree:
    return MerkleTree(leaf_hash(f"record {i}".encode()) for i in range(n))


TREE = _tree(300)


def _flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def _reverts(name: str, action: Callable[[], Any], **args: Any) -> ContractRevert:
    with pytest.raises(ContractRevert) as info:
        action()
    assert info.value.error_name == name, str(info.value)
    for key, value in args.items():
        assert info.value.error_args[key] == value, str(info.value)
    return info.value


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


# -- synthetic heads for sizes too large to build ----------------------------------


def _dyadic_cover(start: int, end: int) -> list[tuple[int, int]]:
    """The maximal aligned blocks (level, index) that tile [start, end)."""
    blocks = []
    while start < end:
        k = (start & -start).bit_length() - 1 if start else end.bit_length()
        while 1 << k > end - start:
            k -= 1
        blocks.append((k, start >> k))
        start += 1 << k
    return blocks


class SyntheticTree(MerkleTree):
    """A tree of `size` leaves that exists only as far as PROOF(cut, D[size]) needs.

    Roots and consistency proofs for (cut, size) depend only on the complete subtrees
    tiling [0, cut) and [cut, size). Those "atoms" get arbitrary hashes (`atom`); every
    larger subtree is hashed from them, so the heads and the proof are exactly what a
    real log with those subtree hashes would have. The real `MerkleTree` proof code runs
    on top: only `_range_hash` is replaced.
    """

    __slots__ = ("_atoms", "_memo")

    def __init__(self, size: int, cut: int,
                 atom: Callable[[int, int], bytes] | None = None) -> None:
        super().__init__()
        atom = atom or (lambda k, i: hashlib.sha256(f"atom {k} {i}".encode()).digest())
        self._size = size
        self._atoms = {b: atom(*b) for b in _dyadic_cover(0, cut) + _dyadic_cover(cut, size)}
        self._memo: dict[tuple[int, int], bytes] = {}

    def _block(self, k: int, i: int) -> bytes:
        if (k, i) in self._atoms:
            return self._atoms[(k, i)]
        if (k, i) not in self._memo:
            assert k > 0, f"leaf {i} is inside an atom: not derivable"
            self._memo[(k, i)] = node_hash(self._block(k - 1, 2 * i), self._block(k - 1, 2 * i + 1))
        return self._memo[(k, i)]

    def _range_hash(self, start: int, end: int) -> bytes:
        parts, offset, width = [], start, end - start
        for k in range(width.bit_length() - 1, -1, -1):
            if width >> k & 1:
                parts.append(self._block(k, offset >> k))
                offset += 1 << k
        node = parts.pop()
        while parts:
            node = node_hash(parts.pop(), node)
        return node


@pytest.mark.parametrize("m, n", [(1, 2), (3, 7), (4, 8), (5, 13), (64, 65), (99, 300), (128, 300)])
def test_synthetic_tree_equals_real_tree_with_the_same_subtrees(m: int, n: int) -> None:
    real = TREE

    def atom(k: int, i: int) -> bytes:
        return real._range_hash(i << k, (i + 1) << k)

    fake = SyntheticTree(n, m, atom)
    assert (fake.root(m), fake.root(n)) == (real.root(m), real.root(n))
    assert fake.consistency_proof(m, n) == real.consistency_proof(m, n)


# -- anchoring ----------------------------------------------------------------------


def _anchor(chain: Any, log: Any, size: int, old: int = 0, tree: MerkleTree = TREE,
            sender: Any = None) -> dict[str, Any]:
    proof = tree.consistency_proof(old, size) if old else []
    return chain.transact(log.functions.anchor(size, tree.root(size), proof), sender)


def test_first_anchor(chain: Any, evidence_log: Any) -> None:
    assert chain.call(evidence_log.functions.latestHead()) == [0, b"\x00" * 32, 0, 0]
    assert chain.call(evidence_log.functions.headCount()) == 0
    receipt = _anchor(chain, evidence_log, 5)
    block = chain.w3.eth.get_block(receipt["blockNumber"])
    (event,) = evidence_log.events.HeadAnchored().process_receipt(receipt)
    assert dict(event["args"]) == {
        "size": 5, "root": TREE.root(5), "previousSize": 0, "anchorer": chain.accounts[0].address,
    }
    assert chain.call(evidence_log.functions.latestHead()) == [
        5, TREE.root(5), block["timestamp"], block["number"]]
    assert chain.call(evidence_log.functions.anchoredAt(5, TREE.root(5))) == [
        True, block["timestamp"], block["number"]]
    assert chain.call(evidence_log.functions.headCount()) == 1
    assert chain.call(evidence_log.functions.hasRole(ANCHORER_ROLE, chain.accounts[0].address))
    assert chain.call(evidence_log.functions.ANCHORER_ROLE()) == ANCHORER_ROLE


def test_growth_keeps_every_head(chain: Any, evidence_log: Any) -> None:
    sizes = [1, 2, 3, 4, 7, 8, 9, 100, 256, 300]
    blocks = []
    old = 0
    for count, size in enumerate(sizes, start=1):
        receipt = _anchor(chain, evidence_log, size, old)
        (event,) = evidence_log.events.HeadAnchored().process_receipt(receipt)
        assert (event["args"]["size"], event["args"]["previousSize"]) == (size, old)
        blocks.append(chain.w3.eth.get_block(receipt["blockNumber"]))
        assert chain.call(evidence_log.functions.headCount()) == count
        old = size
    for size, block in zip(sizes, blocks, strict=True):
        assert chain.call(evidence_log.functions.anchoredAt(size, TREE.root(size))) == [
            True, block["timestamp"], block["number"]]
    assert chain.call(evidence_log.functions.latestHead())[:2] == [300, TREE.root(300)]


def test_rejections_leave_the_head_unchanged(chain: Any, evidence_log: Any) -> None:
    log = evidence_log
    _anchor(chain, log, 5)
    head = chain.call(log.functions.latestHead())

    def anchor(size: int, root: bytes, proof: list[bytes], sender: Any = None) -> Callable[[], Any]:
        return lambda: chain.transact(log.functions.anchor(size, root, proof), sender)

    proof = TREE.consistency_proof(5, 9)
    _reverts("EvidenceLogNotExtending", anchor(3, TREE.root(3), []), oldSize=5, newSize=3)
    _reverts("EvidenceLogNotExtending", anchor(5, TREE.root(5), []), oldSize=5, newSize=5)
    for k in range(len(proof)):
        for bit in (0, 7, 130, 255):
            bad = proof[:k] + [_flip(proof[k], bit)] + proof[k + 1:]
            _reverts("EvidenceLogInvalidConsistencyProof", anchor(9, TREE.root(9), bad),
                     oldSize=5, newSize=9)
    for bad in (proof[:-1], proof[1:], proof + [proof[0]], [], TREE.consistency_proof(4, 9),
                TREE.consistency_proof(6, 9)):
        _reverts("EvidenceLogInvalidConsistencyProof", anchor(9, TREE.root(9), bad),
                 oldSize=5, newSize=9)
    _reverts("EvidenceLogInvalidConsistencyProof", anchor(9, _flip(TREE.root(9), 3), proof),
             oldSize=5, newSize=9)  # wrong root
    _reverts("EvidenceLogInvalidConsistencyProof", anchor(10, TREE.root(10), proof),
             oldSize=5, newSize=10)  # proof for another new size
    stranger = chain.accounts[1]
    _reverts("AccessControlUnauthorizedAccount", anchor(9, TREE.root(9), proof, stranger),
             neededRole=_hex(ANCHORER_ROLE))
    _reverts("EvidenceLogInvalidHead", anchor(0, TREE.root(9), []), size=0, root=_hex(TREE.root(9)))
    zero = b"\x00" * 32
    _reverts("EvidenceLogInvalidHead", anchor(9, zero, proof), size=9, root=_hex(zero))
    assert chain.call(log.functions.latestHead()) == head
    assert chain.call(log.functions.headCount()) == 1
    chain.transact(log.functions.anchor(9, TREE.root(9), proof))  # the real one still goes in


def test_first_head_needs_an_empty_proof(chain: Any, evidence_log: Any) -> None:
    _reverts("EvidenceLogInvalidConsistencyProof",
             lambda: chain.transact(evidence_log.functions.anchor(5, TREE.root(5), [TREE.leaf(0)])),
             oldSize=0, newSize=5)


def test_granted_anchorer_can_anchor(chain: Any, evidence_log: Any) -> None:
    other = chain.accounts[2]
    chain.transact(evidence_log.functions.grantRole(ANCHORER_ROLE, other.address))
    receipt = _anchor(chain, evidence_log, 3, sender=other)
    (event,) = evidence_log.events.HeadAnchored().process_receipt(receipt)
    assert event["args"]["anchorer"] == other.address


def test_anchored_at_needs_the_exact_pair(chain: Any, evidence_log: Any) -> None:
    _anchor(chain, evidence_log, 7)
    for size, root in [(6, TREE.root(7)), (8, TREE.root(7)), (0, TREE.root(7)),
                       (6, TREE.root(6)), (7, TREE.root(6)), (0, b"\x00" * 32)]:
        assert chain.call(evidence_log.functions.anchoredAt(size, root)) == [False, 0, 0]


def test_verify_inclusion(chain: Any, evidence_log: Any) -> None:
    log = evidence_log
    _anchor(chain, log, 3)
    _anchor(chain, log, 11, old=3)

    def included(index: int, leaf: bytes, size: int, root: bytes, proof: list[bytes]) -> bool:
        result: bool = chain.call(log.functions.verifyInclusion(index, leaf, size, root, proof))
        return result

    for size in (3, 11):
        root = TREE.root(size)
        for i in range(size):
            proof = TREE.inclusion_proof(i, size)
            assert included(i, TREE.leaf(i), size, root, proof)
            assert not included(i, TREE.leaf(i + 1), size, root, proof)  # wrong leaf
            assert not included((i + 1) % size, TREE.leaf(i), size, root, proof)  # wrong index
            assert not included(i + size, TREE.leaf(i), size, root, proof)  # index >= size
            for k in range(len(proof)):  # each element bit-flipped
                bad = proof[:k] + [_flip(proof[k], 77)] + proof[k + 1:]
                assert not included(i, TREE.leaf(i), size, root, bad)
            assert not included(i, TREE.leaf(i), size, root, proof + [root])  # too long
            if proof:
                assert not included(i, TREE.leaf(i), size, root, proof[:-1])  # too short
    # A valid proof against a head that was never anchored.
    assert not included(2, TREE.leaf(2), 7, TREE.root(7), TREE.inclusion_proof(2, 7))
    # Leaf 0's path has the same shape in trees of 3 and 4 leaves, so RFC 9162 alone would
    # accept the size-3 proof for a claimed size 4: the anchored size is what rejects it.
    assert included(0, TREE.leaf(0), 3, TREE.root(3), TREE.inclusion_proof(0, 3))
    assert not included(0, TREE.leaf(0), 4, TREE.root(3), TREE.inclusion_proof(0, 3))
    # Second preimage: the two children of an interior node, presented as a leaf.
    forged = leaf_hash(TREE.leaf(0) + TREE.leaf(1))
    assert not included(0, forged, 3, TREE.root(3), [TREE.leaf(2)])
    assert not included(0, node_hash(TREE.leaf(0), TREE.leaf(1)), 3, TREE.root(3), [TREE.leaf(2)])


def test_verify_consistency_matches_the_python_verifier(chain: Any, evidence_log: Any) -> None:
    tree = _tree(70)
    cases = [(m, n, tree.root(m), tree.root(n), tree.consistency_proof(m, n))
             for m, n in [(1, 1), (1, 2), (2, 3), (3, 7), (4, 8), (8, 70), (63, 65), (70, 70)]]
    cases += [
        (0, 5, EMPTY_ROOT, tree.root(5), []),
        (0, 5, b"\x00" * 32, tree.root(5), []),
        (0, 5, EMPTY_ROOT, tree.root(5), [tree.leaf(0)]),
        (5, 5, tree.root(5), tree.root(5), [tree.leaf(0)]),
        (5, 5, tree.root(4), tree.root(5), []),
        (7, 3, tree.root(7), tree.root(3), tree.consistency_proof(3, 7)),
        (3, 7, tree.root(7), tree.root(3), tree.consistency_proof(3, 7)),
        (3, 7, tree.root(3), tree.root(7), []),
        (3, 7, tree.root(3), tree.root(7), tree.consistency_proof(3, 7)[:-1]),
        (3, 7, tree.root(3), tree.root(7), tree.consistency_proof(3, 7) + [tree.leaf(0)]),
        (4, 8, tree.root(4), tree.root(8), [tree.root(4)] + tree.consistency_proof(4, 8)),
    ]
    for m, n, old, new, proof in cases:
        try:
            verify_consistency(m, n, old, new, proof)
            expected = True
        except ConsistencyProofError:
            expected = False
        got = chain.call(evidence_log.functions.verifyConsistency(m, n, old, new, proof))
        assert got is expected, (m, n)


def test_supports_interface(chain: Any, evidence_log: Any) -> None:
    selector = 0
    for item in solc.artifacts()["IEvidenceLog"].abi:
        if item["type"] == "function":
            selector ^= int.from_bytes(function_abi_to_4byte_selector(item), "big")
    assert chain.call(evidence_log.functions.supportsInterface(selector.to_bytes(4, "big")))
    assert chain.call(evidence_log.functions.supportsInterface(bytes.fromhex("7965db0b")))  # AC
    assert not chain.call(evidence_log.functions.supportsInterface(b"\xff\xff\xff\xff"))


# -- anchorIndexed: the same head, and a committed index root ------------------------


def _index(size: int) -> bytes:
    return hashlib.sha256(b"index root %d" % size).digest()


def _anchor_indexed(chain: Any, log: Any, size: int, old: int = 0, index: bytes | None = None,
                    sender: Any = None) -> dict[str, Any]:
    proof = TREE.consistency_proof(old, size) if old else []
    index = _index(size) if index is None else index
    return chain.transact(log.functions.anchorIndexed(size, TREE.root(size), index, proof), sender)


def test_anchor_indexed_emits_head_anchored_then_head_indexed(chain: Any, evidence_log: Any) -> None:
    log = evidence_log
    for old, size in [(0, 5), (5, 9)]:
        receipt = _anchor_indexed(chain, log, size, old)
        (anchored,) = log.events.HeadAnchored().process_receipt(receipt, errors=DISCARD)
        (indexed,) = log.events.HeadIndexed().process_receipt(receipt, errors=DISCARD)
        assert dict(anchored["args"]) == {"size": size, "root": TREE.root(size), "previousSize": old,
                                          "anchorer": chain.accounts[0].address}
        assert dict(indexed["args"]) == {"size": size, "root": TREE.root(size), "indexRoot": _index(size)}
        assert anchored["address"] == indexed["address"] == log.address
        assert (len(receipt["logs"]), anchored["logIndex"] + 1) == (2, indexed["logIndex"])
        block = chain.w3.eth.get_block(receipt["blockNumber"])
        assert chain.call(log.functions.anchoredAt(size, TREE.root(size))) == [
            True, block["timestamp"], block["number"]]
    assert chain.call(log.functions.latestHead())[:2] == [9, TREE.root(9)]
    assert chain.call(log.functions.headCount()) == 2
    plain = _anchor(chain, log, 12, old=9)  # anchor() commits no index
    assert log.events.HeadIndexed().process_receipt(plain, errors=DISCARD) == ()


def test_anchor_indexed_refusals_leave_the_head_unchanged(chain: Any, evidence_log: Any) -> None:
    log = evidence_log
    zero = b"\x00" * 32
    _reverts("EvidenceLogZeroIndexRoot",
             lambda: _anchor_indexed(chain, log, 5, index=zero), size=5, root=_hex(TREE.root(5)))
    _anchor_indexed(chain, log, 5)
    head = chain.call(log.functions.latestHead())
    _reverts("EvidenceLogZeroIndexRoot",
             lambda: _anchor_indexed(chain, log, 9, old=5, index=zero), size=9, root=_hex(TREE.root(9)))
    stranger = chain.accounts[1]
    _reverts("AccessControlUnauthorizedAccount",
             lambda: _anchor_indexed(chain, log, 9, old=5, sender=stranger),
             account=stranger.address, neededRole=_hex(ANCHORER_ROLE))
    _reverts("EvidenceLogInvalidHead",
             lambda: chain.transact(log.functions.anchorIndexed(9, zero, _index(9), [])), size=9,
             root=_hex(zero))
    assert chain.call(log.functions.latestHead()) == head
    other = chain.accounts[2]  # a granted anchorer may
    chain.transact(log.functions.grantRole(ANCHORER_ROLE, other.address))
    receipt = _anchor_indexed(chain, log, 9, 5, sender=other)
    (event,) = log.events.HeadAnchored().process_receipt(receipt, errors=DISCARD)
    assert event["args"]["anchorer"] == other.address


def test_mixing_anchor_and_anchor_indexed_keeps_the_consistency_rule(chain: Any, evidence_log: Any) -> None:
    log = evidence_log
    _anchor(chain, log, 3)
    _anchor_indexed(chain, log, 7, old=3)
    proof = TREE.consistency_proof(7, 11)
    for bad in (TREE.consistency_proof(3, 11), proof[:-1], [_flip(proof[0], 9)] + proof[1:], []):
        _reverts("EvidenceLogInvalidConsistencyProof",
                 lambda bad=bad: chain.transact(log.functions.anchor(11, TREE.root(11), bad)),
                 oldSize=7, newSize=11)
        _reverts("EvidenceLogInvalidConsistencyProof",
                 lambda bad=bad: chain.transact(log.functions.anchorIndexed(11, TREE.root(11), _index(11),
                                                                            bad)),
                 oldSize=7, newSize=11)
    _anchor(chain, log, 11, old=7)
    _reverts("EvidenceLogNotExtending", lambda: _anchor_indexed(chain, log, 10, old=7),
             oldSize=11, newSize=10)
    _anchor_indexed(chain, log, 300, old=11)
    assert chain.call(log.functions.headCount()) == 4
    assert chain.call(log.functions.latestHead())[:2] == [300, TREE.root(300)]
    for size in (3, 7, 11, 300):
        assert chain.call(log.functions.anchoredAt(size, TREE.root(size)))[0]


def test_no_second_index_root_can_be_attached_to_an_anchored_head(chain: Any, evidence_log: Any) -> None:
    """The attack: re-anchor a head (with the anchorer's key, or after it) to make the chain show
    another index root for it. Every size is anchored once, so it reverts, whether the head was
    anchored with an index, without one, or is no longer the latest."""
    log = evidence_log
    _anchor_indexed(chain, log, 5)
    forged = _index(666)
    for size, old in [(5, 0), (5, 5)]:
        proof = TREE.consistency_proof(old, size) if old else []
        _reverts("EvidenceLogNotExtending",
                 lambda size=size, proof=proof: chain.transact(
                     log.functions.anchorIndexed(size, TREE.root(size), forged, proof)),
                 oldSize=5, newSize=5)
    _anchor(chain, log, 9, old=5)  # a head with no index: none can be added to it either
    for size in (5, 9):
        _reverts("EvidenceLogNotExtending",
                 lambda size=size: chain.transact(log.functions.anchorIndexed(size, TREE.root(size), forged,
                                                                              [])),
                 oldSize=9, newSize=size)
    events = log.events.HeadIndexed().get_logs(from_block=0)
    assert [(e["args"]["size"], e["args"]["indexRoot"]) for e in events] == [(5, _index(5))]


# -- property: random growth accepts, every mutated proof rejects --------------------


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 300), min_size=2, max_size=4, unique=True).map(sorted),
       bits=st.lists(st.integers(0, 255), min_size=12, max_size=12))
def test_random_growth_and_mutations(chain: Any, sizes: list[int], bits: list[int]) -> None:
    log = chain.deploy("EvidenceLog", chain.accounts[0].address)
    old = 0
    for size in sizes:
        if old:
            proof = TREE.consistency_proof(old, size)
            mutants = [proof[:k] + [_flip(proof[k], b)] + proof[k + 1:]
                       for k, b in zip(range(len(proof)), bits, strict=False)]
            mutants += [proof[:-1], proof + [TREE.leaf(0)]]
            heads = [(TREE.root(size), bad) for bad in mutants]
            heads.append((_flip(TREE.root(size), bits[0]), proof))  # wrong root
            for root, bad in heads:
                _reverts("EvidenceLogInvalidConsistencyProof",
                         lambda root=root, bad=bad, size=size: chain.transact(
                             log.functions.anchor(size, root, bad)),
                         oldSize=old, newSize=size)
        _anchor(chain, log, size, old)
        assert chain.call(log.functions.latestHead())[:2] == [size, TREE.root(size)]
        old = size
    assert chain.call(log.functions.headCount()) == len(sizes)


# -- gas: bounded by the proof length, whatever the batch size -----------------------

# (old size, new size): worst-case consistency proofs at each new size (longest proof and
# most hashing; found by exhaustive search for 2^10 and 2^20, by the 2^k - 1 pattern above).
GAS_CASES = [
    (1023, 1 << 10),  # 11 hashes of proof
    (1, 1 << 10),  # a big batch, a short proof
    ((1 << 20) - 1, 1 << 20),  # 21
    ((1 << 31) - 1, (1 << 32) - 1),  # 33 (62 node hashes)
    ((1 << 32) - 3, (1 << 32) - 1),  # 33 (62 node hashes)
    (1, (1 << 32) - 1),  # 4 billion leaves in one batch
    ((1 << 32) - 1, 1 << 32),  # 33 (63 node hashes)
]


def test_anchor_gas_is_bounded(chain: Any, evidence_log: Any,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """anchor and anchorIndexed alike: the same worst cases, each on a fresh log."""
    report = []
    for m, n in GAS_CASES:
        tree = SyntheticTree(n, m)
        old_root, new_root, proof = tree.root(m), tree.root(n), tree.consistency_proof(m, n)
        verify_consistency(m, n, old_root, new_root, proof)
        gas = {}
        for name in ("anchor", "anchorIndexed"):
            log = chain.deploy("EvidenceLog", chain.accounts[0].address)

            def call(size: int, root: bytes, proof: list[bytes], name: str = name, log: Any = log) -> Any:
                index = (_index(size),) if name == "anchorIndexed" else ()
                return getattr(log.functions, name)(size, root, *index, proof)

            first = chain.transact(call(m, old_root, []))["gasUsed"]
            grow = chain.transact(call(n, new_root, proof))["gasUsed"]
            assert first <= GAS_BOUND, (name, m, first)
            assert grow <= GAS_BOUND, (name, m, n, len(proof), grow)
            gas[name] = (first, grow)
        (a_first, a_grow), (i_first, i_grow) = gas["anchor"], gas["anchorIndexed"]
        report.append(f"{m}->{n}: proof {len(proof)}, first anchor {a_first} / indexed {i_first}, "
                      f"grow {a_grow} / indexed {i_grow} (+{i_grow - a_grow})")
    with capsys.disabled():
        print(f"\n[{chain.kind}] gas, anchor / anchorIndexed:\n  " + "\n  ".join(report))
