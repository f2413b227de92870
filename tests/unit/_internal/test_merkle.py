"""RFC 9162 Merkle tree: reference definitions, pymerkle cross-checks, rejection paths."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree
from pymerkle import verify_consistency as pymerkle_verify_consistency

from ledger._internal.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)
from ledger.errors import ConsistencyProofError, InclusionProofError, ProofError

# -- a literal transcription of RFC 9162 2.1.1, 2.1.3.1 and 2.1.4.1 ---------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + d[0])
    k = _k(n)
    return _sha(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_path_sides(m: int, n: int) -> list[bool]:
    """For each element of PATH(m, D[n]): is the sibling on the right?"""
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return ref_path_sides(m, k) + [True]
    return ref_path_sides(m - k, n - k) + [False]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


def _data(n: int) -> list[bytes]:
    return [str(i).encode() for i in range(n)]


def _tree(n: int) -> MerkleTree:
    return MerkleTree(leaf_hash(x) for x in _data(n))


# -- pinned constants, computed by hand from the definitions ----------------------

L = [bytes.fromhex(h) for h in (
    "db3426e878068d28d269b6c87172322ce5372b65756d0789001d34835f601c03",  # SHA256(00 "0")
    "2215e8ac4e2b871c2a48189e79738c956c081e23ac2f2415bf77da199dfd920c",  # SHA256(00 "1")
    "fa61e3dec3439589f4784c893bf321d0084f04c572c7af2b68e3f3360a35b486",  # SHA256(00 "2")
)]
ROOT_0 = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
ROOT_1 = L[0]
ROOT_2 = bytes.fromhex("cb00989d94a569c0a678ae042b63dcd4625db96440517f37a6eb7976ea24ed4b")
ROOT_3 = bytes.fromhex("725d5230db68f557470dc35f1d8865813acd7ebb07ad152774141decbae71327")
ROOT_4 = bytes.fromhex("9f4a3fc20d4162dc37d4e23d907848731a76043ffff6d69288bf1abfbcff478e")


def test_pinned_roots() -> None:
    tree = _tree(4)
    assert EMPTY_ROOT == ROOT_0 == MerkleTree().root()
    assert [leaf_hash(b"0"), leaf_hash(b"1"), leaf_hash(b"2")] == L
    assert [tree.root(s) for s in range(5)] == [ROOT_0, ROOT_1, ROOT_2, ROOT_3, ROOT_4]
    assert node_hash(L[0], L[1]) == ROOT_2
    assert node_hash(ROOT_2, L[2]) == ROOT_3


def test_pinned_proofs() -> None:
    tree = _tree(4)
    assert tree.inclusion_proof(0, 3) == [L[1], L[2]]
    assert tree.inclusion_proof(2, 3) == [ROOT_2]
    assert tree.consistency_proof(2, 3) == [L[2]]  # old tree is a complete subtree: omitted
    assert tree.consistency_proof(1, 3) == [L[1], L[2]]
    assert tree.consistency_proof(3, 3) == []
    verify_inclusion(L[2], 2, 3, [ROOT_2], ROOT_3)
    verify_consistency(2, 3, ROOT_2, ROOT_3, [L[2]])


@pytest.mark.parametrize("n", range(9))
def test_small_trees_match_reference(n: int) -> None:
    d = _data(n)
    tree = _tree(n)
    assert tree.size == len(tree) == n
    for size in range(n + 1):
        assert tree.root(size) == ref_mth(d[:size])
        for m in range(size):
            assert tree.inclusion_proof(m, size) == ref_path(m, d[:size])
        for m in range(1, size + 1):
            assert tree.consistency_proof(m, size) == ref_proof(m, d[:size])


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9, 100, 1025])
def test_append_and_extend_build_the_same_tree(n: int) -> None:
    hashes = [leaf_hash(x) for x in _data(n)]
    by_one = MerkleTree()
    assert [by_one.append(h) for h in hashes] == list(range(n))
    in_chunks = MerkleTree()
    rnd = random.Random(n)
    i = 0
    while i < n:
        j = min(n, i + rnd.randint(1, 40))
        in_chunks.extend(iter(hashes[i:j]))
        i = j
    whole = MerkleTree(hashes)
    assert by_one.root() == in_chunks.root() == whole.root()
    assert by_one._levels == in_chunks._levels == whole._levels
    for idx in range(n):
        assert whole.leaf(idx) == hashes[idx]


def test_bad_arguments_raise_value_error() -> None:
    tree = _tree(5)
    with pytest.raises(ValueError, match="leaf index 5 out of range"):
        tree.leaf(5)
    with pytest.raises(ValueError, match="size 6 out of range"):
        tree.root(6)
    with pytest.raises(ValueError, match="size -1 out of range"):
        tree.root(-1)
    with pytest.raises(ValueError, match="leaf index 3 out of range"):
        tree.inclusion_proof(3, 3)
    with pytest.raises(ValueError, match="leaf index -1"):
        tree.inclusion_proof(-1)
    with pytest.raises(ValueError, match="size 6 out of range"):
        tree.inclusion_proof(0, 6)
    with pytest.raises(ValueError, match="0 < old_size <= new_size"):
        tree.consistency_proof(0, 3)
    with pytest.raises(ValueError, match="0 < old_size <= new_size"):
        tree.consistency_proof(4, 3)
    with pytest.raises(ValueError, match="size 6 out of range"):
        tree.consistency_proof(1, 6)
    with pytest.raises(ValueError, match="32-byte hash, got 31 bytes"):
        tree.append(b"\x00" * 31)
    with pytest.raises(ValueError, match="leaf hash #1 of the batch must be a 32-byte hash"):
        tree.extend([b"\x00" * 32, b"\x00" * 33])
    assert tree.size == 5  # failed calls changed nothing
    assert tree.root() == ref_mth(_data(5))


# -- pymerkle 7 cross-check ---------------------------------------------------------
#
# pymerkle's InmemoryTree defaults (sha256, "security" on) are exactly RFC 9162: leaf
# prefix 0x00, node prefix 0x01, empty root SHA-256(""). Disabling its security would
# drop the prefixes and NOT match. Its indices count from one. Its inclusion path is
# [leaf] + our RFC path. Its consistency proofs have a different shape (it splits
# where prior_width < k, the RFC where m <= k, and always carries the base hash), so
# for those we check that each side's verifier accepts its own proof against the
# other's roots.


def _pymerkle(n: int) -> InmemoryTree:
    p = InmemoryTree()
    assert (p.algorithm, p.leaf_prefix, p.node_prefix) == ("sha256", b"\x00", b"\x01")
    for x in _data(n):
        p.append_entry(x)
    return p


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(
    st.just(n), st.integers(1, n), st.integers(1, n))))
@example((1, 1, 1))
@example((2, 1, 2))
@example((64, 32, 64))
@example((65, 64, 33))
def test_matches_pymerkle(case: tuple[int, int, int]) -> None:
    n, m, size = case
    m, size = min(m, size), max(m, size)
    ours, theirs = _tree(n), _pymerkle(n)
    assert theirs.get_root(0) == ours.root(0) == EMPTY_ROOT
    for s in {m, size, n}:
        assert ours.root(s) == theirs.get_root(s)
    for index in {0, m - 1, size - 1}:
        their_proof = theirs.prove_inclusion(index + 1, size)
        assert their_proof.path == [ours.leaf(index)] + ours.inclusion_proof(index, size)
    their_consistency = theirs.prove_consistency(m, size)
    pymerkle_verify_consistency(ours.root(m), ours.root(size), their_consistency)
    verify_consistency(m, size, theirs.get_root(m), theirs.get_root(size),
                       ours.consistency_proof(m, size))


# -- property tests: acceptance and every rejection path ---------------------------

MAX_N = 1100
_BIG = _tree(MAX_N)
_ROOTS = [_BIG.root(s) for s in range(MAX_N + 1)]

EDGE_SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129,
              255, 256, 257, 511, 512, 513, 1023, 1024, 1025]
# (n, m, index): m <= n is the old size, index < n a leaf; pinned at the edges.
EDGE_CASES = [(n, m, i) for n in EDGE_SIZES
              for m, i in {(1, 0), (n, n - 1), (max(1, n - 1), n // 2), (max(1, n // 2), 0)}]

EDGE_BITS = list(range(0, 256, 11))  # 24 bit positions, first to last byte

cases = st.integers(1, MAX_N).flatmap(lambda n: st.tuples(
    st.just(n), st.integers(1, n), st.integers(0, n - 1)))

PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def edge_examples(f: Callable[..., None]) -> Callable[..., None]:
    for case in EDGE_CASES:
        f = example(case=case, bits=EDGE_BITS)(f)
    return f


def _flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def _rejects(error: type[ProofError], check: Callable[[], None]) -> None:
    with pytest.raises(error):
        check()


def test_every_proof_of_every_tree_up_to_64_leaves_verifies() -> None:
    """Acceptance over every small shape, not only the ones hypothesis draws: a verifier that
    refuses the valid proofs of some shapes (one shift too many while it climbs the right
    edge refuses 13 -> 14 first) fails here on every run."""
    for n in range(1, 65):
        for m in range(1, n + 1):
            verify_inclusion(_BIG.leaf(m - 1), m - 1, n, _BIG.inclusion_proof(m - 1, n), _ROOTS[n])
            verify_consistency(m, n, _ROOTS[m], _ROOTS[n], _BIG.consistency_proof(m, n))


@PROPERTY
@given(case=cases, bits=st.lists(st.integers(0, 255), min_size=24, max_size=24))
@edge_examples
def test_inclusion_accepts_and_rejects(case: tuple[int, int, int], bits: list[int]) -> None:
    n, _, i = case
    leaf, root, proof = _BIG.leaf(i), _ROOTS[n], _BIG.inclusion_proof(i, n)
    verify_inclusion(leaf, i, n, proof, root)
    assert root_from_inclusion(leaf, i, n, proof) == root

    def rejects(leaf: bytes = leaf, index: int = i, size: int = n,
                proof: list[bytes] = proof, root: bytes = root) -> None:
        _rejects(InclusionProofError, lambda: verify_inclusion(leaf, index, size, proof, root))

    rejects(leaf=_BIG.leaf((i + 1) % MAX_N))  # wrong leaf
    rejects(leaf=leaf_hash(str(i).encode() + b"x"))
    rejects(leaf=_flip(leaf, bits[0]))
    for j in {0, i - 1, i + 1, n - 1, n, n + 5, -1} - {i}:  # wrong index (j >= n: structural)
        rejects(index=j)
    rejects(size=i)  # index == size
    for s in {i + 1, n - 1, n + 1, 2 * n, n + 1000} - {n}:
        if s > i:
            # Another size with that size's real root never verifies ...
            rejects(size=s, root=_BIG.root(s) if s <= MAX_N else _flip(root, 0))
            # ... and with the claimed root it verifies only when both sizes give the path
            # the same shape: the size is bound to the root by the signed/anchored head.
            if ref_path_sides(i, s) != ref_path_sides(i, n):
                rejects(size=s)
            else:
                verify_inclusion(leaf, i, s, proof, root)
    if proof:
        rejects(proof=proof[:-1])  # truncated
        rejects(proof=proof[1:])
        rejects(proof=[])
    rejects(proof=proof + [_BIG.leaf(0)])  # extended
    rejects(proof=[_BIG.leaf(0)] + proof)
    for k, b in zip(range(len(proof)), bits, strict=False):  # one flipped bit in each element
        rejects(proof=proof[:k] + [_flip(proof[k], b)] + proof[k + 1:])
    rejects(root=_flip(root, bits[1]))
    rejects(proof=[p[:31] for p in proof] or [b"\x00"])  # malformed elements


@PROPERTY
@given(case=cases, bits=st.lists(st.integers(0, 255), min_size=24, max_size=24))
@edge_examples
def test_consistency_accepts_and_rejects(case: tuple[int, int, int], bits: list[int]) -> None:
    n, m, _ = case
    old, new, proof = _ROOTS[m], _ROOTS[n], _BIG.consistency_proof(m, n)
    verify_consistency(m, n, old, new, proof)

    def rejects(old_size: int = m, new_size: int = n, old_root: bytes = old,
                new_root: bytes = new, proof: list[bytes] = proof) -> None:
        _rejects(ConsistencyProofError,
                 lambda: verify_consistency(old_size, new_size, old_root, new_root, proof))

    rejects(old_root=_flip(old, bits[0]))  # wrong roots
    rejects(new_root=_flip(new, bits[1]))
    for k, b in zip(range(len(proof)), bits, strict=False):  # one flipped bit in each element
        rejects(proof=proof[:k] + [_flip(proof[k], b)] + proof[k + 1:])
    rejects(proof=proof + [_BIG.leaf(0)])  # extended
    rejects(proof=[_BIG.leaf(0)] + proof)
    for other in {1, m - 1, m + 1, n - 1} - {m}:  # a different old size with its real root
        if 0 < other <= n:
            rejects(old_size=other, old_root=_ROOTS[other])
            if other < n:  # a real proof for the other old size, claimed for this one
                rejects(proof=_BIG.consistency_proof(other, n))
    if n < MAX_N:
        rejects(new_size=n + 1, new_root=_ROOTS[n + 1])
    if m < n:
        rejects(proof=[])  # empty proof where one is needed
        rejects(proof=proof[:-1])  # truncated
        rejects(proof=proof[1:])
        rejects(old_root=new, new_root=old)  # swapped roots
        rejects(old_size=n, new_size=m, old_root=new, new_root=old)  # shrinking
        rejects(old_size=n, new_size=m)
    else:
        rejects(proof=[_BIG.leaf(0)])  # equal sizes need an empty proof
        rejects(old_root=_ROOTS[m - 1])  # ... and equal roots
    rejects(old_size=0, proof=proof or [_BIG.leaf(0)])  # from empty: empty proof only
    verify_consistency(0, n, EMPTY_ROOT, new, [])
    rejects(old_size=0, proof=[])  # ... and the empty root
    rejects(old_size=-1, proof=[])
    rejects(proof=[p[:31] for p in proof] or [b"\x00"])  # malformed elements


def test_rejection_messages_name_expected_and_computed() -> None:
    tree = _tree(7)
    proof = tree.inclusion_proof(3)
    bad_root = _flip(tree.root(), 0)
    with pytest.raises(InclusionProofError) as info:
        verify_inclusion(tree.leaf(3), 3, 7, proof, bad_root)
    assert info.value.expected == bad_root and info.value.computed == tree.root()
    assert bad_root.hex() in str(info.value) and tree.root().hex() in str(info.value)
    with pytest.raises(InclusionProofError, match="too long: 4 hashes .* expected 3"):
        verify_inclusion(tree.leaf(3), 3, 7, proof + [proof[0]], tree.root())
    with pytest.raises(InclusionProofError, match="too short: 2 hashes .* expected 3"):
        verify_inclusion(tree.leaf(3), 3, 7, proof[:2], tree.root())
    with pytest.raises(InclusionProofError, match="leaf index 7 is not inside a tree of size 7"):
        verify_inclusion(tree.leaf(3), 7, 7, proof, tree.root())
    cproof = tree.consistency_proof(3)
    with pytest.raises(ConsistencyProofError, match="has 3 hashes, expected 4"):
        verify_consistency(3, 7, tree.root(3), tree.root(), cproof[:3])
    with pytest.raises(ConsistencyProofError, match="has 5 hashes, expected 4"):
        verify_consistency(3, 7, tree.root(3), tree.root(), cproof + [cproof[0]])
    with pytest.raises(ConsistencyProofError, match="cannot shrink"):
        verify_consistency(7, 3, tree.root(), tree.root(3), cproof)
    with pytest.raises(ConsistencyProofError, match="does not match the new root") as cinfo:
        verify_consistency(3, 7, tree.root(3), bad_root, cproof)
    assert cinfo.value.expected == bad_root and cinfo.value.computed == tree.root()


# -- second-preimage resistance (prefix separation) --------------------------------


def test_interior_node_presented_as_leaf_does_not_verify() -> None:
    """The classic attack: pass off an interior node's preimage as a leaf.

    In a 4-leaf tree the interior node N01 = H(L0 || L1) is, without domain
    separation, also the "leaf hash" of the 64-byte datum L0 || L1 in a 2-leaf tree
    with the same root. RFC 9162's 0x00/0x01 prefixes make those hashes differ.
    """
    tree = _tree(4)
    l0, l1, l2, l3 = (tree.leaf(i) for i in range(4))
    n23 = node_hash(l2, l3)
    forged = l0 + l1
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf_hash(forged), 0, 2, [n23], tree.root())
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf_hash(forged), 0, 4, [n23], tree.root())
    # With the size bound to the root, the node hash itself fails structurally too.
    with pytest.raises(InclusionProofError, match="too short"):
        verify_inclusion(node_hash(l0, l1), 0, 4, [n23], tree.root())

    # The same forgery succeeds against an unprefixed tree: the test has teeth.
    def plain(data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    p = [plain(x) for x in _data(4)]
    plain_root = plain(plain(p[0] + p[1]) + plain(p[2] + p[3]))
    plain_forged = p[0] + p[1]
    assert plain(plain(plain_forged) + plain(p[2] + p[3])) == plain_root


@pytest.mark.parametrize("bad", [b"\x00" * 31, b"\x00" * 33, "00" * 32, None])
def test_verifiers_refuse_hashes_that_are_not_32_bytes(bad: object) -> None:
    """The refusal names the argument: a wrong-length leaf must not yield a root at all."""
    tree = _tree(5)
    leaf, proof, root = tree.leaf(2), tree.inclusion_proof(2), tree.root()
    with pytest.raises(InclusionProofError, match="leaf hash is not a 32-byte hash"):
        root_from_inclusion(bad, 2, 5, proof)  # type: ignore[arg-type]
    with pytest.raises(InclusionProofError, match="root is not a 32-byte hash"):
        verify_inclusion(leaf, 2, 5, proof, bad)  # type: ignore[arg-type]
    cproof = tree.consistency_proof(3)
    with pytest.raises(ConsistencyProofError, match="old root is not a 32-byte hash"):
        verify_consistency(3, 5, bad, root, cproof)  # type: ignore[arg-type]
    with pytest.raises(ConsistencyProofError, match="new root is not a 32-byte hash"):
        verify_consistency(3, 5, tree.root(3), bad, cproof)  # type: ignore[arg-type]


def test_consistency_sizes_must_not_be_negative_and_the_empty_tree_extends_itself() -> None:
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    for old_size, new_size in ((-1, 3), (0, -1), (-2, -1)):
        with pytest.raises(ConsistencyProofError, match="tree sizes must not be negative"):
            verify_consistency(old_size, new_size, EMPTY_ROOT, EMPTY_ROOT, [])
