// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Time} from "@openzeppelin/contracts/utils/types/Time.sol";

import {IEvidenceLog} from "./IEvidenceLog.sol";
import {RFC9162} from "./lib/RFC9162.sol";

/// @title EvidenceLog
/// @notice Anchors the tree heads (size, root) of an RFC 9162 Merkle log of live-commerce
/// evidence and enforces on chain that the log only grows: each new head must come with a
/// consistency proof from the latest one.
/// @dev Security caveats:
/// - RFC 9162 hashes leaves as SHA-256(0x00 || data) and interior nodes as
///   SHA-256(0x01 || left || right). The prefixes keep a leaf hash from ever equalling an
///   interior-node hash (second-preimage attack). {verifyInclusion} takes a leaf hash: callers
///   must compute it from the record bytes themselves.
/// - This is not OpenZeppelin's MerkleProof, which hashes sorted pairs with keccak256 and no
///   prefixes: that scheme forgets leaf positions and cannot verify RFC 9162 proofs.
/// - An RFC 9162 inclusion proof can verify against a root for more than one claimed size, so
///   a root is only trusted here together with the size it was anchored with.
/// - The contract checks structure, not content: it proves that anchored heads extend each
///   other, not that the anchorer put honest records in the log.
/// - {anchorIndexed} commits to an index root by its HeadIndexed event only (no storage): the
///   pair (head, index root) is proven by the receipt of the head's one anchoring transaction.
///   The index root's content is the anchorer's claim, checked off chain like the records.
contract EvidenceLog is IEvidenceLog, AccessControl {
    /// @inheritdoc IEvidenceLog
    bytes32 public constant ANCHORER_ROLE = keccak256("ANCHORER_ROLE");

    /// @dev One storage slot per anchored head, keyed by its root. Bit layout, low to high:
    /// [0, 64) size | [64, 112) timestamp | [112, 160) blockNumber | [160, 224) sequence
    /// (0 for the first head) | [224, 256) unused. A zero size means "not anchored": the empty
    /// log is never anchored and root 0 is rejected, so the key 0 is never written.
    struct HeadInfo {
        uint64 size;
        uint48 timestamp;
        uint48 blockNumber;
        uint64 sequence;
    }

    mapping(bytes32 root => HeadInfo) private _heads;
    bytes32 private _latestRoot;

    /// @notice Deploys an empty log.
    /// @param admin Receives DEFAULT_ADMIN_ROLE and ANCHORER_ROLE.
    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ANCHORER_ROLE, admin);
    }

    /// @inheritdoc IEvidenceLog
    function anchor(uint64 size, bytes32 root, bytes32[] calldata consistencyProof)
        external
        onlyRole(ANCHORER_ROLE)
    {
        _anchor(size, root, consistencyProof);
    }

    /// @inheritdoc IEvidenceLog
    function anchorIndexed(
        uint64 size,
        bytes32 root,
        bytes32 indexRoot,
        bytes32[] calldata consistencyProof
    ) external onlyRole(ANCHORER_ROLE) {
        if (indexRoot == bytes32(0)) revert EvidenceLogZeroIndexRoot(size, root);
        _anchor(size, root, consistencyProof);
        emit HeadIndexed(size, root, indexRoot);
    }

    /// @dev The one place a head is accepted, for {anchor} and {anchorIndexed}: checks that
    /// (size, root) extends the latest head, stores it and emits HeadAnchored.
    function _anchor(uint64 size, bytes32 root, bytes32[] calldata consistencyProof) private {
        if (size == 0 || root == bytes32(0)) revert EvidenceLogInvalidHead(size, root);
        bytes32 previousRoot = _latestRoot;
        HeadInfo memory previous = _heads[previousRoot];
        uint64 previousSize = previous.size;
        if (size <= previousSize) revert EvidenceLogNotExtending(previousSize, size);
        if (previousSize == 0) {
            if (consistencyProof.length != 0) revert EvidenceLogInvalidConsistencyProof(0, size);
        } else if (
            !RFC9162.verifyConsistency(previousSize, size, previousRoot, root, consistencyProof)
        ) {
            revert EvidenceLogInvalidConsistencyProof(previousSize, size);
        }
        _heads[root] = HeadInfo({
            size: size,
            timestamp: Time.timestamp(),
            blockNumber: Time.blockNumber(),
            sequence: previousSize == 0 ? 0 : previous.sequence + 1
        });
        _latestRoot = root;
        emit HeadAnchored(size, root, previousSize, msg.sender);
    }

    /// @inheritdoc IEvidenceLog
    function anchoredAt(uint64 size, bytes32 root)
        external
        view
        returns (bool anchored, uint48 timestamp, uint48 blockNumber)
    {
        HeadInfo memory head = _heads[root];
        if (size == 0 || head.size != size) return (false, 0, 0);
        return (true, head.timestamp, head.blockNumber);
    }

    /// @inheritdoc IEvidenceLog
    function latestHead()
        external
        view
        returns (uint64 size, bytes32 root, uint48 timestamp, uint48 blockNumber)
    {
        root = _latestRoot;
        HeadInfo memory head = _heads[root];
        return (head.size, root, head.timestamp, head.blockNumber);
    }

    /// @inheritdoc IEvidenceLog
    function headCount() external view returns (uint64) {
        bytes32 root = _latestRoot;
        return root == bytes32(0) ? 0 : _heads[root].sequence + 1;
    }

    /// @inheritdoc IEvidenceLog
    function verifyInclusion(
        uint256 index,
        bytes32 leafHash,
        uint64 size,
        bytes32 root,
        bytes32[] calldata proof
    ) external view returns (bool) {
        if (size == 0 || _heads[root].size != size) return false;
        return RFC9162.verifyInclusion(index, leafHash, size, root, proof);
    }

    /// @inheritdoc IEvidenceLog
    function verifyConsistency(
        uint64 oldSize,
        uint64 newSize,
        bytes32 oldRoot,
        bytes32 newRoot,
        bytes32[] calldata proof
    ) external view returns (bool) {
        return RFC9162.verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof);
    }

    /// @notice ERC-165: IEvidenceLog and AccessControl's interfaces.
    /// @param interfaceId The interface identifier.
    /// @return True if supported.
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return
            interfaceId == type(IEvidenceLog).interfaceId || super.supportsInterface(interfaceId);
    }
}
