"""RFC 9162 (Certificate Transparency v2) Merkle trees over SHA-256.

Definitions follow RFC 9162 section 2.1: a leaf hashes as ``SHA-256(0x00 || data)``,
an interior node as ``SHA-256(0x01 || left || right)``, and the empty tree as
``SHA-256("")``. The distinct prefixes keep a leaf from ever being confused with an
interior node (the second-preimage attack on unprefixed trees).

Storage layout: ``_levels[k]`` is one contiguous ``bytearray`` holding the hashes of
the complete, aligned blocks of ``2**k`` leaves, in order (``_levels[0]`` is the leaf
hashes). Level ``k`` therefore holds ``size >> k`` hashes, and a tree of ``n`` leaves
costs about ``2n`` hashes of memory and ``n`` SHA-256 calls to build from leaf hashes.

Every range the RFC definitions split a tree into, ``D[a:b]``, starts at a multiple of
a power of two at least as large as ``b - a``. Its hash is therefore the fold of at most
``log2(b - a)`` stored complete-subtree hashes, so roots and proofs for any historical
size cost ``O(log^2 n)`` hashes at worst and never touch the leaves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from ledger.errors import ConsistencyProofError, InclusionProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

# Pre-fed contexts: copying one is cheaper than hashing a freshly concatenated prefix.
_LEAF_CTX = hashlib.sha256(b"\x00")
_NODE_CTX = hashlib.sha256(b"\x01")


def leaf_hash(data: bytes) -> bytes:
    """The RFC 9162 leaf hash ``SHA-256(0x00 || data)``."""
    h = _LEAF_CTX.copy()
    h.update(data)
    return h.digest()


def node_hash(left: bytes | bytearray, right: bytes | bytearray) -> bytes:
    """The RFC 9162 interior-node hash ``SHA-256(0x01 || left || right)``."""
    h = _NODE_CTX.copy()
    h.update(left)
    h.update(right)
    return h.digest()


def _split(width: int) -> int:
    """The largest power of two strictly smaller than ``width`` (``width >= 2``)."""
    return 1 << ((width - 1).bit_length() - 1)


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise ValueError(f"{what} must be a {HASH_SIZE}-byte hash, got {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be a {HASH_SIZE}-byte hash, got {len(value)} bytes")
    return bytes(value)


class MerkleTree:
    """An append-only RFC 9162 Merkle tree of leaf hashes (not leaf data)."""

    __slots__ = ("_levels", "_size")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0
        self.extend(leaf_hashes)

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"MerkleTree(size={self._size}, root={self.root().hex()})"

    @property
    def size(self) -> int:
        """The number of leaves."""
        return self._size

    # -- growth ---------------------------------------------------------------

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash; return the new leaf's index."""
        node = _check_hash(leaf_hash, "leaf hash")
        levels = self._levels
        index = self._size
        levels[0] += node
        self._size = index + 1
        # Each odd position completes a pair: carry its parent one level up.
        k, i = 0, index
        while i & 1:
            left = levels[k][(i - 1) * HASH_SIZE : i * HASH_SIZE]
            node = node_hash(left, node)
            k += 1
            i >>= 1
            if k == len(levels):
                levels.append(bytearray())
            levels[k] += node
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes at once (one tight hashing loop per level)."""
        batch = leaf_hashes if isinstance(leaf_hashes, list | tuple) else list(leaf_hashes)
        if not batch:
            return
        if set(map(len, batch)) != {HASH_SIZE}:
            for i, value in enumerate(batch):
                _check_hash(value, f"leaf hash #{i} of the batch")
        joined = b"".join(batch)  # TypeError for anything that is not bytes-like
        levels = self._levels
        levels[0] += joined
        self._size += len(batch)
        copy = _NODE_CTX.copy
        k = 0
        while True:
            width = self._size >> k
            if width < 2:
                return
            if k + 1 == len(levels):
                levels.append(bytearray())
            src, dst = levels[k], levels[k + 1]
            have, want = len(dst) // HASH_SIZE, width >> 1
            if have == want:
                return
            for off in range(2 * HASH_SIZE * have, 2 * HASH_SIZE * want, 2 * HASH_SIZE):
                h = copy()
                h.update(src[off : off + 2 * HASH_SIZE])
                dst += h.digest()
            k += 1

    # -- reads ----------------------------------------------------------------

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        if not 0 <= index < self._size:
            raise ValueError(f"leaf index {index} out of range for a tree of {self._size} leaves")
        return bytes(self._levels[0][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def _resolve_size(self, size: int | None) -> int:
        if size is None:
            return self._size
        if not 0 <= size <= self._size:
            raise ValueError(f"size {size} out of range: the tree has {self._size} leaves")
        return size

    def _range_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range the RFC recursion produces (``start`` aligned)."""
        levels = self._levels
        parts = []
        width = end - start
        offset = start
        for k in range(width.bit_length() - 1, -1, -1):
            if width >> k & 1:
                i = (offset >> k) * HASH_SIZE
                parts.append(levels[k][i : i + HASH_SIZE])
                offset += 1 << k
        node = bytes(parts.pop())
        while parts:
            node = node_hash(parts.pop(), node)
        return node

    def root(self, size: int | None = None) -> bytes:
        """The tree head MTH(D[0:size]) (all leaves by default; ``EMPTY_ROOT`` for 0)."""
        size = self._resolve_size(size)
        if size == 0:
            return EMPTY_ROOT
        return self._range_hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path PATH(index, D[0:size]) of RFC 9162 2.1.3.1, leaf side first."""
        size = self._resolve_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} out of range for a tree of {size} leaves")
        siblings = []
        start, end = 0, size
        while end - start > 1:
            mid = start + _split(end - start)
            if index < mid:
                siblings.append(self._range_hash(mid, end))
                end = mid
            else:
                siblings.append(self._range_hash(start, mid))
                start = mid
        siblings.reverse()
        return siblings

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """The proof PROOF(old_size, D[0:new_size]) of RFC 9162 2.1.4.1.

        ``0 < old_size <= new_size``; equal sizes give an empty proof.
        """
        new_size = self._resolve_size(new_size)
        if not 0 < old_size <= new_size:
            raise ValueError(
                f"consistency proof needs 0 < old_size <= new_size, got {old_size} and {new_size}"
            )
        siblings = []
        start, end, m, whole = 0, new_size, old_size, True
        while m != end - start:
            k = _split(end - start)
            if m <= k:
                siblings.append(self._range_hash(start + k, end))
                end = start + k
            else:
                siblings.append(self._range_hash(start, start + k))
                start += k
                m -= k
                whole = False
        proof = [] if whole else [self._range_hash(start, end)]
        proof.extend(reversed(siblings))
        return proof


# -- verification (RFC 9162 2.1.3.2 and 2.1.4.2) --------------------------------


def _inclusion_proof_length(index: int, size: int) -> int:
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_proof_length(old_size: int, new_size: int) -> int:
    if old_size == new_size:
        return 0
    count, start, end, m, whole = 0, 0, new_size, old_size, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            end = start + k
        else:
            start += k
            m -= k
            whole = False
        count += 1
    return count + (0 if whole else 1)


def _check_proof_hashes(
    proof: Sequence[bytes], error: type[InclusionProofError] | type[ConsistencyProofError]
) -> None:
    for i, p in enumerate(proof):
        if not isinstance(p, bytes | bytearray) or len(p) != HASH_SIZE:
            raise error(f"proof element {i} is not a {HASH_SIZE}-byte hash")


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 2.1.3.2 without the final compare).

    Raises `InclusionProofError` when the proof cannot be a proof for ``(index, size)``.
    """
    if not isinstance(leaf_hash, bytes | bytearray) or len(leaf_hash) != HASH_SIZE:
        raise InclusionProofError(f"leaf hash is not a {HASH_SIZE}-byte hash")
    _check_proof_hashes(proof, InclusionProofError)
    if not 0 <= index < size:
        raise InclusionProofError(f"leaf index {index} is not inside a tree of size {size}")
    fn, sn = index, size - 1
    r = bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            raise InclusionProofError(
                f"inclusion proof too long: {len(proof)} hashes for leaf {index} of a tree of "
                f"size {size}, expected {_inclusion_proof_length(index, size)}"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InclusionProofError(
            f"inclusion proof too short: {len(proof)} hashes for leaf {index} of a tree of "
            f"size {size}, expected {_inclusion_proof_length(index, size)}"
        )
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree ``(size, root)``.

    Raises `InclusionProofError` naming the expected and computed root, or the
    structural reason the proof cannot apply.
    """
    if not isinstance(root, bytes | bytearray) or len(root) != HASH_SIZE:
        raise InclusionProofError(f"root is not a {HASH_SIZE}-byte hash")
    computed = root_from_inclusion(leaf_hash, index, size, proof)
    if computed != root:
        raise InclusionProofError(
            f"inclusion proof for leaf {index} does not lead to the root of the tree "
            f"of size {size}",
            expected=bytes(root),
            computed=computed,
        )


def verify_consistency(  # long function: RFC 9162 2.1.4.2 in one piece, to read against the RFC
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``(new_size, new_root)`` extends ``(old_size, old_root)``.

    Follows RFC 9162 2.1.4.2 for ``0 < old_size < new_size``. Equal sizes need an
    empty proof and equal roots; ``old_size == 0`` needs an empty proof and
    ``old_root == EMPTY_ROOT`` (every tree extends the empty one).
    Raises `ConsistencyProofError`.
    """
    for value, what in ((old_root, "old root"), (new_root, "new root")):
        if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
            raise ConsistencyProofError(f"{what} is not a {HASH_SIZE}-byte hash")
    _check_proof_hashes(proof, ConsistencyProofError)
    if old_size < 0 or new_size < 0:
        raise ConsistencyProofError(f"tree sizes must not be negative: {old_size}, {new_size}")
    if old_size > new_size:
        raise ConsistencyProofError(
            f"old size {old_size} is larger than new size {new_size}: a log cannot shrink"
        )
    if old_size == 0 or old_size == new_size:
        if proof:
            raise ConsistencyProofError(
                f"consistency proof from size {old_size} to {new_size} must be empty, "
                f"got {len(proof)} hashes"
            )
        expected_old = EMPTY_ROOT if old_size == 0 else new_root
        if old_root != expected_old:
            raise ConsistencyProofError(
                f"trees of size {old_size} have different roots",
                expected=bytes(expected_old),
                computed=bytes(old_root),
            )
        return

    def wrong_length() -> ConsistencyProofError:
        return ConsistencyProofError(
            f"consistency proof from size {old_size} to {new_size} has {len(proof)} hashes, "
            f"expected {_consistency_proof_length(old_size, new_size)}"
        )

    if not proof:
        raise wrong_length()
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = bytes(path[0])
    for c in path[1:]:
        if sn == 0:
            raise wrong_length()
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise wrong_length()
    if fr != old_root:
        raise ConsistencyProofError(
            f"consistency proof from size {old_size} to {new_size} does not match the old root",
            expected=bytes(old_root),
            computed=fr,
        )
    if sr != new_root:
        raise ConsistencyProofError(
            f"consistency proof from size {old_size} to {new_size} does not match the new root",
            expected=bytes(new_root),
            computed=sr,
        )
