// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IEvidenceLog
/// @notice Append-only anchor for the tree heads of an RFC 9162 (Certificate Transparency v2)
/// Merkle log over SHA-256. A tree head is the pair (size, root): the number of leaves and the
/// Merkle tree hash of those leaves.
interface IEvidenceLog {
    /// @notice Emitted when a tree head is anchored, right after it is stored.
    /// @param size Number of leaves of the new head.
    /// @param root RFC 9162 root of the new head.
    /// @param previousSize Size of the head it extends (0 for the first head).
    /// @param anchorer Account that anchored it.
    event HeadAnchored(
        uint64 indexed size, bytes32 indexed root, uint64 previousSize, address indexed anchorer
    );

    /// @notice Emitted by {anchorIndexed} right after the HeadAnchored of the same head: the
    /// head (size, root) was anchored together with this index root.
    /// @dev The commitment is this event, in the receipt of the transaction that anchored the
    /// head; nothing is stored. A size is anchored at most once (sizes strictly grow), so the
    /// contract emits at most one HeadIndexed per size in its whole history, and never one for
    /// a head anchored with {anchor}.
    /// @param size Number of leaves of the anchored head.
    /// @param root RFC 9162 root of the anchored head.
    /// @param indexRoot Root of the verifiable index of the log's first `size` leaves (by
    /// order and by merchant), as the anchorer computed it.
    event HeadIndexed(uint64 indexed size, bytes32 indexed root, bytes32 indexRoot);

    /// @notice Thrown when a head has size 0 or root 0 (the empty log is never anchored).
    error EvidenceLogInvalidHead(uint64 size, bytes32 root);

    /// @notice Thrown when a new head is not larger than the latest anchored head.
    error EvidenceLogNotExtending(uint64 oldSize, uint64 newSize);

    /// @notice Thrown when the consistency proof does not show that the new head extends the
    /// latest anchored head (for the first head: when the proof is not empty).
    error EvidenceLogInvalidConsistencyProof(uint64 oldSize, uint64 newSize);

    /// @notice Thrown when anchorIndexed is given an index root of 0, which would commit to no
    /// index (a head without an index is anchored with anchor).
    error EvidenceLogZeroIndexRoot(uint64 size, bytes32 root);

    /// @notice Role allowed to anchor heads: keccak256("ANCHORER_ROLE").
    /// @return The role identifier.
    function ANCHORER_ROLE() external view returns (bytes32);

    /// @notice Anchors the head (size, root) if it extends the latest anchored head.
    /// @dev The proof is RFC 9162 section 2.1.4 PROOF(oldSize, D[size]) from the latest head;
    /// the first head needs an empty proof. Only ANCHORER_ROLE.
    /// @param size Number of leaves of the new head, larger than the latest head's.
    /// @param root RFC 9162 root of the new head.
    /// @param consistencyProof Consistency proof from the latest head to the new one.
    function anchor(uint64 size, bytes32 root, bytes32[] calldata consistencyProof) external;

    /// @notice Anchors the head (size, root) exactly as {anchor} does, and commits to the root
    /// of the log's verifiable index at that head by emitting HeadIndexed(size, root, indexRoot)
    /// right after HeadAnchored.
    /// @dev Why the event alone binds the pair: a size can be anchored only once (each new head
    /// must be larger than the latest), so (size, root) has exactly one anchoring transaction,
    /// and its receipt holds at most one HeadIndexed for that size. Anchoring the same size
    /// again to attach another index root reverts with EvidenceLogNotExtending. A verifier takes
    /// the receipt of the transaction that emitted HeadAnchored(size, root) from this contract
    /// and reads the HeadIndexed(size, root, _) beside it; none there means the head was
    /// anchored with {anchor} and no index was committed. As for the log's records, the
    /// contract checks that an index root is given, not what it commits to. Only ANCHORER_ROLE.
    /// @param size Number of leaves of the new head, larger than the latest head's.
    /// @param root RFC 9162 root of the new head.
    /// @param indexRoot Root of the log's verifiable index at this head; not 0.
    /// @param consistencyProof Consistency proof from the latest head to the new one.
    function anchorIndexed(
        uint64 size,
        bytes32 root,
        bytes32 indexRoot,
        bytes32[] calldata consistencyProof
    ) external;

    /// @notice Whether the head (size, root) was anchored, and when.
    /// @param size Number of leaves of the head.
    /// @param root RFC 9162 root of the head.
    /// @return anchored True if exactly this (size, root) pair was anchored.
    /// @return timestamp Block timestamp of the anchoring (0 if not anchored).
    /// @return blockNumber Block number of the anchoring (0 if not anchored).
    function anchoredAt(uint64 size, bytes32 root)
        external
        view
        returns (bool anchored, uint48 timestamp, uint48 blockNumber);

    /// @notice The latest anchored head; all zero before the first anchoring.
    /// @return size Number of leaves.
    /// @return root RFC 9162 root.
    /// @return timestamp Block timestamp of its anchoring.
    /// @return blockNumber Block number of its anchoring.
    function latestHead()
        external
        view
        returns (uint64 size, bytes32 root, uint48 timestamp, uint48 blockNumber);

    /// @notice Number of heads anchored so far.
    /// @return The count.
    function headCount() external view returns (uint64);

    /// @notice True only if (size, root) is an anchored head and `proof` is a valid RFC 9162
    /// inclusion proof of `leafHash` at `index` in it.
    /// @dev `leafHash` must be SHA-256(0x00 || record bytes), computed by the caller from the
    /// record itself: the size is bound to the root here, the data to the leaf hash is not.
    /// @param index Zero-based leaf index.
    /// @param leafHash RFC 9162 leaf hash of the record.
    /// @param size Number of leaves of the head.
    /// @param root RFC 9162 root of the head.
    /// @param proof Audit path PATH(index, D[size]), leaf side first.
    /// @return True if the leaf is proven to be in the anchored head.
    function verifyInclusion(
        uint256 index,
        bytes32 leafHash,
        uint64 size,
        bytes32 root,
        bytes32[] calldata proof
    ) external view returns (bool);

    /// @notice True if `proof` is a valid RFC 9162 consistency proof that the tree (newSize,
    /// newRoot) extends (oldSize, oldRoot). Pure check: does not consult anchored heads.
    /// @dev Equal sizes need an empty proof and equal roots; oldSize 0 needs an empty proof
    /// and oldRoot == SHA-256("").
    /// @param oldSize Size of the older tree.
    /// @param newSize Size of the newer tree.
    /// @param oldRoot Root of the older tree.
    /// @param newRoot Root of the newer tree.
    /// @param proof PROOF(oldSize, D[newSize]).
    /// @return True if the proof verifies.
    function verifyConsistency(
        uint64 oldSize,
        uint64 newSize,
        bytes32 oldRoot,
        bytes32 newRoot,
        bytes32[] calldata proof
    ) external view returns (bool);
}
