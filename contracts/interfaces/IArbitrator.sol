// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IArbitrable} from "./IArbitrable.sol";

/// @title IArbitrator
/// @notice The arbitrator side of ERC-792 (Arbitration Standard). Written from the standard's text.
/// @dev An arbitrable creates a dispute by calling {createDispute} with at least {arbitrationCost}
/// in value; the arbitrator later calls {IArbitrable-rule} on it with the final ruling. Appeals are
/// optional for an arbitrator: one without appeals returns an unaffordable {appealCost}.
interface IArbitrator {
    /// @notice Where a dispute stands.
    enum DisputeStatus {
        Waiting,
        Appealable,
        Solved
    }

    /// @notice Emitted when a dispute is created.
    event DisputeCreation(uint256 indexed disputeID, IArbitrable indexed arbitrable);

    /// @notice Emitted when a ruling can be appealed.
    event AppealPossible(uint256 indexed disputeID, IArbitrable indexed arbitrable);

    /// @notice Emitted when a dispute is appealed.
    event AppealDecision(uint256 indexed disputeID, IArbitrable indexed arbitrable);

    /// @notice Create a dispute. Must be paid with at least {arbitrationCost}.
    /// @param choices The number of ruling options (rulings 1..choices; 0 is always "refused").
    /// @param extraData Arbitrator-specific data (e.g. which court).
    /// @return disputeID The dispute's id, unique in this arbitrator.
    function createDispute(uint256 choices, bytes calldata extraData) external payable returns (uint256 disputeID);

    /// @notice The cost of creating a dispute.
    /// @param extraData Arbitrator-specific data.
    /// @return cost The amount of native currency to pay.
    function arbitrationCost(bytes calldata extraData) external view returns (uint256 cost);

    /// @notice Appeal a ruling. Must be paid with at least {appealCost}.
    /// @param disputeID The dispute to appeal.
    /// @param extraData Arbitrator-specific data.
    function appeal(uint256 disputeID, bytes calldata extraData) external payable;

    /// @notice The cost of appealing a ruling.
    /// @param disputeID The dispute to appeal.
    /// @param extraData Arbitrator-specific data.
    /// @return cost The amount of native currency to pay.
    function appealCost(uint256 disputeID, bytes calldata extraData) external view returns (uint256 cost);

    /// @notice The period during which a ruling can be appealed, if any.
    /// @param disputeID The dispute.
    /// @return start The start of the appeal period.
    /// @return end The end of the appeal period.
    function appealPeriod(uint256 disputeID) external view returns (uint256 start, uint256 end);

    /// @notice Where a dispute stands.
    /// @param disputeID The dispute.
    /// @return status Waiting, Appealable or Solved.
    function disputeStatus(uint256 disputeID) external view returns (DisputeStatus status);

    /// @notice The current (or final) ruling of a dispute.
    /// @param disputeID The dispute.
    /// @return ruling The ruling.
    function currentRuling(uint256 disputeID) external view returns (uint256 ruling);
}
