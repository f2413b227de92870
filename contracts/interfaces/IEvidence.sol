// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IArbitrator} from "./IArbitrator.sol";

/// @title IEvidence
/// @notice ERC-1497 (Evidence Standard) events, written from the standard's text. Evidence lives
/// off chain; these events link it to disputes. Arbitrable contracts emit them.
interface IEvidence {
    /// @notice Emitted when meta-evidence (the agreement, the question, what each ruling means) is
    /// published.
    /// @param metaEvidenceID Unique identifier of the meta-evidence.
    /// @param evidence URI of the meta-evidence document.
    event MetaEvidence(uint256 indexed metaEvidenceID, string evidence);

    /// @notice Emitted when a party submits evidence.
    /// @param arbitrator The arbitrator of the dispute.
    /// @param evidenceGroupID The group the evidence belongs to (one group per dispute or agreement).
    /// @param party The address that submitted it.
    /// @param evidence URI or reference of the evidence.
    event Evidence(
        IArbitrator indexed arbitrator, uint256 indexed evidenceGroupID, address indexed party, string evidence
    );

    /// @notice Emitted when a dispute is created, linking it to its meta-evidence and evidence group.
    /// @param arbitrator The arbitrator of the dispute.
    /// @param disputeID The dispute's id in that arbitrator.
    /// @param metaEvidenceID The meta-evidence that describes the dispute.
    /// @param evidenceGroupID The evidence group of the dispute.
    event Dispute(
        IArbitrator indexed arbitrator, uint256 indexed disputeID, uint256 metaEvidenceID, uint256 evidenceGroupID
    );
}
