// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title RFC9162
/// @notice Verifiers for RFC 9162 (Certificate Transparency v2, section 2.1) Merkle proofs over
/// SHA-256: inclusion (2.1.3.2) and consistency (2.1.4.2).
/// @dev Security caveats:
/// - Leaves hash as SHA-256(0x00 || data) and interior nodes as SHA-256(0x01 || left || right).
///   The distinct prefixes mean no leaf hash can equal an interior-node hash, so the 64 bytes
///   of two child hashes can never be passed off as a leaf (second-preimage attack). Callers
///   must compute leaf hashes from the data themselves ({leafHash}).
/// - This is not OpenZeppelin's MerkleProof: that hashes sorted pairs with keccak256 and no
///   prefixes, so it forgets positions and cannot check RFC 9162 proofs. An RFC 9162 proof is
///   only meaningful together with the leaf index and the tree size; the size must be bound
///   to the root by the caller (for example an anchored or signed tree head), because a
///   root alone does not fix the size the verifier assumes.
/// - SHA-256 is the precompile at address 0x02, called with staticcall.
library RFC9162 {
    /// @dev SHA-256 of the empty string: the root of the empty tree.
    bytes32 internal constant EMPTY_ROOT =
        0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855;

    /// @notice The RFC 9162 leaf hash SHA-256(0x00 || data).
    /// @param data The leaf's bytes.
    /// @return The leaf hash.
    function leafHash(bytes memory data) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x00), data));
    }

    /// @notice The RFC 9162 interior-node hash SHA-256(0x01 || left || right).
    /// @param left Left child hash.
    /// @param right Right child hash.
    /// @return h The node hash.
    function nodeHash(bytes32 left, bytes32 right) internal view returns (bytes32 h) {
        assembly ("memory-safe") {
            // 65 bytes of scratch past the free memory pointer; the result goes to 0x00.
            let p := mload(0x40)
            mstore8(p, 0x01)
            mstore(add(p, 0x01), left)
            mstore(add(p, 0x21), right)
            if iszero(staticcall(gas(), 0x02, p, 0x41, 0x00, 0x20)) { revert(0, 0) }
            h := mload(0x00)
        }
    }

    /// @notice The root an inclusion proof leads to (RFC 9162 2.1.3.2 without the final
    /// comparison).
    /// @param index Zero-based leaf index.
    /// @param leaf Leaf hash.
    /// @param size Tree size.
    /// @param proof Audit path, leaf side first.
    /// @return ok False if the proof cannot be a proof for (index, size): index out of range,
    /// or a proof of the wrong length.
    /// @return root The computed root (meaningful only if ok).
    function rootFromInclusion(uint256 index, bytes32 leaf, uint256 size, bytes32[] calldata proof)
        internal
        view
        returns (bool ok, bytes32 root)
    {
        if (index >= size) return (false, bytes32(0));
        assembly ("memory-safe") {
            // Scratch past the free memory pointer holds 0x01 || left || right; the precompile
            // writes each hash to 0x00.
            let buf := mload(0x40)
            mstore8(buf, 0x01)
            let left := add(buf, 0x01)
            let right := add(buf, 0x21)
            let ptr := proof.offset
            let end := add(ptr, shl(5, proof.length))
            let fn := index
            let sn := sub(size, 1)
            let called := 1
            root := leaf
            ok := 1
            for {} lt(ptr, end) { ptr := add(ptr, 0x20) } {
                if iszero(sn) {
                    ok := 0
                    break
                }
                switch or(and(fn, 1), eq(fn, sn))
                case 0 {
                    mstore(left, root)
                    mstore(right, calldataload(ptr))
                }
                default {
                    mstore(left, calldataload(ptr))
                    mstore(right, root)
                    // Skip the levels where this node has no right sibling.
                    for {} iszero(or(and(fn, 1), iszero(fn))) {} {
                        fn := shr(1, fn)
                        sn := shr(1, sn)
                    }
                }
                called := and(called, staticcall(gas(), 0x02, buf, 0x41, 0x00, 0x20))
                root := mload(0x00)
                fn := shr(1, fn)
                sn := shr(1, sn)
            }
            if iszero(called) { revert(0, 0) }
            ok := and(ok, iszero(sn))
        }
    }

    /// @notice True if `proof` shows that `leaf` is leaf `index` of the tree (size, root).
    /// @param index Zero-based leaf index.
    /// @param leaf Leaf hash, SHA-256(0x00 || data).
    /// @param size Tree size; must be authenticated together with `root`.
    /// @param root Tree root.
    /// @param proof Audit path, leaf side first.
    /// @return True if the proof verifies.
    function verifyInclusion(
        uint256 index,
        bytes32 leaf,
        uint256 size,
        bytes32 root,
        bytes32[] calldata proof
    ) internal view returns (bool) {
        (bool ok, bytes32 computed) = rootFromInclusion(index, leaf, size, proof);
        return ok && computed == root;
    }

    /// @notice True if `proof` shows that the tree (newSize, newRoot) extends (oldSize, oldRoot).
    /// @dev RFC 9162 2.1.4.2 for 0 < oldSize < newSize. Equal sizes need an empty proof and equal
    /// roots; oldSize 0 needs an empty proof and oldRoot == EMPTY_ROOT; oldSize > newSize fails.
    /// @param oldSize Size of the older tree.
    /// @param newSize Size of the newer tree.
    /// @param oldRoot Root of the older tree.
    /// @param newRoot Root of the newer tree.
    /// @param proof PROOF(oldSize, D[newSize]).
    /// @return ok True if the proof verifies.
    function verifyConsistency(
        uint256 oldSize,
        uint256 newSize,
        bytes32 oldRoot,
        bytes32 newRoot,
        bytes32[] calldata proof
    ) internal view returns (bool ok) {
        if (oldSize > newSize) return false;
        if (oldSize == newSize) return proof.length == 0 && oldRoot == newRoot;
        if (oldSize == 0) return proof.length == 0 && oldRoot == EMPTY_ROOT;
        if (proof.length == 0) return false;
        assembly ("memory-safe") {
            // Scratch past the free memory pointer holds 0x01 || left || right; the precompile
            // writes each hash to 0x00.
            let buf := mload(0x40)
            mstore8(buf, 0x01)
            let left := add(buf, 0x01)
            let right := add(buf, 0x21)
            let ptr := proof.offset
            let end := add(ptr, shl(5, proof.length))
            // A complete old tree is itself the first node of the path and is left out.
            let fr := oldRoot
            if and(oldSize, sub(oldSize, 1)) {
                fr := calldataload(ptr)
                ptr := add(ptr, 0x20)
            }
            let sr := fr
            let fn := sub(oldSize, 1)
            let sn := sub(newSize, 1)
            for {} and(fn, 1) {} {
                fn := shr(1, fn)
                sn := shr(1, sn)
            }
            let called := 1
            ok := 1
            for {} lt(ptr, end) { ptr := add(ptr, 0x20) } {
                if iszero(sn) {
                    ok := 0
                    break
                }
                let c := calldataload(ptr)
                switch or(and(fn, 1), eq(fn, sn))
                case 0 {
                    mstore(left, sr)
                    mstore(right, c)
                    called := and(called, staticcall(gas(), 0x02, buf, 0x41, 0x00, 0x20))
                    sr := mload(0x00)
                }
                default {
                    mstore(left, c)
                    mstore(right, fr)
                    called := and(called, staticcall(gas(), 0x02, buf, 0x41, 0x00, 0x20))
                    fr := mload(0x00)
                    mstore(right, sr)
                    called := and(called, staticcall(gas(), 0x02, buf, 0x41, 0x00, 0x20))
                    sr := mload(0x00)
                    // Skip the levels where this node has no right sibling.
                    for {} iszero(or(and(fn, 1), iszero(fn))) {} {
                        fn := shr(1, fn)
                        sn := shr(1, sn)
                    }
                }
                fn := shr(1, fn)
                sn := shr(1, sn)
            }
            if iszero(called) { revert(0, 0) }
            ok := and(ok, and(iszero(sn), and(eq(fr, oldRoot), eq(sr, newRoot))))
        }
    }
}
